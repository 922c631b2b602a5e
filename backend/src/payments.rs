//! Payment callbacks, from the provider's post to the order being paid.
//!
//! The provider's callback is checked (its signature, its fields, the
//! activity its order belongs to) and appended to the activity's payment
//! stream (`queue:seckill_payment:{A}`); the answer is `202` at once, so a
//! provider is never held up by the order database. The applier, in the
//! worker role, reads every payment stream through its consumer group and
//! applies each callback exactly once (`Orders::apply_payment`); an entry is
//! acknowledged only once applied, so a crash or an outage re-delivers it,
//! and applying it again finds its record and changes nothing.

use std::time::Duration;

use seckill_api::payment::PaymentCallback;
use tokio::task::JoinHandle;

use crate::clock::to_ms;
use crate::db::PaymentRecord;
use crate::orders::{OrderError, Orders};
use crate::store::stream::Entry;
use crate::store::{Queue, StoreError, keys};

/// Why a callback was refused at the door.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error("{0}")]
    Invalid(String),
    #[error("activity {0} not found")]
    UnknownActivity(u64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks `callback` and queues it on its activity's payment stream.
pub async fn accept(orders: &Orders, callback: &PaymentCallback) -> Result<(), CallbackError> {
    let plausible_id = |id: &str| {
        (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b))
    };
    if !plausible_id(&callback.payment_id) {
        return Err(CallbackError::Invalid("payment_id: 1-64 characters of [A-Za-z0-9_.:-]".into()));
    }
    let Some((a, _)) = keys::parse_order_id(&callback.order_id).filter(|_| callback.order_id.len() <= 64) else {
        return Err(CallbackError::Invalid("order_id: not an order id this system issued".into()));
    };
    if !(1..=1_000_000_000_000).contains(&callback.amount_cents) {
        return Err(CallbackError::Invalid("amount_cents: a positive number of cents".into()));
    }
    if !orders.store.activity_exists(a).await? {
        return Err(CallbackError::UnknownActivity(a));
    }
    let fields = [
        ("payment_id", callback.payment_id.clone()),
        ("order_id", callback.order_id.clone()),
        ("amount_cents", callback.amount_cents.to_string()),
        ("paid_at_ms", to_ms(callback.paid_at).to_string()),
    ];
    orders.store.add_payment(a, &fields).await?;
    Ok(())
}

/// A queued callback as the applier reads it back.
fn record(entry: &Entry) -> Option<PaymentRecord> {
    let field = |name: &str| entry.fields.get(name).cloned();
    Some(PaymentRecord {
        payment_id: field("payment_id")?,
        order_id: field("order_id")?,
        amount_cents: field("amount_cents")?.parse().ok()?,
        paid_at_ms: field("paid_at_ms")?.parse().ok()?,
    })
}

/// How the applier paces itself: a callback waits at most this long.
const IDLE_POLL: Duration = Duration::from_secs(1);
const BATCH: usize = 100;
/// Entries another applier left unacknowledged this long are taken over.
const CLAIM_IDLE_MS: u64 = 30_000;

/// Applies every activity's payment callbacks until aborted.
pub fn spawn_applier(orders: Orders, consumer: String) -> JoinHandle<()> {
    tokio::spawn(async move {
        tracing::info!(consumer = %consumer, "payment applier started");
        let mut last_claim = tokio::time::Instant::now();
        loop {
            // Own and abandoned pending entries (a failed apply, a dead applier) now and then.
            let claim = last_claim.elapsed() >= Duration::from_millis(CLAIM_IDLE_MS / 2);
            if claim {
                last_claim = tokio::time::Instant::now();
            }
            match round(&orders, &consumer, claim).await {
                Ok(0) => tokio::time::sleep(IDLE_POLL).await,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "payment applier waits for its dependency");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    })
}

/// One pass over every activity's payment stream: on `claim` rounds own
/// pending entries (a failed apply) and entries idle elsewhere, then new
/// ones. An activity nobody paid for yet has no stream and is skipped.
/// Returns how many were applied.
async fn round(orders: &Orders, consumer: &str, claim: bool) -> Result<usize, OrderError> {
    let store = &orders.store;
    let mut applied = 0;
    for a in store.activity_ids().await? {
        let mut entries = Vec::new();
        if claim {
            match store.read_group_of(Queue::Payments, a, consumer, true, BATCH).await {
                Err(e) if e.is_nogroup() => continue,
                read => entries = read?,
            }
            entries.extend(store.autoclaim_of(Queue::Payments, a, consumer, CLAIM_IDLE_MS, BATCH).await?);
        }
        if entries.is_empty() {
            match store.read_group_of(Queue::Payments, a, consumer, false, BATCH).await {
                Err(e) if e.is_nogroup() => continue,
                read => entries = read?,
            }
        }
        entries.dedup_by(|x, y| x.id == y.id);
        for entry in entries {
            match record(&entry) {
                Some(payment) => {
                    orders.apply_payment(&payment).await?;
                }
                // Checked at the door, so only a hand-made entry is malformed.
                None => tracing::error!(activity = a, entry = %entry.id, "malformed payment entry dropped"),
            }
            store.ack_delete_of(Queue::Payments, a, std::slice::from_ref(&entry.id)).await?;
            applied += 1;
        }
    }
    Ok(applied)
}
