//! What the dashboard knows about the admin API beyond `seckill-api`'s wire
//! types: the answers not (yet) in that crate, errors, the blacklist's paths,
//! the checklist's groups and the edge-rules form.

use std::net::IpAddr;

use seckill_api::{CheckStatus, ChecklistItem, EdgeRules, ErrorBody, ErrorCode, RateRule};
use serde::{Deserialize, Serialize};

/// A failed API call: the HTTP status (0 when the network failed) and the
/// contract's error body when the server sent one.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub code: Option<ErrorCode>,
    pub message: String,
}

impl ApiError {
    /// The error an answer with `status` and `body` stands for.
    pub fn from_response(status: u16, body: &str) -> Self {
        match serde_json::from_str::<ErrorBody>(body) {
            Ok(e) => ApiError { status, code: Some(e.code), message: e.message },
            Err(_) => {
                let text = body.trim();
                let message = if text.is_empty() || text.len() > 300 || text.starts_with('<') {
                    format!("HTTP {status}")
                } else {
                    format!("HTTP {status}: {text}")
                };
                ApiError { status, code: None, message }
            }
        }
    }

    pub fn network(message: impl Into<String>) -> Self {
        ApiError { status: 0, code: None, message: message.into() }
    }

    pub fn decode(message: impl Into<String>) -> Self {
        ApiError { status: 0, code: None, message: format!("unexpected answer: {}", message.into()) }
    }

    pub fn is_unauthorized(&self) -> bool {
        self.status == 401
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Answer of `GET /admin/api/activities/{id}/preflight`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preflight {
    pub ready: bool,
    #[serde(default)]
    pub checks: Vec<PreflightCheck>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreflightCheck {
    pub id: String,
    #[serde(default)]
    pub title_zh: String,
    #[serde(default)]
    pub title_en: String,
    pub ok: bool,
    #[serde(default)]
    pub detail: String,
}

/// The seed checklist's five groups, in its order, with their titles.
pub const CHECK_GROUPS: [(&str, &str, &str); 5] = [
    ("infrastructure", "基础设施", "Infrastructure"),
    ("code", "代码优化", "Code"),
    ("security", "安全防护", "Security"),
    ("monitoring", "监控告警", "Monitoring and alerting"),
    ("disaster_recovery", "容灾备份", "Disaster recovery"),
];

/// The items in the seed's group order (unknown groups last, in first-seen order).
pub fn group_checklist(items: &[ChecklistItem]) -> Vec<(String, Vec<ChecklistItem>)> {
    let mut groups: Vec<(String, Vec<ChecklistItem>)> =
        CHECK_GROUPS.iter().map(|(id, _, _)| (id.to_string(), Vec::new())).collect();
    for item in items {
        match groups.iter_mut().find(|(g, _)| *g == item.group) {
            Some((_, list)) => list.push(item.clone()),
            None => groups.push((item.group.clone(), vec![item.clone()])),
        }
    }
    groups.retain(|(_, list)| !list.is_empty());
    groups
}

/// How many items have each status, in [`CheckStatus::ALL`] order.
pub fn checklist_counts(items: &[ChecklistItem]) -> [usize; 4] {
    let mut out = [0; 4];
    for item in items {
        if let Some(i) = CheckStatus::ALL.iter().position(|s| *s == item.status) {
            out[i] += 1;
        }
    }
    out
}

/// Which blacklist: user ids or IPs/CIDRs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlacklistKind {
    Users,
    Ips,
}

impl BlacklistKind {
    pub fn collection(self) -> &'static str {
        match self {
            BlacklistKind::Users => "/admin/api/blacklist/users",
            BlacklistKind::Ips => "/admin/api/blacklist/ips",
        }
    }

    /// Checks an entry before sending it: a user id of 1–64 `[A-Za-z0-9_-]`,
    /// or an IPv4/IPv6 address or CIDR range. `Err` is an i18n key.
    pub fn check(self, value: &str) -> Result<(), &'static str> {
        match self {
            BlacklistKind::Users => {
                let ok = (1..=64).contains(&value.len())
                    && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if ok { Ok(()) } else { Err("bl.err.user") }
            }
            BlacklistKind::Ips => {
                let (addr, prefix) = match value.split_once('/') {
                    Some((a, p)) => (a, Some(p)),
                    None => (value, None),
                };
                let Ok(ip) = addr.parse::<IpAddr>() else { return Err("bl.err.ip") };
                let max = if ip.is_ipv4() { 32 } else { 128 };
                match prefix.map(|p| p.parse::<u8>()) {
                    None => Ok(()),
                    Some(Ok(p)) if p <= max => Ok(()),
                    Some(_) => Err("bl.err.ip"),
                }
            }
        }
    }

    /// The path of one entry (a CIDR's `/` percent-encoded).
    pub fn entry_path(self, value: &str) -> String {
        format!("{}/{}", self.collection(), encode_segment(value))
    }
}

