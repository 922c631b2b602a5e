//! The degraded-mode switch (`seckill:degraded`): present while an operator
//! has the edge shed everything but token and purchase, with the reason and
//! since when.

use super::client::{Store, StoreError, parse_int};
use super::keys;

impl Store {
    /// `(reason, since ms)` while degraded mode is on.
    pub async fn degraded(&self) -> Result<Option<(String, i64)>, StoreError> {
        let fields = self.hgetall(keys::DEGRADED).await?;
        match (fields.get("reason"), fields.get("since_ms")) {
            (Some(reason), Some(since)) => Ok(Some((reason.clone(), parse_int(since)?))),
            _ => Ok(None),
        }
    }

    /// Switches degraded mode on with `reason` at `since_ms` (kept if it is on already).
    pub async fn degrade(&self, reason: &str, since_ms: i64) -> Result<(), StoreError> {
        let reason = reason.to_owned();
        self.bounded(|mut c| async move {
            redis::pipe()
                .cmd("HSET")
                .arg(keys::DEGRADED)
                .arg("reason")
                .arg(&reason)
                .ignore()
                .cmd("HSETNX")
                .arg(keys::DEGRADED)
                .arg("since_ms")
                .arg(since_ms)
                .ignore()
                .query_async(&mut c)
                .await
        })
        .await
    }

    pub async fn end_degraded(&self) -> Result<(), StoreError> {
        self.bounded(|mut c| async move { redis::cmd("DEL").arg(keys::DEGRADED).query_async(&mut c).await }).await
    }
}
