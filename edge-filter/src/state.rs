//! The backend's [`EdgeState`] as the edge holds it: validated, kept in shared
//! data for every worker VM, and compiled into a [`Snapshot`] per VM.
//!
//! Shared-data keys (all values are bytes; empty means "nothing"):
//!
//! | key | value |
//! |---|---|
//! | [`STATE_KEY`] `seckill.edge.state` | the last good `EdgeState`, JSON |
//! | [`STATE_GEN_KEY`] `seckill.edge.state.gen` | a marker rewritten after every state write; VMs re-read the state only when it changes |
//! | [`SYNC_KEY`] `seckill.edge.sync` | [`crate::sync::SyncRecord`], JSON: who syncs when, last success and failure |
//! | [`INFLIGHT_TOTAL_KEY`] `seckill.edge.inflight.total` | requests in flight, `u32` LE |
//! | `seckill.edge.inflight.ip.<ip>` | requests in flight from one client IP, `u32` LE |
//! | `seckill.edge.rl.ip.<ip>` | per-IP bucket, 16 bytes ([`crate::bucket::BucketState`]) |
//! | `seckill.edge.rl.user.<user>` | per-user bucket |
//! | `seckill.edge.rl.route.<name>.ip.<ip>` | a route's per-IP bucket |
//! | `seckill.edge.rl.route.<name>.user.<user>` | a route's per-user bucket |

use std::collections::HashSet;

use seckill_api::{EdgeRules, EdgeState, ErrorCode};

use crate::config::{CompiledRules, FieldError, compile_rules};
use crate::matcher::{Cidr, IpSet};

pub const STATE_KEY: &str = "seckill.edge.state";
pub const STATE_GEN_KEY: &str = "seckill.edge.state.gen";
pub const SYNC_KEY: &str = "seckill.edge.sync";
pub const INFLIGHT_TOTAL_KEY: &str = "seckill.edge.inflight.total";
pub const INFLIGHT_IP_PREFIX: &str = "seckill.edge.inflight.ip.";

// The IP-keyed names take the address already written out: a request uses it
// in several keys, and formatting an address is not free inside the VM.
pub fn inflight_ip_key(ip: &str) -> String {
    [INFLIGHT_IP_PREFIX, ip].concat()
}

pub const BUCKET_IP_PREFIX: &str = "seckill.edge.rl.ip.";
pub const BUCKET_USER_PREFIX: &str = "seckill.edge.rl.user.";
/// A route's buckets: `…route.<name>.ip.<ip>` and `…route.<name>.user.<user>`.
pub const ROUTE_PREFIX: &str = "seckill.edge.rl.route.";

pub fn bucket_ip_key(ip: &str) -> String {
    [BUCKET_IP_PREFIX, ip].concat()
}

pub fn bucket_user_key(user: &str) -> String {
    [BUCKET_USER_PREFIX, user].concat()
}

pub fn route_ip_key(route: &str, ip: &str) -> String {
    [ROUTE_PREFIX, route, ".ip.", ip].concat()
}

pub fn route_user_key(route: &str, user: &str) -> String {
    [ROUTE_PREFIX, route, ".user.", user].concat()
}

/// Everything a request is judged against, compiled for fast lookups.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The backend's state version (`None`: the plugin's defaults, no state yet).
    pub version: Option<String>,
    pub rules_version: Option<i64>,
    pub rules: CompiledRules,
    /// The rules as received, kept to fall back on should a later state carry bad ones.
    pub raw_rules: EdgeRules,
    pub blacklist_users: HashSet<String>,
    pub blacklist_ips: IpSet,
    pub sold_out: HashSet<u64>,
    pub not_started: HashSet<u64>,
    pub ended: HashSet<u64>,
    /// Degraded mode: buyer requests other than token and purchase are shed.
    pub degraded: bool,
}

impl Snapshot {
    /// The plugin's defaults, before any state arrives.
    pub fn defaults(raw_rules: EdgeRules, rules: CompiledRules) -> Self {
        Self {
            version: None,
            rules_version: None,
            rules,
            raw_rules,
            blacklist_users: HashSet::new(),
            blacklist_ips: IpSet::new(),
            sold_out: HashSet::new(),
            not_started: HashSet::new(),
            ended: HashSet::new(),
            degraded: false,
        }
    }

    /// Compiles a validated state (see [`validate`]).
    pub fn from_state(state: &EdgeState) -> Result<Self, FieldError> {
        let rules = compile_rules("rules", &state.rules)?;
        Ok(Self {
            version: Some(state.version.clone()),
            rules_version: Some(state.rules_version),
            rules,
            raw_rules: state.rules.clone(),
            blacklist_users: state.blacklist_users.iter().cloned().collect(),
            blacklist_ips: state.blacklist_ips.iter().filter_map(|s| Cidr::parse(s, false).ok()).collect(),
            sold_out: state.sold_out.iter().copied().collect(),
            not_started: state.not_started.iter().copied().collect(),
            ended: state.ended.iter().copied().collect(),
            degraded: state.degraded,
        })
    }

    /// Reads the state as stored under [`STATE_KEY`].
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let state: EdgeState = serde_json::from_slice(bytes).map_err(|e| format!("stored state is not valid: {e}"))?;
        Self::from_state(&state).map_err(|e| format!("stored state has bad rules: {e}"))
    }

    /// The answer for token and purchase requests of activity `id`, if the
    /// edge can give it: the window first, then stock, as the backend decides.
    pub fn activity_block(&self, id: u64) -> Option<ErrorCode> {
        if self.ended.contains(&id) {
            Some(ErrorCode::Ended)
        } else if self.not_started.contains(&id) {
            Some(ErrorCode::NotStarted)
        } else if self.sold_out.contains(&id) {
            Some(ErrorCode::SoldOut)
        } else {
            None
        }
    }
}

