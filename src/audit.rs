//! The audit log of SPEC §11: a Merkle tree (RFC 6962 hashing) of
//! records, each the RFC 8785 canonical JSON of a [`Record`]; checkpoints
//! (C2SP tlog-checkpoint) signed with an Ed25519 key in the token (C2SP
//! signed-note); inclusion proofs as C2SP tlog-proof. No SQL here: the
//! rows live in `store::audit`, which runs this module's tree math inside
//! its transaction.
//!
//! ```text
//! Log::record(Event) ──SpentTokens::append──► one transaction per batch:
//!      ▲ (awaited before the response)        indices, leaves, roots, and
//!      │                                      the request's token settled
//!      │                                        │ wake
//!      └─ signature_id = record id      checkpoint task ── hsm: Ed25519 ──► audit_checkpoints
//! ```

pub mod jcs;
pub mod merkle;
pub mod note;
mod record;
pub mod verify;

use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use crate::hsm::Hsm;
use crate::store::audit::{self as rows, NewRecord};
pub use crate::store::Settle;
use crate::store::{Database, SpentTokens};
use crate::{Error, ErrorKind};
use merkle::Frontier;
pub use note::{Checkpoint, NoteVerifier};
pub use record::{rfc3339, EventKind, Outcome, Record};

/// `[audit]`: the log's name and key, and how often a checkpoint is signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditSettings {
    /// The checkpoint origin and note key name, e.g. `qsign.example/audit`.
    pub origin: String,
    /// Label of the Ed25519 key pair in the token.
    pub key_label: String,
    /// At most one checkpoint per interval (each covers every record so far).
    pub checkpoint_interval: Duration,
}

/// Something to record. The log adds the time; `id` is the record's id
/// (a signing request's `signature_id`).
#[derive(Clone, Debug)]
pub struct Event {
    pub id: String,
    pub kind: EventKind,
    pub outcome: Outcome,
    pub error_code: Option<String>,
    pub calling_system: Option<String>,
    pub sub: Option<String>,
    pub profile: Option<String>,
    /// The certificate's serial and DER: the record keeps the serial and
    /// the DER's SHA-256, never the certificate.
    pub certificate: Option<(Vec<u8>, [u8; 32])>,
    pub documents: Vec<[u8; 32]>,
    pub level: Option<String>,
    pub detail: Option<String>,
    /// The request's activation token (an opaque id from
    /// `auth::Reservation::ledger_id`), settled in the record's
    /// transaction: the record exists iff the token is spent (or released).
    pub token: Option<([u8; 32], Settle)>,
}

impl Event {
    pub fn new(id: String, kind: EventKind, outcome: Outcome) -> Self {
        Self {
            id,
            kind,
            outcome,
            error_code: None,
            calling_system: None,
            sub: None,
            profile: None,
            certificate: None,
            documents: Vec::new(),
            level: None,
            detail: None,
            token: None,
        }
    }

    /// The certificate's identity in the record: serial and fingerprint.
    pub fn certificate(&mut self, serial: &[u8], der: &[u8]) {
        self.certificate = Some((serial.to_vec(), Sha256::digest(der).into()));
    }

    fn into_record(self, time: SystemTime) -> (Record, Option<([u8; 32], Settle)>) {
        let (certificate_serial, certificate_sha256) = match self.certificate {
            Some((serial, sha256)) => (Some(hex::encode(serial)), Some(hex::encode(sha256))),
            None => (None, None),
        };
        let record = Record {
            id: self.id,
            time: rfc3339(time),
            event: Some(self.kind),
            outcome: Some(self.outcome),
            error_code: self.error_code,
            calling_system: self.calling_system,
            sub: self.sub,
            profile: self.profile,
            certificate_serial,
            certificate_sha256,
            documents: self.documents.iter().map(hex::encode).collect(),
            level: self.level,
            detail: self.detail,
        };
        (record, self.token)
    }
}

/// The running log: appends through the spent-token ledger's writer (one
/// transaction with the token it settles), signs checkpoints in the
/// background.
pub struct Log {
    verifier: NoteVerifier,
    database: Database,
    writer: SpentTokens,
    wake: Arc<Notify>,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("origin", &self.verifier.name)
            .finish_non_exhaustive()
    }
}

impl Log {
    /// Checks the key in the token and starts the checkpoint signer (on the
    /// database's runtime). Records go through `writer`, the replica's
    /// ledger, so that a record and its token's settlement are one
    /// transaction.
    pub fn start(
        database: Database,
        writer: SpentTokens,
        hsm: Hsm,
        settings: AuditSettings,
    ) -> Result<Arc<Self>, Error> {
        let label = settings.key_label.clone();
        let public = hsm
            .run_blocking(move |session| Ok(session.ed25519_public_key(&label)?))
            .map_err(|e| {
                Error::new(
                    ErrorKind::FailedPrecondition,
                    format!(
                        "no audit key '{}' in the token: run `qsign init-audit`",
                        settings.key_label
                    ),
                )
                .with_source(e)
            })?;
        let verifier = NoteVerifier::new(&settings.origin, public).map_err(|e| {
            Error::new(
                ErrorKind::FailedPrecondition,
                "[audit] origin is not a valid note key name (no spaces or '+')",
            )
            .with_source(e)
        })?;
        let wake = Arc::new(Notify::new());
        let log = Arc::new(Self {
            verifier,
            database,
            writer,
            wake,
        });
        Signer::spawn(&log, hsm, settings);
        Ok(log)
    }

