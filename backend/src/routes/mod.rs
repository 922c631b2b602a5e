//! HTTP routes, grouped by who calls them. Handlers stay thin: they parse
//! (through extractors), call the store, and shape the answer.

pub mod admin;
pub mod dashboard;
pub mod dead_letters;
pub mod edge;
pub mod health;
pub mod orders;
pub mod public;
pub mod ui;

use seckill_api::{Activity, ActivityStatus};

use crate::clock::from_ms;
use crate::store::ActivityRecord;

/// Every listed activity as the API shows it now (public and admin lists alike).
pub async fn activity_list(store: &crate::store::Store) -> Result<Vec<Activity>, crate::error::ApiError> {
    let now = crate::clock::now_ms();
    Ok(store.activities().await?.into_iter().map(|record| activity_view(record, now)).collect())
}

/// An activity as the API shows it at `now_ms`.
pub fn activity_view(r: ActivityRecord, now_ms: i64) -> Activity {
    let (starts_at, ends_at) = (from_ms(r.starts_at_ms), from_ms(r.ends_at_ms));
    Activity {
        id: r.id,
        name: r.name,
        price_cents: r.price_cents,
        total_stock: r.total_stock,
        remaining: r.remaining,
        sold: r.sold,
        limit_per_user: r.limit_per_user,
        starts_at,
        ends_at,
        status: ActivityStatus::at(from_ms(now_ms), starts_at, ends_at, r.remaining),
    }
}
