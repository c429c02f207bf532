//! Storage: SQLite (embedded default) or PostgreSQL (for replicas), through sqlx's
//! `Any` driver so that one set of queries serves both.
//!
//! Portable SQL only: `$n` placeholders in increasing order (SQLite binds them by
//! position), `BIGINT` milliseconds for times, TEXT for enums. Each backend has its
//! own migration folder because DDL differs (AUTOINCREMENT vs BIGSERIAL).
//!
//! One file per aggregate holds all of its SQL, so that SQLite/PostgreSQL parity is
//! reviewed in one place: where the two differ, both forms are written side by side
//! there. This file holds the pool, the connection, the migrations and the errors.

pub mod incidents;
pub mod maintenance;

use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor};

pub mod alerts;
pub mod audit;
pub mod deployments;
pub mod digests;
pub mod escalations;
pub mod heartbeats;
pub mod incident_times;
pub mod lease;
pub mod observe;
pub mod oncall;
pub mod outbox;
pub mod posts;
pub mod retention;
pub mod seed;
pub mod stats;
pub mod status;
pub mod status_days;
pub mod subscriptions;

/// A write transaction, as [`Store::begin_write`] opens it.
pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database URL must start with sqlite:// or postgres:// (got `{0}`)")]
    UnsupportedUrl(String),
    #[error("cannot open the database: {0}")]
    Connect(#[source] sqlx::Error),
    /// The pool only says it timed out; this is what a direct connection said.
    #[error("cannot open the database: {cause} at {at}")]
    Unreachable { cause: String, at: String },
    #[error("migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish()
    }
}

impl Backend {
    pub fn of_url(url: &str) -> Result<Backend, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(StoreError::UnsupportedUrl(redact_url(url)))
        }
    }
}

pub use crate::secret::redact_url;

mod disk_full;
pub use disk_full::{is_disk_full, says_disk_full};

/// The pool retries a refused connection until its timeout and then reports only
/// "pool timed out"; one direct attempt tells the operator why (refused, no such
/// host, password rejected), and where.
async fn why_unreachable(url: &str) -> StoreError {
    const WAIT: Duration = Duration::from_secs(5);
    let cause = match tokio::time::timeout(
        WAIT,
        <sqlx::AnyConnection as sqlx::Connection>::connect(url),
    )
    .await
    {
        Err(_) => format!("no answer within {} s", WAIT.as_secs()),
        Ok(Ok(conn)) => {
            let _ = sqlx::Connection::close(conn).await;
            "the pool timed out, though a direct connection worked (too many clients?)".into()
        }
        Ok(Err(e)) => connect_cause(&e),
    };
    StoreError::Unreachable {
        cause: crate::secret::scrub_url_in(&cause, url),
        at: address_of(url),
    }
}

fn connect_cause(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
            std::io::ErrorKind::TimedOut => "connection timed out".into(),
            _ => io.to_string(),
        },
        sqlx::Error::Database(db) => db.message().to_string(),
        other => other.to_string(),
    }
}

/// `host:port` of a database URL (PostgreSQL's port 5432 when none is written).
fn address_of(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => match u.host_str().filter(|h| !h.is_empty()) {
            Some(host) => format!("{host}:{}", u.port().unwrap_or(5432)),
            None => "the configured socket".into(),
        },
        Err(_) => "the configured address".into(),
    }
}

impl Store {
    /// Opens the database; a SQLite file is created when missing.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(url)?;
        let url = match backend {
            // sqlx does not create a missing SQLite file unless asked to.
            Backend::Sqlite if !url.contains("mode=") && !url.contains(":memory:") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_string(),
        };
        let max = match backend {
            // One writer at a time in SQLite anyway; a few readers help /readyz and
            // the HTTP server stay responsive while a command writes.
            Backend::Sqlite => 4,
            Backend::Postgres => 10,
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // Freed pages go back to the file system when the pruner
                        // asks (store::retention). It only takes effect before the
                        // first table exists: a new file gets it here, an older one
                        // by one VACUUM at start-up (ensure_incremental_vacuum).
                        conn.execute("PRAGMA auto_vacuum = INCREMENTAL").await?;
                        // WAL lets readers run beside the writer; NORMAL is durable
                        // across process crashes in WAL mode and much faster than FULL.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                    }
                    Ok(())
                })
            })
            // A transaction SQLite rolled back by itself (SQLITE_FULL: disk full) leaves
            // sqlx's count of open transactions at one, and every later BEGIN on that
            // connection fails; such a connection is closed instead of reused.
            .after_release(|conn, _meta| {
                Box::pin(async move { Ok(!sqlx::Connection::is_in_transaction(conn)) })
            })
            .connect(&url)
            .await;
        let pool = match pool {
            Ok(pool) => pool,
            Err(sqlx::Error::PoolTimedOut) => return Err(why_unreachable(&url).await),
            Err(e) => return Err(StoreError::Connect(e)),
        };
        Ok(Store { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Applies pending migrations. Safe to run at every start-up and from several
    /// replicas (sqlx takes a lock on PostgreSQL).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    /// A transaction that will write: on SQLite it takes the write lock at BEGIN
    /// (IMMEDIATE), so a read-then-write never fails on a concurrent writer; the
    /// busy timeout makes it wait instead.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// Cheap reachability check for `/readyz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Item 14 of issue #12: "pool timed out" told the operator nothing.
    #[tokio::test]
    async fn unreachable_postgres_names_the_cause() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let url = format!("postgres://k:hunter2@127.0.0.1:{port}/k?password=hunter3");
        let err = Store::connect(&url).await.unwrap_err().to_string();
        assert_eq!(
            err,
            format!("cannot open the database: connection refused at 127.0.0.1:{port}")
        );
        assert_eq!(address_of("postgres://db/k"), "db:5432");
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://k:s3cret@db:5432/k"),
            "postgres://k:****@db:5432/k"
        );
        assert_eq!(redact_url("sqlite://klaxon.db"), "sqlite://klaxon.db");
        assert_eq!(redact_url("postgres://k@db/k"), "postgres://k@db/k");
    }

    #[test]
    fn backend_from_url() {
        assert_eq!(Backend::of_url("sqlite://x.db").unwrap(), Backend::Sqlite);
        assert_eq!(
            Backend::of_url("postgresql://h/db").unwrap(),
            Backend::Postgres
        );
        assert!(Backend::of_url("mysql://h/db").is_err());
    }
}
