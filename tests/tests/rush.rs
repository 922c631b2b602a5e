//! The flash-sale rush: 2,000 concurrent buyers against 100 units.
//!
//! Several hundred distinct users, some retrying their purchase with the same
//! token, some sending forged tokens or other users' tokens. Whatever the
//! interleaving: exactly the stock is sold, nobody passes the per-user limit,
//! `inventory + sold == total` at every sampled instant, and every accepted
//! purchase has exactly one order event.
//!
//! On a slow or busy machine a Redis call can outlast the backend's store
//! timeout, and the buyer gets `503 unavailable`; buyers then do what the
//! contract allows and ask again with the same token. What must hold holds
//! whatever the timing: a purchase that did happen before its timeout answers
//! the retry with the same order, never a second sale.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use seckill_api::OrderStatus;
use seckill_backend::db::OrderFilter;
use seckill_backend::store::Store;
use seckill_backend::store::keys;
use seckill_backend::worker::{OrderWorker, OrderWorkerConfig};
use seckill_tests::{ActivitySpec, Backend, RedisServer, bought, eventually, get_int};
use serde_json::{Value, json};
use tokio::sync::Mutex;

const BUYERS: usize = 2_000;
const USERS: usize = 400;
const STOCK: i64 = 100;
const LIMIT: i64 = 2;

