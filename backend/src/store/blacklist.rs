//! The blacklist sets in Redis and their version counter, which the
//! backends' in-memory copies and the edge's state key on.

use super::client::{Store, StoreError};
use super::keys;

/// Which blacklist set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlacklistKind {
    Users,
    Ips,
}

impl BlacklistKind {
    fn key(self) -> &'static str {
        match self {
            Self::Users => keys::BLACKLIST_USERS,
            Self::Ips => keys::BLACKLIST_IPS,
        }
    }
}

impl Store {
    /// Adds `value` to a blacklist; true if it was not there yet.
    pub async fn blacklist_add(&self, kind: BlacklistKind, value: &str) -> Result<bool, StoreError> {
        self.blacklist_change("SADD", kind, value).await
    }

    /// Removes `value` from a blacklist; true if it was there.
    pub async fn blacklist_remove(&self, kind: BlacklistKind, value: &str) -> Result<bool, StoreError> {
        self.blacklist_change("SREM", kind, value).await
    }

    async fn blacklist_change(
        &self,
        command: &'static str,
        kind: BlacklistKind,
        value: &str,
    ) -> Result<bool, StoreError> {
        let value = value.to_owned();
        let (changed,): (i64,) = self
            .bounded(|mut c| async move {
                redis::pipe()
                    .cmd(command)
                    .arg(kind.key())
                    .arg(&value)
                    .cmd("INCR")
                    .arg(keys::BLACKLIST_VERSION)
                    .ignore()
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(changed == 1)
    }

    pub async fn blacklist_contains(&self, kind: BlacklistKind, value: &str) -> Result<bool, StoreError> {
        let value = value.to_owned();
        self.bounded(
            |mut c| async move { redis::cmd("SISMEMBER").arg(kind.key()).arg(&value).query_async(&mut c).await },
        )
        .await
    }

    /// One page of a blacklist: `(next cursor or None, entries)`.
    pub async fn blacklist_page(
        &self,
        kind: BlacklistKind,
        cursor: u64,
        limit: usize,
    ) -> Result<(Option<u64>, Vec<String>), StoreError> {
        let (next, items): (u64, Vec<String>) = self
            .bounded(|mut c| async move {
                redis::cmd("SSCAN").arg(kind.key()).arg(cursor).arg("COUNT").arg(limit).query_async(&mut c).await
            })
            .await?;
        Ok(((next != 0).then_some(next), items))
    }

    /// The whole blacklist with its version, for the in-memory copy.
    pub async fn blacklist_snapshot(&self) -> Result<(i64, Vec<String>, Vec<String>), StoreError> {
        self.bounded(|mut c| async move {
            let (version, users, ips): (Option<i64>, Vec<String>, Vec<String>) = redis::pipe()
                .cmd("GET")
                .arg(keys::BLACKLIST_VERSION)
                .cmd("SMEMBERS")
                .arg(keys::BLACKLIST_USERS)
                .cmd("SMEMBERS")
                .arg(keys::BLACKLIST_IPS)
                .query_async(&mut c)
                .await?;
            Ok((version.unwrap_or(0), users, ips))
        })
        .await
    }

    pub async fn blacklist_version(&self) -> Result<i64, StoreError> {
        self.bounded(|mut c| async move {
            let v: Option<i64> = redis::cmd("GET").arg(keys::BLACKLIST_VERSION).query_async(&mut c).await?;
            Ok(v.unwrap_or(0))
        })
        .await
    }
}
