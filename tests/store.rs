//! The storage layer on a real PostgreSQL: replicas migrate one schema at
//! once, group commit writes a batch per transaction, and of two replicas
//! reserving the same tokens at once exactly one wins each.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use qsign::auth::{Claim, SpentLedger};
use qsign::store::{Backend, Database, GroupCommit, SpentTokens};

use crate::support::postgres::Postgres;

#[tokio::test]
async fn replicas_starting_together_migrate_once() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.url.clone();
    let other = std::thread::spawn(move || Database::open(&url, 2));
    let a = Database::open(&pg.url, 2).expect("replica a");
    let b = other.join().unwrap().expect("replica b");
    assert_eq!(a.backend(), Backend::Postgres);
    assert_eq!(b.backend(), Backend::Postgres);
    a.close();
    b.close();
}

#[tokio::test]
async fn group_commit_answers_every_item_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(&Database::sqlite_url(&dir.path().join("q.db")), 2).unwrap();
    let doubler: GroupCommit<u32, u32> = GroupCommit::spawn(
        db,
        16,
        Box::new(|_db, items| Box::pin(async move { Ok(items.iter().map(|i| i * 2).collect()) })),
    );
    let answers = futures_join((0..50u32).map(|i| {
        let d = doubler.clone();
        async move { d.submit(i).await.unwrap() }
    }))
    .await;
    assert_eq!(answers, (0..50u32).map(|i| i * 2).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_reserving_the_same_tokens_win_each_once() {
    let Some(pg) = Postgres::start() else { return };
    let replica = || Arc::new(SpentTokens::new(Database::open(&pg.url, 4).unwrap()));
    let (a, b) = (replica(), replica());
    let until = SystemTime::now() + Duration::from_secs(300);
    // Many tokens at once, each asked of both replicas: batches of both
    // conflict on many rows, in any order, and must neither deadlock nor
    // both win.
    let start = std::time::Instant::now();
    let tasks: Vec<_> = (0..400u32)
        .flat_map(|i| {
            let mut id = [0; 32];
            id[..4].copy_from_slice(&i.to_be_bytes());
            [a.clone(), b.clone()].map(|ledger| {
                tokio::spawn(async move {
                    let claim = ledger.reserve(id, until).await.expect("reserve");
                    if matches!(claim, Claim::Reserved { .. }) {
                        ledger.commit(id).await.expect("commit");
                    }
                    (id, claim)
                })
            })
        })
        .collect();
    let mut won = std::collections::HashMap::<[u8; 32], usize>::new();
    for task in tasks {
        let (id, claim) = task.await.unwrap();
        *won.entry(id).or_default() += usize::from(matches!(claim, Claim::Reserved { .. }));
    }
    assert_eq!(won.len(), 400);
    assert!(won.values().all(|&n| n == 1), "each token won exactly once");
    eprintln!(
        "800 reservations and 400 commits on two replicas: {:?}",
        start.elapsed()
    );
    // Spent stays spent for both.
    assert_eq!(a.reserve([0; 32], until).await.unwrap(), Claim::Spent);
    assert_eq!(b.reserve([0; 32], until).await.unwrap(), Claim::Spent);
}

async fn futures_join<F: std::future::Future<Output = u32> + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<u32> {
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

/// Many servers (or test cores) opening one new SQLite file at once: one
/// migrates under the write lock, the others wait and find it done.
#[test]
fn sqlite_opened_by_many_at_once_migrates_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = Database::sqlite_url(&dir.path().join("shared.db"));
    let openers: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || Database::open(&url, 1).map(|db| db.close()))
        })
        .collect();
    for opener in openers {
        opener
            .join()
            .unwrap()
            .expect("every opener finds the schema");
    }
}
