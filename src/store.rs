//! The only module that knows SQL: the database that spent activation
//! tokens, the audit log and (later) the registry share.
//!
//! One code path for both back ends through sqlx's `Any` driver: an
//! embedded SQLite file in the state directory by default, PostgreSQL
//! (`[database] url = "postgres://..."`) when several replicas share it.
//! Queries use `$1`-style parameters, which both understand. The schema
//! is applied on start ([`Database::open`]) from [`MIGRATIONS`]; on
//! PostgreSQL under an advisory lock, so replicas starting together do not
//! race.
//!
//! Writes on the signing path go through a [`GroupCommit`]: concurrent
//! requests share one transaction (and one fsync), so a database round trip
//! per signature never serialises the service.

mod group;
mod migrations;

pub use group::GroupCommit;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

use crate::{Error, ErrorKind};

/// Which server is behind the pool (the few statements that differ).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A pool on the configured database, migrated.
#[derive(Clone, Debug)]
pub struct Database {
    pool: AnyPool,
    backend: Backend,
}

/// A failed database operation; always the service's own fault, so the
/// caller sees `UNAVAILABLE` (nothing is signed without its record).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error")]
    Sql(#[from] sqlx::Error),
    #[error("the database writer has stopped")]
    WriterGone,
    #[error("{0}")]
    Invalid(String),
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Error::new(
            ErrorKind::Unavailable,
            "the database cannot be written; nothing was signed, try again later",
        )
        .with_source(e)
    }
}

impl Database {
    /// Connects to `url` (`sqlite://FILE` or `postgres://...`), creating a
    /// SQLite file if missing, and applies the migrations.
    pub async fn open(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::Invalid(format!(
                "[database] url must start with sqlite: or postgres:, got {:?}",
                redact(url)
            )));
        };
        let options = AnyConnectOptions::from_str(url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL: readers never block the writer; FULL: a
                        // committed record survives a power loss; the busy
                        // timeout lets another process's writer finish.
                        connection
                            .execute(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                                 PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;",
                            )
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        let database = Self { pool, backend };
        migrations::apply(&database).await?;
        Ok(database)
    }

    /// The SQLite URL of a file (created on first use).
    pub fn sqlite_url(path: &std::path::Path) -> String {
        format!("sqlite://{}?mode=rwc", path.display())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// `url` without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://qsign:secret@db:5432/qsign"),
            "postgres://qsign:***@db:5432/qsign"
        );
        assert_eq!(redact("sqlite:///x.db"), "sqlite:///x.db");
    }

    #[tokio::test]
    async fn sqlite_is_created_and_migrated_twice() {
        let dir = tempfile::tempdir().unwrap();
        let url = Database::sqlite_url(&dir.path().join("q.db"));
        let first = Database::open(&url, 2).await.unwrap();
        first.close().await;
        let again = Database::open(&url, 2).await.unwrap();
        assert_eq!(again.backend(), Backend::Sqlite);
        let version: i64 = sqlx::query_scalar("SELECT MAX(version) FROM qsign_migrations")
            .fetch_one(again.pool())
            .await
            .unwrap();
        assert_eq!(version, migrations::latest());
    }
}
