//! The handle on Redis: one server, a Cluster, or the master Sentinel names,
//! behind one connection type; every call bounded by the store's timeout;
//! and the few plain commands (INFO, CONFIG GET, locks, hashes) the other
//! parts need.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, ErrorKind, Pipeline, RedisFuture, Script, ServerErrorKind, Value};

use super::reconnecting::{ClusterConn, ClusterNodes, Reconnecting, SentinelConn, SentinelMaster};
use super::redis_url::{BadRedisUrl, RedisTarget};
use crate::breaker::{Breaker, BreakerOpen, BreakerSettings};

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
    #[error("{acked} of {wanted} redis replicas confirmed the write within {timeout_ms} ms")]
    NotReplicated { wanted: u32, acked: i64, timeout_ms: u64 },
    #[error(transparent)]
    BreakerOpen(#[from] BreakerOpen),
}

impl From<BadRedisUrl> for StoreError {
    fn from(e: BadRedisUrl) -> Self {
        Self::Url(e.0)
    }
}

impl StoreError {
    /// Whether Redis said the stream or its consumer group does not exist.
    pub fn is_nogroup(&self) -> bool {
        matches!(self, Self::Redis(r) if r.code() == Some("NOGROUP"))
    }

    /// Whether Redis answered that it is changing masters or cannot take the
    /// write yet (READONLY, MASTERDOWN, LOADING, TRYAGAIN, CLUSTERDOWN,
    /// NOREPLICAS): the call is worth repeating shortly, nothing is broken.
    pub fn is_failover(&self) -> bool {
        match self {
            Self::Redis(e) => {
                matches!(
                    e.code(),
                    Some("READONLY" | "MASTERDOWN" | "LOADING" | "TRYAGAIN" | "CLUSTERDOWN" | "NOREPLICAS")
                )
            }
            Self::NotReplicated { .. } => true,
            _ => false,
        }
    }
}

/// One Redis server, a Redis Cluster, or the master the sentinels name; all
/// reconnect by themselves, and the last two follow a failover.
#[derive(Clone)]
pub enum RedisConn {
    Single(ConnectionManager),
    Cluster(ClusterConn),
    Sentinel(SentinelConn),
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
            Self::Sentinel(c) => c.req_packed_command(cmd),
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
            Self::Cluster(c) => Box::pin(async move {
                match c.req_packed_commands(pipeline, offset, count).await {
                    // The keys outside an activity (the blacklist's, the admin's, the
                    // edge's) live in slots of their own, and a Cluster pipeline must
                    // stay in one slot. A plain pipeline promises no atomicity, only
                    // order: the same commands one after another do what it did.
                    // (The client refuses before sending anything.)
                    Err(e)
                        if e.kind() == ErrorKind::Server(ServerErrorKind::CrossSlot) && !pipeline.is_transaction() =>
                    {
                        let mut replies = Vec::with_capacity(pipeline.len());
                        for cmd in pipeline.cmd_iter() {
                            replies.push(c.req_packed_command(cmd).await?);
                        }
                        Ok(replies)
                    }
                    other => other,
                }
            }),
            Self::Sentinel(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
            Self::Sentinel(c) => c.get_db(),
        }
    }
}

/// How many replicas must hold a purchase before its buyer hears 202
/// (`WAIT`), and how long to wait for them before answering `unavailable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicasAck {
    pub replicas: u32,
    pub timeout_ms: u64,
}

/// Handle on Redis: cheap to clone, one multiplexed connection underneath.
#[derive(Clone)]
pub struct Store {
    conn: RedisConn,
    timeout: Duration,
    replicas_ack: Option<ReplicasAck>,
    breaker: std::sync::Arc<Breaker>,
    pub(super) scripts: std::sync::Arc<Scripts>,
}

