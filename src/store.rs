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
//! Writes on the signing path (`spent`: reservations, spent tokens and the
//! audit records that settle them) are batched: concurrent requests share
//! one transaction (and one fsync), so a database round trip per signature
//! never serialises the service. On SQLite one OS thread with its own
//! rusqlite connection writes them (`sqlite`: no async hops); on
//! PostgreSQL a [`GroupCommit`] on the pool (`batch`).
//!
//! The pool lives on a small runtime of its own (one thread): opening it
//! needs no caller runtime (start-up and the CLI are synchronous), database
//! I/O never runs on the request workers, and any runtime can await
//! [`Database::run`].

pub mod audit;
mod batch;
mod group;
mod migrations;
pub mod registry;
mod spent;
mod sqlite;

pub use registry::RegistryStore;

pub use group::GroupCommit;
pub use spent::{Settle, SpentTokens};

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
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

/// A pool on the configured database, migrated; cheap to clone.
#[derive(Clone)]
pub struct Database {
    inner: Arc<Inner>,
}

struct Inner {
    pool: AnyPool,
    backend: Backend,
    /// SQLite's main database file, for the signing path's own writer.
    sqlite_file: Option<std::path::PathBuf>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Dropping a runtime may happen inside another one's task.
            runtime.shutdown_background();
        }
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("backend", &self.inner.backend)
            .finish_non_exhaustive()
    }
}

/// A failed database operation; always the service's own fault, so the
/// caller sees `UNAVAILABLE` (nothing is signed without its record).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error")]
    Sql(#[from] sqlx::Error),
    #[error("database error")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the database writer has stopped")]
    WriterGone,
    #[error("cannot start the database thread")]
    Runtime(#[source] std::io::Error),
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
    /// SQLite file if missing, and applies the migrations. Blocks; callable
    /// from inside or outside a runtime.
    pub fn open(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("qsign-db")
            .enable_all()
            .build()
            .map_err(StoreError::Runtime)?;
        let opening = async { connect(url, max_connections).await };
        // A scoped thread: block_on must not run on a runtime's worker.
        let (pool, backend, sqlite_file) =
            std::thread::scope(|scope| scope.spawn(|| runtime.block_on(opening)).join())
                .map_err(|_| StoreError::Invalid("the database set-up panicked".into()))??;
        let database = Self {
            inner: Arc::new(Inner {
                pool,
                backend,
                sqlite_file,
                runtime: Some(runtime),
            }),
        };
        let migrating = database.clone();
        std::thread::scope(|scope| {
            scope
                .spawn(|| database.handle().block_on(migrations::apply(&migrating)))
                .join()
        })
        .map_err(|_| StoreError::Invalid("the migration panicked".into()))??;
        Ok(database)
    }

    /// Runs `work` on the database's own runtime and waits for it.
    pub async fn run<T, F>(&self, work: impl FnOnce(Database) -> F) -> Result<T, StoreError>
    where
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
        T: Send + 'static,
    {
        self.handle()
            .spawn(work(self.clone()))
            .await
            .map_err(|_| StoreError::WriterGone)?
    }

    /// [`Database::run`] for synchronous callers (the CLI, start-up).
    pub fn run_blocking<T, F>(&self, work: impl FnOnce(Database) -> F) -> Result<T, StoreError>
    where
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
        T: Send + 'static,
    {
        let task = self.handle().spawn(work(self.clone()));
        std::thread::scope(|scope| scope.spawn(|| self.handle().block_on(task)).join())
            .map_err(|_| StoreError::WriterGone)?
            .map_err(|_| StoreError::WriterGone)?
    }

    pub(crate) fn handle(&self) -> &tokio::runtime::Handle {
        self.inner
            .runtime
            .as_ref()
            .expect("the runtime lives as long as the database")
            .handle()
    }
}

async fn connect(
    url: &str,
    max_connections: u32,
) -> Result<(AnyPool, Backend, Option<std::path::PathBuf>), StoreError> {
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
                    // timeout lets another process's writer finish. A
                    // page cache of 256 KiB per connection (SQLite's
                    // default is 2 MiB): the database grows with every
                    // signature, so each cache fills for minutes and RSS
                    // rises with it (issue 11, tests/memory.rs); the OS
                    // page cache holds the file anyway.
                    connection
                        .execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                                 PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; \
                                 PRAGMA cache_size = -256;",
                        )
                        .await?;
                }
                Ok(())
            })
        })
        .connect_with(options)
        .await?;
    let file = match backend {
        // The file the pool opened, whatever the URL's form; none in memory.
        Backend::Sqlite => {
            let file: String =
                sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
                    .fetch_one(&pool)
                    .await?;
            Some(std::path::PathBuf::from(file)).filter(|f| !f.as_os_str().is_empty())
        }
        Backend::Postgres => None,
    };
    Ok((pool, backend, file))
}

impl Database {
    /// The SQLite URL of a file (created on first use).
    pub fn sqlite_url(path: &std::path::Path) -> String {
        format!("sqlite://{}?mode=rwc", path.display())
    }

    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// The SQLite file (none for PostgreSQL or an in-memory database).
    pub(crate) fn sqlite_file(&self) -> Option<&std::path::Path> {
        self.inner.sqlite_file.as_deref()
    }

    /// The pool; use it only inside [`Database::run`] (its I/O belongs to
    /// the database's runtime).
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.inner.pool
    }

    /// Closes every connection (waits for those in use).
    pub fn close(&self) {
        let _ = self.run_blocking(|db| async move {
            db.pool().close().await;
            Ok(())
        });
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

    #[test]
    fn sqlite_is_created_and_migrated_twice() {
        let dir = tempfile::tempdir().unwrap();
        let url = Database::sqlite_url(&dir.path().join("q.db"));
        let first = Database::open(&url, 2).unwrap();
        first.close();
        let again = Database::open(&url, 2).unwrap();
        assert_eq!(again.backend(), Backend::Sqlite);
        let version: i64 = again
            .run_blocking(|db| async move {
                Ok(
                    sqlx::query_scalar("SELECT MAX(version) FROM qsign_migrations")
                        .fetch_one(db.pool())
                        .await?,
                )
            })
            .unwrap();
        assert_eq!(version, migrations::latest());
    }

    #[tokio::test]
    async fn usable_from_inside_another_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&Database::sqlite_url(&dir.path().join("q.db")), 1).unwrap();
        let one: i64 = db
            .run(|db| async move { Ok(sqlx::query_scalar("SELECT 1").fetch_one(db.pool()).await?) })
            .await
            .unwrap();
        assert_eq!(one, 1);
    }
}
