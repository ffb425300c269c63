//! The registry's tables (SPEC §9): profiles, e-mail validations,
//! certificates and every serial the organisation CA issued.
//!
//! Races between replicas are settled here: a UNIQUE constraint on the
//! folded name (two orders of one name), `UPDATE ... WHERE status = ...`
//! row counts (two issues of one order, revoke against renew, by the
//! record's `version`), each change in one transaction with its serial.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Database, StoreError};

mod certificates;

pub(super) const MIGRATION: &str = "
CREATE TABLE registry_profiles (
  id TEXT PRIMARY KEY,
  cvr TEXT NOT NULL,
  organization_name TEXT NOT NULL,
  allow TEXT NOT NULL,
  allowed_clients TEXT NOT NULL,
  changed_unix BIGINT NOT NULL
);
CREATE TABLE registry_version (id BIGINT PRIMARY KEY, version BIGINT NOT NULL);
INSERT INTO registry_version (id, version) VALUES (1, 0);
CREATE TABLE email_validations (
  cvr TEXT NOT NULL,
  email TEXT NOT NULL,
  code_sha256 {blob} NOT NULL,
  salt {blob} NOT NULL,
  expires_unix BIGINT NOT NULL,
  failures BIGINT NOT NULL,
  validated_unix BIGINT,
  PRIMARY KEY (cvr, email)
);
CREATE TABLE certificates (
  id TEXT PRIMARY KEY,
  cvr TEXT NOT NULL,
  kind TEXT NOT NULL,
  name TEXT NOT NULL,
  name_folded TEXT NOT NULL,
  search_folded TEXT NOT NULL,
  status TEXT NOT NULL,
  serial TEXT NOT NULL,
  subject TEXT NOT NULL,
  not_before_unix BIGINT,
  not_after_unix BIGINT,
  contact_name TEXT NOT NULL,
  contact_email TEXT NOT NULL,
  certificate_email TEXT NOT NULL,
  system_name TEXT NOT NULL,
  user_sub TEXT NOT NULL,
  retrieval TEXT NOT NULL,
  publish BIGINT NOT NULL,
  der {blob},
  revoked_unix BIGINT,
  revocation_reason BIGINT,
  expiry_noticed_unix BIGINT,
  version BIGINT NOT NULL,
  UNIQUE (cvr, name_folded)
);
CREATE TABLE issued_serials (
  serial TEXT PRIMARY KEY,
  certificate_id TEXT NOT NULL REFERENCES certificates (id),
  not_after_unix BIGINT NOT NULL,
  revoked_unix BIGINT,
  revocation_reason BIGINT
);
CREATE INDEX issued_serials_revoked ON issued_serials (revoked_unix);
";

/// The profiles' version counter, bumped in every profile change's
/// transaction; the signing path reads it with its reservations (`spent`).
pub(super) const PROFILES_VERSION: &str = "SELECT version FROM registry_version WHERE id = 1";

/// A profile row (SPEC §4 fields; lists as text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileRow {
    pub id: String,
    pub cvr: String,
    pub organization_name: String,
    pub allow: Vec<String>,
    pub allowed_clients: Vec<String>,
}

/// An e-mail validation's stored state (the code only as a salted hash).
#[derive(Clone, Debug)]
pub struct Validation {
    pub code_sha256: Vec<u8>,
    pub salt: Vec<u8>,
    pub expires: i64,
    pub failures: i64,
    pub validated: Option<i64>,
}

/// The registry's queries on the shared database.
#[derive(Clone, Debug)]
pub struct RegistryStore {
    db: Database,
}

impl RegistryStore {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// The profiles' version counter: a replica rereads them when it moves.
    pub async fn profiles_version(&self) -> Result<i64, StoreError> {
        self.db
            .run(|db| async move {
                Ok(sqlx::query_scalar(PROFILES_VERSION)
                    .fetch_one(db.pool())
                    .await?)
            })
            .await
    }

    /// Every administered profile, of every organisation.
    pub async fn profiles(&self) -> Result<Vec<ProfileRow>, StoreError> {
        self.db
            .run(|db| async move {
                let rows = sqlx::query(
                    "SELECT id, cvr, organization_name, allow, allowed_clients \
                     FROM registry_profiles ORDER BY id",
                )
                .fetch_all(db.pool())
                .await?;
                rows.iter().map(profile_row).collect()
            })
            .await
    }

