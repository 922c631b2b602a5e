//! What the backend owns for the edge: its rules (versioned in the order DB,
//! so they survive restarts and keep a history) and the state it syncs
//! (`GET /internal/edge/state`).
//!
//! The state carries a content hash as its version; the edge sends it back in
//! `if-none-match` and gets `304 Not Modified` while nothing changed, so an
//! idle system costs one tiny request per sync period.
//!
//! The state is built from Redis alone, as a sale is: the rules in force are
//! mirrored into `seckill:edge:rules` when saved and republished from the DB
//! every few seconds (a publish that failed, a Redis that lost them). So an
//! order DB that is down or stuck never freezes the edge's view of which
//! activities are live.

use seckill_api::{ActivityStatus, EdgeRules, EdgeState, EdgeSync, RateRule};
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::blacklist_reach;
use crate::clock::{from_ms, now_ms};
use crate::db::Db;
use crate::error::ApiError;
use crate::store::{Store, StoreError};

/// Redis hash: edge id → `{version, rules_version, at_ms}` of its last sync.
pub const EDGE_SYNCS: &str = "seckill:edge:syncs";

/// A stored version of the rules.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRules {
    pub version: i64,
    pub rules: EdgeRules,
    pub created_at_ms: i64,
}

/// Checks rules before they are stored, naming the first thing wrong.
pub fn validate(rules: &EdgeRules) -> Result<(), String> {
    fn rate(name: &str, r: &RateRule) -> Result<(), String> {
        if !r.rate_per_sec.is_finite() || r.rate_per_sec <= 0.0 || r.rate_per_sec > 1_000_000.0 {
            return Err(format!("{name}.rate_per_sec: must be above 0 and at most 1000000"));
        }
        if r.burst > 1_000_000 {
            return Err(format!("{name}.burst: must be at most 1000000"));
        }
        Ok(())
    }
    rate("per_ip", &rules.per_ip)?;
    rate("per_user", &rules.per_user)?;
    if rules.max_in_flight_per_ip == 0 || rules.max_in_flight_total == 0 {
        return Err("max_in_flight_per_ip and max_in_flight_total: must be at least 1".into());
    }
    let mut names = std::collections::HashSet::new();
    for (i, route) in rules.routes.iter().enumerate() {
        let at = format!("routes[{i}]");
        if route.name.trim().is_empty() || !names.insert(route.name.as_str()) {
            return Err(format!("{at}.name: must be non-empty and unique"));
        }
        let whole_star_segments = route.path.split('/').all(|seg| seg == "*" || !seg.contains('*'));
        if !route.path.starts_with('/')
            || route.path.contains("//")
            || route.path.contains(['?', '#'])
            || !whole_star_segments
            || route.path.len() > 512
        {
            return Err(format!("{at}.path: must start with / (use * for one whole segment; no ? or #)"));
        }
        if let Some(m) = &route.method
            && (m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase()))
        {
            return Err(format!("{at}.method: an upper-case HTTP method such as POST"));
        }
        if let Some(r) = &route.per_ip {
            rate(&format!("{at}.per_ip"), r)?;
        }
        if let Some(r) = &route.per_user {
            rate(&format!("{at}.per_user"), r)?;
        }
    }
    Ok(())
}

impl Db {
    /// The rules in force: the newest version, or the defaults as version 0.
    pub async fn current_rules(&self) -> Result<StoredRules, sqlx::Error> {
        let row =
            sqlx::query("SELECT version, rules_json, created_at_ms FROM edge_rules ORDER BY version DESC LIMIT 1")
                .fetch_optional(self.pool())
                .await?;
        match row {
            Some(r) => stored(&r),
            None => Ok(StoredRules { version: 0, rules: EdgeRules::default(), created_at_ms: 0 }),
        }
    }

