//! Dead letters: the way out for order events the worker could not write.
//!
//! An event goes to `queue:seckill_order_dead:{A}` only when it can never
//! become a row as it is (its fields are broken, or the database refused its
//! data `MAX_ATTEMPTS` times). Behind most of them is a buyer who was told
//! "queued" and a unit counted as sold, so an operator must settle each one,
//! in one of two ways, each exactly once:
//! - **replay** (after a fix, e.g. of the database): the order becomes the row
//!   it should have been, under the order id the buyer was given;
//! - **refund**: the unit goes back on sale through `release.lua`, whose
//!   released set makes the return happen once however often it is asked.
//!
//! The two exclude each other: an action holds a short lock on its dead
//! letter, a replay refuses an order whose stock was refunded, and a refund
//! refuses an order that has a row. Until it is settled a dead letter counts
//! in reconciliation (`dead_letters`, `dead_letter_quantity`).

use std::collections::BTreeMap;

use seckill_api::{DeadLetter, DeadLetterResolution};

use crate::clock::now_ms;
use crate::db::{Failure, classify};
use crate::order_event::parse_event;
use crate::orders::Orders;
use crate::store::stream::Entry;
use crate::store::{ReleaseOutcome, StoreError};

/// How long an action may hold its dead letter (a crashed action frees it then).
const ACTION_LOCK_MS: u64 = 30_000;

/// Why a dead letter could not be settled.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error("dead letter not found")]
    NotFound,
    #[error("another action on this dead letter is in progress")]
    Busy,
    /// The event cannot become an order as it is (its fields, or the database refusing its data).
    #[error("{0}")]
    Unusable(String),
    #[error("order {0} is already a row; it cannot be refunded from the dead letters")]
    AlreadyAnOrder(String),
    #[error("the stock of order {0} was already refunded; it cannot be replayed")]
    AlreadyRefunded(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("order database: {0}")]
    Database(#[from] sqlx::Error),
}

/// A dead letter as the API shows it.
pub fn view(activity: u64, dead: &Entry) -> DeadLetter {
    let mut fields: BTreeMap<String, String> = dead.fields.clone().into_iter().collect();
    let reason = fields.remove("dead_reason").unwrap_or_default();
    let entry_id = fields.remove("dead_entry_id").unwrap_or_else(|| dead.id.clone());
    DeadLetter {
        activity_id: activity,
        id: dead.id.clone(),
        order_id: crate::store::keys::order_id(activity, &entry_id),
        entry_id,
        reason,
        fields,
    }
}

/// The order event as it was in the order stream (its own id, its own fields).
fn original(dead: &Entry) -> Entry {
    let mut fields = dead.fields.clone();
    fields.remove("dead_reason");
    let id = fields.remove("dead_entry_id").unwrap_or_else(|| dead.id.clone());
    Entry { id, fields }
}

impl Orders {
    /// One page of dead letters, by activity then age; `after` is where the
    /// previous page stopped (`(activity, dead letter id)`).
    pub async fn dead_letter_page(
        &self,
        only: Option<u64>,
        after: Option<(u64, String)>,
        limit: usize,
    ) -> Result<(Vec<DeadLetter>, Option<(u64, String)>), StoreError> {
        let activities = match only {
            Some(a) => vec![a],
            None => self.store.activity_ids().await?,
        };
        let mut items = Vec::new();
        for a in activities {
            let start = match &after {
                Some((ca, _)) if a < *ca => continue,
                Some((ca, id)) if a == *ca => Some(id.clone()),
                _ => None,
            };
            // One more than asked, to know whether there is a next page.
            let want = limit + 1 - items.len();
            for dead in self.store.dead_letters_after(a, start.as_deref(), want).await? {
                items.push(view(a, &dead));
            }
            if items.len() > limit {
                break;
            }
        }
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|d| (d.activity_id, d.id.clone()))
        } else {
            None
        };
        Ok((items, next))
    }

    /// Writes a dead letter's order as the row it should have been.
    pub async fn replay_dead_letter(&self, a: u64, id: &str) -> Result<DeadLetterResolution, DeadLetterError> {
        self.settle(a, id, async |dead: Entry| {
            let order = parse_event(a, &original(&dead))
                .map_err(|why| DeadLetterError::Unusable(format!("the event cannot become an order: {why}")))?;
            if self.store.is_released(a, &order.order_id).await? {
                return Err(DeadLetterError::AlreadyRefunded(order.order_id));
            }
            match self.db.insert_orders(std::slice::from_ref(&order), now_ms()).await {
                Ok(()) => {}
                Err(e) if classify(&e) == Failure::Data => {
                    return Err(DeadLetterError::Unusable(format!("the database still refuses the row: {e}")));
                }
                Err(e) => return Err(e.into()),
            }
            tracing::warn!(activity = a, order = %order.order_id, "dead letter replayed into the order database");
            Ok(DeadLetterResolution { order_id: order.order_id, action: "replayed".into(), quantity: order.quantity })
        })
        .await
    }

    /// Gives a dead letter's units back to the stock, exactly once.
    pub async fn refund_dead_letter(&self, a: u64, id: &str) -> Result<DeadLetterResolution, DeadLetterError> {
        self.settle(a, id, async |dead: Entry| {
            let order = parse_event(a, &original(&dead)).map_err(|why| {
                DeadLetterError::Unusable(format!("the event names no buyer and quantity to refund: {why}"))
            })?;
            if self.db.order(&order.order_id).await?.is_some() {
                return Err(DeadLetterError::AlreadyAnOrder(order.order_id));
            }
            match self.store.release(a, &order.user_id, &order.order_id, order.quantity).await? {
                ReleaseOutcome::Released { .. } | ReleaseOutcome::AlreadyReleased => {}
                ReleaseOutcome::OverRelease => {
                    return Err(DeadLetterError::Unusable(format!(
                        "sold is below the order's quantity {}: there is nothing to refund",
                        order.quantity
                    )));
                }
                ReleaseOutcome::Rejected(r) => {
                    return Err(DeadLetterError::Unusable(format!("the release script refused: {r:?}")));
                }
            }
            tracing::warn!(activity = a, order = %order.order_id, quantity = order.quantity, "dead letter refunded");
            Ok(DeadLetterResolution { order_id: order.order_id, action: "refunded".into(), quantity: order.quantity })
        })
        .await
    }

    /// Runs `action` on dead letter `id` of activity `a` under its lock, and
    /// removes the dead letter once the action succeeded.
    async fn settle(
        &self,
        a: u64,
        id: &str,
        action: impl AsyncFnOnce(Entry) -> Result<DeadLetterResolution, DeadLetterError>,
    ) -> Result<DeadLetterResolution, DeadLetterError> {
        let lock = crate::store::keys::dead_letter_lock(a, id);
        if !self.store.try_lock(&lock, ACTION_LOCK_MS).await? {
            return Err(DeadLetterError::Busy);
        }
        let result = async {
            let dead = self.store.dead_letter_entry(a, id).await?.ok_or(DeadLetterError::NotFound)?;
            let resolution = action(dead).await?;
            self.store.remove_dead_letter(a, id).await?;
            Ok(resolution)
        }
        .await;
        if let Err(e) = self.store.unlock(&lock).await {
            tracing::warn!(error = %e, "could not free a dead letter's lock; it expires by itself");
        }
        result
    }
}