/// Percent-encodes what may not stand in a path segment (`/`, `%`, `?`, `#`, spaces, non-ASCII).
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The edge-rules form: the global limits and each route's, as typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesForm {
    pub per_ip_rate: String,
    pub per_ip_burst: String,
    pub per_user_rate: String,
    pub per_user_burst: String,
    pub in_flight_per_ip: String,
    pub in_flight_total: String,
    /// Per route (same order as the rules' routes): per-IP and per-user `(rate, burst)`, when set.
    pub routes: Vec<[Option<(String, String)>; 2]>,
}

/// Which field of the rules form an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RulesField {
    PerIpRate,
    PerIpBurst,
    PerUserRate,
    PerUserBurst,
    InFlightPerIp,
    InFlightTotal,
    /// Route index, 0 for per-IP or 1 for per-user, and `true` for the burst.
    Route(usize, usize, bool),
}

impl RulesForm {
    pub fn from_rules(r: &EdgeRules) -> Self {
        let pair = |rule: &RateRule| (trim_float(rule.rate_per_sec), rule.burst.to_string());
        Self {
            per_ip_rate: trim_float(r.per_ip.rate_per_sec),
            per_ip_burst: r.per_ip.burst.to_string(),
            per_user_rate: trim_float(r.per_user.rate_per_sec),
            per_user_burst: r.per_user.burst.to_string(),
            in_flight_per_ip: r.max_in_flight_per_ip.to_string(),
            in_flight_total: r.max_in_flight_total.to_string(),
            routes: r
                .routes
                .iter()
                .map(|route| [route.per_ip.as_ref().map(pair), route.per_user.as_ref().map(pair)])
                .collect(),
        }
    }

    /// The rules with this form's numbers (routes' names and paths from `base`), or the wrong fields.
    pub fn apply(&self, base: &EdgeRules) -> Result<EdgeRules, Vec<(RulesField, &'static str)>> {
        let mut errors = Vec::new();
        let mut rate = |s: &str, field: RulesField| match s.trim().parse::<f64>() {
            Ok(v) if v.is_finite() && v > 0.0 && v <= 1_000_000.0 => v,
            _ => {
                errors.push((field, "edge.err.rate"));
                1.0
            }
        };
        let per_ip_rate = rate(&self.per_ip_rate, RulesField::PerIpRate);
        let per_user_rate = rate(&self.per_user_rate, RulesField::PerUserRate);
        let mut route_rates = Vec::new();
        for (i, pair) in self.routes.iter().enumerate() {
            let mut both = [None, None];
            for (k, slot) in pair.iter().enumerate() {
                if let Some((r, _)) = slot {
                    both[k] = Some(rate(r, RulesField::Route(i, k, false)));
                }
            }
            route_rates.push(both);
        }
        let mut count = |s: &str, min: u32, field: RulesField, key: &'static str| match s.trim().parse::<u32>() {
            Ok(v) if v >= min => v,
            _ => {
                errors.push((field, key));
                min
            }
        };
        let per_ip_burst = count(&self.per_ip_burst, 0, RulesField::PerIpBurst, "edge.err.burst");
        let per_user_burst = count(&self.per_user_burst, 0, RulesField::PerUserBurst, "edge.err.burst");
        let in_flight_per_ip = count(&self.in_flight_per_ip, 1, RulesField::InFlightPerIp, "edge.err.in_flight");
        let in_flight_total = count(&self.in_flight_total, 1, RulesField::InFlightTotal, "edge.err.in_flight");
        let mut route_bursts = Vec::new();
        for (i, pair) in self.routes.iter().enumerate() {
            let mut both = [None, None];
            for (k, slot) in pair.iter().enumerate() {
                if let Some((_, b)) = slot {
                    both[k] = Some(count(b, 0, RulesField::Route(i, k, true), "edge.err.burst"));
                }
            }
            route_bursts.push(both);
        }
        let in_flight_ok =
            !errors.iter().any(|(f, _)| matches!(f, RulesField::InFlightPerIp | RulesField::InFlightTotal));
        if in_flight_ok && in_flight_per_ip > in_flight_total {
            errors.push((RulesField::InFlightPerIp, "edge.err.in_flight_order"));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut rules = base.clone();
        rules.per_ip = RateRule { rate_per_sec: per_ip_rate, burst: per_ip_burst };
        rules.per_user = RateRule { rate_per_sec: per_user_rate, burst: per_user_burst };
        rules.max_in_flight_per_ip = in_flight_per_ip;
        rules.max_in_flight_total = in_flight_total;
        for (i, route) in rules.routes.iter_mut().enumerate() {
            let (Some(rates), Some(bursts)) = (route_rates.get(i), route_bursts.get(i)) else { continue };
            if let (Some(r), Some(b)) = (rates[0], bursts[0]) {
                route.per_ip = Some(RateRule { rate_per_sec: r, burst: b });
            }
            if let (Some(r), Some(b)) = (rates[1], bursts[1]) {
                route.per_user = Some(RateRule { rate_per_sec: r, burst: b });
            }
        }
        Ok(rules)
    }
}

