//! Activities: what buyers list and operators create, change and check
//! before they go live.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

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

/// `GET /api/activities/{id}/challenge`: what the token request must prove
/// (see [`crate::pow`]); `bits` 0 means no proof is asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenChallenge {
    pub challenge: String,
    pub bits: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}
