//! The plugin configuration (JSON) and the checks of the edge rules.
//!
//! Why one file of ~550 lines: every field's check sits next to the unit test
//! that proves it refuses bad input (a third of the file); the rules'
//! compilation is shared with the state sync, which compiles what it receives.
//!
//! ```json
//! {
//!   "backend_cluster": "seckill_backend",
//!   "backend_authority": "127.0.0.1:8081",
//!   "state_path": "/internal/edge/state",
//!   "edge_secret": "…",
//!   "edge_id": "edge-1",
//!   "jwt_secret": "…",
//!   "jwt_leeway_secs": 5,
//!   "jwt_path_prefixes": ["/api/"],
//!   "blocked_path_prefixes": ["/internal/", "/metrics/"],
//!   "sync_period_ms": 1000,
//!   "sync_timeout_ms": 1000,
//!   "state_max_age_ms": 10000,
//!   "fail_open": true,
//!   "trusted_proxies": ["127.0.0.1/32"],
//!   "ipv4_prefix_len": 32,
//!   "ipv6_prefix_len": 64,
//!   "max_header_bytes": 8192,
//!   "defaults": { "per_ip": {"rate_per_sec": 10, "burst": 20}, … }
//! }
//! ```
//!
//! | field | required | default | what |
//! |---|---|---|---|
//! | `backend_cluster` | yes | | upstream (Envoy cluster) `dispatch_http_call` targets |
//! | `backend_authority` | no | `127.0.0.1:8081` | `:authority` of the state request |
//! | `state_path` | no | `/internal/edge/state` | `:path` of the state request |
//! | `edge_secret` | yes | | sent as `x-seckill-edge-secret` |
//! | `edge_id` | no | `edge` | sent as `x-seckill-edge-id` (the backend records each edge's last sync) |
//! | `jwt_secret` | yes | | HS256 secret of buyers' JWTs (`SECKILL_JWT_SECRET`) |
//! | `jwt_leeway_secs` | no | `5` | seconds past `exp` a buyer token still passes (the backend's leeway), ≤ 300 |
//! | `jwt_path_prefixes` | no | `["/api/"]` | paths whose `Authorization` header the edge checks |
//! | `blocked_path_prefixes` | no | `["/internal/", "/metrics/"]` | paths the edge never forwards (`404 not_found`): the side door, and the backends' metrics, which are scraped from inside |
//! | `sync_period_ms` | no | `1000` | state sync period, 100 ms to 1 h |
//! | `sync_timeout_ms` | no | `min(sync_period_ms, 5000)` | timeout of one state request, 10 ms to `sync_period_ms` |
//! | `state_max_age_ms` | no | `10 × sync_period_ms` | how long the backend may fail to confirm the state before the edge stops answering token/purchase requests from its activity lists (they go to the backend); `3 × sync_period_ms` to 24 h |
//! | `fail_open` | no | `true` | before any state arrived: use `defaults` (`true`) or answer `503 unavailable` (`false`) |
//! | `trusted_proxies` | no | `[]` | peers whose `x-forwarded-for` is believed (IPs or CIDRs) |
//! | `ipv4_prefix_len` | no | `32` | IPv4 clients in one /N share their per-IP limits (buckets, in flight); 16 to 32 |
//! | `ipv6_prefix_len` | no | `64` | IPv6 clients in one /N share their per-IP limits: a client holds a whole /64; 32 to 128 |
//! | `max_header_bytes` | no | `8192` | request headers (names + values) above this are `400 bad_request`; 256 B to 1 MiB |
//! | `defaults` | no | `EdgeRules::default()` | the rules used until the first state sync |
//!
//! Unknown fields are refused, so a typo does not silently fall back to a default.

use std::collections::HashSet;
use std::fmt;

use seckill_api::{EdgeRules, RateRule};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::bucket::{Limit, MAX_BURST, MAX_RATE};
use crate::client_ip::ClientPrefixes;
use crate::jwt::JwtKeys;
use crate::matcher::{Cidr, IpSet, PathPattern};

/// What is wrong, and where: `Display` gives `<field>: <why>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub why: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, why: impl Into<String>) -> Self {
        Self { field: field.into(), why: why.into() }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.why)
    }
}

impl std::error::Error for FieldError {}

