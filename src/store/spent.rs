//! Spent activation tokens shared by every replica (SPEC §3, §12): the
//! ledger behind `auth::Verifier::reserve`.
//!
//! A reservation is one `INSERT ... ON CONFLICT DO NOTHING`: of two
//! replicas inserting the same token only one affects a row. Reservations,
//! commits and releases of concurrent requests share one transaction
//! ([`GroupCommit`]); rows are visited in token order so that two replicas'
//! batches cannot deadlock. Expired rows are pruned once a minute, after
//! a batch (never on every request, nor in the requests' transaction).
//!
//! A reservation whose replica crashed is never released: it is refused
//! until its token expires, then pruned like any other row.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::pool::PoolConnection;
use sqlx::{Any, Connection, Executor, Transaction};

use super::{Backend, Database, GroupCommit, StoreError};
use crate::auth::{Claim, LedgerFuture, SpentLedger, TokenId};

/// Batches hold at most this many operations.
const MAX_BATCH: usize = 256;
/// Seconds between two prunings of expired rows.
const PRUNE_EVERY: i64 = 60;

const RESERVED: &str = "reserved";
const SPENT: &str = "spent";

#[derive(Clone, Copy, Debug)]
enum Op {
    Reserve { id: TokenId, until: i64 },
    Commit { id: TokenId },
    Release { id: TokenId },
}

impl Op {
    fn id(&self) -> &TokenId {
        match self {
            Op::Reserve { id, .. } | Op::Commit { id } | Op::Release { id } => id,
        }
    }
}

/// The `spent_tokens` table, written through one group-commit writer.
/// Each instance is one replica (a random id in the `replica` column).
#[derive(Clone)]
pub struct SpentTokens {
    database: Database,
    writer: GroupCommit<Op, Option<Claim>>,
}

impl SpentTokens {
    pub fn new(database: Database) -> Self {
        let replica: Arc<str> = uuid::Uuid::new_v4().to_string().into();
        let pruned = Arc::new(AtomicI64::new(0));
        let writer = GroupCommit::spawn(
            database.clone(),
            MAX_BATCH,
            Box::new(move |db, ops| Box::pin(write(db, ops, replica.clone(), pruned.clone()))),
        );
        Self { database, writer }
    }

    /// Queues `op` at once, on the database's runtime; the future waits.
    fn start(&self, op: Op) -> LedgerFuture<Option<Claim>> {
        let writer = self.writer.clone();
        let task = self
            .database
            .handle()
            .spawn(async move { writer.submit(op).await });
        Box::pin(async move {
            let outcome = task.await.map_err(|_| StoreError::WriterGone)?;
            outcome.map_err(|e| {
                tracing::warn!(error = %e, ?op, "spent-token ledger");
                e.into()
            })
        })
    }
}

impl SpentLedger for SpentTokens {
    fn reserve(&self, id: TokenId, until: SystemTime) -> LedgerFuture<Claim> {
        let until = until
            .duration_since(UNIX_EPOCH)
            // Rounded up: a row never goes before its token expires.
            .map_or(0, |d| d.as_secs() as i64 + 1);
        let answer = self.start(Op::Reserve { id, until });
        Box::pin(async move {
            answer
                .await?
                .ok_or_else(|| StoreError::Invalid("no answer to a reservation".into()).into())
        })
    }

    fn commit(&self, id: TokenId) -> LedgerFuture<()> {
        let done = self.start(Op::Commit { id });
        Box::pin(async move { done.await.map(drop) })
    }

    fn release(&self, id: TokenId) -> LedgerFuture<()> {
        let done = self.start(Op::Release { id });
        Box::pin(async move { done.await.map(drop) })
    }
}