/// `10` for 10.0, `2.5` for 2.5.
pub fn trim_float(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{}", v as i64) } else { format!("{v}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_from_answers() {
        let e = ApiError::from_response(409, r#"{"code":"sold_out","message":"no stock left"}"#);
        assert_eq!(e.code, Some(ErrorCode::SoldOut));
        assert_eq!(e.message, "no stock left");
        let e = ApiError::from_response(502, "<html>bad gateway</html>");
        assert_eq!((e.code, e.message.as_str()), (None, "HTTP 502"));
        assert!(ApiError::from_response(401, "").is_unauthorized());
    }

    #[test]
    fn preflight_parses_the_agreed_shape() {
        let p: Preflight = serde_json::from_str(
            r#"{"ready":false,"checks":[{"id":"stock","title_zh":"库存预热","title_en":"Stock warmed","ok":false,"detail":"inventory key missing"}]}"#,
        )
        .unwrap();
        assert!(!p.ready);
        assert_eq!(p.checks[0].detail, "inventory key missing");
    }

    fn item(id: &str, group: &str, status: CheckStatus) -> ChecklistItem {
        ChecklistItem {
            id: id.into(),
            group: group.into(),
            title_zh: id.into(),
            title_en: id.into(),
            status,
            evidence: String::new(),
            ticked: false,
            ticked_at: None,
        }
    }

    #[test]
    fn checklist_in_seed_order() {
        let items = [
            item("a", "security", CheckStatus::Ok),
            item("b", "infrastructure", CheckStatus::Failing),
            item("c", "other", CheckStatus::Manual),
            item("d", "infrastructure", CheckStatus::Ok),
        ];
        let groups = group_checklist(&items);
        let order: Vec<(&str, usize)> = groups.iter().map(|(g, l)| (g.as_str(), l.len())).collect();
        assert_eq!(order, [("infrastructure", 2), ("security", 1), ("other", 1)]);
        assert_eq!(checklist_counts(&items), [2, 0, 1, 1]);
    }

    #[test]
    fn blacklist_entries_are_checked_and_encoded() {
        assert!(BlacklistKind::Users.check("user_1-x").is_ok());
        assert!(BlacklistKind::Users.check("bad id").is_err());
        assert!(BlacklistKind::Users.check("").is_err());
        assert!(BlacklistKind::Users.check(&"x".repeat(65)).is_err());
        for ok in ["10.0.0.7", "10.0.0.0/8", "2001:db8::/32", "::1"] {
            assert!(BlacklistKind::Ips.check(ok).is_ok(), "{ok}");
        }
        for bad in ["10.0.0.0/33", "nope", "10.0.0/8", "2001:db8::/129", "1.2.3.4/"] {
            assert!(BlacklistKind::Ips.check(bad).is_err(), "{bad}");
        }
        assert_eq!(BlacklistKind::Ips.entry_path("10.0.0.0/8"), "/admin/api/blacklist/ips/10.0.0.0%2F8");
        assert_eq!(BlacklistKind::Ips.entry_path("2001:db8::/32"), "/admin/api/blacklist/ips/2001:db8::%2F32");
        assert_eq!(BlacklistKind::Users.entry_path("u-1"), "/admin/api/blacklist/users/u-1");
    }

    #[test]
    fn rules_form_round_trips_and_checks() {
        let rules = EdgeRules::default();
        let form = RulesForm::from_rules(&rules);
        assert_eq!(form.per_ip_rate, "10");
        assert_eq!(form.apply(&rules).unwrap(), rules);

        let mut edited = form.clone();
        edited.per_ip_rate = "2.5".into();
        edited.in_flight_total = "50".into();
        edited.routes[1][1] = Some(("1".into(), "3".into()));
        let out = edited.apply(&rules).unwrap();
        assert_eq!(out.per_ip.rate_per_sec, 2.5);
        assert_eq!(out.max_in_flight_total, 50);
        assert_eq!(out.routes[1].per_user, Some(RateRule { rate_per_sec: 1.0, burst: 3 }));

        let mut bad = form.clone();
        bad.per_ip_rate = "0".into();
        bad.per_user_burst = "-1".into();
        bad.in_flight_total = "0".into();
        bad.routes[0][0] = Some(("x".into(), "1".into()));
        let errs: Vec<RulesField> = bad.apply(&rules).unwrap_err().into_iter().map(|(f, _)| f).collect();
        assert_eq!(
            errs,
            [
                RulesField::PerIpRate,
                RulesField::Route(0, 0, false),
                RulesField::PerUserBurst,
                RulesField::InFlightTotal
            ]
        );

        let mut order = form;
        order.in_flight_per_ip = "2000".into();
        assert_eq!(order.apply(&rules).unwrap_err(), vec![(RulesField::InFlightPerIp, "edge.err.in_flight_order")]);
    }
}
