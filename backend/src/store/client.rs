//! The handle on Redis: one server or a Cluster behind one connection type,
//! every call bounded by the store's timeout, and the few plain commands
//! (INFO, CONFIG GET, locks, hashes) the other parts need.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Script, Value};

/// The purchase script and its companions, hashed once; `invoke_async` sends
/// EVALSHA and falls back to loading the script when Redis answers NOSCRIPT.
pub struct Scripts {
    pub token: Script,
    pub purchase: Script,
    pub release: Script,
    pub restock: Script,
    pub delete_activity: Script,
    pub publish_rules: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            token: Script::new(include_str!("../../../lua/token.lua")),
            purchase: Script::new(include_str!("../../../lua/purchase.lua")),
            release: Script::new(include_str!("../../../lua/release.lua")),
            restock: Script::new(include_str!("../../../lua/restock.lua")),
            delete_activity: Script::new(include_str!("../../../lua/delete_activity.lua")),
            publish_rules: Script::new(include_str!("../../../lua/publish_rules.lua")),
        }
    }
}

/// What went wrong talking to Redis (as opposed to what Redis decided).
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("unexpected reply from redis: {0}")]
    Reply(String),
    #[error("unsupported redis url: {0}")]
    Url(String),
}

/// One Redis server, or a Redis Cluster; both reconnect by themselves.
#[derive(Clone)]
pub enum RedisConn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// Handle on Redis: cheap to clone, one multiplexed connection underneath.
#[derive(Clone)]
pub struct Store {
    conn: RedisConn,
    timeout: Duration,
    pub(super) scripts: std::sync::Arc<Scripts>,
}

impl Store {
    /// Connects to `url`: `redis://…` (one server) or a comma-separated list of
    /// cluster node URLs. A single server is connected lazily, so the backend
    /// starts (and reports not-ready) while Redis is still down.
    pub async fn connect(url: &str, timeout: Duration) -> Result<Self, StoreError> {
        let conn = if url.contains(',') {
            let nodes: Vec<&str> = url.split(',').map(str::trim).collect();
            let client = redis::cluster::ClusterClientBuilder::new(nodes)
                .connection_timeout(timeout)
                .response_timeout(timeout)
                .build()?;
            RedisConn::Cluster(client.get_async_connection().await?)
        } else if url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("unix://") {
            let client = redis::Client::open(url)?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout))
                .set_number_of_retries(2)
                .set_max_delay(Duration::from_millis(500));
            RedisConn::Single(ConnectionManager::new_lazy_with_config(client, config)?)
        } else {
            return Err(StoreError::Url(format!(
                "{url:?}: expected redis://host:port[/db], rediss://… or a comma-separated list of cluster \
                 node URLs (set SECKILL_REDIS_URL)"
            )));
        };
        Ok(Self { conn, timeout, scripts: std::sync::Arc::new(Scripts::new()) })
    }

    /// How long one Redis interaction may take before it fails.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs one Redis interaction under the store's timeout.
    pub(crate) async fn bounded<T, F>(&self, work: impl FnOnce(RedisConn) -> F) -> Result<T, StoreError>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        match tokio::time::timeout(self.timeout, work(self.conn.clone())).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(StoreError::Timeout(self.timeout)),
        }
    }

    /// `INFO <section>` as key/value pairs.
    pub async fn info(&self, section: &'static str) -> Result<HashMap<String, String>, StoreError> {
        let text: String =
            self.bounded(|mut c| async move { redis::cmd("INFO").arg(section).query_async(&mut c).await }).await?;
        Ok(text
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect())
    }

    /// One value of `CONFIG GET`.
    pub async fn config_get(&self, name: &'static str) -> Result<String, StoreError> {
        let pair: Vec<String> = self
            .bounded(|mut c| async move { redis::cmd("CONFIG").arg("GET").arg(name).query_async(&mut c).await })
            .await?;
        pair.get(1).cloned().ok_or_else(|| StoreError::Reply(format!("CONFIG GET {name}: {pair:?}")))
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.bounded(|mut c| async move { redis::cmd("PING").query_async::<String>(&mut c).await.map(drop) }).await
    }

    /// Takes a short lock (`SET NX PX`); false if someone holds it.
    pub async fn try_lock(&self, key: &str, ttl_ms: u64) -> Result<bool, StoreError> {
        let key = key.to_owned();
        self.bounded(|mut c| async move {
            let set: Option<String> =
                redis::cmd("SET").arg(&key).arg(1).arg("NX").arg("PX").arg(ttl_ms).query_async(&mut c).await?;
            Ok(set.is_some())
        })
        .await
    }

    pub async fn unlock(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.bounded(|mut c| async move { redis::cmd("DEL").arg(&key).query_async::<()>(&mut c).await }).await
    }

    pub async fn hset(&self, key: &'static str, field: &str, value: &str) -> Result<(), StoreError> {
        let (field, value) = (field.to_owned(), value.to_owned());
        self.bounded(
            |mut c| async move { redis::cmd("HSET").arg(key).arg(&field).arg(&value).query_async(&mut c).await },
        )
        .await
    }

    pub async fn hgetall(&self, key: &'static str) -> Result<HashMap<String, String>, StoreError> {
        self.bounded(|mut c| async move { redis::cmd("HGETALL").arg(key).query_async(&mut c).await }).await
    }
}

pub(super) fn parse_int(s: &str) -> Result<i64, StoreError> {
    s.parse().map_err(|_| StoreError::Reply(format!("expected an integer, got {s:?}")))
}