impl Store {
    /// Connects to `url` (see [`RedisTarget`]), lazily: the backend starts
    /// (and reports not-ready) while Redis is still down.
    pub async fn connect(url: &str, timeout: Duration) -> Result<Self, StoreError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = match RedisTarget::parse(url)? {
            RedisTarget::Cluster(nodes) => {
                let client = redis::cluster::ClusterClientBuilder::new(nodes)
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .build()?;
                RedisConn::Cluster(Reconnecting::new(ClusterNodes { client }, 0))
            }
            RedisTarget::Single(url) => {
                RedisConn::Single(ConnectionManager::new_lazy_with_config(redis::Client::open(url)?, config)?)
            }
            RedisTarget::Sentinel(target) => {
                RedisConn::Sentinel(Reconnecting::new(SentinelMaster::new(&target, config)?, target.db))
            }
        };
        Ok(Self {
            conn,
            timeout,
            replicas_ack: None,
            breaker: std::sync::Arc::new(Breaker::new("redis", BreakerSettings::default())),
            scripts: std::sync::Arc::new(Scripts::new()),
        })
    }

    /// Opens the circuit breaker as `settings` say (see [`Breaker`]).
    pub fn with_breaker(mut self, settings: BreakerSettings) -> Self {
        self.breaker = std::sync::Arc::new(Breaker::new("redis", settings));
        self
    }

    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// Makes every acknowledged purchase wait until `ack.replicas` replicas
    /// have it ([`ReplicasAck`]).
    pub fn with_replicas_ack(mut self, ack: Option<ReplicasAck>) -> Self {
        self.replicas_ack = ack.filter(|ack| ack.replicas > 0);
        self
    }

    /// How long one Redis interaction may take before it fails.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs one Redis interaction under the store's timeout, unless the
    /// circuit breaker is open; tells the breaker how it went.
    pub(crate) async fn bounded<T, F>(&self, work: impl FnOnce(RedisConn) -> F) -> Result<T, StoreError>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        self.breaker.admit()?;
        match tokio::time::timeout(self.timeout, work(self.conn.clone())).await {
            Ok(Ok(value)) => {
                self.breaker.succeeded();
                Ok(value)
            }
            Ok(Err(e)) => {
                // Redis answering with an error is Redis up; only a connection that
                // failed or broke counts against it.
                if e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped() || e.is_timeout() {
                    self.breaker.failed();
                } else {
                    self.breaker.succeeded();
                }
                Err(e.into())
            }
            Err(_) => {
                self.breaker.failed();
                match &self.conn {
                    RedisConn::Sentinel(sentinel) => sentinel.timed_out(),
                    RedisConn::Cluster(cluster) => cluster.timed_out(),
                    RedisConn::Single(_) => {}
                }
                Err(StoreError::Timeout(self.timeout))
            }
        }
    }

    /// Runs the write `cmd` and, when purchases must reach replicas, `WAIT`
    /// behind it in one pipeline: on the same connection, so it waits for
    /// this write (Redis tracks the offset per client), and in a Cluster on
    /// the node that owns the write's slot. Fewer replicas than asked within
    /// the wait is [`StoreError::NotReplicated`]: the write happened on the
    /// master, but a failover now could lose it, so nobody is told it stands.
    /// `script`: the script `cmd` calls by hash, loaded if Redis lacks it
    /// (a promoted replica has no script cache).
    pub(super) async fn acknowledged<T>(&self, cmd: Cmd, script: Option<&Script>) -> Result<T, StoreError>
    where
        T: redis::FromRedisValue + Send + 'static,
    {
        let ack = self.replicas_ack;
        let script = script.cloned();
        let (value, acked): (T, Option<i64>) = self
            .bounded(|mut c| async move {
                let mut loaded = false;
                loop {
                    let result = match ack {
                        None => cmd.query_async::<T>(&mut c).await.map(|v| (v, None)),
                        Some(ack) => redis::pipe()
                            .add_command(cmd.clone())
                            .cmd("WAIT")
                            .arg(ack.replicas)
                            .arg(ack.timeout_ms)
                            .query_async::<(T, i64)>(&mut c)
                            .await
                            .map(|(v, n)| (v, Some(n))),
                    };
                    match (result, &script) {
                        (Err(e), Some(script))
                            if !loaded && e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) =>
                        {
                            script.load_async(&mut c).await?;
                            loaded = true;
                        }
                        (result, _) => return result,
                    }
                }
            })
            .await?;
        match (ack, acked) {
            (Some(ack), Some(acked)) if acked < i64::from(ack.replicas) => {
                metrics::counter!(crate::telemetry::REPLICAS_ACK_MISSED).increment(1);
                Err(StoreError::NotReplicated { wanted: ack.replicas, acked, timeout_ms: ack.timeout_ms })
            }
            _ => Ok(value),
        }
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

    pub async fn hdel(&self, key: &'static str, field: &str) -> Result<(), StoreError> {
        let field = field.to_owned();
        self.bounded(|mut c| async move { redis::cmd("HDEL").arg(key).arg(&field).query_async(&mut c).await }).await
    }

    pub async fn hgetall(&self, key: &'static str) -> Result<HashMap<String, String>, StoreError> {
        self.bounded(|mut c| async move { redis::cmd("HGETALL").arg(key).query_async(&mut c).await }).await
    }
}

pub(super) fn parse_int(s: &str) -> Result<i64, StoreError> {
    s.parse().map_err(|_| StoreError::Reply(format!("expected an integer, got {s:?}")))
}