/// What [`validate`] changed in a state before storing it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Repairs {
    /// The state's rules were refused (why), and the last good rules kept.
    pub rules_refused: Option<FieldError>,
    /// Blacklist entries that are not IPs or CIDR ranges, dropped.
    pub bad_ips: Vec<String>,
}

/// Parses the backend's answer and makes it safe to store: rules that do not
/// pass the checks are replaced by `last_good` (so that a bad rule edit cannot
/// also freeze the blacklist and the sold-out list), and blacklist entries
/// that are not addresses or ranges are dropped. `Err` if the body is not an
/// `EdgeState` at all.
pub fn validate(body: &[u8], last_good: &Snapshot) -> Result<(EdgeState, Repairs), String> {
    let mut state: EdgeState =
        serde_json::from_slice(body).map_err(|e| format!("the state is not an EdgeState: {e}"))?;
    if state.version.is_empty()
        || state.version.len() > 128
        || !state.version.bytes().all(|b| (0x21..0x7f).contains(&b))
    {
        return Err("the state's version must be 1-128 printable ASCII characters".into());
    }
    let mut repairs = Repairs::default();
    if let Err(e) = compile_rules("rules", &state.rules) {
        repairs.rules_refused = Some(e);
        state.rules = last_good.raw_rules.clone();
        state.rules_version = last_good.rules_version.unwrap_or(0);
    }
    state.blacklist_ips.retain(|s| {
        let ok = Cidr::parse(s, false).is_ok();
        if !ok {
            repairs.bad_ips.push(s.clone());
        }
        ok
    });
    Ok((state, repairs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::compile_rules;

    pub(crate) fn state() -> EdgeState {
        EdgeState {
            version: "v1".into(),
            rules_version: 3,
            rules: EdgeRules::default(),
            blacklist_users: vec!["mallory".into()],
            blacklist_ips: vec!["203.0.113.7".into(), "10.0.0.0/8".into(), "2001:db8::/32".into()],
            sold_out: vec![1, 4],
            not_started: vec![2],
            ended: vec![3, 4],
            degraded: false,
        }
    }

    fn defaults() -> Snapshot {
        let raw = EdgeRules::default();
        let compiled = compile_rules("defaults", &raw).unwrap();
        Snapshot::defaults(raw, compiled)
    }

    #[test]
    fn a_state_compiles_into_lookups() {
        let s = Snapshot::from_state(&state()).unwrap();
        assert_eq!(s.version.as_deref(), Some("v1"));
        assert!(s.blacklist_users.contains("mallory"));
        assert!(s.blacklist_ips.contains("10.1.2.3".parse().unwrap()));
        assert!(s.blacklist_ips.contains("2001:db8::9".parse().unwrap()));
        assert!(!s.blacklist_ips.contains("192.0.2.1".parse().unwrap()));
        assert_eq!(s.activity_block(1), Some(ErrorCode::SoldOut));
        assert_eq!(s.activity_block(2), Some(ErrorCode::NotStarted));
        assert_eq!(s.activity_block(3), Some(ErrorCode::Ended));
        assert_eq!(s.activity_block(4), Some(ErrorCode::Ended), "the window decides before stock");
        assert_eq!(s.activity_block(5), None);
        let bytes = serde_json::to_vec(&state()).unwrap();
        assert_eq!(Snapshot::parse(&bytes).unwrap().sold_out, s.sold_out);
    }

    #[test]
    fn bad_rules_keep_the_last_good_ones_but_lists_still_apply() {
        let mut st = state();
        st.rules.per_ip.rate_per_sec = 0.0;
        st.rules_version = 9;
        let (fixed, repairs) = validate(&serde_json::to_vec(&st).unwrap(), &defaults()).unwrap();
        assert_eq!(repairs.rules_refused.unwrap().field, "rules.per_ip.rate_per_sec");
        assert_eq!(fixed.rules, EdgeRules::default());
        assert_eq!(fixed.rules_version, 0);
        assert_eq!(fixed.sold_out, vec![1, 4]);
        assert!(Snapshot::from_state(&fixed).is_ok());
    }

    #[test]
    fn bad_blacklist_entries_are_dropped_and_reported() {
        let mut st = state();
        st.blacklist_ips.push("not-an-ip".into());
        let (fixed, repairs) = validate(&serde_json::to_vec(&st).unwrap(), &defaults()).unwrap();
        assert_eq!(repairs.bad_ips, ["not-an-ip"]);
        assert_eq!(fixed.blacklist_ips.len(), 3);
    }

    #[test]
    fn garbage_is_refused() {
        assert!(validate(b"{}", &defaults()).unwrap_err().contains("not an EdgeState"));
        assert!(validate(b"<html>", &defaults()).is_err());
        let mut st = state();
        st.version = String::new();
        assert!(validate(&serde_json::to_vec(&st).unwrap(), &defaults()).unwrap_err().contains("version"));
    }

    #[test]
    fn keys_are_distinct_per_dimension() {
        let ip = "192.0.2.1";
        let keys = [
            bucket_ip_key(ip),
            bucket_user_key("alice"),
            route_ip_key("token", ip),
            route_user_key("token", "alice"),
            inflight_ip_key(ip),
            INFLIGHT_TOTAL_KEY.to_owned(),
        ];
        let unique: HashSet<_> = keys.iter().collect();
        assert_eq!(unique.len(), keys.len());
        assert_eq!(route_ip_key("token", "::1"), "seckill.edge.rl.route.token.ip.::1");
    }
}