/// One batch, one transaction; answers in the order of `ops`.
///
/// Reservations and releases must be atomic and visible to every replica,
/// not survive a crash (a lost reservation signed nothing): a batch of only
/// those does not wait for the disk. A batch that spends a token does.
async fn write(
    db: Database,
    ops: Vec<Op>,
    replica: Arc<str>,
    pruned: Arc<AtomicI64>,
) -> Result<Vec<Option<Claim>>, StoreError> {
    let now = unix_now();
    let durable = ops.iter().any(|op| matches!(op, Op::Commit { .. }));
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
) -> Result<Vec<Option<Claim>>, StoreError> {
    let mut order: Vec<usize> = (0..ops.len()).collect();
    order.sort_by_key(|&i| *ops[i].id());
    let mut answers = vec![None; ops.len()];
    let mut tx = connection.begin().await?;
    if relaxed_postgres {
        tx.execute("SET LOCAL synchronous_commit = off").await?;
    }
    for i in order {
        answers[i] = apply(&mut tx, ops[i], replica, now).await?;
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

async fn apply(
    tx: &mut Transaction<'_, Any>,
    op: Op,
    replica: &str,
    now: i64,
) -> Result<Option<Claim>, StoreError> {
    match op {
        Op::Reserve { id, until } => reserve(tx, id, until, replica, now).await.map(Some),
        Op::Commit { id } => {
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
            Ok(None)
        }
        Op::Release { id } => {
            sqlx::query(
                "DELETE FROM spent_tokens WHERE jti_sha256 = $1 AND replica = $2 AND state = $3",
            )
            .bind(id.to_vec())
            .bind(replica)
            .bind(RESERVED)
            .execute(&mut **tx)
            .await?;
            Ok(None)
        }
    }
}

/// SPEC §3 single use across replicas: one atomic statement decides.
async fn reserve(
    tx: &mut Transaction<'_, Any>,
    id: TokenId,
    until: i64,
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
        return Ok(Claim::Reserved);
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

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ledger() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&Database::sqlite_url(&dir.path().join("q.db")), 2).unwrap();
        (dir, db)
    }

    fn soon() -> SystemTime {
        SystemTime::now() + Duration::from_secs(300)
    }

    #[tokio::test]
    async fn one_replica_wins_a_reservation_and_commits_it() {
        let (_dir, db) = ledger();
        let (a, b) = (SpentTokens::new(db.clone()), SpentTokens::new(db));
        let id = [7; 32];
        assert_eq!(a.reserve(id, soon()).await.unwrap(), Claim::Reserved);
        assert_eq!(b.reserve(id, soon()).await.unwrap(), Claim::Held);
        // Only its own replica can release it.
        b.release(id).await.unwrap();
        assert_eq!(b.reserve(id, soon()).await.unwrap(), Claim::Held);
        a.commit(id).await.unwrap();
        assert_eq!(b.reserve(id, soon()).await.unwrap(), Claim::Spent);
        a.release(id).await.unwrap();
        assert_eq!(
            a.reserve(id, soon()).await.unwrap(),
            Claim::Spent,
            "spent stays"
        );
    }

    #[tokio::test]
    async fn a_released_token_can_be_reserved_again() {
        let (_dir, db) = ledger();
        let (a, b) = (SpentTokens::new(db.clone()), SpentTokens::new(db));
        let id = [9; 32];
        assert_eq!(a.reserve(id, soon()).await.unwrap(), Claim::Reserved);
        a.release(id).await.unwrap();
        assert_eq!(b.reserve(id, soon()).await.unwrap(), Claim::Reserved);
    }

    #[tokio::test]
    async fn expired_rows_are_pruned() {
        let (_dir, db) = ledger();
        let a = SpentTokens::new(db.clone());
        let past = SystemTime::now() - Duration::from_secs(600);
        a.reserve([1; 32], past).await.unwrap();
        // A fresh writer prunes in its first batch: the expired row goes.
        let b = SpentTokens::new(db.clone());
        b.reserve([2; 32], soon()).await.unwrap();
        for _ in 0..100 {
            let left: i64 = db
                .run(|db| async move {
                    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM spent_tokens")
                        .fetch_one(db.pool())
                        .await?)
                })
                .await
                .unwrap();
            if left == 1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the expired row is still there");
    }

    /// Reserve and commit of many concurrent requests on SQLite (fsync per
    /// transaction): group commit shares the transactions.
    /// `cargo test --lib store::spent::tests::ledger_cost -- --ignored --nocapture`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore]
    async fn ledger_cost() {
        let (_dir, db) = ledger();
        let ledger = Arc::new(SpentTokens::new(db));
        let rounds = 2_000u32;
        let start = std::time::Instant::now();
        let tasks: Vec<_> = (0..rounds)
            .map(|i| {
                let ledger = ledger.clone();
                tokio::spawn(async move {
                    let mut id = [0; 32];
                    id[..4].copy_from_slice(&i.to_be_bytes());
                    assert_eq!(ledger.reserve(id, soon()).await.unwrap(), Claim::Reserved);
                    ledger.commit(id).await.unwrap();
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        println!(
            "{:.1} us per reserve + commit, {rounds} concurrent",
            start.elapsed().as_secs_f64() * 1e6 / f64::from(rounds)
        );
        let (mut reserving, mut committing) = (Duration::ZERO, Duration::ZERO);
        for i in 0..200u32 {
            let mut id = [1; 32];
            id[..4].copy_from_slice(&i.to_be_bytes());
            let start = std::time::Instant::now();
            ledger.reserve(id, soon()).await.unwrap();
            reserving += start.elapsed();
            let start = std::time::Instant::now();
            ledger.commit(id).await.unwrap();
            committing += start.elapsed();
        }
        println!(
            "one at a time: {:.1} us per reserve, {:.1} us per commit",
            reserving.as_secs_f64() * 1e6 / 200.0,
            committing.as_secs_f64() * 1e6 / 200.0
        );
    }
}
