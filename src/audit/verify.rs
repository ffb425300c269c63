//! `qsign audit verify` and `prove`: recompute every leaf from its JSON
//! and the whole tree, check every checkpoint's signature and root, and
//! name the first record that was edited, deleted, inserted or moved; make
//! a C2SP tlog-proof (c2sp.org/tlog-proof@v1) for one record.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::merkle::{self, Frontier, Hash};
use super::note::{Checkpoint, NoteVerifier};
use super::Record;
use crate::store::audit::StoredRecord;

/// The first thing wrong with a log.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Finding {
    #[error("record {index} ({id}) was edited: its JSON does not hash to its leaf, or is not a record with that id")]
    Edited { index: u64, id: String },
    #[error("record {index} is missing: deleted")]
    Deleted { index: u64 },
    #[error("record {index} ({id}) was inserted: the tree continues without it")]
    Inserted { index: u64, id: String },
    #[error("record {index} ({id}) was reordered: it changed places with record {with}")]
    Reordered { index: u64, id: String, with: u64 },
    #[error("record {index} ({id}) does not continue the tree: edited, or a record before it was deleted or inserted")]
    Broken { index: u64, id: String },
    #[error("checkpoint {size}: {reason}")]
    Checkpoint { size: u64, reason: String },
    #[error("the tree at size {size} does not match its signed checkpoint: a record from index {from} on was changed (its stored roots too)")]
    RootMismatch { size: u64, from: u64 },
}

/// What a clean log looks like.
#[derive(Debug, PartialEq, Eq)]
pub struct Summary {
    pub records: u64,
    pub checkpoints: usize,
    pub root: Hash,
}

/// Checks `records` (by index) against `head_size` and the `checkpoints`.
pub fn verify(
    records: &[StoredRecord],
    head_size: u64,
    checkpoints: &[(u64, String)],
    verifier: &NoteVerifier,
) -> Result<Summary, Finding> {
    let signed = open_checkpoints(checkpoints, verifier)?;
    let mut frontier = Frontier::default();
    let mut last_good = 0;
    let mut signed_iter = signed.iter().peekable();
    while let Some(c) = signed_iter.next_if(|c| c.size == 0) {
        check_root(c, &frontier, last_good)?;
    }
    for (position, row) in records.iter().enumerate() {
        let position = position as u64;
        check_row(records, position, row, &frontier)?;
        frontier.push(merkle::leaf_hash(&row.json));
        while let Some(c) = signed_iter.next_if(|c| c.size == frontier.size) {
            check_root(c, &frontier, last_good)?;
            last_good = frontier.size;
        }
    }
    let count = records.len() as u64;
    if count < head_size {
        return Err(Finding::Deleted { index: count });
    }
    if let Some(c) = signed_iter.next() {
        return Err(Finding::Deleted {
            index: count.min(c.size),
        });
    }
    if count > head_size {
        let row = &records[head_size as usize];
        return Err(Finding::Inserted {
            index: head_size,
            id: row.id.clone(),
        });
    }
    Ok(Summary {
        records: count,
        checkpoints: signed.len(),
        root: frontier.root(),
    })
}

/// Every checkpoint opened with the log's key, of the log's origin, for
/// the size it is stored under.
fn open_checkpoints(
    checkpoints: &[(u64, String)],
    verifier: &NoteVerifier,
) -> Result<Vec<Checkpoint>, Finding> {
    checkpoints
        .iter()
        .map(|(size, note)| {
            let bad = |reason: String| Finding::Checkpoint {
                size: *size,
                reason,
            };
            let text = verifier.open(note).map_err(|e| bad(e.to_string()))?;
            let checkpoint = Checkpoint::parse(text).map_err(|e| bad(e.to_string()))?;
            if checkpoint.origin != verifier.name || checkpoint.size != *size {
                return Err(bad("another log's, or stored under another size".into()));
            }
            Ok(checkpoint)
        })
        .collect()
}

fn check_root(checkpoint: &Checkpoint, frontier: &Frontier, last_good: u64) -> Result<(), Finding> {
    if checkpoint.root == frontier.root() {
        return Ok(());
    }
    Err(Finding::RootMismatch {
        size: checkpoint.size,
        from: last_good,
    })
}

/// One row: its index, its leaf, and the root stored with it, which names
/// the culprit where the checkpoints only bound it.
fn check_row(
    records: &[StoredRecord],
    position: u64,
    row: &StoredRecord,
    frontier: &Frontier,
) -> Result<(), Finding> {
    let id = || row.id.clone();
    if row.index as u64 != position {
        return Err(Finding::Deleted { index: position });
    }
    let leaf = merkle::leaf_hash(&row.json);
    let parsed = Record::parse(&row.json).ok();
    if row.leaf != leaf || parsed.is_none_or(|r| r.id != row.id) {
        return Err(Finding::Edited {
            index: position,
            id: id(),
        });
    }
    let root_with = |leaf: Hash| {
        let mut next = frontier.clone();
        next.push(leaf);
        next.root()
    };
    if row.root == root_with(leaf) {
        return Ok(());
    }
    let later = &records[position as usize + 1..];
    // This slot's root is that of a later record's leaf: they were moved.
    if let Some(other) = later
        .iter()
        .find(|r| row.root == root_with(merkle::leaf_hash(&r.json)))
    {
        return Err(Finding::Reordered {
            index: position,
            id: id(),
            with: other.index as u64,
        });
    }
    if let Some(next) = later.first() {
        if next.root == root_with(merkle::leaf_hash(&next.json)) {
            return Err(Finding::Inserted {
                index: position,
                id: id(),
            });
        }
    }
    Err(Finding::Broken {
        index: position,
        id: id(),
    })
}

