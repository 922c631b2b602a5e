//! Activities in Redis: each one's hash, its stock and sold counters, its
//! listing in the index, and the restock and delete scripts that change them
//! atomically against a sale.

use std::collections::HashMap;

use super::client::{Store, StoreError, parse_int};
use super::keys;

/// An activity as stored in its Redis hash plus its two counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityRecord {
    pub id: u64,
    pub name: String,
    pub price_cents: i64,
    pub total_stock: i64,
    pub limit_per_user: i64,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
    pub remaining: i64,
    pub sold: i64,
}

/// Live counters of one activity, for the stats route and the gauges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counters {
    pub remaining: i64,
    pub sold: i64,
    pub live_tokens: i64,
    pub stream_length: i64,
}

/// An activity to create, with its window in milliseconds since the epoch.
#[derive(Debug, Clone)]
pub struct NewActivityRecord {
    pub name: String,
    pub price_cents: i64,
    pub total_stock: i64,
    pub limit_per_user: i64,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
}

/// Result of the restock script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StockChange {
    /// The total changed; this much is left to sell.
    Set { remaining: i64 },
    /// Refused: `sold` units are already sold, more than the new total.
    BelowSold { sold: i64 },
}

/// Result of the delete script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted,
    NotFound,
    /// Units are sold: the activity is ended (PATCH `ends_at`), never deleted.
    Sold(i64),
    /// Order events are still in its stream or dead-lettered.
    OrdersWaiting(i64),
}

/// The per-activity hashes of buyers and tokens (counts, order lists, tokens)
/// are kept this long after the activity's end: the scripts' `ends + 86400000`,
/// which they set when they create a hash.
const USER_COUNT_RETENTION_MS: i64 = 24 * 3600 * 1000;

impl Store {
    /// Creates an activity and pre-warms its stock; the activity is listed only
    /// once its stock, counters and order stream exist.
    pub async fn create_activity(&self, new: &NewActivityRecord) -> Result<u64, StoreError> {
        let id: u64 = self
            .bounded(|mut c| async move { redis::cmd("INCR").arg(keys::ACTIVITY_SEQ).query_async(&mut c).await })
            .await?;
        let new = new.clone();
        self.bounded(|mut c| async move {
            redis::pipe()
                .atomic()
                .cmd("HSET")
                .arg(keys::activity(id))
                .arg("id")
                .arg(id)
                .arg("name")
                .arg(&new.name)
                .arg("price_cents")
                .arg(new.price_cents)
                .arg("total_stock")
                .arg(new.total_stock)
                .arg("limit_per_user")
                .arg(new.limit_per_user)
                .arg("starts_at_ms")
                .arg(new.starts_at_ms)
                .arg("ends_at_ms")
                .arg(new.ends_at_ms)
                .ignore()
                .cmd("SET")
                .arg(keys::inventory(id))
                .arg(new.total_stock)
                .ignore()
                .cmd("SET")
                .arg(keys::sold(id))
                .arg(0)
                .ignore()
                .query_async::<()>(&mut c)
                .await
        })
        .await?;
        self.ensure_group(id).await?;
        self.bounded(|mut c| async move {
            redis::cmd("ZADD").arg(keys::ACTIVITIES).arg(id).arg(id).query_async::<()>(&mut c).await
        })
        .await?;
        Ok(id)
    }

    /// All listed activity ids, oldest first.
    pub async fn activity_ids(&self) -> Result<Vec<u64>, StoreError> {
        self.bounded(|mut c| async move {
            redis::cmd("ZRANGE").arg(keys::ACTIVITIES).arg(0).arg(-1).query_async(&mut c).await
        })
        .await
    }

    /// Every listed activity with its counters, oldest first (an id whose
    /// record is gone is skipped).
    pub async fn activities(&self) -> Result<Vec<ActivityRecord>, StoreError> {
        let mut out = Vec::new();
        for id in self.activity_ids().await? {
            if let Some(record) = self.activity(id).await? {
                out.push(record);
            }
        }
        Ok(out)
    }

