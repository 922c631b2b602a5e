//! The blacklist, held in memory and checked before any script runs.
//!
//! Checking two Redis sets on every purchase would add a round trip to the hot
//! path; instead each backend keeps a snapshot and reloads it when the
//! blacklist's version key moves (polled a few times a second, and at once
//! after a change made through this process). If Redis is unreachable the last
//! snapshot stays in force.
//!
//! Changes go through [`add`] and [`remove`], which also keep each entry's
//! "reached the edge" time honest (`blacklist_reach`).

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ipnet::IpNet;

use crate::blacklist_reach;
use crate::store::{BlacklistKind, Store, StoreError};

/// How often other processes' blacklist changes are picked up.
pub const POLL_PERIOD: Duration = Duration::from_millis(250);

#[derive(Debug, Default)]
struct Snapshot {
    version: i64,
    users: HashSet<String>,
    nets: Vec<IpNet>,
}

/// The in-memory blacklist.
#[derive(Debug, Clone, Default)]
pub struct Blacklist {
    current: Arc<RwLock<Arc<Snapshot>>>,
}

/// Parses a blacklist IP entry: an address (stored as itself) or a CIDR range.
pub fn parse_ip_entry(entry: &str) -> Option<IpNet> {
    entry.parse::<IpNet>().ok().map(|n| n.trunc()).or_else(|| entry.parse::<IpAddr>().ok().map(IpNet::from))
}

impl Blacklist {
    fn snapshot(&self) -> Arc<Snapshot> {
        self.current.read().expect("blacklist lock poisoned").clone()
    }

    pub fn blocks_user(&self, user: &str) -> bool {
        self.snapshot().users.contains(user)
    }

    pub fn blocks_ip(&self, ip: IpAddr) -> bool {
        self.snapshot().nets.iter().any(|net| net.contains(&ip))
    }

    /// Reloads from Redis if the version moved (or unconditionally if `force`).
    pub async fn refresh(&self, store: &Store, force: bool) -> Result<(), StoreError> {
        if !force && store.blacklist_version().await? == self.snapshot().version {
            return Ok(());
        }
        let (version, users, ips) = store.blacklist_snapshot().await?;
        let nets = ips.iter().filter_map(|e| parse_ip_entry(e)).collect();
        let next = Arc::new(Snapshot { version, users: users.into_iter().collect(), nets });
        *self.current.write().expect("blacklist lock poisoned") = next;
        Ok(())
    }

    /// Keeps the snapshot fresh until the process ends.
    pub fn spawn_refresher(&self, store: Store) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(POLL_PERIOD);
            let mut failing = false;
            loop {
                tick.tick().await;
                match this.refresh(&store, false).await {
                    Ok(()) => failing = false,
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(error = %e, "blacklist refresh failed; keeping the last snapshot");
                    }
                    Err(_) => {}
                }
            }
        })
    }
}

/// Blacklists `value` (stored form). An entry that was not listed starts
/// without an edge time: one an earlier life of it left would be a lie.
pub async fn add(store: &Store, kind: BlacklistKind, value: &str) -> Result<(), StoreError> {
    if !store.blacklist_contains(kind, value).await? {
        blacklist_reach::forget(store, kind, value).await?;
    }
    store.blacklist_add(kind, value).await.map(drop)
}

/// Removes `value` from a blacklist, and its edge time; true if it was there.
pub async fn remove(store: &Store, kind: BlacklistKind, value: &str) -> Result<bool, StoreError> {
    let removed = store.blacklist_remove(kind, value).await?;
    blacklist_reach::forget(store, kind, value).await?;
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_entries_are_addresses_or_ranges() {
        assert_eq!(parse_ip_entry("10.1.2.3").unwrap().to_string(), "10.1.2.3/32");
        assert_eq!(parse_ip_entry("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse_ip_entry("::1").unwrap().to_string(), "::1/128");
        assert!(parse_ip_entry("10.1.2").is_none());
        assert!(parse_ip_entry("10.0.0.0/33").is_none());
    }
}
