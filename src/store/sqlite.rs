//! The signing path's writes on SQLite, without sqlx's worker hop: one OS
//! thread (`qsign-sqlite-writer`) owns one rusqlite connection, takes
//! operations from a channel the requests send on directly (no task on the
//! way in), drains everything queued into one transaction with cached
//! prepared statements and answers through oneshots. Everything else
//! (migrations, reads, the registry, checkpoints) stays on sqlx's pool.
//!
//! Durability as on the pool: WAL; a batch that spends a token or appends
//! a record commits with `synchronous = FULL` (fsync); a batch of only
//! reservations and releases with `NORMAL` (its frames reach the disk with
//! the next FULL commit or checkpoint).

use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::oneshot;

use super::audit::{invalid_head, NewRecord};
use super::registry::PROFILES_VERSION;
use super::spent::{unix_now, Answer, Op, Settle, MAX_BATCH, PRUNE_EVERY, RESERVED, SPENT};
use super::StoreError;
use crate::auth::{Claim, Epoch, TokenId};

type Reply = oneshot::Sender<Result<Answer, StoreError>>;

/// The queue in front of the writer thread; cheap to clone. The thread
/// stops when the last clone is dropped.
#[derive(Clone)]
pub(super) struct Writer {
    queue: mpsc::Sender<(Op, Reply)>,
}

impl Writer {
    /// Opens `file` (already migrated) and starts the thread.
    pub(super) fn start(file: &Path, replica: Arc<str>) -> Result<Self, StoreError> {
        let connection = Connection::open(file)?;
        // As the pool's connections (`store::connect`).
        connection.busy_timeout(Duration::from_secs(5))?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "FULL")?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        connection.pragma_update(None, "cache_size", -256)?;
        let (queue, incoming) = mpsc::channel();
        std::thread::Builder::new()
            .name("qsign-sqlite-writer".into())
            .spawn(move || run(connection, incoming, &replica))
            .map_err(StoreError::Runtime)?;
        Ok(Self { queue })
    }

    /// Queues `op` now (never blocks: the channel is unbounded, and the
    /// service's admission limits bound what is in flight).
    pub(super) fn submit(&self, op: Op) -> oneshot::Receiver<Result<Answer, StoreError>> {
        let (reply, answer) = oneshot::channel();
        // A stopped writer drops `reply`: the caller sees WriterGone.
        let _ = self.queue.send((op, reply));
        answer
    }
}

fn run(mut connection: Connection, incoming: mpsc::Receiver<(Op, Reply)>, replica: &str) {
    let mut full = true;
    let mut pruned = 0;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = incoming.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match incoming.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let (ops, replies): (Vec<Op>, Vec<Reply>) = batch.drain(..).unzip();
        let now = unix_now();
        let durable = ops.iter().any(Op::durable);
        let written = synchronous(&connection, &mut full, durable)
            .and_then(|()| transaction(&mut connection, &ops, replica, now));
        match written {
            Ok(answers) => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(Ok(answer));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "the SQLite writer's batch failed");
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Invalid(e.to_string())));
                }
            }
        }
        // After the answers: no request waits for it.
        if pruned + PRUNE_EVERY <= now {
            pruned = now;
            prune(&connection, now);
        }
    }
}

/// `synchronous` for the next commit, switched only when it changes.
fn synchronous(connection: &Connection, full: &mut bool, durable: bool) -> Result<(), StoreError> {
    if *full != durable {
        let level = if durable { "FULL" } else { "NORMAL" };
        connection.pragma_update(None, "synchronous", level)?;
        *full = durable;
    }
    Ok(())
}

/// One batch, one transaction (the write lock taken at BEGIN: another
/// process's writer makes it wait, never fail half-way): appends first,
/// then token operations in token order, as `store::batch`.
fn transaction(
    connection: &mut Connection,
    ops: &[Op],
    replica: &str,
    now: i64,
) -> Result<Vec<Answer>, StoreError> {
    let mut answers = vec![Answer::Done; ops.len()];
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    append(&tx, ops, &mut answers)?;
    // SPEC §9: the profiles' version rides in the reservations' answers
    // (`signing::live`); read under the write lock, so no change committed
    // before the batch began is missed.
    let epoch = if Op::reserves(ops) {
        tx.prepare_cached(PROFILES_VERSION)?
            .query_row([], |row| row.get(0))?
    } else {
        0
    };
    for (id, i) in Op::in_token_order(ops) {
        match &ops[i] {
            Op::Reserve { until, .. } => {
                let claim = reserve(&tx, &id, *until, epoch, replica, now)?;
                answers[i] = Answer::Claim(claim);
            }
            op => {
                if let Some((_, Some(settle))) = op.token() {
                    settle_token(&tx, &id, settle, replica, now)?;
                }
            }
        }
    }
    tx.commit()?;
    Ok(answers)
}

