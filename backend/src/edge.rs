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

use seckill_api::{ActivityStatus, DegradedMode, DegradedModeChange, EdgeRules, EdgeState, EdgeSync, RateRule};
use sha2::{Digest, Sha256};

use crate::blacklist_reach;
use crate::clock::{from_ms, now_ms};
use crate::db::{Db, RulesSave, StoredRules};
use crate::dependency::DependencyError;
use crate::store::{Store, StoreError, keys};

/// Rules refused before they are stored: the first field that is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {why}")]
pub struct InvalidRules {
    pub field: String,
    pub why: &'static str,
}

impl InvalidRules {
    fn new(field: impl Into<String>, why: &'static str) -> Self {
        Self { field: field.into(), why }
    }
}

/// Why rules were not saved.
#[derive(Debug, thiserror::Error)]
pub enum SaveRulesError {
    #[error(transparent)]
    Invalid(#[from] InvalidRules),
    #[error("the rules changed meanwhile (now version {current}); reload and retry")]
    Conflict { current: i64 },
    #[error(transparent)]
    Dependency(#[from] DependencyError),
}

/// Why degraded mode was not switched.
#[derive(Debug, thiserror::Error)]
pub enum DegradeError {
    #[error("reason: {0}")]
    BadReason(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Metric: 1 while degraded mode is on.
pub const DEGRADED_GAUGE: &str = "seckill_degraded";

/// Degraded mode as it stands.
pub async fn degraded_mode(store: &Store) -> Result<DegradedMode, StoreError> {
    Ok(match store.degraded().await? {
        Some((reason, since_ms)) => DegradedMode { degraded: true, reason, since: Some(from_ms(since_ms)) },
        None => DegradedMode { degraded: false, reason: String::new(), since: None },
    })
}

/// Switches degraded mode on (with a reason, 1–200 characters) or off; the
/// edges follow at their next sync.
pub async fn switch_degraded_mode(store: &Store, change: &DegradedModeChange) -> Result<DegradedMode, DegradeError> {
    if change.degraded {
        let reason = change.reason.trim();
        if reason.is_empty() {
            return Err(DegradeError::BadReason("say why the sale is degraded; operators read it later"));
        }
        if reason.chars().count() > 200 || reason.chars().any(char::is_control) {
            return Err(DegradeError::BadReason("at most 200 characters, no control characters"));
        }
        store.degrade(reason, now_ms()).await?;
        tracing::warn!(reason, "degraded mode on: the edge serves only token and purchase");
    } else {
        store.end_degraded().await?;
        tracing::info!("degraded mode off");
    }
    Ok(degraded_mode(store).await?)
}

/// Checks rules before they are stored, naming the first thing wrong.
pub fn validate(rules: &EdgeRules) -> Result<(), InvalidRules> {
    fn rate(name: &str, r: &RateRule) -> Result<(), InvalidRules> {
        if !r.rate_per_sec.is_finite() || r.rate_per_sec <= 0.0 || r.rate_per_sec > 1_000_000.0 {
            return Err(InvalidRules::new(format!("{name}.rate_per_sec"), "must be above 0 and at most 1000000"));
        }
        if r.burst > 1_000_000 {
            return Err(InvalidRules::new(format!("{name}.burst"), "must be at most 1000000"));
        }
        Ok(())
    }
    rate("per_ip", &rules.per_ip)?;
    rate("per_user", &rules.per_user)?;
    if rules.max_in_flight_per_ip == 0 || rules.max_in_flight_total == 0 {
        return Err(InvalidRules::new("max_in_flight_per_ip and max_in_flight_total", "must be at least 1"));
    }
    let mut names = std::collections::HashSet::new();
    for (i, route) in rules.routes.iter().enumerate() {
        let at = format!("routes[{i}]");
        if route.name.trim().is_empty() || !names.insert(route.name.as_str()) {
            return Err(InvalidRules::new(format!("{at}.name"), "must be non-empty and unique"));
        }
        let whole_star_segments = route.path.split('/').all(|seg| seg == "*" || !seg.contains('*'));
        if !route.path.starts_with('/')
            || route.path.contains("//")
            || route.path.contains(['?', '#'])
            || !whole_star_segments
            || route.path.len() > 512
        {
            return Err(InvalidRules::new(
                format!("{at}.path"),
                "must start with / (use * for one whole segment; no ? or #)",
            ));
        }
        if let Some(m) = &route.method
            && (m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase()))
        {
            return Err(InvalidRules::new(format!("{at}.method"), "an upper-case HTTP method such as POST"));
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

/// Validates and stores `rules` as the next version, then mirrors them into
/// Redis, where they are in force; if the mirror fails now, the publisher
/// retries within seconds.
pub async fn save_rules(store: &Store, db: &Db, rules: &EdgeRules) -> Result<StoredRules, SaveRulesError> {
    validate(rules)?;
    let saved = match db.save_rules(rules, None).await.map_err(DependencyError::from)? {
        RulesSave::Saved(saved) => saved,
        RulesSave::Conflict { current } => return Err(SaveRulesError::Conflict { current }),
    };
    if let Err(e) = publish(store, &saved).await {
        tracing::warn!(error = %e, version = saved.version, "edge rules saved but not published yet; retrying");
    }
    tracing::info!(version = saved.version, "edge rules saved; edges pick them up on their next sync");
    Ok(saved)
}

/// The state the edge syncs, with the blacklist version it was read at
/// (which the blacklist's edge times key on).
pub struct BuiltState {
    pub state: EdgeState,
    pub blacklist_version: i64,
}

/// Builds the state the edge syncs: rules, blacklist, and the activities
/// whose token and purchase requests the edge can answer by itself.
pub async fn state(store: &Store, db: &Db) -> Result<EdgeState, DependencyError> {
    Ok(build(store, db).await?.state)
}

/// Mirrors `rules` into Redis as the version in force (unless a newer one is).
pub async fn publish(store: &Store, rules: &StoredRules) -> Result<bool, StoreError> {
    let json = serde_json::to_string(&rules.rules).expect("rules serialise");
    store.publish_rules(rules.version, &json, rules.created_at_ms).await
}

/// The rules in force, from Redis; only when none were ever published there
/// (a fresh or emptied Redis) from the order DB, publishing them on the way.
pub async fn rules_in_force(store: &Store, db: &Db) -> Result<StoredRules, DependencyError> {
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
pub async fn build(store: &Store, db: &Db) -> Result<BuiltState, DependencyError> {
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
    let degraded = store.degraded().await?.is_some();
    metrics::gauge!(DEGRADED_GAUGE).set(f64::from(u8::from(degraded)));
    let mut state = EdgeState {
        degraded,
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
    hex::encode(&Sha256::digest(&json)[..8])
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
    store.hset(keys::EDGE_SYNCS, edge_id, &serde_json::to_string(&sync).expect("sync serialises")).await
}

/// What a state served to the edge was built from, remembered by its
/// version ([`keys::edge_served`]) until an edge names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Served {
    rules_version: i64,
    blacklist_version: i64,
}

/// How long a served version can still be confirmed.
const SERVED_TTL_SECS: u64 = 86_400;

/// Remembers that edge `edge_id` was just served `built` (a 200 or a 304).
///
/// Being served a state is not running it: the edge checks it and stores it
/// in its shared memory first, and either can fail. What it runs it names in
/// `applied`, its `if-none-match` (the version it holds). So the edge's sync
/// — which rules it runs, shown to operators and waited on by whoever just
/// saved rules — and the blacklist entries that reached it follow `applied`,
/// never what it is served; an edge that names no version, or one too old to
/// be remembered, is recorded once it names the one served now.
pub async fn record_served(
    store: &Store,
    edge_id: &str,
    built: &BuiltState,
    applied: Option<&str>,
) -> Result<(), StoreError> {
    let s = &built.state;
    let current = Served { rules_version: s.rules_version, blacklist_version: built.blacklist_version };
    if applied != Some(s.version.as_str()) {
        remember_served(store, &s.version, current).await?;
    }
    let Some(applied) = applied else { return Ok(()) };
    let held = if applied == s.version { Some(current) } else { served(store, applied).await? };
    let Some(held) = held else { return Ok(()) };
    record_sync(store, edge_id, applied, held.rules_version).await?;
    if held.blacklist_version != built.blacklist_version {
        return Ok(());
    }
    blacklist_reach::record_applied(store, built.blacklist_version, &s.blacklist_users, &s.blacklist_ips).await
}

async fn remember_served(store: &Store, state_version: &str, served: Served) -> Result<(), StoreError> {
    let key = keys::edge_served(state_version);
    let value = serde_json::to_string(&served).expect("served serialises");
    store
        .bounded(|mut c| async move {
            redis::cmd("SET").arg(&key).arg(&value).arg("EX").arg(SERVED_TTL_SECS).query_async(&mut c).await
        })
        .await
}

/// What the state served as `state_version` was built from, if still known.
async fn served(store: &Store, state_version: &str) -> Result<Option<Served>, StoreError> {
    let key = keys::edge_served(state_version);
    let value: Option<String> =
        store.bounded(|mut c| async move { redis::cmd("GET").arg(&key).query_async(&mut c).await }).await?;
    Ok(value.and_then(|v| serde_json::from_str(&v).ok()))
}

/// The last sync of every edge that ever synced.
pub async fn syncs(store: &Store) -> Result<Vec<EdgeSync>, StoreError> {
    let all = store.hgetall(keys::EDGE_SYNCS).await?;
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
        assert!(validate(&r).unwrap_err().to_string().starts_with("per_ip.rate_per_sec"));
        let mut r = EdgeRules::default();
        r.routes[1].name = r.routes[0].name.clone();
        assert!(validate(&r).unwrap_err().to_string().starts_with("routes[1].name"));
        let mut r = EdgeRules::default();
        r.routes[0].path = "api".into();
        assert!(validate(&r).unwrap_err().to_string().starts_with("routes[0].path"));
        r.routes[0].path = "/api/act*/token".into();
        assert!(validate(&r).unwrap_err().to_string().starts_with("routes[0].path"));
        let r = EdgeRules { max_in_flight_total: 0, ..EdgeRules::default() };
        assert!(validate(&r).is_err());
    }
}