    /// One activity with its counters, or `None` if unknown.
    pub async fn activity(&self, id: u64) -> Result<Option<ActivityRecord>, StoreError> {
        let (fields, remaining, sold): (HashMap<String, String>, Option<i64>, Option<i64>) = self
            .bounded(|mut c| async move {
                redis::pipe()
                    .cmd("HGETALL")
                    .arg(keys::activity(id))
                    .cmd("GET")
                    .arg(keys::inventory(id))
                    .cmd("GET")
                    .arg(keys::sold(id))
                    .query_async(&mut c)
                    .await
            })
            .await?;
        if fields.is_empty() {
            return Ok(None);
        }
        let field = |name: &str| -> Result<i64, StoreError> {
            fields
                .get(name)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| StoreError::Reply(format!("activity {id} lacks a numeric {name}")))
        };
        Ok(Some(ActivityRecord {
            id,
            name: fields.get("name").cloned().unwrap_or_default(),
            price_cents: field("price_cents")?,
            total_stock: field("total_stock")?,
            limit_per_user: field("limit_per_user")?,
            starts_at_ms: field("starts_at_ms")?,
            ends_at_ms: field("ends_at_ms")?,
            remaining: remaining.unwrap_or(0),
            sold: sold.unwrap_or(0),
        }))
    }

    /// Live counters of one activity.
    pub async fn counters(&self, id: u64, now_ms: i64) -> Result<Counters, StoreError> {
        // Counted, not swept: token.lua sweeps the expired ones, together with
        // their fields in the token hash, which a sweep here would leave behind.
        let (remaining, sold, live_tokens, stream_length): (Option<i64>, Option<i64>, i64, i64) = self
            .bounded(|mut c| async move {
                redis::pipe()
                    .cmd("GET")
                    .arg(keys::inventory(id))
                    .cmd("GET")
                    .arg(keys::sold(id))
                    .cmd("ZCOUNT")
                    .arg(keys::live_tokens(id))
                    .arg(format!("({now_ms}"))
                    .arg("+inf")
                    .cmd("XLEN")
                    .arg(keys::order_stream(id))
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(Counters { remaining: remaining.unwrap_or(0), sold: sold.unwrap_or(0), live_tokens, stream_length })
    }

    /// Sets an activity's total stock (remaining follows), refusing a total
    /// below what is already sold.
    pub async fn set_total_stock(&self, activity: u64, total: i64) -> Result<StockChange, StoreError> {
        let scripts = self.scripts.clone();
        let reply: Vec<String> = self
            .bounded(|mut c| async move {
                scripts
                    .restock
                    .key(keys::activity(activity))
                    .key(keys::inventory(activity))
                    .key(keys::sold(activity))
                    .arg(total)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        match (reply.first().map(String::as_str), reply.get(1)) {
            (Some("OK"), Some(remaining)) => Ok(StockChange::Set { remaining: parse_int(remaining)? }),
            (Some("BELOW_SOLD"), Some(sold)) => Ok(StockChange::BelowSold { sold: parse_int(sold)? }),
            _ => Err(StoreError::Reply(format!("restock: {reply:?}"))),
        }
    }

    /// Changes an activity's descriptive fields (name, price, limit, window).
    /// A new end moves the expiry of the buyers' and tokens' hashes with it,
    /// in the same transaction, so a count lives as long as the activity can
    /// still sell.
    pub async fn update_activity(&self, activity: u64, fields: Vec<(&'static str, String)>) -> Result<(), StoreError> {
        if fields.is_empty() {
            return Ok(());
        }
        let new_end: Option<i64> = fields.iter().find(|(f, _)| *f == "ends_at_ms").and_then(|(_, v)| v.parse().ok());
        self.bounded(|mut c| async move {
            let mut pipe = redis::pipe();
            pipe.atomic().cmd("HSET").arg(keys::activity(activity)).arg(&fields).ignore();
            if let Some(end) = new_end {
                for hash in [keys::user_limits, keys::user_orders, keys::user_tokens, keys::tokens] {
                    pipe.cmd("PEXPIREAT").arg(hash(activity)).arg(end + USER_COUNT_RETENTION_MS).ignore();
                }
            }
            pipe.query_async::<()>(&mut c).await
        })
        .await
    }

    /// Removes an activity that has sold nothing and has no order waiting, in
    /// one script (so no purchase can slip between the check and the delete),
    /// then unlists it. A listed id whose record is gone is skipped by every
    /// reader, so a failure between the two steps leaves nothing half-sold.
    pub async fn delete_activity(&self, activity: u64) -> Result<DeleteOutcome, StoreError> {
        let scripts = self.scripts.clone();
        let reply: Vec<String> = self
            .bounded(|mut c| async move {
                scripts
                    .delete_activity
                    .key(keys::activity(activity))
                    .key(keys::inventory(activity))
                    .key(keys::sold(activity))
                    .key(keys::live_tokens(activity))
                    .key(keys::order_stream(activity))
                    .key(keys::dead_letters(activity))
                    .key(keys::user_limits(activity))
                    .key(keys::user_orders(activity))
                    .key(keys::user_tokens(activity))
                    .key(keys::tokens(activity))
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        let outcome = match (reply.first().map(String::as_str), reply.get(1)) {
            (Some("OK"), _) => DeleteOutcome::Deleted,
            (Some("NOT_FOUND"), _) => DeleteOutcome::NotFound,
            (Some("SOLD"), Some(n)) => DeleteOutcome::Sold(parse_int(n)?),
            (Some("ORDERS_WAITING"), Some(n)) => DeleteOutcome::OrdersWaiting(parse_int(n)?),
            _ => return Err(StoreError::Reply(format!("delete_activity: {reply:?}"))),
        };
        if matches!(outcome, DeleteOutcome::Deleted | DeleteOutcome::NotFound) {
            self.unlist(activity).await?;
        }
        Ok(outcome)
    }

    /// Takes an id off the activity index (its record is gone).
    pub async fn unlist(&self, activity: u64) -> Result<(), StoreError> {
        self.bounded(|mut c| async move {
            redis::cmd("ZREM").arg(keys::ACTIVITIES).arg(activity).query_async::<()>(&mut c).await
        })
        .await
    }

    /// Whether an activity's record exists.
    pub async fn activity_exists(&self, activity: u64) -> Result<bool, StoreError> {
        self.bounded(
            |mut c| async move { redis::cmd("EXISTS").arg(keys::activity(activity)).query_async(&mut c).await },
        )
        .await
    }
}
