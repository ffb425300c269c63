//! The schema, in numbered steps applied once each, in order, on start.
//! The same statements serve SQLite and PostgreSQL; `{blob}` stands for the
//! one type name they spell differently.

use sqlx::Executor;

use super::{Backend, Database, StoreError};

/// A schema step. Never edit one that has shipped: add the next.
pub(super) struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

pub(super) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "spent activation tokens",
        // SPEC §3 single use: a token is reserved before any HSM work and
        // spent when its signature leaves; `until` is when it could no longer
        // verify, after which the row may go.
        sql: "CREATE TABLE spent_tokens (
            jti_sha256 {blob} PRIMARY KEY,
            until_unix BIGINT NOT NULL,
            state TEXT NOT NULL,
            replica TEXT NOT NULL,
            changed_unix BIGINT NOT NULL
          );
          CREATE INDEX spent_tokens_until ON spent_tokens (until_unix);",
    },
    Migration {
        version: 2,
        name: "audit log",
        // SPEC §11: one head row (tree size and compact range, hex) that
        // every append locks; the records with the root after each; the
        // signed checkpoints (C2SP tlog-checkpoint notes) by tree size.
        sql: "CREATE TABLE audit_head (
            id INTEGER PRIMARY KEY,
            size BIGINT NOT NULL,
            frontier TEXT NOT NULL
          );
          INSERT INTO audit_head (id, size, frontier) VALUES (1, 0, '');
          CREATE TABLE audit_records (
            idx BIGINT PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            json TEXT NOT NULL,
            leaf {blob} NOT NULL,
            root {blob} NOT NULL
          );
          CREATE TABLE audit_checkpoints (
            size BIGINT PRIMARY KEY,
            note TEXT NOT NULL
          );",
    },
];

#[cfg(test)]
pub(super) fn latest() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Applies every step newer than the database's version.
pub(super) async fn apply(database: &Database) -> Result<(), StoreError> {
    let mut connection = database.pool().acquire().await?;
    if database.backend() == Backend::Postgres {
        // Replicas starting at once: one migrates, the others wait.
        connection
            .execute("SELECT pg_advisory_lock(7135937297)")
            .await?;
    }
    let result = apply_on(&mut connection, database.backend()).await;
    if database.backend() == Backend::Postgres {
        connection
            .execute("SELECT pg_advisory_unlock(7135937297)")
            .await?;
    }
    result
}

async fn apply_on(
    connection: &mut sqlx::pool::PoolConnection<sqlx::Any>,
    backend: Backend,
) -> Result<(), StoreError> {
    connection
        .execute(
            "CREATE TABLE IF NOT EXISTS qsign_migrations (
               version BIGINT PRIMARY KEY, name TEXT NOT NULL)",
        )
        .await?;
    let current: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM qsign_migrations")
        .fetch_one(&mut **connection)
        .await?;
    let blob = match backend {
        Backend::Sqlite => "BLOB",
        Backend::Postgres => "BYTEA",
    };
    for step in MIGRATIONS
        .iter()
        .filter(|m| m.version > current.unwrap_or(0))
    {
        let sql = step.sql.replace("{blob}", blob);
        let mut tx = sqlx::Connection::begin(&mut **connection).await?;
        if backend == Backend::Sqlite {
            // SQLite has no advisory lock: a write first takes the database
            // lock (waiting out another process's migration), then the
            // version is read again under it.
            tx.execute("UPDATE qsign_migrations SET name = name WHERE version < 0")
                .await?;
            let now: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM qsign_migrations")
                .fetch_one(&mut *tx)
                .await?;
            if now.unwrap_or(0) >= step.version {
                continue;
            }
        }
        tx.execute(sql.as_str()).await?;
        sqlx::query("INSERT INTO qsign_migrations (version, name) VALUES ($1, $2)")
            .bind(step.version)
            .bind(step.name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(
            version = step.version,
            name = step.name,
            "database migrated"
        );
    }
    Ok(())
}