/// A C2SP tlog-proof of the record `id` against the latest checkpoint that
/// covers it: `extra` (the record's JSON), `index`, the audit path, a
/// blank line, the checkpoint note.
pub fn prove(
    records: &[StoredRecord],
    checkpoints: &[(u64, String)],
    verifier: &NoteVerifier,
    id: &str,
) -> Result<String, String> {
    let record = records
        .iter()
        .find(|r| r.id == id)
        .ok_or_else(|| format!("no audit record {id}"))?;
    let index = record.index as u64;
    let (size, note) = checkpoints
        .iter()
        .filter(|(size, _)| *size > index)
        .max_by_key(|(size, _)| *size)
        .ok_or("no checkpoint covers the record yet; try again in a moment")?;
    let checkpoint = verifier
        .open(note)
        .map_err(|e| e.to_string())
        .and_then(|text| Checkpoint::parse(text).map_err(|e| e.to_string()))?;
    let leaves: Vec<Hash> = records
        .iter()
        .take(*size as usize)
        .map(|r| merkle::leaf_hash(&r.json))
        .collect();
    let path = merkle::inclusion_proof(&leaves, index as usize)
        .ok_or("the log is shorter than its checkpoint")?;
    if !merkle::verify_inclusion(
        &leaves[index as usize],
        index,
        *size,
        &path,
        &checkpoint.root,
    ) {
        return Err(
            "the stored log does not match its checkpoint: run `qsign audit verify`".into(),
        );
    }
    let mut proof = format!(
        "c2sp.org/tlog-proof@v1\nextra {}\nindex {index}\n",
        BASE64.encode(&record.json)
    );
    for hash in path {
        proof.push_str(&BASE64.encode(hash));
        proof.push('\n');
    }
    proof.push('\n');
    proof.push_str(note);
    Ok(proof)
}

/// One line of `qsign audit export` (JSON lines): the head, each record,
/// each checkpoint.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ExportLine {
    Head {
        size: u64,
    },
    Record {
        index: i64,
        id: String,
        json: String,
        leaf: String,
        root: String,
    },
    Checkpoint {
        size: u64,
        note: String,
    },
}

impl ExportLine {
    pub fn record(r: &StoredRecord) -> Self {
        Self::Record {
            index: r.index,
            id: r.id.clone(),
            json: String::from_utf8_lossy(&r.json).into_owned(),
            leaf: BASE64.encode(&r.leaf),
            root: BASE64.encode(&r.root),
        }
    }
}

/// The log as [`verify`] needs it, from an export.
pub type Export = (Vec<StoredRecord>, u64, Vec<(u64, String)>);