    /// Stores `rules` as the next version, unless `expected` is given and is
    /// no longer the current version (someone else saved in between).
    pub async fn save_rules(
        &self,
        rules: &EdgeRules,
        expected: Option<i64>,
    ) -> Result<Result<StoredRules, i64>, sqlx::Error> {
        let json = serde_json::to_string(rules).expect("rules serialise");
        for _ in 0..5 {
            let current = self.current_rules().await?.version;
            if expected.is_some_and(|e| e != current) {
                return Ok(Err(current));
            }
            let now = now_ms();
            let inserted = sqlx::query("INSERT INTO edge_rules (version, rules_json, created_at_ms) VALUES (?, ?, ?)")
                .bind(current + 1)
                .bind(&json)
                .bind(now)
                .execute(self.pool())
                .await;
            match inserted {
                Ok(_) => return Ok(Ok(StoredRules { version: current + 1, rules: rules.clone(), created_at_ms: now })),
                // Another writer took this version number: read again and retry.
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => continue,
                Err(e) => return Err(e),
            }
        }
        Err(sqlx::Error::Protocol("edge rules: too many concurrent saves".into()))
    }

    /// Versions older than `before` (or the newest), newest first.
    pub async fn rules_history(&self, before: Option<i64>, limit: usize) -> Result<Vec<StoredRules>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT version, rules_json, created_at_ms FROM edge_rules WHERE version < ? ORDER BY version DESC LIMIT ?",
        )
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit as i64)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(stored).collect()
    }
}

fn stored(r: &sqlx::any::AnyRow) -> Result<StoredRules, sqlx::Error> {
    let json = crate::db::text_column(r, "rules_json")?;
    Ok(StoredRules {
        version: r.try_get("version")?,
        rules: serde_json::from_str(&json).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        created_at_ms: r.try_get("created_at_ms")?,
    })
}

/// The state the edge syncs, with the blacklist version it was read at
/// (which the blacklist's edge times key on).
pub struct BuiltState {
    pub state: EdgeState,
    pub blacklist_version: i64,
}

/// Builds the state the edge syncs: rules, blacklist, and the activities
/// whose token and purchase requests the edge can answer by itself.
pub async fn state(store: &Store, db: &Db) -> Result<EdgeState, ApiError> {
    Ok(build(store, db).await?.state)
}

/// Mirrors `rules` into Redis as the version in force (unless a newer one is).
pub async fn publish(store: &Store, rules: &StoredRules) -> Result<bool, StoreError> {
    let json = serde_json::to_string(&rules.rules).expect("rules serialise");
    store.publish_rules(rules.version, &json, rules.created_at_ms).await
}

/// The rules in force, from Redis; only when none were ever published there
/// (a fresh or emptied Redis) from the order DB, publishing them on the way.
pub async fn rules_in_force(store: &Store, db: &Db) -> Result<StoredRules, ApiError> {
    if let Some((version, json, created_at_ms)) = store.published_rules().await? {
        match serde_json::from_str(&json) {
            Ok(rules) => return Ok(StoredRules { version, rules, created_at_ms }),
            Err(e) => tracing::error!(error = %e, "the published edge rules do not parse; reading the DB's"),
        }
    }
    let current = db.current_rules().await?;
    publish(store, &current).await?;
    Ok(current)
}

/// Republishes the DB's current rules every `every`, so that a publish that
/// failed after a save, or a Redis that lost the mirror, heals by itself.
pub fn spawn_rules_publisher(store: Store, db: Db, every: std::time::Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let current = match tokio::time::timeout(every, db.current_rules()).await {
                Ok(Ok(current)) => current,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "edge rules not republished: the order DB failed");
                    continue;
                }
                Err(_) => continue,
            };
            match publish(&store, &current).await {
                Ok(true) => tracing::info!(version = current.version, "edge rules republished from the order DB"),
                Ok(false) => {}
                Err(e) => tracing::debug!(error = %e, "edge rules not republished: redis failed"),
            }
        }
    })
}

/// [`state`], with its blacklist version.
pub async fn build(store: &Store, db: &Db) -> Result<BuiltState, ApiError> {
    let rules = rules_in_force(store, db).await?;
    let (blacklist_version, mut blacklist_users, mut blacklist_ips) = store.blacklist_snapshot().await?;
    blacklist_users.sort();
    blacklist_ips.sort();
    let now = from_ms(now_ms());
    let (mut sold_out, mut not_started, mut ended) = (Vec::new(), Vec::new(), Vec::new());
    for a in store.activities().await? {
        match ActivityStatus::at(now, from_ms(a.starts_at_ms), from_ms(a.ends_at_ms), a.remaining) {
            ActivityStatus::SoldOut => sold_out.push(a.id),
            ActivityStatus::Scheduled => not_started.push(a.id),
            ActivityStatus::Ended => ended.push(a.id),
            ActivityStatus::Live => {}
        }
    }
    let mut state = EdgeState {
        version: String::new(),
        rules_version: rules.version,
        rules: rules.rules,
        blacklist_users,
        blacklist_ips,
        sold_out,
        not_started,
        ended,
    };
    state.version = content_version(&state);
    Ok(BuiltState { state, blacklist_version })
}

