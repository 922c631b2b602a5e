//! The handle on the order database: which SQL it speaks, how it is opened
//! (creating a SQLite file, applying the migrations) and the column helpers
//! every table's queries share.

use std::future::Future;
use std::sync::Arc;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Row};

use crate::breaker::{Breaker, BreakerSettings};

/// Which SQL the database speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    MySql,
}

/// Handle on the order database. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    dialect: Dialect,
    max_connections: u32,
    breaker: Arc<Breaker>,
    /// The read replica, if one is configured (`replica.rs`).
    pub(super) replica: Option<Arc<Replica>>,
}

/// The read replica's pool and what is known of its lag (used by `replica.rs`).
#[derive(Debug)]
pub(super) struct Replica {
    pub(super) pool: AnyPool,
    /// Milliseconds behind the primary, or [`Replica::UNKNOWN`].
    pub(super) lag_ms: std::sync::atomic::AtomicI64,
    pub(super) max_lag_ms: i64,
}

impl Replica {
    /// `lag_ms` before the first reading, or while the replica does not answer.
    pub(super) const UNKNOWN: i64 = -1;
}

/// How the connection pool is used right now (for the checklist).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUse {
    pub max: u32,
    /// Connections open, busy or idle.
    pub open: u32,
    pub idle: u32,
}

impl Dialect {
    /// Connections a pool holds unless told otherwise: SQLite has one
    /// writer at a time, so a few; a MySQL server serves many.
    pub fn default_pool_size(self) -> u32 {
        match self {
            Self::Sqlite => 4,
            Self::MySql => 16,
        }
    }
}

impl Db {
    /// [`Db::connect_with_pool`] with the dialect's default pool size.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        Self::connect_with_pool(url, None).await
    }

    /// Connects with a pool of at most `pool_size` connections (the
    /// dialect's default if `None`), creating a SQLite file and its
    /// directory if needed, and applies the migrations.
    pub async fn connect_with_pool(url: &str, pool_size: Option<u32>) -> anyhow::Result<Self> {
        install_default_drivers();
        let (dialect, url) = if let Some(path) = url.strip_prefix("sqlite://") {
            let file = path.split('?').next().unwrap_or("");
            if let Some(dir) = std::path::Path::new(file).parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let url = if url.contains("mode=") {
                url.to_owned()
            } else if url.contains('?') {
                format!("{url}&mode=rwc")
            } else {
                format!("{url}?mode=rwc")
            };
            (Dialect::Sqlite, url)
        } else if url.starts_with("mysql://") || url.starts_with("mariadb://") {
            (Dialect::MySql, url.replacen("mariadb://", "mysql://", 1))
        } else {
            anyhow::bail!("SECKILL_DATABASE_URL must start with sqlite:// or mysql://, got {url:?}");
        };
        let max_connections = pool_size.unwrap_or(dialect.default_pool_size());
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(std::time::Duration::from_secs(3))
            .connect(&url)
            .await
            .map_err(|e| anyhow::anyhow!("cannot open the order database {}: {e}", redact(&url)))?;
        if dialect == Dialect::Sqlite {
            // WAL lets readers (the API) work while the worker writes.
            sqlx::query("PRAGMA journal_mode = WAL").execute(&pool).await?;
        }
        let migrator = match dialect {
            Dialect::Sqlite => sqlx::migrate!("./migrations/sqlite"),
            Dialect::MySql => sqlx::migrate!("./migrations/mysql"),
        };
        migrator.run(&pool).await?;
        let breaker = Arc::new(Breaker::new("db", BreakerSettings::default()));
        Ok(Self { pool, dialect, max_connections, breaker, replica: None })
    }

    /// Opens the circuit breaker as `settings` say (see [`Breaker`]).
    pub fn with_breaker(mut self, settings: BreakerSettings) -> Self {
        self.breaker = Arc::new(Breaker::new("db", settings));
        self
    }

    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// Runs one database interaction unless the circuit breaker is open, and
    /// tells the breaker how it went. A refusal is an I/O error carrying
    /// [`BreakerOpen`](crate::breaker::BreakerOpen): to the worker a passing outage like any other
    /// (`Failure::Transient`), to a client `unavailable`.
    pub(super) async fn guarded<T>(
        &self,
        work: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, sqlx::Error> {
        self.breaker.admit().map_err(|open| sqlx::Error::Io(std::io::Error::other(open)))?;
        let result = work.await;
        match &result {
            // Only the database being unreachable counts; an error it answers with is it up.
            Err(
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed,
            ) => self.breaker.failed(),
            _ => self.breaker.succeeded(),
        }
        result
    }

    pub fn pool_use(&self) -> PoolUse {
        PoolUse { max: self.max_connections, open: self.pool.size(), idle: self.pool.num_idle() as u32 }
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        self.guarded(async { sqlx::query("SELECT 1").execute(&self.pool).await.map(drop) }).await
    }
}

/// A database URL without its password, for error messages.
pub(super) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://…@{}", &url[..scheme], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

/// A `TEXT` column: a string on SQLite, bytes (a BLOB) to sqlx's `Any` driver on MySQL.
pub(crate) fn text_column(row: &sqlx::any::AnyRow, column: &str) -> Result<String, sqlx::Error> {
    match row.try_get::<String, _>(column) {
        Ok(text) => Ok(text),
        Err(_) => String::from_utf8(row.try_get::<Vec<u8>, _>(column)?).map_err(|e| sqlx::Error::Decode(Box::new(e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact("mysql://root:pw@db:3306/seckill"), "mysql://…@db:3306/seckill");
        assert_eq!(redact("sqlite://var/orders.db"), "sqlite://var/orders.db");
    }
}
