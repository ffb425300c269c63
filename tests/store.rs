//! The storage layer on a real PostgreSQL: replicas migrate one schema at
//! once, and group commit writes a batch per transaction.

use qsign::store::{Backend, Database, GroupCommit};

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

#[test]
fn cores_opening_one_new_sqlite_file_together_migrate_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = Database::sqlite_url(&dir.path().join("q.db"));
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
            .expect("every opener sees one migrated schema");
    }
}
