//! Every branch of the three Lua scripts, run by a real redis-server through
//! the backend's own `Store`, with the clock passed in so windows and expiry
//! are exact.

use std::time::Duration;

use seckill_backend::store::keys;
use seckill_backend::store::{
    NewActivityRecord, Purchase, PurchaseOutcome, PurchaseRequest, ReleaseOutcome, ScriptRefusal, Store, TokenOutcome,
};
use seckill_tests::{RedisServer, bought, forge_token, get_int};

const T0: i64 = 1_800_000_000_000; // activity start, ms
const T1: i64 = T0 + 3_600_000; // activity end
const NOW: i64 = T0 + 1_000;
const TTL: u64 = 60_000;
const FACTOR: u64 = 1500;
const PAY: u64 = 900_000;

struct Fixture {
    _redis: RedisServer,
    redis: redis::aio::MultiplexedConnection,
    store: Store,
}

async fn fixture() -> Fixture {
    let server = RedisServer::start().unwrap();
    let store = Store::connect(&server.url(), Duration::from_secs(2)).await.unwrap();
    let redis = server.conn().await;
    Fixture { _redis: server, redis, store }
}

async fn activity(store: &Store, stock: i64, limit: i64) -> u64 {
    store
        .create_activity(&NewActivityRecord {
            name: "phone".into(),
            price_cents: 250,
            total_stock: stock,
            limit_per_user: limit,
            starts_at_ms: T0,
            ends_at_ms: T1,
        })
        .await
        .unwrap()
}

async fn token(store: &Store, a: u64, user: &str, now: i64) -> TokenOutcome {
    store.issue_token(a, user, now, TTL, FACTOR).await.unwrap()
}

async fn issued(store: &Store, a: u64, user: &str) -> String {
    match token(store, a, user, NOW).await {
        TokenOutcome::Issued { token, .. } => token,
        other => panic!("expected a token for {user}, got {other:?}"),
    }
}

async fn purchase(store: &Store, a: u64, user: &str, token: &str, qty: &str, now: i64) -> PurchaseOutcome {
    store
        .purchase(&PurchaseRequest { activity: a, user, token, quantity: qty, now_ms: now, pay_timeout_ms: PAY })
        .await
        .unwrap()
}