    /// Appends `event` (and settles its token) and waits until it is
    /// committed; its index.
    pub async fn record(&self, event: Event) -> Result<u64, Error> {
        let (record, token) = event.into_record(SystemTime::now());
        let json = record.canonical_json();
        let leaf = merkle::leaf_hash(&json);
        let new = NewRecord {
            id: record.id,
            json,
            leaf,
        };
        let index = self.writer.append(new, token, append_leaves).await?;
        // A permit while the signer sleeps: it wakes once per interval.
        self.wake.notify_one();
        Ok(index)
    }

    /// The log's signed-note verifier key (`GET /audit/vkey`, `audit.vkey`).
    pub fn vkey(&self) -> String {
        self.verifier.vkey()
    }

    /// The latest signed checkpoint note (`GET /audit/checkpoint`).
    pub async fn latest_checkpoint(&self) -> Result<Option<String>, Error> {
        Ok(self
            .database
            .run(|db| async move { rows::latest_checkpoint(&db).await })
            .await?
            .map(|(_, note)| note))
    }
}

/// Makes the persistent Ed25519 audit key `label` in the token (refusing
/// to replace one); returns its signed-note verifier key for `origin`.
pub fn create_key(hsm: &Hsm, label: &str, origin: &str) -> Result<String, Error> {
    let owned = label.to_owned();
    let public = hsm.run_blocking(move |session| Ok(session.generate_ed25519(&owned)?))?;
    let verifier = NoteVerifier::new(origin, public).map_err(|e| {
        Error::new(
            ErrorKind::FailedPrecondition,
            "the audit origin is not a valid note key name",
        )
        .with_source(e)
    })?;
    Ok(verifier.vkey())
}

/// The store's [`rows::AppendFn`]: RFC 6962 leaves onto the compact range.
fn append_leaves(
    size: u64,
    frontier: &[u8],
    leaves: &[[u8; 32]],
) -> Option<(Vec<u8>, Vec<[u8; 32]>)> {
    let mut frontier = Frontier::from_parts(size, frontier)?;
    let roots = leaves
        .iter()
        .map(|leaf| {
            frontier.push(*leaf);
            frontier.root()
        })
        .collect();
    Some((frontier.to_bytes(), roots))
}

/// Signs a checkpoint of the latest size after appends, at most once per
/// interval, off the request path; stops when the log is dropped.
/// The checkpoint signer holds an HSM handle: wake it, so that it sees the
/// log is gone and lets go (`Hsm::close` at shutdown waits for that).
impl Drop for Log {
    fn drop(&mut self) {
        self.wake.notify_one();
    }
}

struct Signer {
    log: Weak<Log>,
    database: Database,
    hsm: Hsm,
    settings: AuditSettings,
    verifier: NoteVerifier,
}

impl Signer {
    fn spawn(log: &Arc<Log>, hsm: Hsm, settings: AuditSettings) {
        let signer = Self {
            log: Arc::downgrade(log),
            database: log.database.clone(),
            hsm,
            settings,
            verifier: log.verifier.clone(),
        };
        let wake = log.wake.clone();
        // The head at start gets a checkpoint too (an empty log's: size 0).
        wake.notify_one();
        log.database.handle().spawn(async move {
            loop {
                let woken = tokio::time::timeout(Duration::from_secs(5), wake.notified()).await;
                if signer.log.upgrade().is_none() {
                    return;
                }
                if woken.is_err() {
                    continue;
                }
                if let Err(e) = signer.sign_latest().await {
                    tracing::warn!(error = %e, "audit: cannot sign a checkpoint; retrying after the next append");
                }
                tokio::time::sleep(signer.settings.checkpoint_interval).await;
            }
        });
    }

    async fn sign_latest(&self) -> Result<(), Error> {
        let (size, frontier) = rows::head(&self.database).await?;
        let latest = rows::latest_checkpoint(&self.database).await?;
        if latest.is_some_and(|(signed, _)| signed >= size) {
            return Ok(());
        }
        let root = Frontier::from_parts(size, &frontier)
            .ok_or_else(|| Error::internal("the audit head's compact range is inconsistent"))?
            .root();
        let text = Checkpoint {
            origin: self.settings.origin.clone(),
            size,
            root,
        }
        .text();
        let (label, message) = (self.settings.key_label.clone(), text.clone());
        let signature = self
            .hsm
            .run(move |session| Ok(session.ed25519_sign(&label, message.as_bytes())?))
            .await?;
        let note = format!("{text}\n{}", self.verifier.signature_line(&signature));
        rows::save_checkpoint(&self.database, size, &note).await?;
        tracing::debug!(size, "audit: checkpoint signed");
        Ok(())
    }
}