/// The batch's records: indices from the head, roots by the audit math.
fn append(
    tx: &rusqlite::Transaction<'_>,
    ops: &[Op],
    answers: &mut [Answer],
) -> Result<(), StoreError> {
    let appends: Vec<(usize, &NewRecord)> = ops
        .iter()
        .enumerate()
        .filter_map(|(i, op)| match op {
            Op::Append { record, .. } => Some((i, record)),
            _ => None,
        })
        .collect();
    let Some(math) = ops.iter().find_map(|op| match op {
        Op::Append { math, .. } => Some(*math),
        _ => None,
    }) else {
        return Ok(());
    };
    let n = appends.len() as i64;
    let (new_size, frontier): (i64, String) = tx
        .prepare_cached(
            "UPDATE audit_head SET size = size + ?1 WHERE id = 1 RETURNING size, frontier",
        )?
        .query_row([n], |row| Ok((row.get(0)?, row.get(1)?)))?;
    let first = (new_size - n) as u64;
    let frontier = hex::decode(frontier).map_err(|_| invalid_head())?;
    let leaves: Vec<[u8; 32]> = appends.iter().map(|(_, r)| r.leaf).collect();
    let (frontier, roots) = math(first, &frontier, &leaves).ok_or_else(invalid_head)?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO audit_records (idx, id, json, leaf, root) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (n, ((i, record), root)) in appends.iter().zip(&roots).enumerate() {
        let index = first + n as u64;
        let json = String::from_utf8_lossy(&record.json);
        insert.execute(params![
            index as i64,
            record.id,
            json,
            &record.leaf[..],
            &root[..]
        ])?;
        answers[*i] = Answer::Index(index);
    }
    tx.prepare_cached("UPDATE audit_head SET frontier = ?1 WHERE id = 1")?
        .execute([hex::encode(frontier)])?;
    Ok(())
}

/// SPEC §3 single use across replicas: one atomic statement decides; a
/// reservation carries the batch's `epoch`.
fn reserve(
    tx: &rusqlite::Transaction<'_>,
    id: &TokenId,
    until: i64,
    epoch: Epoch,
    replica: &str,
    now: i64,
) -> Result<Claim, StoreError> {
    let inserted = tx
        .prepare_cached(
            "INSERT INTO spent_tokens (jti_sha256, until_unix, state, replica, changed_unix) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (jti_sha256) DO NOTHING",
        )?
        .execute(params![&id[..], until, RESERVED, replica, now])?;
    if inserted == 1 {
        return Ok(Claim::Reserved { epoch });
    }
    let state: Option<String> = tx
        .prepare_cached("SELECT state FROM spent_tokens WHERE jti_sha256 = ?1")?
        .query_row([&id[..]], |row| row.get(0))
        .optional()?;
    Ok(match state.as_deref() {
        Some(SPENT) => Claim::Spent,
        _ => Claim::Held,
    })
}

/// Spends or releases this replica's reservation (never a spent token).
fn settle_token(
    tx: &rusqlite::Transaction<'_>,
    id: &TokenId,
    settle: Settle,
    replica: &str,
    now: i64,
) -> Result<(), StoreError> {
    match settle {
        Settle::Spend => {
            let changed = tx
                .prepare_cached(
                    "UPDATE spent_tokens SET state = ?1, changed_unix = ?2 \
                     WHERE jti_sha256 = ?3 AND replica = ?4 AND state = ?5",
                )?
                .execute(params![SPENT, now, &id[..], replica, RESERVED])?;
            if changed != 1 {
                // Only once the row expired and was pruned: then no replica
                // accepts the token any more.
                tracing::warn!("committed a token whose reservation is gone");
            }
        }
        Settle::Release => {
            tx.prepare_cached(
                "DELETE FROM spent_tokens WHERE jti_sha256 = ?1 AND replica = ?2 AND state = ?3",
            )?
            .execute(params![&id[..], replica, RESERVED])?;
        }
    }
    Ok(())
}

/// Deletes rows whose tokens expired, in a transaction of its own: a
/// failure is logged and retried a minute later.
fn prune(connection: &Connection, now: i64) {
    let pruning = connection
        .prepare_cached("DELETE FROM spent_tokens WHERE until_unix < ?1")
        .and_then(|mut delete| delete.execute([now]));
    match pruning {
        Ok(gone) => tracing::debug!(gone, "pruned expired spent tokens"),
        Err(e) => tracing::warn!(error = %e, "could not prune expired spent tokens"),
    }
}