pub fn read_export(text: &str) -> Result<Export, String> {
    let (mut records, mut head, mut checkpoints) = (Vec::new(), 0, Vec::new());
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let bad = |e: &dyn std::fmt::Display| format!("line {}: {e}", n + 1);
        match serde_json::from_str(line).map_err(|e| bad(&e))? {
            ExportLine::Head { size } => head = size,
            ExportLine::Checkpoint { size, note } => checkpoints.push((size, note)),
            ExportLine::Record {
                index,
                id,
                json,
                leaf,
                root,
            } => records.push(StoredRecord {
                index,
                id,
                json: json.into_bytes(),
                leaf: BASE64.decode(leaf).map_err(|e| bad(&e))?,
                root: BASE64.decode(root).map_err(|e| bad(&e))?,
            }),
        }
    }
    records.sort_by_key(|r| r.index);
    checkpoints.sort_by_key(|c| c.0);
    Ok((records, head, checkpoints))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    const ORIGIN: &str = "test.example/log";

    trait ReplaceAscii {
        fn replace_ascii(&self, from: &str, to: &str) -> Vec<u8>;
    }

    impl ReplaceAscii for Vec<u8> {
        fn replace_ascii(&self, from: &str, to: &str) -> Vec<u8> {
            String::from_utf8_lossy(self).replace(from, to).into_bytes()
        }
    }

    fn key() -> (Ed25519KeyPair, NoteVerifier) {
        let pair = Ed25519KeyPair::from_seed_unchecked(&[3; 32]).unwrap();
        let public: [u8; 32] = pair.public_key().as_ref().try_into().unwrap();
        (pair, NoteVerifier::new(ORIGIN, public).unwrap())
    }

    /// A log of `n` records as the store keeps it, and a checkpoint at
    /// every size in `at`.
    fn log(n: usize, at: &[u64]) -> (Vec<StoredRecord>, Vec<(u64, String)>, NoteVerifier) {
        let (pair, verifier) = key();
        let mut frontier = Frontier::default();
        let mut records = Vec::new();
        let mut checkpoints = Vec::new();
        for i in 0..n {
            let record = Record {
                id: format!("id-{i}"),
                time: "2026-01-01T00:00:00.000Z".into(),
                ..Default::default()
            };
            let json = record.canonical_json();
            let leaf = merkle::leaf_hash(&json);
            frontier.push(leaf);
            records.push(StoredRecord {
                index: i as i64,
                id: record.id,
                json,
                leaf: leaf.to_vec(),
                root: frontier.root().to_vec(),
            });
            if at.contains(&frontier.size) {
                let text = Checkpoint {
                    origin: ORIGIN.into(),
                    size: frontier.size,
                    root: frontier.root(),
                }
                .text();
                let signature: [u8; 64] = pair.sign(text.as_bytes()).as_ref().try_into().unwrap();
                let note = format!("{text}\n{}", verifier.signature_line(&signature));
                checkpoints.push((frontier.size, note));
            }
        }
        (records, checkpoints, verifier)
    }

    #[test]
    fn a_clean_log_verifies_and_proves() {
        let (records, checkpoints, verifier) = log(9, &[4, 9]);
        let summary = verify(&records, 9, &checkpoints, &verifier).unwrap();
        assert_eq!((summary.records, summary.checkpoints), (9, 2));
        let proof = prove(&records, &checkpoints, &verifier, "id-5").unwrap();
        assert!(proof.starts_with("c2sp.org/tlog-proof@v1\nextra "));
        assert!(proof.contains("\nindex 5\n"));
        assert!(proof.ends_with(&checkpoints[1].1));
    }

    #[test]
    fn each_kind_of_tampering_is_named() {
        let (records, checkpoints, verifier) = log(9, &[9]);
        let check = |records: &[StoredRecord], size| verify(records, size, &checkpoints, &verifier);

        let mut edited = records.clone();
        edited[3].json = edited[3].json.replace_ascii("2026", "2025");
        assert!(matches!(
            check(&edited, 9),
            Err(Finding::Edited { index: 3, .. })
        ));

        let mut deleted = records.clone();
        deleted.remove(4);
        assert_eq!(check(&deleted, 9), Err(Finding::Deleted { index: 4 }));

        let mut swapped = records.clone();
        let (a, b) = (swapped[2].clone(), swapped[6].clone());
        for (slot, from) in [(2, &b), (6, &a)] {
            swapped[slot].id = from.id.clone();
            swapped[slot].json = from.json.clone();
            swapped[slot].leaf = from.leaf.clone();
        }
        let found = check(&swapped, 9);
        assert!(
            matches!(
                found,
                Err(Finding::Reordered {
                    index: 2,
                    with: 6,
                    ..
                })
            ),
            "{found:?}"
        );

        let mut inserted = records.clone();
        let mut extra = inserted[1].clone();
        extra.id = "forged".into();
        extra.json = extra.json.replace_ascii("id-1", "forged");
        extra.leaf = merkle::leaf_hash(&extra.json).to_vec();
        inserted.insert(2, extra);
        for (i, r) in inserted.iter_mut().enumerate() {
            r.index = i as i64;
        }
        let found = check(&inserted, 10);
        assert!(
            matches!(found, Err(Finding::Inserted { index: 2, .. })),
            "{found:?}"
        );

        // Edited with its leaf and every stored root recomputed: only the
        // signed checkpoint tells, and bounds where.
        let (mut rewritten, _, _) = log(9, &[]);
        rewritten[5].json = rewritten[5].json.replace_ascii("2026", "2025");
        let mut frontier = Frontier::default();
        for r in rewritten.iter_mut() {
            r.leaf = merkle::leaf_hash(&r.json).to_vec();
            frontier.push(merkle::leaf_hash(&r.json));
            r.root = frontier.root().to_vec();
        }
        assert_eq!(
            check(&rewritten, 9),
            Err(Finding::RootMismatch { size: 9, from: 0 })
        );
    }

    #[test]
    fn a_forged_or_foreign_checkpoint_is_named() {
        let (records, mut checkpoints, verifier) = log(4, &[2, 4]);
        checkpoints[0].1 = checkpoints[0].1.replacen("\n2\n", "\n3\n", 1);
        let found = verify(&records, 4, &checkpoints, &verifier);
        assert!(
            matches!(found, Err(Finding::Checkpoint { size: 2, .. })),
            "{found:?}"
        );
    }

    #[test]
    fn an_export_reads_back() {
        let (records, checkpoints, verifier) = log(3, &[3]);
        let mut text = serde_json::to_string(&ExportLine::Head { size: 3 }).unwrap() + "\n";
        for r in &records {
            text += &(serde_json::to_string(&ExportLine::record(r)).unwrap() + "\n");
        }
        let (size, note) = checkpoints[0].clone();
        text += &serde_json::to_string(&ExportLine::Checkpoint { size, note }).unwrap();
        let (records, size, checkpoints) = read_export(&text).unwrap();
        assert!(verify(&records, size, &checkpoints, &verifier).is_ok());
    }
}
