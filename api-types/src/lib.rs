//! The wire format of seckill's HTTP APIs (see `CONTRACT.md`).
//!
//! The backend, the admin UI (compiled to wasm) and the load tool all use these
//! types, so the JSON the server writes and the JSON its clients read have one
//! definition. Nothing here does I/O; it only names things and how they look on
//! the wire.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub mod buyer_jwt;
pub mod client_addr;
pub mod placeholders;

/// A user id as the contract allows it (`CONTRACT.md`, "Identity"): 1–64
/// characters of `[A-Za-z0-9_-]`. The one definition the backend, the edge
/// filter and the load tool check against.
pub fn valid_user_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Where an activity stands, derived from its window and its remaining stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivityStatus {
    Scheduled,
    Live,
    SoldOut,
    Ended,
}

impl ActivityStatus {
    /// The status as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Live => "live",
            Self::SoldOut => "sold_out",
            Self::Ended => "ended",
        }
    }

    /// The status an activity has at `now`: the window decides first, then stock.
    pub fn at(now: OffsetDateTime, starts_at: OffsetDateTime, ends_at: OffsetDateTime, remaining: i64) -> Self {
        if now >= ends_at {
            Self::Ended
        } else if now < starts_at {
            Self::Scheduled
        } else if remaining <= 0 {
            Self::SoldOut
        } else {
            Self::Live
        }
    }
}

/// A flash sale of one product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    pub id: u64,
    pub name: String,
    pub price_cents: i64,
    pub total_stock: i64,
    pub remaining: i64,
    pub sold: i64,
    pub limit_per_user: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub ends_at: OffsetDateTime,
    pub status: ActivityStatus,
}

/// Body of `POST /admin/api/activities`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewActivity {
    pub name: String,
    pub price_cents: i64,
    pub total_stock: i64,
    pub limit_per_user: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub ends_at: OffsetDateTime,
}

/// Answer of `POST /api/activities/{id}/token`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PurchaseToken {
    pub token: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// Body of `POST /api/activities/{id}/purchase`.
///
/// `quantity` is kept as raw JSON so that the backend can tell a buyer exactly
/// what is wrong with it (zero, negative, fractional, a string, too large)
/// instead of a generic deserialisation failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PurchaseRequest {
    pub token: String,
    pub quantity: serde_json::Value,
}

/// Answer of an accepted purchase (`202`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PurchaseAccepted {
    pub order_id: String,
    pub status: OrderStatus,
}

/// The life of an order: `queued` until the worker writes its row, then
/// `pending_payment` until it is paid, cancelled or expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Queued,
    PendingPayment,
    Paid,
    Cancelled,
    Expired,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 5] = [
        OrderStatus::Queued,
        OrderStatus::PendingPayment,
        OrderStatus::Paid,
        OrderStatus::Cancelled,
        OrderStatus::Expired,
    ];

    /// The status as it appears on the wire (and in the order DB).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::PendingPayment => "pending_payment",
            Self::Paid => "paid",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
        }
    }

    /// The status named `s` on the wire.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// An order as buyers and admins see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub order_id: String,
    pub activity_id: u64,
    pub user_id: String,
    pub quantity: i64,
    pub amount_cents: i64,
    pub status: OrderStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub pay_deadline: OffsetDateTime,
}

/// One page of a list that can grow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Body of `POST /admin/api/login`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoginRequest {
    pub password: String,
}

/// Answer of `POST /admin/api/login`: the admin bearer token (also set as a cookie).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminSession {
    pub token: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// Answer of `GET /admin/api/activities/{id}/stats`: the live counters of one
/// activity as Redis holds them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityStats {
    pub activity_id: u64,
    pub status: ActivityStatus,
    pub total_stock: i64,
    pub remaining: i64,
    pub sold: i64,
    /// `remaining + sold == total_stock` must hold at every instant.
    pub invariant_ok: bool,
    /// Purchase tokens issued and neither used nor expired.
    pub live_tokens: i64,
    /// Order events in the activity's stream (not yet trimmed).
    pub stream_length: i64,
}

/// Answer of `GET /admin/api/activities/{id}/reconciliation`: Redis `sold`
/// against the order stream, the dead letters and the order database, read
/// at one instant. `drift` is what none of them accounts for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reconciliation {
    pub activity_id: u64,
    pub total_stock: i64,
    pub redis_remaining: i64,
    pub redis_sold: i64,
    /// `redis_remaining + redis_sold == total_stock`.
    pub invariant_ok: bool,
    /// Order events still in the stream and not yet in the database.
    pub stream_orders: i64,
    pub stream_quantity: i64,
    /// Stream entries delivered to a worker and not yet acknowledged.
    pub stream_pending: i64,
    pub dead_letters: i64,
    pub dead_letter_quantity: i64,
    pub db_orders: i64,
    /// Quantity of orders pending payment or paid.
    pub db_holding_quantity: i64,
    /// Quantity of cancelled/expired orders whose stock is not back in Redis yet.
    pub db_unreleased_quantity: i64,
    pub db_orders_by_status: Vec<StatusCount>,
    /// `redis_sold - (db_holding + db_unreleased + stream + dead letters)`.
    pub drift: i64,
    /// No drift, invariant holds, and no dead letters waiting for an operator.
    pub ok: bool,
    pub dead_letter_samples: Vec<DeadLetter>,
}

