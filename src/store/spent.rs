//! Spent activation tokens shared by every replica (SPEC §3, §12): the
//! ledger behind `auth::Verifier::reserve`, and the audit records that
//! settle tokens (SPEC §11).
//!
//! A reservation is one `INSERT ... ON CONFLICT DO NOTHING`: of two
//! replicas inserting the same token only one affects a row. Reservations,
//! commits, releases and audit appends of concurrent requests share one
//! transaction (`batch`); a request's record carries its token's
//! settlement, so the record exists iff the token is spent (or released)
//! and a signature costs one durable commit, not two. Expired rows are
//! pruned once a minute, after a batch (never on every request, nor in the
//! requests' transaction).
//!
//! A reservation whose replica crashed is never released: it is refused
//! until its token expires, then pruned like any other row.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::audit::{AppendFn, NewRecord};
use super::{batch, sqlite, Database, GroupCommit, StoreError};
use crate::auth::{Claim, LedgerFuture, SpentLedger, TokenId};

/// Batches hold at most this many operations.
pub(super) const MAX_BATCH: usize = 256;
/// Seconds between two prunings of expired rows.
pub(super) const PRUNE_EVERY: i64 = 60;

pub(super) const RESERVED: &str = "reserved";
pub(super) const SPENT: &str = "spent";

/// What an audit record does to its request's token, in its transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settle {
    /// SPEC §3: the signature leaves (or a refusal spends the token).
    Spend,
    /// The service failed: the token may be used again.
    Release,
}

/// One operation of the signing path.
pub(super) enum Op {
    Reserve {
        id: TokenId,
        until: i64,
    },
    Commit {
        id: TokenId,
    },
    Release {
        id: TokenId,
    },
    Append {
        record: NewRecord,
        settle: Option<(TokenId, Settle)>,
        math: AppendFn,
    },
}

impl Op {
    /// The token the operation touches, if any.
    pub(super) fn token(&self) -> Option<(TokenId, Option<Settle>)> {
        match self {
            Op::Reserve { id, .. } => Some((*id, None)),
            Op::Commit { id } => Some((*id, Some(Settle::Spend))),
            Op::Release { id } => Some((*id, Some(Settle::Release))),
            Op::Append { settle, .. } => settle.map(|(id, s)| (id, Some(s))),
        }
    }

    /// The indices of `ops` that touch a token, in token order: both
    /// writers visit rows in that order, so two replicas' batches cannot
    /// deadlock.
    pub(super) fn in_token_order(ops: &[Op]) -> Vec<(TokenId, usize)> {
        let mut tokens: Vec<(TokenId, usize)> = ops
            .iter()
            .enumerate()
            .filter_map(|(i, op)| op.token().map(|(id, _)| (id, i)))
            .collect();
        tokens.sort();
        tokens
    }

    /// Whether a batch reserves a token, and so reads the profiles' version.
    pub(super) fn reserves(ops: &[Op]) -> bool {
        ops.iter().any(|op| matches!(op, Op::Reserve { .. }))
    }

    /// Spends a token or appends a record: the batch waits for the disk.
    pub(super) fn durable(&self) -> bool {
        matches!(self, Op::Commit { .. } | Op::Append { .. })
    }
}

/// An operation's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Answer {
    Claim(Claim),
    Index(u64),
    Done,
}

/// The `spent_tokens` table (and the audit appends that settle its rows),
/// written through one batching writer. Each instance is one replica (a
/// random id in the `replica` column).
#[derive(Clone)]
pub struct SpentTokens {
    database: Database,
    writer: Writer,
}

#[derive(Clone)]
enum Writer {
    /// SQLite: the `qsign-sqlite-writer` thread.
    Thread(sqlite::Writer),
    /// PostgreSQL: a group commit on the pool, on the database's runtime.
    Pool(GroupCommit<Op, Answer>),
}

impl Writer {
    fn pool(database: &Database, replica: Arc<str>) -> Self {
        let pruned = Arc::new(AtomicI64::new(0));
        Writer::Pool(GroupCommit::spawn(
            database.clone(),
            MAX_BATCH,
            Box::new(move |db, ops| {
                Box::pin(batch::write(db, ops, replica.clone(), pruned.clone()))
            }),
        ))
    }
}

type Answering = Pin<Box<dyn Future<Output = Result<Answer, StoreError>> + Send>>;

