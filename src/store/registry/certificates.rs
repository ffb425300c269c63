//! The certificates and serials of the registry (SPEC §9): orders, the
//! guarded transitions that settle races, search, and status for OCSP and
//! the CRL.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::RegistryStore;
use crate::registry::model::{
    IssuedCertificate, Kind, Order, Reason, Record, Retrieval, RevokedSerial, Selection,
    SerialStatus, Status,
};
use crate::store::StoreError;

const COLUMNS: &str = "id, cvr, kind, name, status, serial, subject, not_before_unix, \
    not_after_unix, contact_name, contact_email, certificate_email, system_name, user_sub, \
    retrieval, publish, der, revoked_unix, revocation_reason, version";

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

impl RegistryStore {
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

impl RegistryStore {
    /// SPEC §10 public lookup: issued, published certificates (any kind)
    /// whose id, CVR or serial (lowercase hex) is `exact`, or whose name,
    /// system name, certificate e-mail or subject contains `part`
    /// (case-insensitive); ordered by id, after `after`. The contact
    /// person is never matched, so a search cannot reveal who it is.
    pub async fn lookup(
        &self,
        exact: String,
        part: String,
        after: Option<String>,
        limit: i64,
    ) -> Result<Vec<Record>, StoreError> {
        self.db
            .run(move |db| async move {
                let sql = format!(
                    "SELECT {COLUMNS} FROM certificates \
                     WHERE publish = 1 AND status IN ('VALID', 'REVOKED') AND der IS NOT NULL \
                       AND (id = $1 OR cvr = $1 OR serial = $1 \
                         OR LOWER(name) LIKE $2 ESCAPE '\\' \
                         OR LOWER(system_name) LIKE $2 ESCAPE '\\' \
                         OR LOWER(certificate_email) LIKE $2 ESCAPE '\\' \
                         OR LOWER(subject) LIKE $2 ESCAPE '\\') \
                       AND id > $3 \
                     ORDER BY id LIMIT $4"
                );
                let rows = sqlx::query(&sql)
                    .bind(exact)
                    .bind(like_pattern(&part))
                    .bind(after.unwrap_or_default())
                    .bind(limit)
                    .fetch_all(db.pool())
                    .await?;
                rows.iter().map(record).collect()
            })
            .await
    }

    /// One published, issued certificate by id (SPEC §10), else None.
    pub async fn lookup_one(&self, id: uuid::Uuid) -> Result<Option<Record>, StoreError> {
        self.db
            .run(move |db| async move {
                let sql = format!(
                    "SELECT {COLUMNS} FROM certificates WHERE id = $1 AND publish = 1 \
                       AND status IN ('VALID', 'REVOKED') AND der IS NOT NULL"
                );
                let row = sqlx::query(&sql)
                    .bind(id.to_string())
                    .fetch_optional(db.pool())
                    .await?;
                row.as_ref().map(record).transpose()
            })
            .await
    }
}
