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
        // spent when its signature leaves (`store::spent`); `until` is when it
        // could no longer verify, after which the row may go; `replica` is the
        // process that reserved it (only it commits or releases).
        sql: "CREATE TABLE spent_tokens (
            jti_sha256 {blob} PRIMARY KEY,
            until_unix BIGINT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('reserved', 'spent')),
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
    // Numbered from 10 so that other branches' 2.. do not collide.
    Migration {
        version: 10,
        name: "registry",
        sql: super::registry::MIGRATION,
    },
];

#[cfg(test)]
pub(super) fn latest() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Applies every step newer than the database's version.
pub(super) async fn apply(database: &Database) -> Result<(), StoreError> {
    let mut connection = database.pool().acquire().await?;
    let backend = database.backend();
    // Servers (or tests) starting at once: one migrates, the others wait.
    // PostgreSQL: an advisory lock, a transaction per step. SQLite: its
    // write lock taken before anything is read (BEGIN IMMEDIATE; the busy
    // timeout waits), all steps in that one transaction.
    let (lock, unlock) = match backend {
        Backend::Postgres => (
            "SELECT pg_advisory_lock(7135937297)",
            "SELECT pg_advisory_unlock(7135937297)",
        ),
        Backend::Sqlite => ("BEGIN IMMEDIATE", "COMMIT"),
    };
    connection.execute(lock).await?;
    let result = apply_on(&mut connection, backend).await;
    if result.is_err() && backend == Backend::Sqlite {
        connection.execute("ROLLBACK").await?;
    } else {
        connection.execute(unlock).await?;
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
    // Every step not yet applied, not only those above the highest: steps
    // are numbered per branch (the registry's from 10), so a database may
    // hold 10 before 2 exists.
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM qsign_migrations")
        .fetch_all(&mut **connection)
        .await?;
    let blob = match backend {
        Backend::Sqlite => "BLOB",
        Backend::Postgres => "BYTEA",
    };
    for step in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        let sql = step.sql.replace("{blob}", blob);
        let record = sqlx::query("INSERT INTO qsign_migrations (version, name) VALUES ($1, $2)")
            .bind(step.version)
            .bind(step.name);
        if backend == Backend::Sqlite {
            // Already inside the BEGIN IMMEDIATE of `apply`.
            connection.execute(sql.as_str()).await?;
            record.execute(&mut **connection).await?;
        } else {
            let mut tx = sqlx::Connection::begin(&mut **connection).await?;
            tx.execute(sql.as_str()).await?;
            record.execute(&mut *tx).await?;
            tx.commit().await?;
        }
        tracing::info!(
            version = step.version,
            name = step.name,
            "database migrated"
        );
    }
    Ok(())
}