impl SpentTokens {
    pub fn new(database: Database) -> Self {
        let replica: Arc<str> = uuid::Uuid::new_v4().to_string().into();
        let thread = database
            .sqlite_file()
            .map(|file| sqlite::Writer::start(file, replica.clone()));
        let writer = match thread {
            Some(Ok(writer)) => Writer::Thread(writer),
            other => {
                if let Some(Err(e)) = other {
                    tracing::warn!(error = %e, "no SQLite writer thread; writing through the pool");
                }
                Writer::pool(&database, replica)
            }
        };
        Self { database, writer }
    }

    /// Appends `record` (its leaf computed by `math` from the head) and, in
    /// the same transaction, settles this replica's reservation of a token;
    /// the record's index once committed.
    pub fn append(
        &self,
        record: NewRecord,
        settle: Option<(TokenId, Settle)>,
        math: AppendFn,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send + 'static {
        let answer = self.start(Op::Append {
            record,
            settle,
            math,
        });
        async move {
            match answer.await? {
                Answer::Index(index) => Ok(index),
                _ => Err(StoreError::Invalid("no index for an audit record".into())),
            }
        }
    }

    /// Queues `op` at once (the future only waits): straight onto the
    /// SQLite writer's channel, or through a task on the database's runtime.
    fn start(&self, op: Op) -> Answering {
        match &self.writer {
            Writer::Thread(writer) => {
                let answer = writer.submit(op);
                Box::pin(async move { answer.await.map_err(|_| StoreError::WriterGone)? })
            }
            Writer::Pool(group) => {
                let group = group.clone();
                let task = self
                    .database
                    .handle()
                    .spawn(async move { group.submit(op).await });
                Box::pin(async move { task.await.map_err(|_| StoreError::WriterGone)? })
            }
        }
    }

