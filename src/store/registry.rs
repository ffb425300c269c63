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
use crate::registry::model::{IssuedCertificate, Order};
use crate::registry::model::{
    Kind, Reason, Record, Retrieval, RevokedSerial, Selection, SerialStatus, Status,
};

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

const COLUMNS: &str = "id, cvr, kind, name, status, serial, subject, not_before_unix, \
    not_after_unix, contact_name, contact_email, certificate_email, system_name, user_sub, \
    retrieval, publish, der, revoked_unix, revocation_reason, version";

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

impl RegistryStore {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// The profiles' version counter: a replica rereads them when it moves.
    pub async fn profiles_version(&self) -> Result<i64, StoreError> {
        self.db
            .run(|db| async move {
                Ok(
                    sqlx::query_scalar("SELECT version FROM registry_version WHERE id = 1")
                        .fetch_one(db.pool())
                        .await?,
                )
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

    /// Records a new order; false when the organisation has the name.
    pub async fn insert_order(
        &self,
        id: uuid::Uuid,
        cvr: String,
        order: Order,
    ) -> Result<bool, StoreError> {
        self.db
            .run(move |db| async move {
                let kind = order.kind.unwrap_or(Kind::Organization);
                let search = search_text(&order);
                let inserted = sqlx::query(
                    "INSERT INTO certificates (id, cvr, kind, name, name_folded, search_folded, \
                       status, serial, subject, contact_name, contact_email, certificate_email, \
                       system_name, user_sub, retrieval, publish, version) \
                     VALUES ($1, $2, $3, $4, $5, $6, 'PENDING', '', '', $7, $8, $9, $10, $11, \
                       $12, $13, 0)",
                )
                .bind(id.to_string())
                .bind(cvr)
                .bind(kind.as_str())
                .bind(order.name.clone())
                .bind(order.name.to_lowercase())
                .bind(search)
                .bind(order.contact_name)
                .bind(order.contact_email)
                .bind(order.certificate_email)
                .bind(order.system_name)
                .bind(order.user_sub)
                .bind(order.retrieval.unwrap_or(Retrieval::Api).as_str())
                .bind(i64::from(order.publish))
                .execute(db.pool())
                .await;
                match inserted {
                    Ok(_) => Ok(true),
                    Err(e) if is_unique_violation(&e) => Ok(false),
                    Err(e) => Err(e.into()),
                }
            })
            .await
    }

    pub async fn get(&self, id: uuid::Uuid) -> Result<Option<Record>, StoreError> {
        self.db
            .run(move |db| async move {
                let row = sqlx::query(&format!("SELECT {COLUMNS} FROM certificates WHERE id = $1"))
                    .bind(id.to_string())
                    .fetch_optional(db.pool())
                    .await?;
                row.as_ref().map(record).transpose()
            })
            .await
    }

    /// Records `issued` for the record if it is still `from` at `version`
    /// (PENDING for an issue, VALID for a renew); false when another
    /// replica got there first or it was revoked meanwhile.
    pub async fn record_issued(
        &self,
        id: uuid::Uuid,
        from: (Status, i64),
        issued: IssuedCertificate,
    ) -> Result<bool, StoreError> {
        self.db
            .run(move |db| async move {
                let mut tx = db.pool().begin().await?;
                let done = sqlx::query(
                    "UPDATE certificates SET status = 'VALID', serial = $1, subject = $2, \
                       not_before_unix = $3, not_after_unix = $4, der = $5, \
                       expiry_noticed_unix = NULL, version = version + 1 \
                     WHERE id = $6 AND status = $7 AND version = $8",
                )
                .bind(issued.serial.clone())
                .bind(issued.subject)
                .bind(issued.not_before)
                .bind(issued.not_after)
                .bind(issued.der)
                .bind(id.to_string())
                .bind(from.0.as_str())
                .bind(from.1)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if done != 1 {
                    return Ok(false);
                }
                sqlx::query(
                    "INSERT INTO issued_serials (serial, certificate_id, not_after_unix) \
                     VALUES ($1, $2, $3)",
                )
                .bind(issued.serial)
                .bind(id.to_string())
                .bind(issued.not_after)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(true)
            })
            .await
    }

    /// RFC 5280 §5.3.1: revokes a VALID record and every serial it ever
    /// had; false when it is not VALID (already revoked, or pending).
    pub async fn revoke(
        &self,
        id: uuid::Uuid,
        reason: Reason,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.db
            .run(move |db| async move {
                let mut tx = db.pool().begin().await?;
                let done = sqlx::query(
                    "UPDATE certificates SET status = 'REVOKED', revoked_unix = $1, \
                       revocation_reason = $2, version = version + 1 \
                     WHERE id = $3 AND status = 'VALID'",
                )
                .bind(now)
                .bind(reason.code())
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if done != 1 {
                    return Ok(false);
                }
                sqlx::query(
                    "UPDATE issued_serials SET revoked_unix = $1, revocation_reason = $2 \
                     WHERE certificate_id = $3 AND revoked_unix IS NULL",
                )
                .bind(now)
                .bind(reason.code())
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(true)
            })
            .await
    }

    /// SPEC §9 search within `cvr`, ordered by id, after `after` (paging).
    pub async fn search(
        &self,
        cvr: String,
        selection: Selection,
        after: Option<String>,
        limit: Option<i64>,
        now: i64,
    ) -> Result<Vec<Record>, StoreError> {
        self.db
            .run(move |db| async move {
                let mut sql = format!("SELECT {COLUMNS} FROM certificates WHERE cvr = $1");
                let mut binds: Vec<Bind> = vec![Bind::Text(cvr)];
                let param = |binds: &mut Vec<Bind>, value: Bind| {
                    binds.push(value);
                    format!("${}", binds.len())
                };
                let query = selection.query.trim();
                if let Ok(id) = uuid::Uuid::try_parse(query) {
                    let p = param(&mut binds, Bind::Text(id.to_string()));
                    sql.push_str(&format!(" AND id = {p}"));
                } else if !query.is_empty() {
                    let p = param(&mut binds, Bind::Text(like_pattern(query)));
                    sql.push_str(&format!(" AND search_folded LIKE {p} ESCAPE '\\'"));
                }
                if let Some(kind) = selection.kind {
                    let p = param(&mut binds, Bind::Text(kind.as_str().into()));
                    sql.push_str(&format!(" AND kind = {p}"));
                }
                if let Some(status) = selection.status {
                    sql.push_str(&status_filter(status, &mut binds, now));
                }
                if let Some(after) = after {
                    let p = param(&mut binds, Bind::Text(after));
                    sql.push_str(&format!(" AND id > {p}"));
                }
                sql.push_str(" ORDER BY id");
                if let Some(limit) = limit {
                    let p = param(&mut binds, Bind::Int(limit));
                    sql.push_str(&format!(" LIMIT {p}"));
                }
                let mut q = sqlx::query(&sql);
                for bind in binds {
                    q = match bind {
                        Bind::Text(t) => q.bind(t),
                        Bind::Int(i) => q.bind(i),
                    };
                }
                let rows = q.fetch_all(db.pool()).await?;
                rows.iter().map(record).collect()
            })
            .await
    }

    /// RFC 6960 §2.2 status of `serial` (lowercase hex) among the
    /// organisation CA's issued serials.
    pub async fn serial_status(&self, serial: String) -> Result<SerialStatus, StoreError> {
        self.db
            .run(move |db| async move {
                let row = sqlx::query(
                    "SELECT revoked_unix, revocation_reason FROM issued_serials WHERE serial = $1",
                )
                .bind(serial)
                .fetch_optional(db.pool())
                .await?;
                let Some(row) = row else {
                    return Ok(SerialStatus::Unknown);
                };
                let at: Option<i64> = row.try_get(0)?;
                let reason: Option<i64> = row.try_get(1)?;
                Ok(match at {
                    None => SerialStatus::Good,
                    Some(at) => SerialStatus::Revoked {
                        at,
                        reason: reason
                            .and_then(Reason::from_code)
                            .unwrap_or(Reason::Unspecified),
                    },
                })
            })
            .await
    }

    /// RFC 5280 §5.1.2.6: every revoked serial not yet expired at `now`.
    pub async fn revoked_unexpired(&self, now: i64) -> Result<Vec<RevokedSerial>, StoreError> {
        self.db
            .run(move |db| async move {
                let rows = sqlx::query(
                    "SELECT serial, revoked_unix, revocation_reason FROM issued_serials \
                     WHERE revoked_unix IS NOT NULL AND not_after_unix >= $1 ORDER BY serial",
                )
                .bind(now)
                .fetch_all(db.pool())
                .await?;
                rows.iter()
                    .map(|r| {
                        let reason: i64 = r.try_get(2)?;
                        Ok(RevokedSerial {
                            serial: r.try_get(0)?,
                            revoked_at: r.try_get(1)?,
                            reason: Reason::from_code(reason).unwrap_or(Reason::Unspecified),
                        })
                    })
                    .collect()
            })
            .await
    }

    /// Valid certificates expiring before `horizon` whose contact was not
    /// yet told; each is claimed (marked) here, so one replica mails it.
    pub async fn claim_expiring(&self, now: i64, horizon: i64) -> Result<Vec<Record>, StoreError> {
        self.db
            .run(move |db| async move {
                let rows = sqlx::query(&format!(
                    "SELECT {COLUMNS} FROM certificates WHERE status = 'VALID' \
                     AND not_after_unix >= $1 AND not_after_unix < $2 \
                     AND expiry_noticed_unix IS NULL"
                ))
                .bind(now)
                .bind(horizon)
                .fetch_all(db.pool())
                .await?;
                let mut claimed = Vec::new();
                for row in &rows {
                    let record = record(row)?;
                    let done = sqlx::query(
                        "UPDATE certificates SET expiry_noticed_unix = $1 \
                         WHERE id = $2 AND expiry_noticed_unix IS NULL",
                    )
                    .bind(now)
                    .bind(record.id.to_string())
                    .execute(db.pool())
                    .await?
                    .rows_affected();
                    if done == 1 {
                        claimed.push(record);
                    }
                }
                Ok(claimed)
            })
            .await
    }
}

enum Bind {
    Text(String),
    Int(i64),
}

fn status_filter(status: Status, binds: &mut Vec<Bind>, now: i64) -> String {
    binds.push(Bind::Int(now));
    let p = binds.len();
    match status {
        Status::Pending => " AND status = 'PENDING'".into(),
        Status::Revoked => " AND status = 'REVOKED'".into(),
        Status::Valid => format!(" AND status = 'VALID' AND not_after_unix >= ${p}"),
        Status::Expired => format!(" AND status = 'VALID' AND not_after_unix < ${p}"),
    }
}

/// `%query%` for LIKE with `\`, `%` and `_` escaped: the query is data,
/// never pattern syntax (and never SQL: it is a bound parameter).
fn like_pattern(query: &str) -> String {
    let mut pattern = String::from("%");
    for c in query.to_lowercase().chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// SPEC §9 search fields, folded in Rust (SQLite's LOWER is ASCII-only),
/// one per line so that a query cannot match across two.
fn search_text(order: &Order) -> String {
    [
        &order.name,
        &order.system_name,
        &order.contact_name,
        &order.contact_email,
        &order.certificate_email,
    ]
    .map(|s| s.replace('\n', " ").to_lowercase())
    .join("\n")
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

fn record(row: &AnyRow) -> Result<Record, StoreError> {
    let bad = |what: &str| StoreError::Invalid(format!("a certificate row has a bad {what}"));
    let id: String = row.try_get(0)?;
    let kind: String = row.try_get(2)?;
    let status: String = row.try_get(4)?;
    let retrieval: String = row.try_get(14)?;
    let publish: i64 = row.try_get(15)?;
    let reason: Option<i64> = row.try_get(18)?;
    Ok(Record {
        id: uuid::Uuid::try_parse(&id).map_err(|_| bad("id"))?,
        cvr: row.try_get(1)?,
        kind: Kind::parse(&kind).ok_or_else(|| bad("kind"))?,
        name: row.try_get(3)?,
        stored_status: Status::parse(&status).ok_or_else(|| bad("status"))?,
        serial: row.try_get(5)?,
        subject: row.try_get(6)?,
        not_before: row.try_get(7)?,
        not_after: row.try_get(8)?,
        contact_name: row.try_get(9)?,
        contact_email: row.try_get(10)?,
        certificate_email: row.try_get(11)?,
        system_name: row.try_get(12)?,
        user_sub: row.try_get(13)?,
        retrieval: Retrieval::parse(&retrieval).ok_or_else(|| bad("retrieval"))?,
        publish: publish != 0,
        der: row.try_get::<Option<Vec<u8>>, _>(16)?.unwrap_or_default(),
        revoked_at: row.try_get(17)?,
        revocation_reason: reason.and_then(Reason::from_code),
        version: row.try_get(19)?,
    })
}
