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

use crate::db::{ActivityTotals, NewOrder};
use crate::dependency::DependencyError;
use crate::order_event::parse_event;
use crate::orders::Orders;
use crate::store::stream::StreamSnapshot;

/// Dead letters included in a reconciliation answer.
const DEAD_LETTER_SAMPLES: usize = 20;

/// Everything one reconciliation reads, at one instant.
#[derive(Debug, Clone)]
pub struct Readings {
    pub activity: u64,
    pub total_stock: i64,
    /// Redis's counters, its stream's entries and dead letters (one MULTI).
    pub stream: StreamSnapshot,
    /// The stream's orders that are not rows yet (the rest were written
    /// between the snapshot and the database read).
    pub waiting: Vec<NewOrder>,
    /// The order database up to the snapshot's last event.
    pub db: ActivityTotals,
}

/// Reads one activity whose total stock is `total_stock`, and accounts for it.
pub async fn reconcile(orders: &Orders, activity: u64, total_stock: i64) -> Result<Reconciliation, DependencyError> {
    let stream = orders.store.stream_snapshot(activity).await?;
    let parsed: Vec<_> = stream.entries.iter().filter_map(|e| parse_event(activity, e).ok()).collect();
    let ids: Vec<String> = parsed.iter().map(|o| o.order_id.clone()).collect();
    let in_db: HashSet<String> = orders.db.existing(&ids).await?.into_iter().collect();
    let waiting = parsed.into_iter().filter(|o| !in_db.contains(&o.order_id)).collect();
    let db = orders.db.activity_totals(activity, stream.last_event_seq).await?;
    Ok(account(Readings { activity, total_stock, stream, waiting, db }))
}

/// The arithmetic: every unit Redis sold is held by an order row (pending or
/// paid), on its way back from a closed one, waiting in the stream, or in a
/// dead letter; `drift` is what none of them accounts for.
pub fn account(r: Readings) -> Reconciliation {
    let (snap, totals) = (&r.stream, &r.db);
    let stream_quantity: i64 = r.waiting.iter().map(|o| o.quantity).sum();
    let dead_quantity: i64 = snap
        .dead
        .iter()
        .filter_map(|e| e.fields.get("quantity").and_then(|q| q.parse::<i64>().ok()))
        .filter(|q| *q > 0)
        .sum();
    let accounted = totals.holding_quantity + totals.unreleased_quantity + stream_quantity + dead_quantity;
    let drift = snap.sold - accounted;
    let invariant_ok = snap.remaining + snap.sold == r.total_stock;
    Reconciliation {
        activity_id: r.activity,
        total_stock: r.total_stock,
        redis_remaining: snap.remaining,
        redis_sold: snap.sold,
        invariant_ok,
        stream_orders: r.waiting.len() as i64,
        stream_quantity,
        stream_pending: snap.pending,
        dead_letters: snap.dead.len() as i64,
        dead_letter_quantity: dead_quantity,
        db_orders: totals.orders,
        db_holding_quantity: totals.holding_quantity,
        db_unreleased_quantity: totals.unreleased_quantity,
        db_orders_by_status: totals.by_status.iter().map(|&(status, count)| StatusCount { status, count }).collect(),
        drift,
        ok: drift == 0 && invariant_ok && snap.dead.is_empty(),
        dead_letter_samples: snap
            .dead
            .iter()
            .take(DEAD_LETTER_SAMPLES)
            .map(|e| crate::dead_letters::view(r.activity, e))
            .collect(),
    }
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

#[cfg(test)]
mod tests {
    use seckill_api::OrderStatus;

    use super::*;
    use crate::store::stream::Entry;

    /// Activity 7: 100 units, of which Redis sold `sold`.
    fn readings(sold: i64) -> Readings {
        Readings {
            activity: 7,
            total_stock: 100,
            stream: StreamSnapshot {
                remaining: 100 - sold,
                sold,
                last_event_seq: 0,
                entries: Vec::new(),
                dead: Vec::new(),
                pending: 0,
            },
            waiting: Vec::new(),
            db: ActivityTotals::default(),
        }
    }

    fn waiting(quantity: i64) -> NewOrder {
        NewOrder {
            order_id: format!("7-1-{quantity}"),
            activity_id: 7,
            user_id: "alice".into(),
            quantity,
            amount_cents: 100 * quantity,
            created_at_ms: 1,
            pay_deadline_ms: 2,
            event_seq: 1,
        }
    }

    fn dead(quantity: &str) -> Entry {
        Entry { id: "1-0".into(), fields: [("quantity".to_string(), quantity.to_string())].into() }
    }

    #[test]
    fn nothing_sold_is_in_balance() {
        let r = account(readings(0));
        assert_eq!((r.drift, r.invariant_ok, r.ok), (0, true, true));
    }

    #[test]
    fn every_sold_unit_is_a_row_a_release_in_flight_the_stream_or_a_dead_letter() {
        let mut r = readings(10);
        r.db = ActivityTotals {
            orders: 3,
            holding_quantity: 4,
            unreleased_quantity: 1,
            by_status: vec![(OrderStatus::Paid, 2), (OrderStatus::Cancelled, 1)],
        };
        r.waiting = vec![waiting(2), waiting(1)];
        r.stream.dead = vec![dead("2")];
        let r = account(r);
        assert_eq!((r.stream_orders, r.stream_quantity, r.dead_letters, r.dead_letter_quantity), (2, 3, 1, 2));
        assert_eq!(r.drift, 0);
        assert!(r.invariant_ok);
        assert!(!r.ok, "a dead letter needs an operator even when it accounts for its units");
        assert_eq!(r.dead_letter_samples.len(), 1);
        assert_eq!(r.db_orders_by_status.len(), 2);
    }

    #[test]
    fn a_unit_sold_and_accounted_nowhere_is_drift() {
        let mut r = readings(5);
        r.db.holding_quantity = 3;
        let r = account(r);
        assert_eq!(r.drift, 2);
        assert!(!r.ok);
        let mut over = readings(1);
        over.db.holding_quantity = 2;
        assert_eq!(account(over).drift, -1, "more accounted than sold is drift too");
    }

    #[test]
    fn a_dead_letter_without_a_usable_quantity_counts_no_units() {
        let mut r = readings(0);
        r.stream.dead = vec![dead("-3"), dead("abc"), dead("0")];
        let r = account(r);
        assert_eq!((r.dead_letters, r.dead_letter_quantity, r.drift), (3, 0, 0));
    }

    #[test]
    fn counters_that_do_not_add_up_to_the_stock_break_the_invariant() {
        let mut r = readings(4);
        r.stream.remaining = 97;
        r.db.holding_quantity = 4;
        let r = account(r);
        assert_eq!((r.drift, r.invariant_ok, r.ok), (0, false, false));
    }
}
