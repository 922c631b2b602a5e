//! The handle on the order database: which SQL it speaks, how it is opened
//! (creating a SQLite file, applying the migrations) and the column helpers
//! every table's queries share.

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Row};

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
}

impl Db {
    /// Connects (creating a SQLite file and its directory if needed) and
    /// applies the migrations.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
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
        let pool = AnyPoolOptions::new()
            .max_connections(if dialect == Dialect::Sqlite { 4 } else { 16 })
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
        Ok(Self { pool, dialect })
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(drop)
    }
}

/// A database URL without its password, for error messages.
fn redact(url: &str) -> String {
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