/// A short hash of everything in the state but its version.
fn content_version(state: &EdgeState) -> String {
    let json = serde_json::to_vec(state).expect("state serialises");
    Sha256::digest(&json).iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Remembers that edge `edge_id` now runs state `version` with `rules_version`.
pub async fn record_sync(store: &Store, edge_id: &str, version: &str, rules_version: i64) -> Result<(), StoreError> {
    let now = now_ms();
    let previous = syncs(store).await?.into_iter().find(|s| s.edge_id == edge_id);
    let rules_since_ms = match previous {
        Some(p) if p.rules_version == rules_version => p.rules_since_ms,
        _ => now,
    };
    let sync = EdgeSync {
        edge_id: edge_id.to_owned(),
        version: version.to_owned(),
        rules_version,
        rules_since_ms,
        at_ms: now,
    };
    store.hset(EDGE_SYNCS, edge_id, &serde_json::to_string(&sync).expect("sync serialises")).await
}

/// Remembers that edge `edge_id` was just served `built` (a 200 or a 304):
/// its sync; the version served, should the edge confirm it later; and the
/// blacklist entries that reached the edge, going by `applied`, the version
/// the edge says it holds (its `if-none-match`), never by what it is served.
pub async fn record_served(
    store: &Store,
    edge_id: &str,
    built: &BuiltState,
    applied: Option<&str>,
) -> Result<(), StoreError> {
    let s = &built.state;
    record_sync(store, edge_id, &s.version, s.rules_version).await?;
    let Some(applied) = applied else {
        return blacklist_reach::record_served(store, &s.version, built.blacklist_version).await;
    };
    if applied != s.version {
        blacklist_reach::record_served(store, &s.version, built.blacklist_version).await?;
    }
    let applied_blacklist = if applied == s.version {
        Some(built.blacklist_version)
    } else {
        blacklist_reach::served_at(store, applied).await?
    };
    if applied_blacklist != Some(built.blacklist_version) {
        return Ok(());
    }
    blacklist_reach::record_applied(store, built.blacklist_version, &s.blacklist_users, &s.blacklist_ips).await
}

/// The last sync of every edge that ever synced.
pub async fn syncs(store: &Store) -> Result<Vec<EdgeSync>, StoreError> {
    let all = store.hgetall(EDGE_SYNCS).await?;
    let mut out: Vec<EdgeSync> = all.values().filter_map(|v| serde_json::from_str(v).ok()).collect();
    out.sort_by(|a, b| a.edge_id.cmp(&b.edge_id));
    Ok(out)
}

/// When the first edge picked up rules `version`, if one has.
pub fn picked_up_at(syncs: &[EdgeSync], version: i64) -> Option<i64> {
    syncs.iter().filter(|s| s.rules_version == version).map(|s| s.rules_since_ms).min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rules_are_valid_and_bad_ones_are_named() {
        assert_eq!(validate(&EdgeRules::default()), Ok(()));
        let mut r = EdgeRules::default();
        r.per_ip.rate_per_sec = 0.0;
        assert!(validate(&r).unwrap_err().starts_with("per_ip.rate_per_sec"));
        let mut r = EdgeRules::default();
        r.routes[1].name = r.routes[0].name.clone();
        assert!(validate(&r).unwrap_err().starts_with("routes[1].name"));
        let mut r = EdgeRules::default();
        r.routes[0].path = "api".into();
        assert!(validate(&r).unwrap_err().starts_with("routes[0].path"));
        r.routes[0].path = "/api/act*/token".into();
        assert!(validate(&r).unwrap_err().starts_with("routes[0].path"));
        let r = EdgeRules { max_in_flight_total: 0, ..EdgeRules::default() };
        assert!(validate(&r).is_err());
    }
}
