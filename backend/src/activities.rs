//! Activities as operators manage them and buyers see them: the checks a
//! new or changed activity must pass (`seckill_api::limits`), creating it
//! with its stock warmed, changing it without selling below what is sold,
//! deleting only what never sold, and the view the API shows at a moment.

use seckill_api::limits::{MAX_LIMIT_PER_USER, MAX_NAME_CHARS, MAX_PRICE_CENTS, MAX_STOCK};
use seckill_api::{Activity, ActivityPatch, ActivityStatus, NewActivity};

use crate::clock::{from_ms, now_ms, to_ms};
use crate::store::{ActivityRecord, DeleteOutcome, NewActivityRecord, StockChange, Store, StoreError};
use crate::telemetry;

/// What a shared cache (the edge, a CDN) may keep of an activity page: a 200
/// for one second, so that a crowd refreshing the page reaches the backend
/// about once a second per edge, and the stock it shows is that fresh;
/// anything else (404, 503, 405) never. Nothing in a page depends on who asks
/// (no `vary`).
pub const PAGE_CACHE_CONTROL: &str = "public, max-age=1";

/// An activity refused before it is stored: the first field that is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {why}")]
pub struct InvalidActivity {
    pub field: &'static str,
    pub why: String,
}

/// Why an activity was not read, created, changed or deleted.
#[derive(Debug, thiserror::Error)]
pub enum ActivityError {
    #[error("activity not found")]
    NotFound,
    #[error(transparent)]
    Invalid(#[from] InvalidActivity),
    #[error("total_stock: {sold} are already sold; the total cannot be lower")]
    BelowSold { sold: i64 },
    #[error("activity {id} has sold {sold}; end it (PATCH ends_at) instead of deleting it")]
    HasSales { id: u64, sold: i64 },
    #[error("activity {id} has {waiting} order events not yet written or dead-lettered; settle them first")]
    OrdersWaiting { id: u64, waiting: i64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks a new activity (or a changed one, merged), naming the first field that is wrong.
pub fn validate(new: &NewActivity) -> Result<(), InvalidActivity> {
    let invalid = |field, why: String| Err(InvalidActivity { field, why });
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return invalid("name", format!("1 to {MAX_NAME_CHARS} characters"));
    }
    if !(0..=MAX_PRICE_CENTS).contains(&new.price_cents) {
        return invalid("price_cents", format!("must be between 0 and {MAX_PRICE_CENTS}"));
    }
    if !(0..=MAX_STOCK).contains(&new.total_stock) {
        return invalid("total_stock", format!("must be between 0 and {MAX_STOCK}"));
    }
    if !(1..=MAX_LIMIT_PER_USER).contains(&new.limit_per_user) {
        return invalid("limit_per_user", format!("must be between 1 and {MAX_LIMIT_PER_USER}"));
    }
    if new.ends_at <= new.starts_at {
        return invalid("ends_at", "must be after starts_at".into());
    }
    Ok(())
}

/// An activity as the API shows it at `now_ms`.
pub fn view(r: ActivityRecord, now_ms: i64) -> Activity {
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

/// Every listed activity as the API shows it now (public and admin lists alike).
pub async fn list(store: &Store) -> Result<Vec<Activity>, StoreError> {
    let now = now_ms();
    Ok(store.activities().await?.into_iter().map(|record| view(record, now)).collect())
}

/// One activity's record, or `NotFound`.
pub async fn record(store: &Store, id: u64) -> Result<ActivityRecord, ActivityError> {
    store.activity(id).await?.ok_or(ActivityError::NotFound)
}

/// One activity as the API shows it now.
pub async fn get(store: &Store, id: u64) -> Result<Activity, ActivityError> {
    Ok(view(record(store, id).await?, now_ms()))
}

/// Creates an activity with its stock warmed into Redis.
pub async fn create(store: &Store, new: &NewActivity) -> Result<Activity, ActivityError> {
    validate(new)?;
    let record = NewActivityRecord {
        name: new.name.trim().to_owned(),
        price_cents: new.price_cents,
        total_stock: new.total_stock,
        limit_per_user: new.limit_per_user,
        starts_at_ms: to_ms(new.starts_at),
        ends_at_ms: to_ms(new.ends_at),
    };
    let id = store.create_activity(&record).await?;
    let created = self::record(store, id).await?;
    telemetry::record_stock(id, created.remaining, created.sold);
    tracing::info!(id, name = %created.name, stock = created.total_stock, "activity created and stock warmed");
    Ok(view(created, now_ms()))
}

/// Changes an activity: the merged result is checked like a new one, and a
/// new total stock may not go below what is already sold.
pub async fn update(store: &Store, id: u64, patch: &ActivityPatch) -> Result<Activity, ActivityError> {
    let current = record(store, id).await?;
    let merged = NewActivity {
        name: patch.name.clone().unwrap_or_else(|| current.name.clone()),
        price_cents: patch.price_cents.unwrap_or(current.price_cents),
        total_stock: patch.total_stock.unwrap_or(current.total_stock),
        limit_per_user: patch.limit_per_user.unwrap_or(current.limit_per_user),
        starts_at: patch.starts_at.unwrap_or_else(|| from_ms(current.starts_at_ms)),
        ends_at: patch.ends_at.unwrap_or_else(|| from_ms(current.ends_at_ms)),
    };
    validate(&merged)?;
    if let Some(total) = patch.total_stock
        && let StockChange::BelowSold { sold } = store.set_total_stock(id, total).await?
    {
        return Err(ActivityError::BelowSold { sold });
    }
    let mut fields = Vec::new();
    if patch.name.is_some() {
        fields.push(("name", merged.name.trim().to_owned()));
    }
    if patch.price_cents.is_some() {
        fields.push(("price_cents", merged.price_cents.to_string()));
    }
    if patch.limit_per_user.is_some() {
        fields.push(("limit_per_user", merged.limit_per_user.to_string()));
    }
    if patch.starts_at.is_some() {
        fields.push(("starts_at_ms", to_ms(merged.starts_at).to_string()));
    }
    if patch.ends_at.is_some() {
        fields.push(("ends_at_ms", to_ms(merged.ends_at).to_string()));
    }
    store.update_activity(id, fields).await?;
    let updated = record(store, id).await?;
    telemetry::record_stock(id, updated.remaining, updated.sold);
    tracing::info!(id, ?patch, "activity changed");
    Ok(view(updated, now_ms()))
}

/// Deletes an activity that has sold nothing; one with sales is ended instead
/// (PATCH its `ends_at`), so its orders keep their activity. The check and the
/// delete are one script: a purchase cannot land between them.
pub async fn delete(store: &Store, id: u64) -> Result<(), ActivityError> {
    match store.delete_activity(id).await? {
        DeleteOutcome::Deleted => {
            tracing::info!(id, "activity deleted");
            Ok(())
        }
        DeleteOutcome::NotFound => Err(ActivityError::NotFound),
        DeleteOutcome::Sold(sold) => Err(ActivityError::HasSales { id, sold }),
        DeleteOutcome::OrdersWaiting(waiting) => Err(ActivityError::OrdersWaiting { id, waiting }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn new_activity() -> NewActivity {
        NewActivity {
            name: "phone".into(),
            price_cents: 100,
            total_stock: 10,
            limit_per_user: 1,
            starts_at: datetime!(2026-11-11 00:00 UTC),
            ends_at: datetime!(2026-11-12 00:00 UTC),
        }
    }

    #[test]
    fn validation_names_the_field() {
        assert!(validate(&new_activity()).is_ok());
        type Spoil = fn(&mut NewActivity);
        let cases: [(Spoil, &str); 7] = [
            (|a| a.total_stock = -1, "total_stock"),
            (|a| a.limit_per_user = 0, "limit_per_user"),
            (|a| a.ends_at = a.starts_at, "ends_at"),
            (|a| a.name = "  ".into(), "name"),
            (|a| a.price_cents = -5, "price_cents"),
            (|a| a.price_cents = MAX_PRICE_CENTS + 1, "price_cents"),
            (|a| a.limit_per_user = MAX_LIMIT_PER_USER + 1, "limit_per_user"),
        ];
        for (spoil, field) in cases {
            let mut a = new_activity();
            spoil(&mut a);
            let err = validate(&a).unwrap_err();
            assert_eq!(err.field, field, "{err}");
        }
    }
}