/// One route's limits, checked and compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledRoute {
    pub name: String,
    pub method: Option<String>,
    pub path: PathPattern,
    pub per_ip: Option<Limit>,
    pub per_user: Option<Limit>,
}

impl CompiledRoute {
    pub fn matches<S: AsRef<str>>(&self, method: &str, segments: &[S]) -> bool {
        self.method.as_deref().is_none_or(|m| m == method) && self.path.matches(segments)
    }
}

/// [`EdgeRules`], checked and compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledRules {
    pub per_ip: Limit,
    pub per_user: Limit,
    pub routes: Vec<CompiledRoute>,
    pub max_in_flight_per_ip: u32,
    pub max_in_flight_total: u32,
}

fn limit(field: &str, rule: &RateRule) -> Result<Limit, FieldError> {
    let r = rule.rate_per_sec;
    if !r.is_finite() || r <= 0.0 || r > MAX_RATE {
        return Err(FieldError::new(
            format!("{field}.rate_per_sec"),
            format!("must be a finite number above 0 and at most {MAX_RATE}, got {r}"),
        ));
    }
    if rule.burst > MAX_BURST {
        return Err(FieldError::new(
            format!("{field}.burst"),
            format!("must be at most {MAX_BURST}, got {}", rule.burst),
        ));
    }
    Limit::new(r, rule.burst).ok_or_else(|| FieldError::new(field, "not a valid rate"))
}

/// Checks `rules` (named `prefix` in errors) as the backend does, and compiles them.
pub fn compile_rules(prefix: &str, rules: &EdgeRules) -> Result<CompiledRules, FieldError> {
    let per_ip = limit(&format!("{prefix}.per_ip"), &rules.per_ip)?;
    let per_user = limit(&format!("{prefix}.per_user"), &rules.per_user)?;
    if rules.max_in_flight_per_ip == 0 {
        return Err(FieldError::new(format!("{prefix}.max_in_flight_per_ip"), "must be at least 1"));
    }
    if rules.max_in_flight_total == 0 {
        return Err(FieldError::new(format!("{prefix}.max_in_flight_total"), "must be at least 1"));
    }
    let mut names = HashSet::new();
    let mut routes = Vec::with_capacity(rules.routes.len());
    for (i, route) in rules.routes.iter().enumerate() {
        let at = format!("{prefix}.routes[{i}]");
        if route.name.trim().is_empty() {
            return Err(FieldError::new(format!("{at}.name"), "must not be empty"));
        }
        if !names.insert(route.name.as_str()) {
            return Err(FieldError::new(format!("{at}.name"), format!("`{}` is used by an earlier route", route.name)));
        }
        if let Some(m) = &route.method
            && (m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase()))
        {
            return Err(FieldError::new(
                format!("{at}.method"),
                format!("`{m}` is not an upper-case HTTP method such as POST"),
            ));
        }
        let path = PathPattern::parse(&route.path).map_err(|why| FieldError::new(format!("{at}.path"), why))?;
        let per_ip = route.per_ip.as_ref().map(|r| limit(&format!("{at}.per_ip"), r)).transpose()?;
        let per_user = route.per_user.as_ref().map(|r| limit(&format!("{at}.per_user"), r)).transpose()?;
        routes.push(CompiledRoute { name: route.name.clone(), method: route.method.clone(), path, per_ip, per_user });
    }
    Ok(CompiledRules {
        per_ip,
        per_user,
        routes,
        max_in_flight_per_ip: rules.max_in_flight_per_ip,
        max_in_flight_total: rules.max_in_flight_total,
    })
}

/// The checked plugin configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub backend_cluster: String,
    pub backend_authority: String,
    pub state_path: String,
    pub edge_secret: String,
    pub edge_id: String,
    pub jwt: JwtKeys,
    pub jwt_path_prefixes: Vec<String>,
    pub blocked_path_prefixes: Vec<String>,
    pub sync_period_ms: u64,
    pub sync_timeout_ms: u64,
    /// Past this age (since the backend last sent or confirmed it) the
    /// state's activity lists no longer answer for the backend.
    pub state_max_age_ms: u64,
    pub fail_open: bool,
    pub trusted_proxies: IpSet,
    /// What one client is, for the per-IP limits.
    pub client_prefixes: ClientPrefixes,
    pub max_header_bytes: usize,
    /// The rules as configured, and compiled.
    pub defaults: EdgeRules,
    pub default_rules: CompiledRules,
}