fn rejected(outcome: PurchaseOutcome) -> ScriptRefusal {
    match outcome {
        PurchaseOutcome::Rejected(r) => r,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn token_is_one_per_user_and_stable() {
    let f = fixture().await;
    let a = activity(&f.store, 10, 2).await;
    let first = token(&f.store, a, "alice", NOW).await;
    let again = token(&f.store, a, "alice", NOW + 5).await;
    let (TokenOutcome::Issued { token: t1, expires_at_ms: e1 }, TokenOutcome::Issued { token: t2, .. }) =
        (&first, &again)
    else {
        panic!("{first:?} / {again:?}")
    };
    assert_eq!(t1, t2, "asking again must return the same token");
    assert_eq!(*e1, NOW + TTL as i64);
    let bob = issued(&f.store, a, "bob").await;
    assert_ne!(&bob, t1);
}

#[tokio::test]
async fn token_refused_outside_the_window_unknown_or_sold_out() {
    let f = fixture().await;
    let a = activity(&f.store, 10, 2).await;
    assert_eq!(token(&f.store, a, "u", T0 - 1).await, TokenOutcome::Rejected(ScriptRefusal::NotStarted));
    assert_eq!(token(&f.store, a, "u", T1).await, TokenOutcome::Rejected(ScriptRefusal::Ended));
    assert_eq!(token(&f.store, 999, "u", NOW).await, TokenOutcome::Rejected(ScriptRefusal::NotFound));
    let empty = activity(&f.store, 0, 2).await;
    assert_eq!(token(&f.store, empty, "u", NOW).await, TokenOutcome::Rejected(ScriptRefusal::SoldOut));
}

#[tokio::test]
async fn token_refused_at_the_user_limit() {
    let f = fixture().await;
    let a = activity(&f.store, 10, 1).await;
    let t = issued(&f.store, a, "carol").await;
    assert!(matches!(purchase(&f.store, a, "carol", &t, "1", NOW).await, PurchaseOutcome::Accepted(_)));
    assert_eq!(token(&f.store, a, "carol", NOW).await, TokenOutcome::Rejected(ScriptRefusal::LimitExceeded));
}

#[tokio::test]
async fn live_tokens_are_bounded_by_factor_times_remaining_stock() {
    let f = fixture().await;
    let a = activity(&f.store, 2, 1).await; // 1.5 x 2 = 3 live tokens
    for u in ["u1", "u2", "u3"] {
        issued(&f.store, a, u).await;
    }
    let TokenOutcome::Rejected(ScriptRefusal::TokensExhausted { retry_after_ms }) = token(&f.store, a, "u4", NOW).await
    else {
        panic!("a fourth live token must be refused")
    };
    assert!(retry_after_ms > 0 && retry_after_ms <= TTL, "{retry_after_ms}");
    // Once the live ones expire (the script's clock moves on), a slot frees up.
    assert!(matches!(token(&f.store, a, "u4", NOW + TTL as i64 + 1).await, TokenOutcome::Issued { .. }));
}

#[tokio::test]
async fn token_script_refuses_bad_arguments() {
    let f = fixture().await;
    let a = activity(&f.store, 2, 1).await;
    let out = f.store.issue_token(a, "u", NOW, 0, FACTOR).await.unwrap();
    assert!(matches!(out, TokenOutcome::Rejected(ScriptRefusal::BadArg(_))), "{out:?}");
    let out = f.store.issue_token(a, "u", NOW, TTL, 0).await.unwrap();
    assert!(matches!(out, TokenOutcome::Rejected(ScriptRefusal::BadArg(_))), "{out:?}");
}

#[tokio::test]
async fn purchase_does_the_whole_sale_atomically() {
    let mut f = fixture().await;
    let a = activity(&f.store, 10, 3).await;
    let t = issued(&f.store, a, "dave").await;
    let PurchaseOutcome::Accepted(sale) = purchase(&f.store, a, "dave", &t, "2", NOW).await else {
        panic!("the purchase must succeed")
    };
    assert_eq!((sale.remaining, sale.sold, sale.amount_cents), (8, 2, 500));
    assert_eq!((sale.created_at_ms, sale.pay_deadline_ms), (NOW, NOW + PAY as i64));
    let r = &mut f.redis;
    assert_eq!(get_int(r, &keys::inventory(a)).await, 8);
    assert_eq!(get_int(r, &keys::sold(a)).await, 2);
    assert_eq!(bought(r, a, "dave").await, 2);
    // The buyers' and tokens' hashes expire a day after the activity's end.
    for hash in [keys::user_limits(a), keys::user_orders(a), keys::tokens(a), keys::user_tokens(a)] {
        let at: i64 = redis::cmd("PEXPIRETIME").arg(&hash).query_async(r).await.unwrap();
        assert_eq!(at, T1 + 86_400_000, "{hash}");
    }
    assert_eq!(f.store.user_order_ids(a, "dave").await.unwrap(), vec![sale.order_id.clone()]);
    // The order event is in the stream, with everything the worker needs.
    let entries: redis::streams::StreamRangeReply =
        redis::cmd("XRANGE").arg(keys::order_stream(a)).arg("-").arg("+").query_async(r).await.unwrap();
    assert_eq!(entries.ids.len(), 1);
    let e = &entries.ids[0];
    let field = |k: &str| e.get::<String>(k).unwrap();
    assert_eq!(sale.order_id, format!("{a}-{}", e.id), "the order id names its event");
    assert_eq!(field("activity_id"), a.to_string());
    assert_eq!(field("user_id"), "dave");
    assert_eq!(field("quantity"), "2");
    assert_eq!(field("amount_cents"), "500");
    // The token is consumed: it names its order now, and its slot is free.
    let used: String = redis::cmd("HGET").arg(keys::tokens(a)).arg(&t).query_async(r).await.unwrap();
    assert!(used.starts_with("dave:") && used.ends_with(&format!(":{}", sale.order_id)), "{used}");
    let slots: i64 = redis::cmd("ZCARD").arg(keys::live_tokens(a)).query_async(r).await.unwrap();
    assert_eq!(slots, 0);
    // A new token may be asked for the rest of the limit, and it differs.
    assert_ne!(issued(&f.store, a, "dave").await, t);
}

#[tokio::test]
async fn a_used_token_replays_its_order_and_sells_nothing_more() {
    let mut f = fixture().await;
    let a = activity(&f.store, 10, 5).await;
    let t = issued(&f.store, a, "erin").await;
    let PurchaseOutcome::Accepted(first) = purchase(&f.store, a, "erin", &t, "1", NOW).await else {
        panic!("the first purchase must succeed")
    };
    for _ in 0..3 {
        assert_eq!(
            purchase(&f.store, a, "erin", &t, "1", NOW + 10).await,
            PurchaseOutcome::Replay { order_id: first.order_id.clone() }
        );
    }
    // Even after the activity ended, a retry gets its order back.
    assert_eq!(
        purchase(&f.store, a, "erin", &t, "1", T1 + 10).await,
        PurchaseOutcome::Replay { order_id: first.order_id.clone() }
    );
    assert_eq!(get_int(&mut f.redis, &keys::sold(a)).await, 1);
    let len: i64 = redis::cmd("XLEN").arg(keys::order_stream(a)).query_async(&mut f.redis).await.unwrap();
    assert_eq!(len, 1);
}

#[tokio::test]
async fn bad_quantities_never_touch_stock() {
    let mut f = fixture().await;
    let a = activity(&f.store, 10, 5).await;
    let t = issued(&f.store, a, "frank").await;
    for qty in ["0", "-1", "-100", "1.5", "abc", "", "1e3", "01", " 1", "1234567890123456", "0x10"] {
        assert_eq!(rejected(purchase(&f.store, a, "frank", &t, qty, NOW).await), ScriptRefusal::BadQuantity, "{qty:?}");
    }
    assert_eq!(get_int(&mut f.redis, &keys::inventory(a)).await, 10);
    assert_eq!(get_int(&mut f.redis, &keys::sold(a)).await, 0);
    // The token survives a refused purchase.
    assert!(matches!(purchase(&f.store, a, "frank", &t, "1", NOW).await, PurchaseOutcome::Accepted(_)));
}

#[tokio::test]
async fn purchase_refuses_unknown_foreign_and_missing_tokens() {
    let f = fixture().await;
    let a = activity(&f.store, 10, 5).await;
    let t = issued(&f.store, a, "gina").await;
    assert!(matches!(rejected(purchase(&f.store, a, "hank", &t, "1", NOW).await), ScriptRefusal::InvalidToken(_)));
    assert!(matches!(
        rejected(purchase(&f.store, a, "gina", &"0".repeat(32), "1", NOW).await),
        ScriptRefusal::InvalidToken(_)
    ));
    assert_eq!(rejected(purchase(&f.store, 4242, "gina", &t, "1", NOW).await), ScriptRefusal::NotFound);
    let out = f
        .store
        .purchase(&PurchaseRequest {
            activity: a,
            user: "gina",
            token: &t,
            quantity: "1",
            now_ms: NOW,
            pay_timeout_ms: 0,
        })
        .await
        .unwrap();
    assert!(matches!(rejected(out), ScriptRefusal::BadArg(_)));
}

#[tokio::test]
async fn purchase_refuses_outside_the_window() {
    let f = fixture().await;
    let a = activity(&f.store, 10, 5).await;
    let t = issued(&f.store, a, "ivan").await;
    assert_eq!(rejected(purchase(&f.store, a, "ivan", &t, "1", T0 - 1).await), ScriptRefusal::NotStarted);
    // A token issued a moment before the end, so that it is still live at the end.
    let TokenOutcome::Issued { token: t, .. } = token(&f.store, a, "jo", T1 - 1).await else { panic!("a token") };
    assert_eq!(rejected(purchase(&f.store, a, "jo", &t, "1", T1).await), ScriptRefusal::Ended);
}

#[tokio::test]
async fn purchase_enforces_the_per_user_limit_and_stock() {
    let mut f = fixture().await;
    let a = activity(&f.store, 3, 2).await;
    let t = issued(&f.store, a, "jane").await;
    // Above the limit in one go.
    assert_eq!(rejected(purchase(&f.store, a, "jane", &t, "3", NOW).await), ScriptRefusal::LimitExceeded);
    assert!(matches!(purchase(&f.store, a, "jane", &t, "1", NOW).await, PurchaseOutcome::Accepted(_)));
    // Bought 1, limit 2: asking for 2 more would pass it.
    let t2 = issued(&f.store, a, "jane").await;
    assert_eq!(rejected(purchase(&f.store, a, "jane", &t2, "2", NOW).await), ScriptRefusal::LimitExceeded);
    // Stock: 2 left; kate asks for 2 (ok), leo for 1 (sold out).
    let tk = issued(&f.store, a, "kate").await;
    let tl = issued(&f.store, a, "leo").await;
    assert!(matches!(purchase(&f.store, a, "kate", &tk, "2", NOW).await, PurchaseOutcome::Accepted(_)));
    assert_eq!(rejected(purchase(&f.store, a, "leo", &tl, "1", NOW).await), ScriptRefusal::SoldOut);
    assert_eq!(get_int(&mut f.redis, &keys::inventory(a)).await, 0);
    assert_eq!(get_int(&mut f.redis, &keys::sold(a)).await, 3);
}

fn buy(user: &str, token: &str, qty: &str) -> Purchase {
    Purchase { user: user.into(), token: token.into(), quantity: qty.into(), now_ms: NOW }
}

#[tokio::test]
async fn a_batch_answers_each_purchase_as_if_it_ran_alone_after_the_ones_before() {
    let mut f = fixture().await;
    let a = activity(&f.store, 4, 2).await;
    let (tp, tq, tr, ts) = (
        issued(&f.store, a, "pia").await,
        issued(&f.store, a, "quin").await,
        issued(&f.store, a, "rosa").await,
        issued(&f.store, a, "sam").await,
    );
    let batch = [
        buy("pia", &tp, "1"),
        buy("pia", &tp, "1"),   // the same token again: replays the order just made
        buy("quin", &tq, "-1"), // refused, and changes nothing
        buy("quin", &tq, "2"),
        buy("rosa", &tp, "1"), // pia's token
        buy("rosa", &tr, "2"), // 1 left: sold out, and rosa keeps her token
        buy("rosa", &tr, "1"),
        buy("sam", &ts, "1"), // nothing left
    ];
    let outcomes = f.store.purchase_batch(a, PAY, &batch).await.unwrap();
    assert_eq!(outcomes.len(), batch.len());
    let PurchaseOutcome::Accepted(first) = &outcomes[0] else { panic!("pia buys: {:?}", outcomes[0]) };
    assert_eq!((first.remaining, first.sold), (3, 1));
    assert_eq!(outcomes[1], PurchaseOutcome::Replay { order_id: first.order_id.clone() });
    assert_eq!(outcomes[2], PurchaseOutcome::Rejected(ScriptRefusal::BadQuantity));
    let PurchaseOutcome::Accepted(quin) = &outcomes[3] else { panic!("quin buys 2: {:?}", outcomes[3]) };
    assert_eq!((quin.remaining, quin.sold), (1, 3));
    assert!(matches!(outcomes[4], PurchaseOutcome::Rejected(ScriptRefusal::InvalidToken(_))));
    assert_eq!(outcomes[5], PurchaseOutcome::Rejected(ScriptRefusal::SoldOut));
    let PurchaseOutcome::Accepted(rosa) = &outcomes[6] else { panic!("rosa buys 1: {:?}", outcomes[6]) };
    assert_eq!((rosa.remaining, rosa.sold), (0, 4));
    assert_eq!(outcomes[7], PurchaseOutcome::Rejected(ScriptRefusal::SoldOut));
    // The counters moved by the batch's total, and every sale has its event and its place in its buyer's list.
    assert_eq!(get_int(&mut f.redis, &keys::inventory(a)).await, 0);
    assert_eq!(get_int(&mut f.redis, &keys::sold(a)).await, 4);
    assert_eq!(bought(&mut f.redis, a, "quin").await, 2);
    let events: i64 = redis::cmd("XLEN").arg(keys::order_stream(a)).query_async(&mut f.redis).await.unwrap();
    assert_eq!(events, 3);
    assert_eq!(f.store.user_order_ids(a, "pia").await.unwrap(), vec![first.order_id.clone()]);
    assert_eq!(f.store.user_order_ids(a, "quin").await.unwrap(), vec![quin.order_id.clone()]);
    // A user with two live tokens in one batch (the second issued after a sale that is still in
    // flight): the first sale counts against the limit for the second.
    let b = activity(&f.store, 10, 2).await;
    let t1 = issued(&f.store, b, "tia").await;
    let t2 = "f".repeat(32);
    forge_token(&mut f.redis, b, &t2, "tia", NOW + TTL as i64).await;
    let outcomes = f.store.purchase_batch(b, PAY, &[buy("tia", &t1, "2"), buy("tia", &t2, "1")]).await.unwrap();
    assert!(matches!(outcomes[0], PurchaseOutcome::Accepted(_)));
    assert_eq!(outcomes[1], PurchaseOutcome::Rejected(ScriptRefusal::LimitExceeded));
    assert_eq!(bought(&mut f.redis, b, "tia").await, 2);
}

/// `EVALSHA` calls Redis has served so far.
async fn evalsha_calls(redis: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO").arg("commandstats").query_async(redis).await.unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_purchases_of_one_activity_share_script_calls() {
    let mut f = fixture().await;
    let a = activity(&f.store, 100, 1).await;
    let mut buyers = Vec::new();
    for i in 0..64 {
        let user = format!("buyer{i}");
        let token = issued(&f.store, a, &user).await;
        buyers.push(buy(&user, &token, "1"));
    }
    let calls_before = evalsha_calls(&mut f.redis).await;
    // Hold Redis's writes for a moment so that the purchases meet while the first calls wait:
    // the batcher must then send the rest together, not one call each.
    let () = redis::cmd("CLIENT").arg("PAUSE").arg(400).arg("WRITE").query_async(&mut f.redis).await.unwrap();
    let batcher = seckill_backend::purchase_batch::PurchaseBatcher::new(f.store.clone(), PAY);
    let purchases = buyers.into_iter().map(|p| {
        let batcher = batcher.clone();
        tokio::spawn(async move { batcher.purchase(a, p).await.unwrap() })
    });
    let outcomes = futures::future::join_all(purchases).await;
    let mut order_ids: Vec<String> = outcomes
        .into_iter()
        .map(|o| match o.unwrap() {
            PurchaseOutcome::Accepted(sale) => sale.order_id,
            other => panic!("every buyer has a token and stock is ample: {other:?}"),
        })
        .collect();
    order_ids.sort();
    order_ids.dedup();
    assert_eq!(order_ids.len(), 64, "one order each");
    assert_eq!(get_int(&mut f.redis, &keys::sold(a)).await, 64);
    assert_eq!(get_int(&mut f.redis, &keys::inventory(a)).await, 36);
    let calls = evalsha_calls(&mut f.redis).await - calls_before;
    assert!(calls < 16, "64 concurrent purchases took {calls} script calls");
}

#[tokio::test]
async fn a_batch_of_an_unknown_activity_or_a_malformed_call_changes_nothing() {
    let f = fixture().await;
    let outcomes = f.store.purchase_batch(4242, PAY, &[buy("u", "t", "1"), buy("v", "w", "1")]).await.unwrap();
    assert_eq!(outcomes, vec![PurchaseOutcome::Rejected(ScriptRefusal::NotFound); 2]);
    // No purchases at all is a malformed call, refused as a whole.
    assert!(f.store.purchase_batch(4242, PAY, &[]).await.is_err());
}

#[tokio::test]
async fn release_returns_stock_exactly_once() {
    let mut f = fixture().await;
    let a = activity(&f.store, 5, 2).await;
    let t = issued(&f.store, a, "mia").await;
    assert!(matches!(purchase(&f.store, a, "mia", &t, "2", NOW).await, PurchaseOutcome::Accepted(_)));
    assert_eq!(f.store.release(a, "mia", "m1", 2).await.unwrap(), ReleaseOutcome::Released { remaining: 5, sold: 0 });
    for _ in 0..3 {
        assert_eq!(f.store.release(a, "mia", "m1", 2).await.unwrap(), ReleaseOutcome::AlreadyReleased);
    }
    assert_eq!(get_int(&mut f.redis, &keys::inventory(a)).await, 5);
    assert_eq!(bought(&mut f.redis, a, "mia").await, 0, "the user may buy again");
    // An order that is not part of `sold` cannot push stock above the total.
    assert_eq!(f.store.release(a, "mia", "ghost", 1).await.unwrap(), ReleaseOutcome::OverRelease);
    assert_eq!(f.store.release(a, "mia", "m2", 0).await.unwrap(), ReleaseOutcome::Rejected(ScriptRefusal::BadQuantity));
    assert_eq!(
        f.store.release(a, "mia", "", 1).await.unwrap(),
        ReleaseOutcome::Rejected(ScriptRefusal::BadArg("order id required".into()))
    );
    assert_eq!(get_int(&mut f.redis, &keys::inventory(a)).await, 5);
}

#[tokio::test]
async fn concurrent_releases_of_one_order_return_stock_once() {
    let mut f = fixture().await;
    let a = activity(&f.store, 5, 1).await;
    let t = issued(&f.store, a, "noah").await;
    assert!(matches!(purchase(&f.store, a, "noah", &t, "1", NOW).await, PurchaseOutcome::Accepted(_)));
    let releases = (0..50).map(|_| {
        let store = f.store.clone();
        tokio::spawn(async move { store.release(a, "noah", "n1", 1).await.unwrap() })
    });
    let outcomes = futures::future::join_all(releases).await;
    let released = outcomes.iter().filter(|o| matches!(o.as_ref().unwrap(), ReleaseOutcome::Released { .. })).count();
    assert_eq!(released, 1);
    assert_eq!(get_int(&mut f.redis, &keys::inventory(a)).await, 5);
    assert_eq!(get_int(&mut f.redis, &keys::sold(a)).await, 0);
}

#[test]
fn scripts_take_every_key_from_keys() {
    // Redis Cluster forbids keys built inside a script: no script names a key prefix.
    for (name, body) in [
        ("token", include_str!("../../lua/token.lua")),
        ("purchase", include_str!("../../lua/purchase.lua")),
        ("release", include_str!("../../lua/release.lua")),
        ("restock", include_str!("../../lua/restock.lua")),
    ] {
        let code: String = body.lines().filter(|l| !l.trim_start().starts_with("--")).collect();
        assert!(!code.contains("seckill:") && !code.contains("queue:"), "{name}.lua builds a key");
    }
}

/// The per-user limit cannot be reset by moving the activity's end: a buyer's
/// count lives as long as the activity can still sell, however its end moves.
#[tokio::test]
async fn a_buyer_count_outlives_an_activity_whose_end_moves_later() {
    let f = fixture().await;
    let real_now = seckill_backend::clock::now_ms();
    // Counts are kept until a day after the end; this end puts that 2 s from now (real time).
    let ends = real_now - 86_400_000 + 2_000;
    let a = f
        .store
        .create_activity(&NewActivityRecord {
            name: "moving end".into(),
            price_cents: 100,
            total_stock: 10,
            limit_per_user: 1,
            starts_at_ms: ends - 3_600_000,
            ends_at_ms: ends,
        })
        .await
        .unwrap();
    let during = ends - 60_000;
    let TokenOutcome::Issued { token: t, .. } = token(&f.store, a, "ivy", during).await else { panic!("a token") };
    assert!(matches!(purchase(&f.store, a, "ivy", &t, "1", during).await, PurchaseOutcome::Accepted(_)));

    // The operator extends the sale by ten days (what PATCH ends_at does).
    let new_end = ends + 10 * 86_400_000;
    f.store.update_activity(a, vec![("ends_at_ms", new_end.to_string())]).await.unwrap();
    // Wait, by the clock, until the old keep-until time has passed.
    let old_keep_until = ends + 86_400_000;
    while seckill_backend::clock::now_ms() < old_keep_until + 200 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Ivy, still selling, is still at her limit.
    let later = ends + 86_400_000 + 1_000;
    assert_eq!(token(&f.store, a, "ivy", later).await, TokenOutcome::Rejected(ScriptRefusal::LimitExceeded));
    let forged_second = "e".repeat(32);
    let mut r = f.redis.clone();
    forge_token(&mut r, a, &forged_second, "ivy", later + TTL as i64).await;
    assert_eq!(rejected(purchase(&f.store, a, "ivy", &forged_second, "1", later).await), ScriptRefusal::LimitExceeded);
    assert_eq!(bought(&mut r, a, "ivy").await, 1);
    for hash in [keys::user_limits(a), keys::user_orders(a), keys::tokens(a), keys::user_tokens(a)] {
        let ttl: i64 = redis::cmd("PTTL").arg(&hash).query_async(&mut r).await.unwrap();
        assert!(ttl > 9 * 86_400_000, "{hash} expires a day after the new end ({ttl} ms left)");
    }
}

#[tokio::test]
async fn tokens_expire_by_the_time_in_their_field() {
    let mut f = fixture().await;
    let a = activity(&f.store, 10, 5).await;
    let t = issued(&f.store, a, "uma").await;
    let expires = NOW + TTL as i64;
    assert!(matches!(rejected(purchase(&f.store, a, "uma", &t, "1", expires).await), ScriptRefusal::InvalidToken(_)));
    // Once expired, asking again gives a new token, and the token bound's
    // sweep takes the old one's field with its slot.
    let TokenOutcome::Issued { token: t2, .. } = token(&f.store, a, "uma", expires).await else { panic!("a token") };
    assert_ne!(t2, t);
    let held: bool = redis::cmd("HEXISTS").arg(keys::tokens(a)).arg(&t).query_async(&mut f.redis).await.unwrap();
    assert!(!held, "the expired token's field is gone");
    let PurchaseOutcome::Accepted(sale) = purchase(&f.store, a, "uma", &t2, "1", expires).await else {
        panic!("the new token sells")
    };
    // A used token answers retries for a day after its use, then no more.
    let day = 86_400_000;
    assert_eq!(
        purchase(&f.store, a, "uma", &t2, "1", expires + day - 1).await,
        PurchaseOutcome::Replay { order_id: sale.order_id }
    );
    assert!(matches!(
        rejected(purchase(&f.store, a, "uma", &t2, "1", expires + day).await),
        ScriptRefusal::InvalidToken(_)
    ));
}

/// A deployment upgraded mid-activity still holds tokens and order lists in
/// the keys of the layout before the hashes. What was sold before stays sold
/// and counted, a token issued before still sells (once) and is still the
/// buyer's one token, one used before still replays its order, and a buyer's
/// orders are the old list followed by the new ones.
#[tokio::test]
async fn keys_of_the_layout_before_the_hashes_keep_working_after_an_upgrade() {
    let mut f = fixture().await;
    let a = activity(&f.store, 10, 2).await;
    let r = &mut f.redis;
    // Before the upgrade: olaf holds a live token; pam bought one unit, her token used.
    let (olaf_token, pam_token, pam_order) = ("a".repeat(32), "b".repeat(32), format!("{a}-1700000000000-0"));
    let ttl = TTL.to_string();
    let mut old = redis::pipe();
    old.cmd("SET").arg(keys::legacy::token(a, &olaf_token)).arg("olaf").arg("PX").arg(&ttl).ignore();
    old.cmd("SET").arg(keys::legacy::user_token(a, "olaf")).arg(&olaf_token).arg("PX").arg(&ttl).ignore();
    old.cmd("ZADD").arg(keys::live_tokens(a)).arg(NOW + TTL as i64).arg(&olaf_token).ignore();
    old.cmd("SET").arg(keys::legacy::token(a, &pam_token)).arg(format!("pam:{pam_order}")).arg("PX").arg(&ttl).ignore();
    old.cmd("RPUSH").arg(keys::legacy::user_order(a, "pam")).arg(&pam_order).ignore();
    old.cmd("HSET").arg(keys::user_limits(a)).arg("pam").arg(1).ignore();
    old.cmd("DECRBY").arg(keys::inventory(a)).arg(1).ignore();
    old.cmd("INCRBY").arg(keys::sold(a)).arg(1).ignore();
    let () = old.query_async(r).await.unwrap();

    // Olaf's old token is still his one token, and it sells once.
    // (Its expiry is the old key's TTL, which Redis's own clock has moved on a little.)
    let TokenOutcome::Issued { token: again, expires_at_ms } = token(&f.store, a, "olaf", NOW).await else {
        panic!("olaf's token")
    };
    assert_eq!(again, olaf_token);
    assert!(expires_at_ms > NOW && expires_at_ms <= NOW + TTL as i64, "{expires_at_ms}");
    let PurchaseOutcome::Accepted(sale) = purchase(&f.store, a, "olaf", &olaf_token, "1", NOW).await else {
        panic!("a token issued before the upgrade sells")
    };
    assert_eq!(
        purchase(&f.store, a, "olaf", &olaf_token, "1", NOW).await,
        PurchaseOutcome::Replay { order_id: sale.order_id.clone() }
    );
    let r = &mut f.redis;
    let left: bool = redis::cmd("EXISTS").arg(keys::legacy::token(a, &olaf_token)).query_async(r).await.unwrap();
    assert!(!left, "a sold old token lives on in the hash only");
    let at: i64 = redis::cmd("PEXPIRETIME").arg(keys::tokens(a)).query_async(r).await.unwrap();
    assert_eq!(at, T1 + 86_400_000, "the token hash it made expires with the others");
    assert_ne!(issued(&f.store, a, "olaf").await, olaf_token, "after the sale, a new token");

    // Pam's retry gets her old order back; her count holds, and her orders are the old then the new.
    assert_eq!(
        purchase(&f.store, a, "pam", &pam_token, "1", NOW).await,
        PurchaseOutcome::Replay { order_id: pam_order.clone() }
    );
    let t = issued(&f.store, a, "pam").await;
    assert_eq!(rejected(purchase(&f.store, a, "pam", &t, "2", NOW).await), ScriptRefusal::LimitExceeded);
    let PurchaseOutcome::Accepted(second) = purchase(&f.store, a, "pam", &t, "1", NOW).await else {
        panic!("pam's second unit")
    };
    assert_eq!(f.store.user_order_ids(a, "pam").await.unwrap(), vec![pam_order, second.order_id]);
    assert_eq!(token(&f.store, a, "pam", NOW).await, TokenOutcome::Rejected(ScriptRefusal::LimitExceeded));
    // A token neither layout knows is refused once both were asked.
    assert_eq!(
        rejected(purchase(&f.store, a, "pam", &"c".repeat(32), "1", NOW).await),
        ScriptRefusal::InvalidToken("unknown or expired".into())
    );
    assert_eq!(get_int(&mut f.redis, &keys::sold(a)).await, 3);
    assert_eq!(get_int(&mut f.redis, &keys::inventory(a)).await, 7);
}
