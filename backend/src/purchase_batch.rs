//! Group commit for purchases: the purchases of one activity that arrive
//! together go to Redis together, in one call of the purchase script.
//!
//! Why: every key of an activity shares one hash slot, so its sales run one
//! after another on one Redis thread, whatever the number of backends. What
//! bounds a hot item's sales per second is Redis's cost per sale, and a good
//! part of it is per call: parsing the command, entering the script, reading
//! the activity and its counters, writing them back. A batch pays that once.
//!
//! No purchase waits for a batch to fill. While fewer than `MAX_IN_FLIGHT`
//! calls of its activity are in Redis it leaves at once, alone; otherwise it
//! joins the activity's queue, which leaves as one batch as soon as a call
//! returns. So a quiet activity sells exactly as before, and a hot one sends
//! bigger batches the hotter it gets.
//!
//! Each call runs in a task of its own: a buyer who hangs up cannot take the
//! batch (and the other buyers' answers) down with its request.
//!
//! A stuck Redis must still fail every purchase fast, including those queued
//! behind the stuck calls: a purchase waits at most the store's timeout for
//! its answer, and one that nobody waits for any more (timed out, or the buyer
//! hung up) is dropped from the queue instead of being sent later. (A call
//! already in Redis when its buyers stop waiting may still sell, as any timed
//! out command may; the token makes the buyer's retry return that order.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::store::{Purchase, PurchaseOutcome, Store, StoreError};

/// Calls of one activity in Redis at once. More than one keeps Redis busy
/// while the backend reads a batch's answers; four measured best with 64
/// buyers' connections on 2 cores (bench/compare.sh: 24.4k purchases/s, 23.4k
/// with two), as batches stay large enough to pay off.
const MAX_IN_FLIGHT: usize = 4;
/// Purchases per call at most, so one call keeps Redis for a bounded time
/// (a few milliseconds) and its keys stay far below Lua's stack limit.
const MAX_BATCH: usize = 128;

type Answer = oneshot::Sender<Result<PurchaseOutcome, StoreError>>;

/// Hands purchases to the store, batched per activity. Cheap to clone.
#[derive(Clone)]
pub struct PurchaseBatcher {
    store: Store,
    pay_timeout_ms: u64,
    lanes: Arc<Mutex<HashMap<u64, Lane>>>,
}

/// One activity's purchases waiting for a call, and its calls in Redis.
#[derive(Default)]
struct Lane {
    waiting: Vec<(Purchase, Answer)>,
    in_flight: usize,
}

impl PurchaseBatcher {
    pub fn new(store: Store, pay_timeout_ms: u64) -> Self {
        Self { store, pay_timeout_ms, lanes: Arc::default() }
    }

    /// Buys: the outcome is the one this purchase would have had alone after
    /// the purchases that went before it.
    pub async fn purchase(&self, activity: u64, purchase: Purchase) -> Result<PurchaseOutcome, StoreError> {
        let (answer, outcome) = oneshot::channel();
        let batch = {
            let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
            let lane = lanes.entry(activity).or_default();
            lane.waiting.push((purchase, answer));
            if lane.in_flight < MAX_IN_FLIGHT {
                lane.in_flight += 1;
                Some(take_batch(lane))
            } else {
                None
            }
        };
        if let Some(batch) = batch {
            tokio::spawn(self.clone().send(activity, batch));
        }
        let timeout = self.store.timeout();
        match tokio::time::timeout(timeout, outcome).await {
            Ok(answered) => answered.map_err(|_| StoreError::Reply("the purchase batch was dropped".into()))?,
            Err(_) => Err(StoreError::Timeout(timeout)),
        }
    }

    /// Sends batches of `activity` until its queue is empty, then gives its
    /// in-flight slot back.
    async fn send(self, activity: u64, mut batch: Vec<(Purchase, Answer)>) {
        loop {
            let (purchases, answers): (Vec<Purchase>, Vec<Answer>) = batch.into_iter().unzip();
            metrics::histogram!(crate::telemetry::PURCHASE_BATCH_SIZE).record(purchases.len() as f64);
            match self.store.purchase_batch(activity, self.pay_timeout_ms, &purchases).await {
                Ok(outcomes) => {
                    // The stock gauges once per batch, not once per sale: from
                    // its latest sale (the most sold), before any buyer has
                    // its answer.
                    let latest = outcomes
                        .iter()
                        .filter_map(|outcome| match outcome {
                            PurchaseOutcome::Accepted(sale) => Some(sale),
                            _ => None,
                        })
                        .max_by_key(|sale| sale.sold);
                    if let Some(sale) = latest {
                        crate::telemetry::record_stock(activity, sale.remaining, sale.sold);
                    }
                    for (answer, outcome) in answers.into_iter().zip(outcomes) {
                        // A buyer who hung up no longer waits; the sale stands.
                        let _ = answer.send(Ok(outcome));
                    }
                }
                Err(err) => {
                    for answer in answers {
                        let _ = answer.send(Err(err.clone()));
                    }
                }
            }
            let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
            let Some(lane) = lanes.get_mut(&activity) else { return };
            batch = take_batch(lane);
            if batch.is_empty() {
                lane.in_flight -= 1;
                if lane.in_flight == 0 {
                    lanes.remove(&activity);
                }
                return;
            }
        }
    }
}

/// The oldest waiting purchases that someone still waits for, at most
/// `MAX_BATCH` of them, in arrival order.
fn take_batch(lane: &mut Lane) -> Vec<(Purchase, Answer)> {
    lane.waiting.retain(|(_, answer)| !answer.is_closed());
    let n = lane.waiting.len().min(MAX_BATCH);
    lane.waiting.drain(..n).collect()
}