/// The longest `state_max_age_ms` accepted (24 h): a day of refusals from a
/// state nobody confirms is no bound worth the name.
pub const MAX_STATE_AGE_MS: u64 = 86_400_000;

const FIELDS: &[&str] = &[
    "backend_cluster",
    "backend_authority",
    "state_path",
    "edge_secret",
    "edge_id",
    "jwt_secret",
    "jwt_leeway_secs",
    "jwt_path_prefixes",
    "blocked_path_prefixes",
    "sync_period_ms",
    "sync_timeout_ms",
    "state_max_age_ms",
    "fail_open",
    "trusted_proxies",
    "ipv4_prefix_len",
    "ipv6_prefix_len",
    "max_header_bytes",
    "defaults",
];

struct Fields(Map<String, Value>);

impl Fields {
    fn take<T: DeserializeOwned>(&mut self, name: &str) -> Result<Option<T>, FieldError> {
        match self.0.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => serde_json::from_value(v).map(Some).map_err(|e| FieldError::new(name, e.to_string())),
        }
    }

    fn required<T: DeserializeOwned>(&mut self, name: &str) -> Result<T, FieldError> {
        self.take(name)?.ok_or_else(|| FieldError::new(name, "is required"))
    }
}

fn header_safe(field: &str, value: &str, what: &str) -> Result<(), FieldError> {
    if value.is_empty() {
        return Err(FieldError::new(field, format!("must not be empty ({what})")));
    }
    if !value.bytes().all(|b| (0x21..0x7f).contains(&b)) {
        return Err(FieldError::new(field, "must be printable ASCII without spaces (it is sent in a header)"));
    }
    Ok(())
}

fn path_prefixes(field: &str, list: Vec<String>) -> Result<Vec<String>, FieldError> {
    for (i, p) in list.iter().enumerate() {
        if !p.starts_with('/') {
            return Err(FieldError::new(format!("{field}[{i}]"), format!("`{p}` must start with `/`")));
        }
    }
    Ok(list)
}

