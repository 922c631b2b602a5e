//! The edge's rules (nginx `limit_req` semantics), the state it syncs and
//! its sync record.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// On every answer the edge filter gives by itself, naming its decision
/// (`rate_limited`, `blacklisted`, `sold_out`, …): a client (the crowd of
/// `seckill-load`, a test, an operator with curl) tells the edge's refusals
/// from the backend's by it, whichever proxy runs the filter.
pub const EDGE_DECISION_HEADER: &str = "x-seckill-edge";

/// A token bucket with nginx `limit_req ... burst=B nodelay` semantics: from a
/// fresh key, `1 + burst` requests pass back to back, then one more every
/// `1 / rate_per_sec` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateRule {
    pub rate_per_sec: f64,
    pub burst: u32,
}

/// Tighter limits for one route: requests whose method matches (any when
/// `None`) and whose path matches `path` (`*` matches one segment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRule {
    pub name: String,
    #[serde(default)]
    pub method: Option<String>,
    pub path: String,
    pub per_ip: Option<RateRule>,
    pub per_user: Option<RateRule>,
}

/// The edge's limits. The backend owns them (persisted with a version
/// history, edited through the admin API) and the edge picks them up on its
/// next state sync; the plugin configuration only holds the defaults used
/// before the first sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeRules {
    /// Every request, per client IP (the seed's `limit_req zone=perip`).
    pub per_ip: RateRule,
    /// Every authenticated request, per user id from the verified JWT.
    pub per_user: RateRule,
    /// Route-specific limits, applied in addition to the above.
    #[serde(default)]
    pub routes: Vec<RouteRule>,
    /// Concurrent requests per client IP (the seed's `limit_conn perip 10`).
    pub max_in_flight_per_ip: u32,
    /// Concurrent requests in total (the seed's `limit_conn perserver 1000`).
    pub max_in_flight_total: u32,
}

impl Default for EdgeRules {
    /// The seed's gateway settings, with token and purchase tighter than reads.
    fn default() -> Self {
        let tight = |name: &str, path: &str| RouteRule {
            name: name.into(),
            method: Some("POST".into()),
            path: path.into(),
            per_ip: Some(RateRule { rate_per_sec: 5.0, burst: 10 }),
            per_user: Some(RateRule { rate_per_sec: 2.0, burst: 5 }),
        };
        Self {
            per_ip: RateRule { rate_per_sec: 10.0, burst: 20 },
            per_user: RateRule { rate_per_sec: 10.0, burst: 20 },
            routes: vec![tight("token", "/api/activities/*/token"), tight("purchase", "/api/activities/*/purchase")],
            max_in_flight_per_ip: 10,
            max_in_flight_total: 1000,
        }
    }
}

/// A version of the edge rules, as the admin API lists them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeRulesVersion {
    pub version: i64,
    pub rules: EdgeRules,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When an edge last fetched state carrying this version, if one has.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub edge_synced_at: Option<OffsetDateTime>,
}

/// One edge's last sync (`GET /admin/api/edge-status`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeSync {
    pub edge_id: String,
    /// Version of the whole edge state (blacklist, rules, activities) it holds.
    pub version: String,
    pub rules_version: i64,
    /// When this edge first named (held) a state with `rules_version` (Unix ms).
    pub rules_since_ms: i64,
    /// When this edge last synced naming a state it holds (Unix ms).
    pub at_ms: i64,
}

/// What the edge needs from the backend (`GET /internal/edge/state`).
///
/// `version` changes whenever anything in it changes; the edge sends it back
/// as `if-none-match` and gets `304 Not Modified` while nothing did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeState {
    pub version: String,
    pub rules_version: i64,
    pub rules: EdgeRules,
    /// Blacklisted user ids.
    pub blacklist_users: Vec<String>,
    /// Blacklisted IPs and CIDR ranges (`203.0.113.7`, `10.0.0.0/8`, `2001:db8::/32`).
    pub blacklist_ips: Vec<String>,
    /// Activities whose token and purchase requests the edge answers `sold_out`.
    pub sold_out: Vec<u64>,
    /// Activities not yet started (the edge answers `not_started`).
    pub not_started: Vec<u64>,
    /// Activities past their end (the edge answers `ended`).
    pub ended: Vec<u64>,
    /// Degraded mode, switched on by an operator: the edge answers every
    /// buyer request (`/api/…`) but token and purchase with `503 unavailable`.
    #[serde(default)]
    pub degraded: bool,
}

/// Degraded mode as the admin API shows it (`GET|PUT /admin/api/degraded`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DegradedMode {
    pub degraded: bool,
    /// Why an operator switched it on (empty while off).
    #[serde(default)]
    pub reason: String,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub since: Option<OffsetDateTime>,
}

/// Body of `PUT /admin/api/degraded`; switching it on needs a reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DegradedModeChange {
    pub degraded: bool,
    #[serde(default)]
    pub reason: String,
}
