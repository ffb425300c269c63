//! One batch of the signing path's operations in one sqlx transaction
//! (PostgreSQL; SQLite when no dedicated writer runs): audit appends first,
//! then every token operation in token order, so that two replicas'
//! batches take their locks in one order and cannot deadlock.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::{Any, Connection, Executor, Transaction};

use super::audit::{self as rows, NewRecord};
use super::registry::PROFILES_VERSION;
use super::spent::{unix_now, Answer, Op, Settle, PRUNE_EVERY, RESERVED, SPENT};
use super::{Backend, Database, StoreError};
use crate::auth::{Claim, Epoch, TokenId};

/// One batch, one transaction; answers in the order of `ops`.
///
/// Reservations and releases must be atomic and visible to every replica,
/// not survive a crash (a lost reservation signed nothing): a batch of only
/// those does not wait for the disk. A batch that spends a token or
/// appends a record does.
pub(super) async fn write(
    db: Database,
    ops: Vec<Op>,
    replica: Arc<str>,
    pruned: Arc<AtomicI64>,
) -> Result<Vec<Answer>, StoreError> {
    let now = unix_now();
    let durable = ops.iter().any(Op::durable);
    let relaxed_sqlite = !durable && db.backend() == Backend::Sqlite;
    let mut connection = db.pool().acquire().await?;
    if relaxed_sqlite {
        // WAL: NORMAL syncs at checkpoints, not at every commit.
        connection.execute("PRAGMA synchronous = NORMAL").await?;
    }
    let relaxed_postgres = !durable && db.backend() == Backend::Postgres;
    let answers = transaction(&mut connection, &ops, &replica, now, relaxed_postgres).await;
    if relaxed_sqlite {
        if let Err(e) = connection.execute("PRAGMA synchronous = FULL").await {
            // Never back in the pool less durable than the others.
            tracing::warn!(error = %e, "closing a database connection");
            connection.close_on_drop();
        }
    }
    if pruned.load(Ordering::Relaxed) + PRUNE_EVERY <= now {
        pruned.store(now, Ordering::Relaxed);
        // Off the batch's answers: its requests do not wait for it.
        tokio::spawn(async move { prune(&db, now).await });
    }
    answers
}

async fn transaction(
    connection: &mut PoolConnection<Any>,
    ops: &[Op],
    replica: &str,
    now: i64,
    relaxed_postgres: bool,
) -> Result<Vec<Answer>, StoreError> {
    let mut answers = vec![Answer::Done; ops.len()];
    let mut tx = connection.begin().await?;
    if relaxed_postgres {
        tx.execute("SET LOCAL synchronous_commit = off").await?;
    }
    let appends: Vec<(usize, &NewRecord, _)> = ops
        .iter()
        .enumerate()
        .filter_map(|(i, op)| match op {
            Op::Append { record, math, .. } => Some((i, record, *math)),
            _ => None,
        })
        .collect();
    if let Some(&(_, _, math)) = appends.first() {
        let records: Vec<&NewRecord> = appends.iter().map(|(_, r, _)| *r).collect();
        let (first, _) = rows::append_in(&mut tx, &records, math).await?;
        for (n, (i, _, _)) in appends.iter().enumerate() {
            answers[*i] = Answer::Index(first + n as u64);
        }
    }
    // SPEC §9: the profiles' version rides in the reservations' answers
    // (`signing::live`); read committed: every change committed before the
    // batch began is seen.
    let epoch = if Op::reserves(ops) {
        sqlx::query_scalar(PROFILES_VERSION)
            .fetch_one(&mut *tx)
            .await?
    } else {
        0
    };
    for (id, i) in Op::in_token_order(ops) {
        match ops[i].token().and_then(|(_, settle)| settle) {
            None => {
                let Op::Reserve { until, .. } = ops[i] else {
                    unreachable!("only a reservation settles nothing")
                };
                let claim = reserve(&mut tx, id, until, epoch, replica, now).await?;
                answers[i] = Answer::Claim(claim);
            }
            Some(settle) => settle_token(&mut tx, id, settle, replica, now).await?,
        }
    }
    tx.commit().await?;
    Ok(answers)
}

/// Deletes rows whose tokens expired, outside the requests' transaction:
/// a failure is logged and retried a minute later.
async fn prune(db: &Database, now: i64) {
    let pruning = sqlx::query("DELETE FROM spent_tokens WHERE until_unix < $1")
        .bind(now)
        .execute(db.pool())
        .await;
    match pruning {
        Ok(done) => tracing::debug!(gone = done.rows_affected(), "pruned expired spent tokens"),
        Err(e) => tracing::warn!(error = %e, "could not prune expired spent tokens"),
    }
}

/// Spends or releases this replica's reservation (never a spent token).
async fn settle_token(
    tx: &mut Transaction<'_, Any>,
    id: TokenId,
    settle: Settle,
    replica: &str,
    now: i64,
) -> Result<(), StoreError> {
    match settle {
        Settle::Spend => {
            let changed = sqlx::query(
                "UPDATE spent_tokens SET state = $1, changed_unix = $2 \
                 WHERE jti_sha256 = $3 AND replica = $4 AND state = $5",
            )
            .bind(SPENT)
            .bind(now)
            .bind(id.to_vec())
            .bind(replica)
            .bind(RESERVED)
            .execute(&mut **tx)
            .await?
            .rows_affected();
            if changed != 1 {
                // Only once the row expired and was pruned: then no replica
                // accepts the token any more.
                tracing::warn!("committed a token whose reservation is gone");
            }
        }
        Settle::Release => {
            sqlx::query(
                "DELETE FROM spent_tokens WHERE jti_sha256 = $1 AND replica = $2 AND state = $3",
            )
            .bind(id.to_vec())
            .bind(replica)
            .bind(RESERVED)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

/// SPEC §3 single use across replicas: one atomic statement decides; a
/// reservation carries the batch's `epoch`.
async fn reserve(
    tx: &mut Transaction<'_, Any>,
    id: TokenId,
    until: i64,
    epoch: Epoch,
    replica: &str,
    now: i64,
) -> Result<Claim, StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO spent_tokens (jti_sha256, until_unix, state, replica, changed_unix) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (jti_sha256) DO NOTHING",
    )
    .bind(id.to_vec())
    .bind(until)
    .bind(RESERVED)
    .bind(replica)
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(Claim::Reserved { epoch });
    }
    let state: Option<String> =
        sqlx::query_scalar("SELECT state FROM spent_tokens WHERE jti_sha256 = $1")
            .bind(id.to_vec())
            .fetch_optional(&mut **tx)
            .await?;
    Ok(match state.as_deref() {
        Some(SPENT) => Claim::Spent,
        _ => Claim::Held,
    })
}