impl Config {
    /// Parses and checks the plugin configuration; the error names the first
    /// field that is wrong and why.
    pub fn from_json(bytes: &[u8]) -> Result<Self, FieldError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(FieldError::new("configuration", "is empty; the plugin needs a JSON object"));
        }
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| FieldError::new("configuration", format!("is not valid JSON: {e}")))?;
        let Value::Object(map) = value else {
            return Err(FieldError::new("configuration", "must be a JSON object"));
        };
        if let Some(unknown) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(FieldError::new(
                unknown.as_str(),
                format!("unknown field; expected one of {}", FIELDS.join(", ")),
            ));
        }
        let mut f = Fields(map);

        let backend_cluster: String = f.required("backend_cluster")?;
        if backend_cluster.trim().is_empty() {
            return Err(FieldError::new("backend_cluster", "must not be empty"));
        }
        let backend_authority: String = f.take("backend_authority")?.unwrap_or_else(|| "127.0.0.1:8081".into());
        header_safe("backend_authority", &backend_authority, "host:port of the backend")?;
        let state_path: String = f.take("state_path")?.unwrap_or_else(|| "/internal/edge/state".into());
        if !state_path.starts_with('/') {
            return Err(FieldError::new("state_path", format!("`{state_path}` must start with `/`")));
        }
        header_safe("state_path", &state_path, "the path of the state endpoint")?;
        let edge_secret: String = f.required("edge_secret")?;
        header_safe("edge_secret", &edge_secret, "SECKILL_EDGE_SECRET")?;
        let edge_id: String = f.take("edge_id")?.unwrap_or_else(|| "edge".into());
        header_safe("edge_id", &edge_id, "a name for this edge")?;
        if edge_id.len() > 64 {
            return Err(FieldError::new("edge_id", "must be at most 64 characters"));
        }
        let jwt_secret: String = f.required("jwt_secret")?;
        if jwt_secret.is_empty() {
            return Err(FieldError::new("jwt_secret", "must not be empty (SECKILL_JWT_SECRET)"));
        }
        let jwt_leeway_secs: u32 = f.take("jwt_leeway_secs")?.unwrap_or(5);
        if jwt_leeway_secs > 300 {
            return Err(FieldError::new("jwt_leeway_secs", format!("must be at most 300, got {jwt_leeway_secs}")));
        }
        let jwt_path_prefixes =
            path_prefixes("jwt_path_prefixes", f.take("jwt_path_prefixes")?.unwrap_or_else(|| vec!["/api/".into()]))?;
        let blocked_path_prefixes = path_prefixes(
            "blocked_path_prefixes",
            f.take("blocked_path_prefixes")?.unwrap_or_else(|| vec!["/internal/".into(), "/metrics/".into()]),
        )?;
        let sync_period_ms: u64 = f.take("sync_period_ms")?.unwrap_or(1000);
        if !(100..=3_600_000).contains(&sync_period_ms) {
            return Err(FieldError::new(
                "sync_period_ms",
                format!("must be between 100 and 3600000 milliseconds, got {sync_period_ms}"),
            ));
        }
        let sync_timeout_ms: u64 = f.take("sync_timeout_ms")?.unwrap_or(sync_period_ms.min(5000));
        if !(10..=sync_period_ms).contains(&sync_timeout_ms) {
            return Err(FieldError::new(
                "sync_timeout_ms",
                format!("must be between 10 ms and sync_period_ms ({sync_period_ms}), got {sync_timeout_ms}"),
            ));
        }
        // Ten periods: a backend restart or a database hiccup of a few
        // seconds (several failed syncs) does not move the refusals of
        // sold-out and closed activities onto the backend, yet an edge cut
        // off from it refuses a sale it no longer knows about (one that
        // started, or was restocked) for ten seconds at most with the default
        // period. Scaling with the period keeps it a count of missed syncs.
        let state_max_age_ms: u64 = f.take("state_max_age_ms")?.unwrap_or(10 * sync_period_ms);
        // At least three periods: a sync that times out (up to a period)
        // and the next one's answer fit in it, so one failed sync never
        // makes the state stale.
        let min_age = 3 * sync_period_ms;
        if !(min_age..=MAX_STATE_AGE_MS).contains(&state_max_age_ms) {
            return Err(FieldError::new(
                "state_max_age_ms",
                format!(
                    "must be between 3 × sync_period_ms ({min_age}) and {MAX_STATE_AGE_MS} milliseconds, got {state_max_age_ms}"
                ),
            ));
        }
        let fail_open: bool = f.take("fail_open")?.unwrap_or(true);
        let proxies: Vec<String> = f.take("trusted_proxies")?.unwrap_or_default();
        let mut trusted_proxies = IpSet::new();
        for (i, p) in proxies.iter().enumerate() {
            let cidr = Cidr::parse(p, true).map_err(|why| FieldError::new(format!("trusted_proxies[{i}]"), why))?;
            trusted_proxies.insert(cidr);
        }
        let mut client_prefixes = ClientPrefixes::default();
        for (field, len, range) in [
            ("ipv4_prefix_len", &mut client_prefixes.ipv4, 16..=32),
            ("ipv6_prefix_len", &mut client_prefixes.ipv6, 32..=128),
        ] {
            if let Some(n) = f.take::<u8>(field)? {
                if !range.contains(&n) {
                    let (lo, hi) = (range.start(), range.end());
                    return Err(FieldError::new(field, format!("must be between {lo} and {hi}, got {n}")));
                }
                *len = n;
            }
        }
        let max_header_bytes: usize = f.take("max_header_bytes")?.unwrap_or(8192);
        if !(256..=1 << 20).contains(&max_header_bytes) {
            return Err(FieldError::new(
                "max_header_bytes",
                format!("must be between 256 and 1048576, got {max_header_bytes}"),
            ));
        }
        let defaults: EdgeRules = f.take("defaults")?.unwrap_or_default();
        let default_rules = compile_rules("defaults", &defaults)?;

        Ok(Self {
            backend_cluster,
            backend_authority,
            state_path,
            edge_secret,
            edge_id,
            jwt: JwtKeys::new(jwt_secret.as_bytes(), jwt_leeway_secs),
            jwt_path_prefixes,
            blocked_path_prefixes,
            sync_period_ms,
            sync_timeout_ms,
            state_max_age_ms,
            fail_open,
            trusted_proxies,
            client_prefixes,
            max_header_bytes,
            defaults,
            default_rules,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({"backend_cluster": "seckill_backend", "edge_secret": "edge-s3cret", "jwt_secret": "jwt-s3cret"})
    }

    fn with(patch: Value) -> Result<Config, FieldError> {
        let mut v = base();
        for (k, val) in patch.as_object().unwrap() {
            v[k] = val.clone();
        }
        Config::from_json(v.to_string().as_bytes())
    }

    fn err(patch: Value) -> String {
        with(patch).unwrap_err().to_string()
    }

    #[test]
    fn the_minimal_config_takes_the_documented_defaults() {
        let c = with(json!({})).unwrap();
        assert_eq!(c.backend_authority, "127.0.0.1:8081");
        assert_eq!(c.state_path, "/internal/edge/state");
        assert_eq!(c.edge_id, "edge");
        assert_eq!(c.sync_period_ms, 1000);
        assert_eq!(c.sync_timeout_ms, 1000);
        assert!(c.fail_open);
        assert!(c.trusted_proxies.is_empty());
        assert_eq!(c.max_header_bytes, 8192);
        assert_eq!(c.client_prefixes, ClientPrefixes { ipv4: 32, ipv6: 64 });
        assert_eq!(c.jwt_path_prefixes, ["/api/"]);
        assert_eq!(c.blocked_path_prefixes, ["/internal/", "/metrics/"]);
        assert_eq!(c.defaults, EdgeRules::default());
        assert_eq!(c.default_rules.per_ip, Limit::new(10.0, 20).unwrap());
        assert_eq!(c.default_rules.routes.len(), 2);
        assert_eq!(c.state_max_age_ms, 10_000);
        assert_eq!(with(json!({"sync_period_ms": 60_000})).unwrap().sync_timeout_ms, 5000);
        assert_eq!(with(json!({"sync_period_ms": 60_000})).unwrap().state_max_age_ms, 600_000);
    }

    #[test]
    fn client_prefixes_are_checked() {
        let c = with(json!({"ipv4_prefix_len": 24, "ipv6_prefix_len": 56})).unwrap();
        assert_eq!(c.client_prefixes, ClientPrefixes { ipv4: 24, ipv6: 56 });
        assert_eq!(err(json!({"ipv6_prefix_len": 16})), "ipv6_prefix_len: must be between 32 and 128, got 16");
        assert_eq!(err(json!({"ipv4_prefix_len": 33})), "ipv4_prefix_len: must be between 16 and 32, got 33");
        assert!(err(json!({"ipv6_prefix_len": -1})).starts_with("ipv6_prefix_len: "));
    }

    #[test]
    fn a_full_config_parses() {
        let c = with(json!({
            "backend_authority": "backend:8081",
            "sync_period_ms": 250,
            "sync_timeout_ms": 200,
            "fail_open": false,
            "trusted_proxies": ["127.0.0.1/32", "::1", "10.0.0.0/8"],
            "max_header_bytes": 16384,
            "defaults": {
                "per_ip": {"rate_per_sec": 5, "burst": 1},
                "per_user": {"rate_per_sec": 0.5, "burst": 0},
                "routes": [{"name": "reads", "method": "GET", "path": "/api/activities/*", "per_ip": {"rate_per_sec": 100, "burst": 5}, "per_user": null}],
                "max_in_flight_per_ip": 3,
                "max_in_flight_total": 30
            }
        }))
        .unwrap();
        assert!(!c.fail_open);
        assert_eq!(c.trusted_proxies.len(), 3);
        assert_eq!(c.default_rules.max_in_flight_total, 30);
        assert!(c.default_rules.routes[0].matches("GET", &["api", "activities", "7"]));
        assert!(!c.default_rules.routes[0].matches("POST", &["api", "activities", "7"]));
    }

    #[test]
    fn bad_configs_name_the_field_and_the_reason() {
        assert_eq!(Config::from_json(b"").unwrap_err().field, "configuration");
        assert!(Config::from_json(b"{").unwrap_err().to_string().starts_with("configuration: is not valid JSON"));
        assert_eq!(Config::from_json(b"[]").unwrap_err().to_string(), "configuration: must be a JSON object");
        let cases: &[(Value, &str)] = &[
            (json!({"sync_perod_ms": 5}), "sync_perod_ms: unknown field"),
            (json!({"backend_cluster": ""}), "backend_cluster: must not be empty"),
            (json!({"backend_cluster": null}), "backend_cluster: is required"),
            (json!({"edge_secret": ""}), "edge_secret: must not be empty"),
            (json!({"edge_secret": "two words"}), "edge_secret: must be printable ASCII"),
            (json!({"jwt_secret": ""}), "jwt_secret: must not be empty"),
            (json!({"jwt_secret": 42}), "jwt_secret: invalid type"),
            (json!({"sync_period_ms": 99}), "sync_period_ms: must be between 100 and 3600000"),
            (json!({"sync_period_ms": "1s"}), "sync_period_ms: invalid type"),
            (json!({"sync_timeout_ms": 1001}), "sync_timeout_ms: must be between 10 ms and sync_period_ms"),
            (json!({"fail_open": "yes"}), "fail_open: invalid type"),
            (
                json!({"trusted_proxies": ["127.0.0.1/32", "10.0.0.1/8"]}),
                "trusted_proxies[1]: `10.0.0.1/8` has bits set",
            ),
            (json!({"trusted_proxies": ["localhost"]}), "trusted_proxies[0]: `localhost` is not an IP"),
            (json!({"max_header_bytes": 10}), "max_header_bytes: must be between 256"),
            (json!({"state_path": "internal"}), "state_path: `internal` must start with `/`"),
            (json!({"jwt_path_prefixes": ["api"]}), "jwt_path_prefixes[0]: `api` must start with `/`"),
            (json!({"jwt_leeway_secs": 301}), "jwt_leeway_secs: must be at most 300"),
            (
                json!({"state_max_age_ms": 2999}),
                "state_max_age_ms: must be between 3 × sync_period_ms (3000) and 86400000 milliseconds, got 2999",
            ),
            (
                json!({"sync_period_ms": 500, "state_max_age_ms": 1000}),
                "state_max_age_ms: must be between 3 × sync_period_ms (1500)",
            ),
            (json!({"state_max_age_ms": 86_400_001}), "state_max_age_ms: must be between"),
            (json!({"state_max_age_ms": -1}), "state_max_age_ms: invalid value"),
        ];
        for (patch, expected) in cases {
            let got = err(patch.clone());
            assert!(got.starts_with(expected), "{patch}: got `{got}`, expected `{expected}…`");
        }
        let missing = Config::from_json(br#"{"backend_cluster": "b", "edge_secret": "e"}"#).unwrap_err();
        assert_eq!(missing.to_string(), "jwt_secret: is required");
    }

    #[test]
    fn bad_default_rules_name_the_rule() {
        let rules = serde_json::to_value(EdgeRules::default()).unwrap();
        let case = |path: &[&str], value: Value, expected: &str| {
            let mut r = rules.clone();
            let mut slot = &mut r;
            for p in path {
                slot = match p.parse::<usize>() {
                    Ok(i) => &mut slot[i],
                    Err(_) => &mut slot[*p],
                };
            }
            *slot = value;
            let got = err(json!({ "defaults": r }));
            assert!(got.starts_with(expected), "got `{got}`, expected `{expected}…`");
        };
        case(&["per_ip", "rate_per_sec"], json!(0.0), "defaults.per_ip.rate_per_sec: must be a finite number above 0");
        case(&["per_user", "rate_per_sec"], json!(-2), "defaults.per_user.rate_per_sec");
        case(&["per_ip", "burst"], json!(2_000_000), "defaults.per_ip.burst: must be at most 1000000");
        case(&["per_ip", "burst"], json!(-1), "defaults: invalid value");
        case(&["max_in_flight_total"], json!(0), "defaults.max_in_flight_total: must be at least 1");
        case(&["max_in_flight_per_ip"], json!(0), "defaults.max_in_flight_per_ip: must be at least 1");
        case(&["routes", "1", "name"], json!("token"), "defaults.routes[1].name: `token` is used by an earlier route");
        case(&["routes", "0", "name"], json!(" "), "defaults.routes[0].name: must not be empty");
        case(
            &["routes", "0", "path"],
            json!("/api/*x"),
            "defaults.routes[0].path: `/api/*x`: `*` must be a whole segment",
        );
        case(&["routes", "0", "method"], json!("post"), "defaults.routes[0].method: `post` is not an upper-case");
        case(&["routes", "0", "per_ip", "rate_per_sec"], json!(1e7), "defaults.routes[0].per_ip.rate_per_sec");
        case(&["per_ip", "brust"], json!(1), "defaults: unknown field `brust`");
    }
}
