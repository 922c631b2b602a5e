//! MySQL read/write split (the seed's 读写分离): reads that may be a moment
//! old go to a read replica, everything else to the primary.
//!
//! Which reads: order lists (the admin's and a buyer's own), the order
//! counts of the dashboard and the edge-rules history. A buyer's single
//! order, the worker's and sweeper's reads, the checklist ticks and the
//! reconciliation's totals stay on the primary: they must see what was just
//! written (reconciliation against a lagging replica would report drift that
//! is not there).
//!
//! How far behind the replica is comes from a heartbeat row: the backends
//! stamp `db_heartbeat` on the primary every half second and read it back on
//! the replica. While the replica is further behind than allowed, or does not
//! answer, reads fall back to the primary; a read that fails on the replica
//! is repeated on the primary at once. So a lagging or dead replica costs the
//! primary some load, never a buyer an error.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::time::Duration;

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

use super::pool::{Db, Dialect, Replica, redact};
use crate::clock::now_ms;

/// How often the heartbeat is stamped and read back.
const BEAT: Duration = Duration::from_millis(500);
/// Metric: how far the replica is behind (ms), or -1 while it does not answer.
pub const LAG_GAUGE: &str = "seckill_db_replica_lag_ms";
/// `lag_ms` before the first reading, or while the replica does not answer.
const UNKNOWN: i64 = Replica::UNKNOWN;

/// The replica as the checklist shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaLag {
    /// How far behind it is, `None` while it does not answer.
    pub lag_ms: Option<i64>,
    pub max_lag_ms: i64,
}

impl ReplicaLag {
    /// Whether reads go to it now.
    pub fn serving(&self) -> bool {
        self.lag_ms.is_some_and(|lag| lag <= self.max_lag_ms)
    }
}

impl Db {
    /// Sends the reads that may be a moment old to the replica at `url`
    /// (MySQL/MariaDB only) while it is at most `max_lag_ms` behind. Connects
    /// lazily: a replica that is down at start-up is fallen back from.
    pub fn with_replica(mut self, url: &str, max_lag_ms: u64) -> anyhow::Result<Self> {
        if self.dialect() != Dialect::MySql || !(url.starts_with("mysql://") || url.starts_with("mariadb://")) {
            anyhow::bail!(
                "SECKILL_DATABASE_REPLICA_URL needs a mysql:// primary and a mysql:// replica, got {}",
                redact(url)
            );
        }
        let url = url.replacen("mariadb://", "mysql://", 1);
        let pool = AnyPoolOptions::new()
            .max_connections(self.pool_use().max)
            .acquire_timeout(Duration::from_secs(1))
            .connect_lazy(&url)
            .map_err(|e| anyhow::anyhow!("SECKILL_DATABASE_REPLICA_URL {}: {e}", redact(&url)))?;
        self.replica = Some(Arc::new(Replica { pool, lag_ms: AtomicI64::new(UNKNOWN), max_lag_ms: max_lag_ms as i64 }));
        Ok(self)
    }

    /// The replica's lag, if there is a replica.
    pub fn replica_lag(&self) -> Option<ReplicaLag> {
        self.replica.as_ref().map(|r| {
            let lag = r.lag_ms.load(Relaxed);
            ReplicaLag { lag_ms: (lag != UNKNOWN).then_some(lag), max_lag_ms: r.max_lag_ms }
        })
    }

    /// Runs a read that may be a moment old: on the replica while it is
    /// close enough, else (or if it fails there) on the primary.
    pub(super) async fn read_replica<T, F, Fut>(&self, read: F) -> Result<T, sqlx::Error>
    where
        F: Fn(AnyPool) -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        if let Some(replica) = self.replica.as_ref().filter(|r| r.lag_ms.load(Relaxed) <= r.max_lag_ms)
            && replica.lag_ms.load(Relaxed) != UNKNOWN
        {
            match read(replica.pool.clone()).await {
                Ok(value) => return Ok(value),
                Err(e) => {
                    tracing::warn!(error = %e, "read replica failed; reading from the primary until it answers again");
                    replica.lag_ms.store(UNKNOWN, Relaxed);
                }
            }
        }
        self.guarded(read(self.pool().clone())).await
    }

    /// Stamps the heartbeat on the primary and reads it on the replica every
    /// half second, publishing the lag; nothing to do without a replica.
    pub fn spawn_replica_watch(&self) -> Option<tokio::task::JoinHandle<()>> {
        let replica = self.replica.clone()?;
        let db = self.clone();
        Some(tokio::spawn(async move {
            let mut every = tokio::time::interval(BEAT);
            loop {
                every.tick().await;
                if let Err(e) = db.stamp_heartbeat().await {
                    tracing::debug!(error = %e, "stamping the replica heartbeat on the primary failed");
                }
                let seen: Result<i64, sqlx::Error> =
                    sqlx::query_scalar("SELECT at_ms FROM db_heartbeat WHERE id = 1").fetch_one(&replica.pool).await;
                let lag = match seen {
                    Ok(at_ms) => (now_ms() - at_ms).max(0),
                    Err(e) => {
                        tracing::debug!(error = %e, "reading the heartbeat on the replica failed");
                        UNKNOWN
                    }
                };
                let was = replica.lag_ms.swap(lag, Relaxed);
                metrics::gauge!(LAG_GAUGE).set(lag as f64);
                let serving = |lag: i64| lag != UNKNOWN && lag <= replica.max_lag_ms;
                if serving(was) != serving(lag) {
                    if serving(lag) {
                        tracing::info!(lag_ms = lag, "read replica caught up: reads go to it again");
                    } else {
                        tracing::warn!(
                            lag_ms = lag,
                            max_lag_ms = replica.max_lag_ms,
                            "read replica behind or down: reads go to the primary"
                        );
                    }
                }
            }
        }))
    }

    async fn stamp_heartbeat(&self) -> Result<(), sqlx::Error> {
        self.guarded(async {
            sqlx::query("UPDATE db_heartbeat SET at_ms = ? WHERE id = 1")
                .bind(now_ms())
                .execute(self.pool())
                .await
                .map(drop)
        })
        .await
    }
}
