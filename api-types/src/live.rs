//! The dashboard's live figures: the events stream's snapshots and an
//! activity's per-second series.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::activity::ActivityStatus;
use crate::error::ErrorCode;
use crate::order::StatusCount;

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