    /// Creates or replaces `row`; false when the id belongs to another
    /// organisation. Bumps the version in the same transaction.
    pub async fn put_profile(&self, row: ProfileRow, now: i64) -> Result<bool, StoreError> {
        self.db
            .run(move |db| async move {
                let mut tx = db.pool().begin().await?;
                let done = sqlx::query(
                    "INSERT INTO registry_profiles \
                       (id, cvr, organization_name, allow, allowed_clients, changed_unix) \
                     VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (id) DO UPDATE SET organization_name = excluded.organization_name, \
                       allow = excluded.allow, allowed_clients = excluded.allowed_clients, \
                       changed_unix = excluded.changed_unix \
                     WHERE registry_profiles.cvr = excluded.cvr",
                )
                .bind(row.id)
                .bind(row.cvr)
                .bind(row.organization_name)
                .bind(row.allow.join(","))
                .bind(row.allowed_clients.join("\n"))
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                bump(&mut tx).await?;
                tx.commit().await?;
                Ok(done == 1)
            })
            .await
    }

    /// Deletes the profile `id` of `cvr`; false when there is none.
    pub async fn delete_profile(&self, cvr: String, id: String) -> Result<bool, StoreError> {
        self.db
            .run(move |db| async move {
                let mut tx = db.pool().begin().await?;
                let done = sqlx::query("DELETE FROM registry_profiles WHERE id = $1 AND cvr = $2")
                    .bind(id)
                    .bind(cvr)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                bump(&mut tx).await?;
                tx.commit().await?;
                Ok(done == 1)
            })
            .await
    }

    /// Starts (or restarts) a validation: a new code, no failures.
    pub async fn start_validation(
        &self,
        key: (String, String),
        code: (Vec<u8>, Vec<u8>),
        expires: i64,
    ) -> Result<(), StoreError> {
        self.db
            .run(move |db| async move {
                sqlx::query(
                    "INSERT INTO email_validations \
                       (cvr, email, code_sha256, salt, expires_unix, failures, validated_unix) \
                     VALUES ($1, $2, $3, $4, $5, 0, NULL) \
                     ON CONFLICT (cvr, email) DO UPDATE SET code_sha256 = excluded.code_sha256, \
                       salt = excluded.salt, expires_unix = excluded.expires_unix, failures = 0, \
                       validated_unix = NULL",
                )
                .bind(key.0)
                .bind(key.1)
                .bind(code.0)
                .bind(code.1)
                .bind(expires)
                .execute(db.pool())
                .await?;
                Ok(())
            })
            .await
    }

    pub async fn validation(
        &self,
        cvr: String,
        email: String,
    ) -> Result<Option<Validation>, StoreError> {
        self.db
            .run(move |db| async move {
                let row = sqlx::query(
                    "SELECT code_sha256, salt, expires_unix, failures, validated_unix \
                     FROM email_validations WHERE cvr = $1 AND email = $2",
                )
                .bind(cvr)
                .bind(email)
                .fetch_optional(db.pool())
                .await?;
                row.map(|r| {
                    Ok(Validation {
                        code_sha256: r.try_get(0)?,
                        salt: r.try_get(1)?,
                        expires: r.try_get(2)?,
                        failures: r.try_get(3)?,
                        validated: r.try_get(4)?,
                    })
                })
                .transpose()
            })
            .await
    }

    /// Records the outcome of one confirmation try, guarded by the failure
    /// count read: a concurrent try of the same count loses (false).
    pub async fn settle_validation(
        &self,
        key: (String, String),
        failures_read: i64,
        confirmed_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        self.db
            .run(move |db| async move {
                let query = match confirmed_at {
                    Some(at) => sqlx::query(
                        "UPDATE email_validations SET validated_unix = $4 \
                         WHERE cvr = $1 AND email = $2 AND failures = $3 \
                           AND validated_unix IS NULL",
                    )
                    .bind(key.0)
                    .bind(key.1)
                    .bind(failures_read)
                    .bind(at),
                    None => sqlx::query(
                        "UPDATE email_validations SET failures = failures + 1 \
                         WHERE cvr = $1 AND email = $2 AND failures = $3",
                    )
                    .bind(key.0)
                    .bind(key.1)
                    .bind(failures_read),
                };
                let done = query.execute(db.pool()).await?.rows_affected();
                Ok(done == 1)
            })
            .await
    }
}

async fn bump(tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<(), StoreError> {
    sqlx::query("UPDATE registry_version SET version = version + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn profile_row(row: &AnyRow) -> Result<ProfileRow, StoreError> {
    let split = |text: String, sep: char| -> Vec<String> {
        text.split(sep)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    Ok(ProfileRow {
        id: row.try_get(0)?,
        cvr: row.try_get(1)?,
        organization_name: row.try_get(2)?,
        allow: split(row.try_get(3)?, ','),
        allowed_clients: split(row.try_get(4)?, '\n'),
    })
}
