//! Reconciliation: does Redis `sold` match what the stream, the dead letters
//! and the order database account for?
//!
//! Redis is read in one MULTI (counters, stream, dead letters, the stream's
//! last id); the database is then read only up to that last id, so sales made
//! after the snapshot do not show up as drift. A background task recomputes
//! every activity periodically, publishes the drift as a metric, and logs when
//! a drift appears (seen twice in a row, so an order caught mid-release does
//! not raise a false alarm) and when it clears.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use seckill_api::{Reconciliation, StatusCount};

use crate::error::ApiError;
use crate::orders::Orders;
use crate::stream::parse_event;

/// Dead letters included in a reconciliation answer.
const DEAD_LETTER_SAMPLES: usize = 20;

/// Reconciles one activity whose total stock is `total_stock`.
pub async fn reconcile(orders: &Orders, activity: u64, total_stock: i64) -> Result<Reconciliation, ApiError> {
    let snap = orders.store.stream_snapshot(activity).await?;
    let parsed: Vec<_> = snap.entries.iter().filter_map(|e| parse_event(activity, e).ok()).collect();
    let ids: Vec<String> = parsed.iter().map(|o| o.order_id.clone()).collect();
    let in_db: HashSet<String> = orders.db.existing(&ids).await?.into_iter().collect();
    let waiting: Vec<_> = parsed.iter().filter(|o| !in_db.contains(&o.order_id)).collect();
    let stream_quantity: i64 = waiting.iter().map(|o| o.quantity).sum();
    let dead_quantity: i64 = snap
        .dead
        .iter()
        .filter_map(|e| e.fields.get("quantity").and_then(|q| q.parse::<i64>().ok()))
        .filter(|q| *q > 0)
        .sum();
    let totals = orders.db.activity_totals(activity, snap.last_event_seq).await?;
    let accounted = totals.holding_quantity + totals.unreleased_quantity + stream_quantity + dead_quantity;
    let drift = snap.sold - accounted;
    let invariant_ok = snap.remaining + snap.sold == total_stock;
    Ok(Reconciliation {
        activity_id: activity,
        total_stock,
        redis_remaining: snap.remaining,
        redis_sold: snap.sold,
        invariant_ok,
        stream_orders: waiting.len() as i64,
        stream_quantity,
        stream_pending: snap.pending,
        dead_letters: snap.dead.len() as i64,
        dead_letter_quantity: dead_quantity,
        db_orders: totals.orders,
        db_holding_quantity: totals.holding_quantity,
        db_unreleased_quantity: totals.unreleased_quantity,
        db_orders_by_status: totals
            .by_status
            .into_iter()
            .map(|(status, count)| StatusCount { status, count })
            .collect(),
        drift,
        ok: drift == 0 && invariant_ok && snap.dead.is_empty(),
        dead_letter_samples: snap
            .dead
            .iter()
            .take(DEAD_LETTER_SAMPLES)
            .map(|e| crate::dead_letters::view(activity, e))
            .collect(),
    })
}

/// Reconciles every activity every `every`, publishing metrics and logging drift.
pub fn spawn_reconciler(orders: Orders, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last: HashMap<u64, i64> = HashMap::new();
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let Ok(ids) = orders.store.activity_ids().await else { continue };
            for a in ids {
                let Ok(Some(activity)) = orders.store.activity(a).await else { continue };
                let Ok(r) = reconcile(&orders, a, activity.total_stock).await else { continue };
                publish(&r);
                let previous = last.insert(a, r.drift).unwrap_or(0);
                if r.drift != 0 && previous == r.drift {
                    tracing::warn!(
                        activity = a,
                        drift = r.drift,
                        redis_sold = r.redis_sold,
                        db_holding = r.db_holding_quantity,
                        stream = r.stream_quantity,
                        dead = r.dead_letter_quantity,
                        "reconciliation drift: redis sold differs from stream + dead letters + order db"
                    );
                } else if r.drift == 0 && previous != 0 {
                    tracing::info!(activity = a, "reconciliation drift cleared");
                }
            }
        }
    })
}

/// Publishes one reconciliation (and the stream's lag) as gauges.
pub fn publish(r: &Reconciliation) {
    let id = r.activity_id.to_string();
    metrics::gauge!("seckill_reconciliation_drift", "activity" => id.clone()).set(r.drift as f64);
    metrics::gauge!("seckill_stream_lag", "activity" => id.clone()).set(r.stream_orders as f64);
    metrics::gauge!("seckill_stream_pending", "activity" => id.clone()).set(r.stream_pending as f64);
    metrics::gauge!("seckill_dead_letters", "activity" => id.clone()).set(r.dead_letters as f64);
    for s in &r.db_orders_by_status {
        metrics::gauge!("seckill_orders", "activity" => id.clone(), "status" => s.status.as_str()).set(s.count as f64);
    }
}
