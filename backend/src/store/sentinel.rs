//! A connection to whichever server the sentinels name master right now.
//!
//! The redis crate finds the master through Sentinel (asking the sentinels,
//! then checking the server's own `ROLE`) but hands back a connection bound
//! to that address for good; after a failover it would keep calling a dead
//! server, or a demoted one that answers READONLY. So this keeps one
//! reconnecting connection to the master it last found, and forgets it when a
//! call says the master may have changed (the connection broke, the server
//! refused, answered READONLY or MASTERDOWN, or did not answer in time); the
//! next call asks the sentinels again. Calls during the switch fail fast
//! with the error, which the API answers as `unavailable`; none waits for
//! the failover.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::{Sentinel, SentinelNodeConnectionInfo};
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, ServerErrorKind, Value};

use super::redis_url::SentinelTarget;

/// Cheap to clone; every clone follows the same master.
#[derive(Clone)]
pub struct SentinelConn {
    shared: Arc<Shared>,
}

struct Shared {
    sentinels: tokio::sync::Mutex<Sentinel>,
    master_name: String,
    node: SentinelNodeConnectionInfo,
    config: ConnectionManagerConfig,
    db: i64,
    master: RwLock<Option<Master>>,
    generations: AtomicU64,
}

#[derive(Clone)]
struct Master {
    conn: ConnectionManager,
    /// Which finding this is, so that a late error about an old master does
    /// not make us forget a new one.
    generation: u64,
}

impl SentinelConn {
    /// Prepares the lookup; nothing is contacted until the first call, so
    /// the backend starts (and reports not-ready) while Redis is down.
    pub fn new(target: &SentinelTarget, config: ConnectionManagerConfig) -> RedisResult<Self> {
        let sentinels: Vec<(&str, u16)> = target.sentinels.iter().map(|(h, p)| (h.as_str(), *p)).collect();
        let mut redis = redis::RedisConnectionInfo::default().set_db(target.db);
        if let Some(password) = &target.password {
            redis = redis.set_password(password);
        }
        Ok(Self {
            shared: Arc::new(Shared {
                sentinels: tokio::sync::Mutex::new(Sentinel::build(sentinels)?),
                master_name: target.master_name.clone(),
                node: SentinelNodeConnectionInfo::default().set_redis_connection_info(redis),
                config,
                db: target.db,
                master: RwLock::new(None),
                generations: AtomicU64::new(0),
            }),
        })
    }

    /// The current master's connection, found through the sentinels if
    /// there is none.
    async fn master(&self) -> RedisResult<Master> {
        if let Some(master) = self.shared.master.read().unwrap_or_else(|e| e.into_inner()).clone() {
            return Ok(master);
        }
        // One lookup at a time; whoever waited behind it takes its finding.
        let mut sentinels = self.shared.sentinels.lock().await;
        if let Some(master) = self.shared.master.read().unwrap_or_else(|e| e.into_inner()).clone() {
            return Ok(master);
        }
        let client = sentinels.async_master_for(&self.shared.master_name, Some(&self.shared.node)).await?;
        let address = client.get_connection_info().addr().to_string();
        let conn = ConnectionManager::new_with_config(client, self.shared.config.clone()).await?;
        let generation = self.shared.generations.fetch_add(1, Ordering::Relaxed) + 1;
        let found = Master { conn, generation };
        *self.shared.master.write().unwrap_or_else(|e| e.into_inner()) = Some(found.clone());
        tracing::info!(master = %address, name = %self.shared.master_name, "redis master found through sentinel");
        Ok(found)
    }

    /// Forgets `generation`'s master, if it is still the current one.
    fn forget(&self, generation: u64) {
        let mut master = self.shared.master.write().unwrap_or_else(|e| e.into_inner());
        if master.as_ref().is_some_and(|m| m.generation == generation) {
            *master = None;
            tracing::warn!(name = %self.shared.master_name, "redis master lost; asking the sentinels again");
        }
    }

    /// A call did not answer in time: the master may be paused or cut off
    /// while the sentinels promote another, so the next call asks them.
    pub fn timed_out(&self) {
        let generation = self.shared.master.read().unwrap_or_else(|e| e.into_inner()).as_ref().map(|m| m.generation);
        if let Some(generation) = generation {
            self.forget(generation);
        }
    }

    /// Runs one call on the master, forgetting it if the reply says it may
    /// no longer be the master.
    async fn call<T>(&self, run: impl AsyncFnOnce(&mut ConnectionManager) -> RedisResult<T>) -> RedisResult<T> {
        let mut master = self.master().await?;
        let result = run(&mut master.conn).await;
        if let Err(err) = &result
            && master_may_have_changed(err)
        {
            self.forget(master.generation);
        }
        result
    }
}

fn master_may_have_changed(err: &RedisError) -> bool {
    err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_timeout()
        || matches!(
            err.kind(),
            ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown | ServerErrorKind::BusyLoading)
        )
}

impl ConnectionLike for SentinelConn {
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
        self.shared.db
    }
}
