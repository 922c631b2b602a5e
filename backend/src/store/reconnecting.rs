//! A connection to replicated Redis that is thrown away and made anew when
//! a call says the topology may have changed, for Sentinel and for Cluster.
//!
//! The redis crate's connections outlive a failover badly. Sentinel's hands
//! back a connection bound to the master it found, for good: after a
//! failover it keeps calling a dead server, or a demoted one that answers
//! READONLY. The Cluster client is meant to refresh its slots by itself, but
//! under load with a master killed (redis 1.8) it can stay wedged, every
//! call timing out, long after the cluster has promoted a replica.
//!
//! So both are held here the same way: one connection, shared, forgotten
//! when a call fails in a way that says the topology may have moved (the
//! connection broke, the server refused it, answered READONLY, MASTERDOWN,
//! CLUSTERDOWN or TRYAGAIN, or did not answer in time), and made again —
//! asking the sentinels, or a cluster node for the slots — by the next
//! call. A connection is kept at least `MIN_AGE`, so that a storm of failing
//! calls makes one new connection, not thousands. Calls during a switch fail
//! fast with their error, which the API answers as `unavailable`; none waits
//! for the failover.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{Sentinel, SentinelNodeConnectionInfo};
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, ServerErrorKind, Value};

use super::redis_url::SentinelTarget;

/// How long a new connection is given before an error may replace it.
const MIN_AGE: Duration = Duration::from_millis(500);

/// Makes a connection to the topology as it is now.
pub trait Connect: Send + Sync + 'static {
    type Conn: ConnectionLike + Clone + Send + Sync + 'static;
    fn connect(&self) -> Pin<Box<dyn Future<Output = RedisResult<Self::Conn>> + Send + '_>>;
    /// What the logs call it.
    fn name(&self) -> &str;
}

/// Cheap to clone; every clone shares the one current connection.
pub struct Reconnecting<C: Connect> {
    shared: Arc<Shared<C>>,
    db: i64,
}

impl<C: Connect> Clone for Reconnecting<C> {
    fn clone(&self) -> Self {
        Self { shared: self.shared.clone(), db: self.db }
    }
}

struct Shared<C: Connect> {
    connector: C,
    /// Held while connecting: one connection at a time is made.
    connecting: tokio::sync::Mutex<u64>,
    current: RwLock<Option<Current<C::Conn>>>,
}

#[derive(Clone)]
struct Current<T> {
    conn: T,
    /// Which connection this is, so that a late error on an old one does
    /// not make us forget a newer one.
    generation: u64,
    made_at: Instant,
}

impl<C: Connect> Reconnecting<C> {
    /// Nothing is contacted until the first call, so the backend starts
    /// (and reports not-ready) while Redis is down.
    pub fn new(connector: C, db: i64) -> Self {
        let shared = Shared { connector, connecting: tokio::sync::Mutex::new(0), current: RwLock::new(None) };
        Self { shared: Arc::new(shared), db }
    }

