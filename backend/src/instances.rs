//! Which API backends are alive: each one writes its name and the time into
//! one Redis hash every few seconds, so that the checklist can tell an
//! operator whether the edge has more than one backend to balance across.
//! On the same beat each publishes what it sees of Redis's replicas, for the
//! alert on a master left without one.

use std::time::Duration;

use crate::clock::now_ms;
use crate::store::{Store, StoreError, keys};

/// How often a backend says it is alive.
const BEAT: Duration = Duration::from_secs(5);
/// A backend not heard from in this long is gone (three beats missed).
pub const ALIVE_MS: i64 = 15_000;
/// Entries older than this are removed, so that restarts do not pile up.
const FORGET_MS: i64 = 3_600_000;

/// This process's name among the backends: host, listening port and pid.
pub fn name(listen: std::net::SocketAddr) -> String {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    format!("{}:{} pid {}", host.trim(), listen.port(), std::process::id())
}

/// Metric: replicas connected to each Redis master (by node).
pub const REDIS_REPLICAS: &str = "seckill_redis_connected_replicas";

/// Says `name` is alive now, forgets backends long gone, and publishes the
/// masters' replica counts.
pub async fn beat(store: &Store, name: &str) -> Result<(), StoreError> {
    for master in store.info("replication").await? {
        let replicas: f64 = master.value.get("connected_slaves").and_then(|v| v.parse().ok()).unwrap_or(0.0);
        metrics::gauge!(REDIS_REPLICAS, "node" => master.node).set(replicas);
    }
    store.hset(keys::BACKENDS, name, &now_ms().to_string()).await?;
    for (other, at) in store.hgetall(keys::BACKENDS).await? {
        if at.parse::<i64>().is_ok_and(|at| now_ms() - at > FORGET_MS) {
            store.hdel(keys::BACKENDS, &other).await?;
        }
    }
    Ok(())
}

/// Beats now, then every few seconds until aborted; a failed beat is
/// retried at the next one.
pub async fn start_heartbeat(store: Store, name: String) -> tokio::task::JoinHandle<()> {
    if let Err(e) = beat(&store, &name).await {
        tracing::warn!(error = %e, "backend heartbeat failed; will retry");
    }
    tokio::spawn(async move {
        let mut every = tokio::time::interval_at(tokio::time::Instant::now() + BEAT, BEAT);
        loop {
            every.tick().await;
            if let Err(e) = beat(&store, &name).await {
                tracing::debug!(error = %e, "backend heartbeat failed");
            }
        }
    })
}

/// The backends heard from in the last [`ALIVE_MS`], sorted.
pub async fn alive(store: &Store) -> Result<Vec<String>, StoreError> {
    let now = now_ms();
    let mut names: Vec<String> = store
        .hgetall(keys::BACKENDS)
        .await?
        .into_iter()
        .filter(|(_, at)| at.parse::<i64>().is_ok_and(|at| now - at < ALIVE_MS))
        .map(|(name, _)| name)
        .collect();
    names.sort();
    Ok(names)
}