/// How many orders have one status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusCount {
    pub status: OrderStatus,
    pub count: i64,
}

/// An order event the worker could not turn into an order, as
/// `GET /admin/api/dead-letters` lists it (and reconciliation samples it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    #[serde(default)]
    pub activity_id: u64,
    /// The dead letter's own id, which the replay and refund actions name.
    #[serde(default)]
    pub id: String,
    /// The order id the buyer was given (`<activity>-<entry_id>`).
    #[serde(default)]
    pub order_id: String,
    /// The order event's id in the order stream.
    pub entry_id: String,
    pub reason: String,
    pub fields: std::collections::BTreeMap<String, String>,
}

/// What `POST /admin/api/dead-letters/{activity_id}/{id}/replay|refund` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetterResolution {
    pub order_id: String,
    /// `replayed` (the order is a row now) or `refunded` (its stock is back on sale).
    pub action: String,
    pub quantity: i64,
}

/// A blacklisted user id or IP/CIDR, as listed by the admin API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlacklistEntry {
    pub value: String,
    /// When the entry reached the edge: the first edge sync that confirmed
    /// (in its `if-none-match`) that the edge applied a state holding it.
    /// `null` while no edge has.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub reached_edge_at: Option<OffsetDateTime>,
}

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
    /// When this edge first fetched state with `rules_version` (Unix ms).
    pub rules_since_ms: i64,
    /// When this edge last synced, `200` or `304` (Unix ms).
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
}

/// Live figures of one activity, as the admin events stream sends them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityLive {
    pub id: u64,
    pub name: String,
    pub status: ActivityStatus,
    pub total_stock: i64,
    pub remaining: i64,
    pub sold: i64,
    pub live_tokens: i64,
    pub orders_by_status: Vec<StatusCount>,
    /// Accepted purchases per second over the last interval (this backend).
    pub purchases_per_sec: f64,
    /// Refused purchases and tokens per second, by error code.
    pub rejections_per_sec: Vec<RateByCode>,
}

/// A rate for one error code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateByCode {
    pub code: ErrorCode,
    pub per_sec: f64,
}

/// One message of `GET /admin/api/events` (server-sent event `snapshot`,
/// sent about once a second).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveSnapshot {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub activities: Vec<ActivityLive>,
}

/// Answer of `GET /admin/api/activities/{id}/series`: one activity's
/// purchases and refusals per bucket over the last minutes, as counted by the
/// backend that answers (like the rates of the event stream).
///
/// Buckets cover `since..until`, oldest first; a bucket in which nothing
/// happened is left out, so a missing one means zero.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivitySeries {
    pub activity_id: u64,
    pub bucket_secs: u32,
    /// Start of the first bucket covered (the window, or since this backend started).
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    /// End of the last whole bucket (the one in progress is not included).
    #[serde(with = "time::serde::rfc3339")]
    pub until: OffsetDateTime,
    pub buckets: Vec<SeriesBucket>,
}

/// What happened in one bucket of an [`ActivitySeries`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesBucket {
    /// Start of the bucket.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Accepted purchases.
    pub purchases: u64,
    /// Refused purchase and token requests, by error code (codes with none left out).
    pub rejections: Vec<CountByCode>,
    /// Units sold (the activity's `sold`) right after the last sale in the
    /// bucket; absent when it had none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sold: Option<i64>,
}

/// A count for one error code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CountByCode {
    pub code: ErrorCode,
    pub count: u64,
}

/// How an item of the production checklist stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Ok,
    Warning,
    Failing,
    /// Not probeable: an operator ticks it, with a note.
    Manual,
}

impl CheckStatus {
    pub const ALL: [CheckStatus; 4] =
        [CheckStatus::Ok, CheckStatus::Warning, CheckStatus::Failing, CheckStatus::Manual];

    /// The status as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warning => "warning",
            Self::Failing => "failing",
            Self::Manual => "manual",
        }
    }
}