    fn current(&self) -> Option<Current<C::Conn>> {
        self.shared.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    async fn connection(&self) -> RedisResult<Current<C::Conn>> {
        if let Some(current) = self.current() {
            return Ok(current);
        }
        let mut generations = self.shared.connecting.lock().await;
        // Whoever waited behind a connect takes what it made.
        if let Some(current) = self.current() {
            return Ok(current);
        }
        let conn = self.shared.connector.connect().await?;
        *generations += 1;
        let current = Current { conn, generation: *generations, made_at: Instant::now() };
        *self.shared.current.write().unwrap_or_else(|e| e.into_inner()) = Some(current.clone());
        tracing::info!(redis = self.shared.connector.name(), generation = *generations, "connected to redis");
        Ok(current)
    }

    /// Forgets connection `generation` if it is still the current one and
    /// has had its time.
    fn forget(&self, generation: u64) {
        let mut current = self.shared.current.write().unwrap_or_else(|e| e.into_inner());
        if current.as_ref().is_some_and(|c| c.generation == generation && c.made_at.elapsed() >= MIN_AGE) {
            *current = None;
            tracing::warn!(redis = self.shared.connector.name(), "redis topology may have changed; reconnecting");
        }
    }

    /// A call did not answer in time: a master may be paused or cut off
    /// while another is promoted, so a new connection is made.
    pub fn timed_out(&self) {
        if let Some(current) = self.current() {
            self.forget(current.generation);
        }
    }

    /// Runs one call, forgetting the connection if the reply says the
    /// topology may have moved.
    async fn call<T>(&self, run: impl AsyncFnOnce(&mut C::Conn) -> RedisResult<T>) -> RedisResult<T> {
        let mut current = self.connection().await?;
        let result = run(&mut current.conn).await;
        if let Err(err) = &result
            && topology_may_have_moved(err)
        {
            self.forget(current.generation);
        }
        result
    }
}

fn topology_may_have_moved(err: &RedisError) -> bool {
    err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_timeout()
        || matches!(
            err.kind(),
            ErrorKind::Server(
                ServerErrorKind::ReadOnly
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::BusyLoading
                    | ServerErrorKind::ClusterDown
                    | ServerErrorKind::TryAgain
            )
        )
}

impl<C: Connect> ConnectionLike for Reconnecting<C> {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move { self.call(async |conn| conn.req_packed_command(cmd).await).await })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move { self.call(async |conn| conn.req_packed_commands(pipeline, offset, count).await).await })
    }

    fn get_db(&self) -> i64 {
        self.db
    }
}

/// The master the sentinels name: asked of them (the redis crate checks the
/// server's own `ROLE` too), then one reconnecting connection to it.
pub struct SentinelMaster {
    sentinels: tokio::sync::Mutex<Sentinel>,
    master_name: String,
    node: SentinelNodeConnectionInfo,
    config: ConnectionManagerConfig,
}

impl SentinelMaster {
    pub fn new(target: &SentinelTarget, config: ConnectionManagerConfig) -> RedisResult<Self> {
        let sentinels: Vec<(&str, u16)> = target.sentinels.iter().map(|(h, p)| (h.as_str(), *p)).collect();
        let mut redis = redis::RedisConnectionInfo::default().set_db(target.db);
        if let Some(password) = &target.password {
            redis = redis.set_password(password);
        }
        Ok(Self {
            sentinels: tokio::sync::Mutex::new(Sentinel::build(sentinels)?),
            master_name: target.master_name.clone(),
            node: SentinelNodeConnectionInfo::default().set_redis_connection_info(redis),
            config,
        })
    }
}

impl Connect for SentinelMaster {
    type Conn = ConnectionManager;

    fn connect(&self) -> Pin<Box<dyn Future<Output = RedisResult<ConnectionManager>> + Send + '_>> {
        Box::pin(async move {
            let client = self.sentinels.lock().await.async_master_for(&self.master_name, Some(&self.node)).await?;
            let address = client.get_connection_info().addr().to_string();
            let conn = ConnectionManager::new_with_config(client, self.config.clone()).await?;
            tracing::info!(master = %address, name = %self.master_name, "redis master found through sentinel");
            Ok(conn)
        })
    }

    fn name(&self) -> &str {
        &self.master_name
    }
}

/// A Redis Cluster, its slots learnt anew with each connection.
pub struct ClusterNodes {
    pub client: ClusterClient,
}

impl Connect for ClusterNodes {
    type Conn = ClusterConnection;

    fn connect(&self) -> Pin<Box<dyn Future<Output = RedisResult<ClusterConnection>> + Send + '_>> {
        Box::pin(self.client.get_async_connection())
    }

    fn name(&self) -> &str {
        "cluster"
    }
}

impl Reconnecting<ClusterNodes> {
    /// A command sent where `routing` says (e.g. to every master), on the current connection.
    pub async fn route_command(&self, cmd: Cmd, routing: redis::cluster_routing::RoutingInfo) -> RedisResult<Value> {
        self.call(async |conn| conn.route_command(cmd, routing).await).await
    }
}

pub type SentinelConn = Reconnecting<SentinelMaster>;
pub type ClusterConn = Reconnecting<ClusterNodes>;