#[derive(Default)]
struct Ledger {
    /// order id -> user, from every 202 answer. Buyers of one user share that
    /// user's token, so two of them may get the same order back (a replay).
    accepted: HashMap<String, String>,
    /// tokens any buyer was issued, for the thieves to try.
    seen_tokens: Vec<(String, String)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_thousand_buyers_never_oversell() {
    let redis = RedisServer::start().unwrap();
    // The API alone first, so the raw order events can be checked; a worker drains them after.
    let backend = Arc::new(Backend::start_with(&redis.url(), &["--role", "api"]).await.unwrap());
    let a = backend.create_activity(ActivitySpec::live(STOCK, LIMIT)).await;

    // Sample the invariant while the rush runs (MGET reads both keys atomically).
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        let mut conn = redis.conn().await;
        tokio::spawn(async move {
            let mut samples = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let (inv, sold): (i64, i64) =
                    redis::cmd("MGET").arg(keys::inventory(a)).arg(keys::sold(a)).query_async(&mut conn).await.unwrap();
                assert_eq!(inv + sold, STOCK, "invariant broken: inventory {inv} + sold {sold}");
                assert!(inv >= 0, "inventory went negative: {inv}");
                samples += 1;
                // Pace the sampler so that it observes the rush without starving it.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            samples
        })
    };

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let buyers = (0..BUYERS).map(|i| {
        let backend = backend.clone();
        let ledger = ledger.clone();
        tokio::spawn(async move { buyer(i, &backend, a, &ledger).await })
    });
    for result in futures::future::join_all(buyers).await {
        result.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let samples = sampler.await.unwrap();
    assert!(samples > 10, "the sampler must have run during the rush ({samples} samples)");

    let mut conn = redis.conn().await;
    assert_eq!(get_int(&mut conn, &keys::sold(a)).await, STOCK, "exactly the stock is sold");
    assert_eq!(get_int(&mut conn, &keys::inventory(a)).await, 0);

    // Exactly one order event per accepted order, for the user it was sold to.
    let ledger = ledger.lock().await;
    let stream: redis::streams::StreamRangeReply =
        redis::cmd("XRANGE").arg(keys::order_stream(a)).arg("-").arg("+").query_async(&mut conn).await.unwrap();
    assert_eq!(stream.ids.len(), ledger.accepted.len(), "one event per accepted order");
    let mut seen = HashSet::new();
    let mut per_user: HashMap<String, i64> = HashMap::new();
    for entry in &stream.ids {
        let order = keys::order_id(a, &entry.id);
        assert!(seen.insert(order.clone()), "order {order} has two events");
        let user = ledger.accepted.get(&order).unwrap_or_else(|| panic!("event for unknown order {order}"));
        assert_eq!(&entry.get::<String>("user_id").unwrap(), user);
        *per_user.entry(user.clone()).or_default() += entry.get::<i64>("quantity").unwrap();
    }
    assert_eq!(per_user.values().sum::<i64>(), STOCK, "the order events account for every unit sold");
    for (user, units) in &per_user {
        assert!(*units <= LIMIT, "{user} bought {units} > limit {LIMIT}");
        assert_eq!(bought(&mut conn, a, user).await, *units);
    }

    // Part 2: a worker drains the stream into the order database.
    let db = backend.db().await;
    let store = Store::connect(&redis.url(), Duration::from_secs(2)).await.unwrap();
    let worker = OrderWorker::new(store, db.clone(), "rush-worker", OrderWorkerConfig::default()).spawn();
    eventually(Duration::from_secs(30), "the worker to drain the stream", || {
        let mut conn = conn.clone();
        async move {
            let len: i64 = redis::cmd("XLEN").arg(keys::order_stream(a)).query_async(&mut conn).await.unwrap();
            (len == 0).then_some(())
        }
    })
    .await;
    worker.abort();
    let filter = OrderFilter { activity_id: Some(a), ..OrderFilter::default() };
    let (rows, more) = db.orders(&filter, None, 500).await.unwrap();
    assert!(more.is_none());
    assert_eq!(rows.len(), ledger.accepted.len(), "one row per accepted purchase");
    let mut rows_per_user: HashMap<String, i64> = HashMap::new();
    for row in &rows {
        assert_eq!(ledger.accepted.get(&row.order_id), Some(&row.user_id), "row {} matches its sale", row.order_id);
        assert_eq!(row.status, OrderStatus::PendingPayment);
        *rows_per_user.entry(row.user_id.clone()).or_default() += row.quantity;
    }
    assert_eq!(rows_per_user, per_user, "row quantities match the sales, user by user");
    assert_eq!(rows.iter().map(|r| r.quantity).sum::<i64>(), get_int(&mut conn, &keys::sold(a)).await);
}

/// One buyer: token, purchase (sometimes retried, sometimes with a stolen or
/// forged token), until they hold an order or the stock is gone.
async fn buyer(i: usize, backend: &Backend, a: u64, ledger: &Mutex<Ledger>) {
    let user = format!("user-{}", i % USERS);
    let quantity = if i.is_multiple_of(3) { 2 } else { 1 };
    for _attempt in 0..200 {
        let (status, body) = backend.token_retrying(a, &user).await;
        match (status, code(&body)) {
            (200, _) => {}
            (409, "sold_out" | "limit_exceeded") => return,
            (429, "rate_limited") => {
                // Tokens cover the remaining stock; wait for one to be used.
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
            other => panic!("unexpected token answer {other:?}: {body}"),
        }
        let token = body["token"].as_str().unwrap().to_owned();
        ledger.lock().await.seen_tokens.push((user.clone(), token.clone()));

        if i % 10 == 1 {
            // A forger: a well-formed token nobody issued.
            let forged = format!("{:032x}", i as u128 * 7919);
            let (status, body) = backend.purchase_retrying(a, &user, &forged, json!(quantity)).await;
            assert_eq!((status, code(&body)), (403, "invalid_token"), "{body}");
        }
        if i % 10 == 2 {
            // A thief: someone else's token.
            let stolen = ledger.lock().await.seen_tokens.iter().find(|(u, _)| *u != user).cloned();
            if let Some((_, t)) = stolen {
                let (status, body) = backend.purchase_retrying(a, &user, &t, json!(1)).await;
                assert_eq!((status, code(&body)), (403, "invalid_token"), "{body}");
            }
        }

        let (status, body) = backend.purchase_retrying(a, &user, &token, json!(quantity)).await;
        match (status, code(&body)) {
            (202, _) => {
                let order = body["order_id"].as_str().unwrap().to_owned();
                if i.is_multiple_of(4) {
                    // A client that timed out retries with the same token: same order.
                    let (s2, b2) = backend.purchase_retrying(a, &user, &token, json!(quantity)).await;
                    assert_eq!(s2, 202, "{b2}");
                    assert_eq!(b2["order_id"], order.as_str(), "a retry must return the same order");
                }
                let mut ledger = ledger.lock().await;
                let owner = ledger.accepted.entry(order.clone()).or_insert_with(|| user.clone());
                assert_eq!(owner, &user, "order {order} was given to two users");
                return;
            }
            (409, "sold_out" | "limit_exceeded") => return,
            // Another buyer of the same user consumed their shared token first.
            (403, "invalid_token") => continue,
            other => panic!("unexpected purchase answer {other:?}: {body}"),
        }
    }
    panic!("buyer {i} never finished");
}

fn code(body: &Value) -> &str {
    body["code"].as_str().unwrap_or("")
}
