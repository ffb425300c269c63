//! The audit log's tables (SPEC §11): records with their index, canonical
//! JSON, leaf hash and the tree root after them; one head row with the
//! tree's size and compact range; signed checkpoints.
//!
//! Several replicas append to one log without gaps or forks: a batch
//! takes its indices from the head row with `UPDATE ... RETURNING`, which
//! locks the row (PostgreSQL) or the database (SQLite) until commit, and
//! computes the new roots from the head's compact range in the same
//! transaction. The Merkle math comes from `audit` ([`AppendFn`]); this
//! module only knows SQL.

use sqlx::Row;

use super::{Database, StoreError};

/// A record to append: its id, canonical JSON and leaf hash.
#[derive(Debug)]
pub struct NewRecord {
    pub id: String,
    pub json: Vec<u8>,
    pub leaf: [u8; 32],
}

/// A stored record, as `audit verify` reads it.
#[derive(Clone, Debug)]
pub struct StoredRecord {
    pub index: i64,
    pub id: String,
    pub json: Vec<u8>,
    pub leaf: Vec<u8>,
    pub root: Vec<u8>,
}

/// `(size, compact range, new leaves)` → (new compact range, the root
/// after each leaf); `None` if the stored range is inconsistent.
pub type AppendFn = fn(u64, &[u8], &[[u8; 32]]) -> Option<(Vec<u8>, Vec<[u8; 32]>)>;

/// The head after a batch: size and root, for the checkpoint signer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub size: u64,
    pub root: [u8; 32],
}

/// Appends `records` inside `tx` (the batch's transaction, which may also
/// settle tokens); returns the first record's index and the new head.
pub(super) async fn append_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    records: &[&NewRecord],
    math: AppendFn,
) -> Result<(u64, Head), StoreError> {
    let n = records.len() as i64;
    // The write lock first: nobody else can take these indices.
    let row =
        sqlx::query("UPDATE audit_head SET size = size + $1 WHERE id = 1 RETURNING size, frontier")
            .bind(n)
            .fetch_one(&mut **tx)
            .await?;
    let new_size: i64 = row.try_get(0)?;
    let frontier: String = row.try_get(1)?;
    let old_size = (new_size - n) as u64;
    let frontier = hex::decode(frontier).map_err(|_| invalid_head())?;
    let leaves: Vec<[u8; 32]> = records.iter().map(|r| r.leaf).collect();
    let (frontier, roots) = math(old_size, &frontier, &leaves).ok_or_else(invalid_head)?;
    insert_records(tx, old_size, records, &roots).await?;
    sqlx::query("UPDATE audit_head SET frontier = $1 WHERE id = 1")
        .bind(hex::encode(frontier))
        .execute(&mut **tx)
        .await?;
    let root = *roots.last().ok_or_else(invalid_head)?;
    Ok((
        old_size,
        Head {
            size: new_size as u64,
            root,
        },
    ))
}

/// One multi-row INSERT per batch (one statement, not one per record).
async fn insert_records(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    first: u64,
    records: &[&NewRecord],
    roots: &[[u8; 32]],
) -> Result<(), StoreError> {
    let mut sql = String::from("INSERT INTO audit_records (idx, id, json, leaf, root) VALUES ");
    for i in 0..records.len() {
        let p = i * 5;
        let comma = if i == 0 { "" } else { ", " };
        sql.push_str(&format!(
            "{comma}(${}, ${}, ${}, ${}, ${})",
            p + 1,
            p + 2,
            p + 3,
            p + 4,
            p + 5
        ));
    }
    let mut query = sqlx::query(&sql);
    for (offset, (record, root)) in records.iter().zip(roots).enumerate() {
        query = query
            .bind((first + offset as u64) as i64)
            .bind(record.id.clone())
            .bind(String::from_utf8_lossy(&record.json).into_owned())
            .bind(record.leaf.to_vec())
            .bind(root.to_vec());
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

pub(super) fn invalid_head() -> StoreError {
    StoreError::Invalid("the audit log's head row is inconsistent".into())
}

/// The head's size and compact range (hex decoded).
pub async fn head(db: &Database) -> Result<(u64, Vec<u8>), StoreError> {
    let row = sqlx::query("SELECT size, frontier FROM audit_head WHERE id = 1")
        .fetch_one(db.pool())
        .await?;
    let size: i64 = row.try_get(0)?;
    let frontier: String = row.try_get(1)?;
    Ok((
        size as u64,
        hex::decode(frontier).map_err(|_| invalid_head())?,
    ))
}

/// Every record, in index order.
pub async fn records(db: &Database) -> Result<Vec<StoredRecord>, StoreError> {
    let rows = sqlx::query("SELECT idx, id, json, leaf, root FROM audit_records ORDER BY idx")
        .fetch_all(db.pool())
        .await?;
    rows.into_iter()
        .map(|row| {
            let json: String = row.try_get(2)?;
            Ok(StoredRecord {
                index: row.try_get(0)?,
                id: row.try_get(1)?,
                json: json.into_bytes(),
                leaf: row.try_get(3)?,
                root: row.try_get(4)?,
            })
        })
        .collect()
}

/// Stores a signed checkpoint note for `size` (kept if one exists: two
/// replicas sign the same text with the same deterministic Ed25519 key).
pub async fn save_checkpoint(db: &Database, size: u64, note: &str) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_checkpoints (size, note) VALUES ($1, $2) ON CONFLICT (size) DO NOTHING",
    )
    .bind(size as i64)
    .bind(note)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Every checkpoint `(size, note)`, by size.
pub async fn checkpoints(db: &Database) -> Result<Vec<(u64, String)>, StoreError> {
    let rows = sqlx::query("SELECT size, note FROM audit_checkpoints ORDER BY size")
        .fetch_all(db.pool())
        .await?;
    rows.into_iter()
        .map(|row| Ok((row.try_get::<i64, _>(0)? as u64, row.try_get(1)?)))
        .collect()
}

/// The checkpoint of the largest size.
pub async fn latest_checkpoint(db: &Database) -> Result<Option<(u64, String)>, StoreError> {
    let row = sqlx::query("SELECT size, note FROM audit_checkpoints ORDER BY size DESC LIMIT 1")
        .fetch_optional(db.pool())
        .await?;
    row.map(|row| Ok((row.try_get::<i64, _>(0)? as u64, row.try_get(1)?)))
        .transpose()
}