    fn ledger(&self, op: Op) -> LedgerFuture<Answer> {
        let answer = self.start(op);
        Box::pin(async move {
            answer.await.map_err(|e| {
                tracing::warn!(error = %e, "spent-token ledger");
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
        let answer = self.ledger(Op::Reserve { id, until });
        Box::pin(async move {
            match answer.await? {
                Answer::Claim(claim) => Ok(claim),
                _ => Err(StoreError::Invalid("no answer to a reservation".into()).into()),
            }
        })
    }

    fn commit(&self, id: TokenId) -> LedgerFuture<()> {
        let done = self.ledger(Op::Commit { id });
        Box::pin(async move { done.await.map(drop) })
    }

    fn release(&self, id: TokenId) -> LedgerFuture<()> {
        let done = self.ledger(Op::Release { id });
        Box::pin(async move { done.await.map(drop) })
    }
}

pub(super) fn unix_now() -> i64 {
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
        assert_eq!(
            a.reserve(id, soon()).await.unwrap(),
            Claim::Reserved { epoch: 0 }
        );
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

    /// SPEC §9: a reservation carries the profiles' version as of its own
    /// transaction, from the writer thread and from the pool's batches.
    #[tokio::test]
    async fn a_reservation_carries_the_profiles_version() {
        let (_dir, db) = ledger();
        let thread = SpentTokens::new(db.clone());
        let pool = SpentTokens {
            writer: Writer::pool(&db, "pool".into()),
            database: db.clone(),
        };
        let registry = crate::store::RegistryStore::new(db);
        for (n, ledger) in [thread, pool].iter().enumerate() {
            let row = crate::store::registry::ProfileRow {
                id: format!("p{n}"),
                cvr: "12345678".into(),
                organization_name: "Acme A/S".into(),
                allow: vec!["seal".into()],
                allowed_clients: Vec::new(),
            };
            assert!(registry.put_profile(row, 0).await.unwrap());
            let claim = ledger.reserve([n as u8; 32], soon()).await.unwrap();
            assert_eq!(
                claim,
                Claim::Reserved {
                    epoch: n as i64 + 1
                }
            );
        }
    }

    #[tokio::test]
    async fn a_released_token_can_be_reserved_again() {
        let (_dir, db) = ledger();
        let (a, b) = (SpentTokens::new(db.clone()), SpentTokens::new(db));
        let id = [9; 32];
        assert_eq!(
            a.reserve(id, soon()).await.unwrap(),
            Claim::Reserved { epoch: 0 }
        );
        a.release(id).await.unwrap();
        assert_eq!(
            b.reserve(id, soon()).await.unwrap(),
            Claim::Reserved { epoch: 0 }
        );
    }

    fn record(id: &str) -> NewRecord {
        NewRecord {
            id: id.into(),
            json: format!("{{\"id\":\"{id}\"}}").into_bytes(),
            leaf: [id.len() as u8; 32],
        }
    }

    /// The store's side of the tree math: leaves as roots, the size as the
    /// compact range (the real one is `audit`'s; only SQL is tested here).
    fn math(size: u64, _: &[u8], leaves: &[[u8; 32]]) -> Option<(Vec<u8>, Vec<[u8; 32]>)> {
        Some((size.to_be_bytes().to_vec(), leaves.to_vec()))
    }

    async fn count(db: &Database, sql: &'static str) -> i64 {
        db.run(move |db| async move { Ok(sqlx::query_scalar(sql).fetch_one(db.pool()).await?) })
            .await
            .unwrap()
    }

    async fn exec(db: &Database, sql: &'static str) {
        db.run(move |db| async move {
            sqlx::raw_sql(sql).execute(db.pool()).await?;
            Ok(())
        })
        .await
        .unwrap();
    }

    /// SPEC §3 with §11: a record and its token's settlement are one
    /// transaction. A record that cannot be written leaves the token
    /// reserved (then released, usable again), never spent.
    #[tokio::test]
    async fn a_record_and_its_token_commit_together_or_not_at_all() {
        let (_dir, db) = ledger();
        let (a, b) = (SpentTokens::new(db.clone()), SpentTokens::new(db.clone()));
        let id = [3; 32];
        assert_eq!(
            a.reserve(id, soon()).await.unwrap(),
            Claim::Reserved { epoch: 0 }
        );
        exec(
            &db,
            "CREATE TRIGGER refuse BEFORE INSERT ON audit_records \
             BEGIN SELECT RAISE(ABORT, 'disk full'); END",
        )
        .await;
        let failed = a.append(record("lost"), Some((id, Settle::Spend)), math);
        assert!(failed.await.is_err());
        assert_eq!(
            b.reserve(id, soon()).await.unwrap(),
            Claim::Held,
            "not spent"
        );
        assert_eq!(count(&db, "SELECT size FROM audit_head").await, 0);
        a.release(id).await.unwrap();
        assert_eq!(
            b.reserve(id, soon()).await.unwrap(),
            Claim::Reserved { epoch: 0 }
        );

        exec(&db, "DROP TRIGGER refuse").await;
        let index = b.append(record("kept"), Some((id, Settle::Spend)), math);
        assert_eq!(index.await.unwrap(), 0);
        assert_eq!(a.reserve(id, soon()).await.unwrap(), Claim::Spent);
        // A refusal's record releases the token in its transaction.
        let other = [4; 32];
        assert_eq!(
            a.reserve(other, soon()).await.unwrap(),
            Claim::Reserved { epoch: 0 }
        );
        let index = a.append(record("refused"), Some((other, Settle::Release)), math);
        assert_eq!(index.await.unwrap(), 1);
        assert_eq!(
            b.reserve(other, soon()).await.unwrap(),
            Claim::Reserved { epoch: 0 }
        );
        assert_eq!(count(&db, "SELECT COUNT(*) FROM audit_records").await, 2);
        assert_eq!(count(&db, "SELECT size FROM audit_head").await, 2);
    }

    /// Concurrent appends and token operations share batches: every record
    /// gets its own index, every token its own answer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_take_distinct_indices() {
        let (_dir, db) = ledger();
        let ledger = SpentTokens::new(db.clone());
        let tasks: Vec<_> = (0..64u8)
            .map(|i| {
                let ledger = ledger.clone();
                tokio::spawn(async move {
                    let id = [i; 32];
                    assert_eq!(
                        ledger.reserve(id, soon()).await.unwrap(),
                        Claim::Reserved { epoch: 0 }
                    );
                    let name = format!("r{i}");
                    let spend = Some((id, Settle::Spend));
                    ledger.append(record(&name), spend, math).await.unwrap()
                })
            })
            .collect();
        let mut indices = Vec::new();
        for task in tasks {
            indices.push(task.await.unwrap());
        }
        indices.sort();
        assert_eq!(indices, (0..64).collect::<Vec<u64>>());
        let spent = count(
            &db,
            "SELECT COUNT(*) FROM spent_tokens WHERE state = 'spent'",
        );
        assert_eq!(spent.await, 64);
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
                    assert_eq!(
                        ledger.reserve(id, soon()).await.unwrap(),
                        Claim::Reserved { epoch: 0 }
                    );
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