/// One item of the seed's production checklist (秒杀系统性能优化检查清单).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChecklistItem {
    /// Stable id, e.g. `infra.redis_persistence`.
    pub id: String,
    /// Group id: `infrastructure`, `code`, `security`, `monitoring`, `disaster_recovery`.
    pub group: String,
    pub title_zh: String,
    pub title_en: String,
    pub status: CheckStatus,
    /// What the probe saw, or the operator's note.
    pub evidence: String,
    /// Whether an operator ticked it (manual items only).
    pub ticked: bool,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub ticked_at: Option<OffsetDateTime>,
}

/// Body of `PUT /admin/api/checklist`: tick or untick one manual item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChecklistTick {
    pub id: String,
    pub ticked: bool,
    #[serde(default)]
    pub note: String,
}

/// Answer of `GET /admin/api/activities/{id}/preflight`: is the activity
/// ready to go live, and if not, why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preflight {
    pub activity_id: u64,
    pub ready: bool,
    pub checks: Vec<PreflightCheck>,
}

/// One pre-flight check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreflightCheck {
    pub id: String,
    pub title_zh: String,
    pub title_en: String,
    pub ok: bool,
    pub detail: String,
}

/// Body of `PATCH /admin/api/activities/{id}`: the fields to change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_cents: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_stock: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_per_user: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "time::serde::rfc3339::option")]
    pub starts_at: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "time::serde::rfc3339::option")]
    pub ends_at: Option<OffsetDateTime>,
}

/// The machine-readable part of every error (`CONTRACT.md`, "Errors").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    Forbidden,
    Blacklisted,
    InvalidToken,
    NotFound,
    NotStarted,
    Ended,
    SoldOut,
    LimitExceeded,
    OrderClosed,
    RateLimited,
    Unavailable,
}

impl ErrorCode {
    /// The HTTP status the contract pairs with this code.
    pub fn http_status(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::Unauthorized => 401,
            Self::Forbidden | Self::Blacklisted | Self::InvalidToken => 403,
            Self::NotFound => 404,
            Self::NotStarted | Self::Ended | Self::SoldOut | Self::LimitExceeded | Self::OrderClosed => 409,
            Self::RateLimited => 429,
            Self::Unavailable => 503,
        }
    }

    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::Blacklisted => "blacklisted",
            Self::InvalidToken => "invalid_token",
            Self::NotFound => "not_found",
            Self::NotStarted => "not_started",
            Self::Ended => "ended",
            Self::SoldOut => "sold_out",
            Self::LimitExceeded => "limit_exceeded",
            Self::OrderClosed => "order_closed",
            Self::RateLimited => "rate_limited",
            Self::Unavailable => "unavailable",
        }
    }
}

/// Every error body: `{"code": "...", "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_follow_the_contract() {
        assert!(valid_user_id("alice_01-x"));
        assert!(valid_user_id(&"a".repeat(64)));
        for bad in ["", &"a".repeat(65), "al ice", "bob:1", "é", "a.b"] {
            assert!(!valid_user_id(bad), "{bad:?}");
        }
    }
    use time::macros::datetime;

    #[test]
    fn statuses_have_one_wire_name_each_as_serde_writes_it() {
        for s in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(OrderStatus::parse("PAID"), None);
        for s in CheckStatus::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in [ActivityStatus::Scheduled, ActivityStatus::Live, ActivityStatus::SoldOut, ActivityStatus::Ended] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }

    #[test]
    fn error_codes_serialise_as_the_contract_spells_them() {
        for code in [ErrorCode::BadRequest, ErrorCode::InvalidToken, ErrorCode::LimitExceeded, ErrorCode::Unavailable] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }

    #[test]
    fn status_follows_window_then_stock() {
        let start = datetime!(2026-11-11 00:00 UTC);
        let end = datetime!(2026-11-12 00:00 UTC);
        let before = datetime!(2026-11-10 23:59 UTC);
        let during = datetime!(2026-11-11 12:00 UTC);
        assert_eq!(ActivityStatus::at(before, start, end, 0), ActivityStatus::Scheduled);
        assert_eq!(ActivityStatus::at(during, start, end, 5), ActivityStatus::Live);
        assert_eq!(ActivityStatus::at(during, start, end, 0), ActivityStatus::SoldOut);
        assert_eq!(ActivityStatus::at(end, start, end, 5), ActivityStatus::Ended);
    }

    #[test]
    fn activity_times_are_rfc3339() {
        let a = Activity {
            id: 1,
            name: "phone".into(),
            price_cents: 100,
            total_stock: 10,
            remaining: 10,
            sold: 0,
            limit_per_user: 1,
            starts_at: datetime!(2026-11-11 00:00 UTC),
            ends_at: datetime!(2026-11-12 00:00 UTC),
            status: ActivityStatus::Live,
        };
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json["starts_at"], "2026-11-11T00:00:00Z");
        assert_eq!(json["status"], "live");
    }
}
