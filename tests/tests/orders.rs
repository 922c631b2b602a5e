//! Durable orders: every accepted purchase reaches the order database exactly
//! once, whatever crashes; pay, cancel and expiry are exclusive; stock comes
//! back exactly once; poison is dead-lettered and shows in reconciliation.

use std::collections::HashSet;
use std::time::Duration;

use futures::future::join_all;
use seckill_api::OrderStatus;
use seckill_backend::db::Db;
use seckill_backend::store::Store;
use seckill_backend::store::keys;
use seckill_backend::worker::{OrderWorker, OrderWorkerConfig};
use seckill_tests::{
    ActivitySpec, Backend, RedisServer, eventually, get_int, jwt, pay_deadline_ms, sleep_until_unix_ms,
};
use serde_json::Value;

fn code(body: &Value) -> &str {
    body["code"].as_str().unwrap_or("<no code>")
}

async fn rows(db: &Db, a: u64) -> Vec<seckill_backend::db::OrderRow> {
    seckill_tests::order_rows(db, a).await
}

/// Appends a malformed order event, as a buggy writer would leave one.
async fn add_poison(c: &mut redis::aio::MultiplexedConnection, a: u64) {
    let _: String = redis::cmd("XADD")
        .arg(keys::order_stream(a))
        .arg("*")
        .arg(&["activity_id", &a.to_string(), "user_id", "ghost", "quantity", "abc"])
        .query_async(c)
        .await
        .unwrap();
}

/// `n` buyers each buy one unit; returns the order ids.
async fn buy_many(api: &Backend, a: u64, n: usize) -> Vec<String> {
    let buys = (0..n).map(|i| async move { api.buy(a, &format!("buyer-{i}"), 1).await });
    join_all(buys).await
}

async fn post(api: &Backend, path: &str, user: &str) -> (u16, Value) {
    let res = api.http.post(api.url(path)).bearer_auth(jwt(user)).send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

async fn get(api: &Backend, path: &str, bearer: &str) -> (u16, Value) {
    let res = api.http.get(api.url(path)).bearer_auth(bearer).send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

async fn stream_len(redis: &RedisServer, a: u64) -> i64 {
    let mut c = redis.conn().await;
    redis::cmd("XLEN").arg(keys::order_stream(a)).query_async(&mut c).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_loses_nothing_and_two_workers_double_nothing() {
    let redis = RedisServer::start().unwrap();
    let api = Backend::start_with(&redis.url(), &["--role", "api"]).await.unwrap();
    let a = api.create_activity(ActivitySpec::live(300, 1)).await;
    let sold: HashSet<String> = buy_many(&api, a, 300).await.into_iter().collect();
    assert_eq!(sold.len(), 300);
    let db = api.db().await;
    let store = Store::connect(&redis.url(), Duration::from_secs(2)).await.unwrap();

    // A slow worker (small batches) is killed while it is in the middle of the stream.
    let small = OrderWorkerConfig { batch: 7, ..OrderWorkerConfig::default() };
    let doomed = OrderWorker::new(store.clone(), db.clone(), "doomed", small).spawn();
    eventually(Duration::from_secs(20), "the first worker to write some rows", || async {
        (rows(&db, a).await.len() >= 40).then_some(())
    })
    .await;
    doomed.abort();
    let _ = doomed.await;
    let written_before = rows(&db, a).await.len();
    assert!(written_before < 300, "the worker must die mid-stream ({written_before} rows)");

    // Two new workers at once; they claim what the dead one left pending.
    let quick_claim = OrderWorkerConfig { batch: 13, claim_idle_ms: 200, ..OrderWorkerConfig::default() };
    let w1 = OrderWorker::new(store.clone(), db.clone(), "w1", quick_claim.clone()).spawn();
    let w2 = OrderWorker::new(store.clone(), db.clone(), "w2", quick_claim).spawn();
    eventually(Duration::from_secs(30), "every order to reach the database", || async {
        (rows(&db, a).await.len() == 300 && stream_len(&redis, a).await == 0).then_some(())
    })
    .await;
    w1.abort();
    w2.abort();
    let all = rows(&db, a).await;
    let ids: HashSet<String> = all.iter().map(|r| r.order_id.clone()).collect();
    assert_eq!(ids, sold, "exactly the accepted orders, none lost, none doubled");
    let mut c = redis.conn().await;
    assert_eq!(all.iter().map(|r| r.quantity).sum::<i64>(), get_int(&mut c, &keys::sold(a)).await);
    assert_eq!(store.stream_lag(a).await.unwrap(), (0, 0), "nothing left in the stream or pending");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_database_is_unavailable_entries_wait_and_nothing_is_lost() {
    use sqlx::Connection;
    let redis = RedisServer::start().unwrap();
    let api = Backend::start(&redis.url()).await.unwrap();
    let a = api.create_activity(ActivitySpec::live(50, 1)).await;
    let db = api.db().await;

    // Another process takes the database's write lock and holds it.
    let mut locker = sqlx::SqliteConnection::connect(&api.database_url).await.unwrap();
    sqlx::query("BEGIN EXCLUSIVE").execute(&mut locker).await.unwrap();
    let orders = buy_many(&api, a, 20).await;
    // The worker has read entries and cannot write them. However many it took
    // before the lock (it reads no new ones while the database is down), every
    // event stays in the stream: none is written, none acknowledged, none buried.
    let store = Store::connect(&redis.url(), Duration::from_secs(2)).await.unwrap();
    eventually(Duration::from_secs(20), "the worker to hold entries it cannot write", || async {
        let (len, pending) = store.stream_lag(a).await.unwrap();
        (len == 20 && pending >= 1).then_some(())
    })
    .await;
    assert!(rows(&db, a).await.is_empty());
    assert!(store.dead_letters(a, 10).await.unwrap().is_empty(), "a locked database buries nothing");
    // Buyers still see their orders, as queued.
    let (status, body) = get(&api, &format!("/api/orders/{}", orders[0]), &jwt("buyer-0")).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("queued")), "{body}");

    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    drop(locker);
    eventually(Duration::from_secs(30), "the rows once the database is back", || async {
        (rows(&db, a).await.len() == 20 && stream_len(&redis, a).await == 0).then_some(())
    })
    .await;
    let ids: HashSet<String> = rows(&db, a).await.into_iter().map(|r| r.order_id).collect();
    assert_eq!(ids, orders.into_iter().collect());
    assert!(store.dead_letters(a, 10).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn payment_racing_expiry_ends_paid_xor_expired() {
    let redis = RedisServer::start().unwrap();
    let api =
        Backend::start_with(&redis.url(), &["--pay-timeout-secs", "1", "--sweep-interval-ms", "10"]).await.unwrap();
    const N: usize = 60;
    let a = api.create_activity(ActivitySpec::live(N as i64, 1)).await;
    let orders = buy_many(&api, a, N).await;
    // Each buyer pays at a different moment around their own deadline (from 600 ms
    // before to 580 ms after it, whatever the machine's speed), while the sweeper expires.
    let payments = orders.iter().enumerate().map(|(i, order)| {
        let api = &api;
        async move {
            let user = format!("buyer-{i}");
            let deadline = pay_deadline_ms(api, order, &user).await;
            sleep_until_unix_ms(deadline - 600 + i as i64 * 20).await;
            let path = format!("/api/orders/{order}/pay");
            let answers = join_all((0..3).map(|_| post(api, &path, &user))).await;
            for (status, body) in &answers {
                assert!(
                    *status == 200 && body["status"] == "paid" || (*status, code(body)) == (409, "order_closed"),
                    "pay answered {status} {body}"
                );
            }
            let paid = answers.iter().any(|(s, _)| *s == 200);
            assert!(answers.iter().all(|(s, _)| (*s == 200) == paid), "one order, one outcome: {answers:?}");
            paid
        }
    });
    let paid_answers: Vec<bool> = join_all(payments).await;
    let db = api.db().await;
    eventually(Duration::from_secs(20), "every order to be settled", || async {
        let rows = rows(&db, a).await;
        (rows.len() == N
            && rows.iter().all(|r| {
                matches!(r.status, OrderStatus::Paid | OrderStatus::Expired)
                    && (r.status == OrderStatus::Paid || r.stock_released == 1)
            }))
        .then_some(())
    })
    .await;
    let rows = rows(&db, a).await;
    for (order, paid) in orders.iter().zip(&paid_answers) {
        let row = rows.iter().find(|r| &r.order_id == order).unwrap();
        assert_eq!(row.status == OrderStatus::Paid, *paid, "order {order}: the answer and the row agree");
    }
    let paid_qty: i64 = rows.iter().filter(|r| r.status == OrderStatus::Paid).map(|r| r.quantity).sum();
    let mut c = redis.conn().await;
    assert_eq!(get_int(&mut c, &keys::sold(a)).await, paid_qty, "sold is exactly what was paid");
    assert_eq!(get_int(&mut c, &keys::inventory(a)).await, N as i64 - paid_qty, "expired stock came back once");
    assert!(paid_qty > 0 && paid_qty < N as i64, "the race must have gone both ways ({paid_qty} paid)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_returns_stock_exactly_once() {
    let redis = RedisServer::start().unwrap();
    let api = Backend::start(&redis.url()).await.unwrap();
    let a = api.create_activity(ActivitySpec::live(5, 2)).await;
    let order = api.buy(a, "carol", 2).await;
    let path = format!("/api/orders/{order}/cancel");
    let cancels = join_all((0..20).map(|_| post(&api, &path, "carol"))).await;
    let won: Vec<_> = cancels.iter().filter(|(s, _)| *s == 200).collect();
    assert_eq!(won.len(), 1, "one cancel wins: {cancels:?}");
    assert_eq!(won[0].1["status"], "cancelled");
    for (status, body) in cancels.iter().filter(|(s, _)| *s != 200) {
        assert_eq!((*status, code(body)), (409, "order_closed"));
    }
    // And again, later.
    let (status, body) = post(&api, &format!("/api/orders/{order}/cancel"), "carol").await;
    assert_eq!((status, code(&body)), (409, "order_closed"));
    let mut c = redis.conn().await;
    assert_eq!(get_int(&mut c, &keys::inventory(a)).await, 5);
    assert_eq!(get_int(&mut c, &keys::sold(a)).await, 0);
    // A payment after the cancel never revives the order.
    let (status, body) = post(&api, &format!("/api/orders/{order}/pay"), "carol").await;
    assert_eq!((status, code(&body)), (409, "order_closed"));
    // The stock is really back: carol may buy again, up to her limit.
    api.buy(a, "carol", 2).await;
}

#[tokio::test]
async fn pay_is_idempotent_and_orders_belong_to_their_buyer() {
    let redis = RedisServer::start().unwrap();
    let api = Backend::start_with(&redis.url(), &["--role", "api"]).await.unwrap();
    let a = api.create_activity(ActivitySpec::live(5, 1)).await;
    let order = api.buy(a, "dana", 1).await;

    // Before any worker: the order answers `queued`.
    let (status, body) = get(&api, &format!("/api/orders/{order}"), &jwt("dana")).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("queued")));
    assert_eq!(body["user_id"], "dana");
    assert_eq!(body["amount_cents"], 1999);

    // Nobody else reads, pays or cancels it.
    let (status, body) = get(&api, &format!("/api/orders/{order}"), &jwt("eve")).await;
    assert_eq!((status, code(&body)), (403, "forbidden"));
    for action in ["pay", "cancel"] {
        let (status, body) = post(&api, &format!("/api/orders/{order}/{action}"), "eve").await;
        assert_eq!((status, code(&body)), (403, "forbidden"), "{action}");
    }
    // An admin may read it.
    let admin = api.admin_token().await;
    let (status, _) = get(&api, &format!("/api/orders/{order}"), &admin).await;
    assert_eq!(status, 200);

    // Paying a queued order writes its row first; paying twice is fine.
    for _ in 0..2 {
        let (status, body) = post(&api, &format!("/api/orders/{order}/pay"), "dana").await;
        assert_eq!((status, body["status"].as_str()), (200, Some("paid")), "{body}");
    }
    let (status, body) = post(&api, &format!("/api/orders/{order}/cancel"), "dana").await;
    assert_eq!((status, code(&body)), (409, "order_closed"), "a paid order cannot be cancelled");

    let (status, body) = get(&api, "/api/me/orders", &jwt("dana")).await;
    assert_eq!(status, 200);
    assert_eq!(body["items"][0]["order_id"], order.as_str());
    assert_eq!(body["next_cursor"], Value::Null);

    for missing in ["7-1764083707629-0", "nope", &format!("{a}-1-0")] {
        let (status, body) = get(&api, &format!("/api/orders/{missing}"), &jwt("dana")).await;
        assert_eq!((status, code(&body)), (404, "not_found"), "{missing}");
        let (status, body) = post(&api, &format!("/api/orders/{missing}/pay"), "dana").await;
        assert_eq!((status, code(&body)), (404, "not_found"), "{missing}");
    }
    let res = api.http.get(api.url("/api/me/orders")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let res = api.http.post(api.url(&format!("/api/orders/{order}/pay"))).send().await.unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn admin_order_list_filters_and_pages() {
    let redis = RedisServer::start().unwrap();
    let api = Backend::start(&redis.url()).await.unwrap();
    let a = api.create_activity(ActivitySpec::live(10, 1)).await;
    let b = api.create_activity(ActivitySpec::live(10, 1)).await;
    let in_a = buy_many(&api, a, 7).await;
    api.buy(b, "other", 1).await;
    let (status, _) = post(&api, &format!("/api/orders/{}/pay", in_a[0]), "buyer-0").await;
    assert_eq!(status, 200);
    let admin = api.admin_token().await;
    let db = api.db().await;
    eventually(Duration::from_secs(10), "all rows", || async { (rows(&db, a).await.len() == 7).then_some(()) }).await;

    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) =
            get(&api, &format!("/admin/api/orders?activity_id={a}&limit=3&cursor={cursor}"), &admin).await;
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 3);
        seen.extend(items.iter().map(|o| o["order_id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    seen.sort();
    let mut expected = in_a.clone();
    expected.sort();
    assert_eq!(seen, expected);
    let (_, paid) = get(&api, &format!("/admin/api/orders?activity_id={a}&status=paid"), &admin).await;
    assert_eq!(paid["items"].as_array().unwrap().len(), 1);
    for bad in ["status=lost", "activity_id=x", "limit=0", "limit=501", "cursor=zzz"] {
        let (status, body) = get(&api, &format!("/admin/api/orders?{bad}"), &admin).await;
        assert_eq!((status, code(&body)), (400, "bad_request"), "{bad}");
    }
    let (status, _) = get(&api, "/admin/api/orders", &jwt("buyer-0")).await;
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_is_dead_lettered_and_reconciliation_shows_it() {
    let redis = RedisServer::start().unwrap();
    let api = Backend::start(&redis.url()).await.unwrap();
    let a = api.create_activity(ActivitySpec::live(10, 2)).await;
    let admin = api.admin_token().await;
    let order = api.buy(a, "fay", 1).await;
    let (status, _) = post(&api, &format!("/api/orders/{order}/cancel"), "fay").await;
    assert_eq!(status, 200);
    buy_many(&api, a, 3).await;
    let db = api.db().await;
    eventually(Duration::from_secs(10), "rows", || async { (rows(&db, a).await.len() == 4).then_some(()) }).await;

    let path = format!("/admin/api/activities/{a}/reconciliation");
    let (status, clean) = get(&api, &path, &admin).await;
    assert_eq!(status, 200, "{clean}");
    assert_eq!((clean["drift"].as_i64(), clean["ok"].as_bool()), (Some(0), Some(true)), "{clean}");
    assert_eq!(clean["redis_sold"], 3);
    assert_eq!(clean["db_holding_quantity"], 3);

    // A malformed event (as a buggy writer would leave) reaches the worker.
    let mut c = redis.conn().await;
    add_poison(&mut c, a).await;
    let report = eventually(Duration::from_secs(10), "the poison in the dead letters", || async {
        let (_, r) = get(&api, &path, &admin).await;
        (r["dead_letters"] == 1).then_some(r)
    })
    .await;
    assert_eq!(report["ok"], false, "{report}");
    let sample = &report["dead_letter_samples"][0];
    assert_eq!(sample["reason"], "field quantity is not an integer");
    assert_eq!(sample["fields"]["user_id"], "ghost");
    assert_eq!(stream_len(&redis, a).await, 0, "the poison left the stream and nothing else did");

    // Stock sold in Redis with no order behind it is drift.
    let _: i64 = redis::cmd("INCRBY").arg(keys::sold(a)).arg(2).query_async(&mut c).await.unwrap();
    let (_, drifted) = get(&api, &path, &admin).await;
    assert_eq!(drifted["drift"], 2, "{drifted}");
    assert_eq!(drifted["invariant_ok"], false);
    let (status, _) = get(&api, "/admin/api/activities/999/reconciliation", &admin).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_stream_stalls_only_its_own_activity() {
    let redis = RedisServer::start().unwrap();
    let api = Backend::start(&redis.url()).await.unwrap();
    let lost_group = api.create_activity(ActivitySpec::live(50, 1)).await;
    let wrong_type = api.create_activity(ActivitySpec::live(50, 1)).await;
    let healthy = api.create_activity(ActivitySpec::live(50, 1)).await;
    let db = api.db().await;
    let mut c = redis.conn().await;

    // One activity's consumer group disappears (an operator's mistake, a partial restore),
    // and another's stream key is overwritten with a string: both are read before the healthy one.
    let _: i64 = redis::cmd("XGROUP")
        .arg("DESTROY")
        .arg(keys::order_stream(lost_group))
        .arg(keys::ORDER_GROUP)
        .query_async(&mut c)
        .await
        .unwrap();
    let _: () = redis::cmd("SET").arg(keys::order_stream(wrong_type)).arg("oops").query_async(&mut c).await.unwrap();

    // Sales go on in the other two; the healthy activity's orders keep arriving.
    let healthy_orders: HashSet<String> = buy_many(&api, healthy, 30).await.into_iter().collect();
    let orphaned: HashSet<String> = buy_many(&api, lost_group, 20).await.into_iter().collect();
    eventually(Duration::from_secs(20), "the healthy activity's rows", || async {
        (rows(&db, healthy).await.len() == 30).then_some(())
    })
    .await;
    let written: HashSet<String> = rows(&db, healthy).await.into_iter().map(|r| r.order_id).collect();
    assert_eq!(written, healthy_orders);
    // The lost group is recreated from the start of its stream: nothing in it is lost.
    eventually(Duration::from_secs(20), "the activity whose group was lost to recover", || async {
        (rows(&db, lost_group).await.len() == 20 && stream_len(&redis, lost_group).await == 0).then_some(())
    })
    .await;
    let written: HashSet<String> = rows(&db, lost_group).await.into_iter().map(|r| r.order_id).collect();
    assert_eq!(written, orphaned);
    assert!(rows(&db, wrong_type).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_and_each_replayed_or_refunded_exactly_once() {
    let redis = RedisServer::start().unwrap();
    // The API alone: the test plays the worker that had to bury these orders.
    let api = Backend::start_with(&redis.url(), &["--role", "api"]).await.unwrap();
    let a = api.create_activity(ActivitySpec::live(10, 1)).await;
    let orders = buy_many(&api, a, 3).await;
    let store = Store::connect(&redis.url(), Duration::from_secs(2)).await.unwrap();
    let mut c = redis.conn().await;
    add_poison(&mut c, a).await;
    let stream: redis::streams::StreamRangeReply =
        redis::cmd("XRANGE").arg(keys::order_stream(a)).arg("-").arg("+").query_async(&mut c).await.unwrap();
    for id in stream.ids {
        let entry = seckill_backend::store::stream::Entry::from(id);
        store.dead_letter(a, &entry, "database refused the row 5 times: (a fault since fixed)").await.unwrap();
    }
    let admin = api.admin_token().await;

    // Listed, in pages.
    let (status, first) = get(&api, "/admin/api/dead-letters?limit=3", &admin).await;
    assert_eq!(status, 200, "{first}");
    let cursor = first["next_cursor"].as_str().expect("a second page").to_owned();
    let (_, second) = get(&api, &format!("/admin/api/dead-letters?limit=3&cursor={cursor}"), &admin).await;
    assert_eq!(second["next_cursor"], Value::Null);
    let listed: Vec<Value> =
        first["items"].as_array().unwrap().iter().chain(second["items"].as_array().unwrap()).cloned().collect();
    assert_eq!(listed.len(), 4);
    let dead_id = |order: &str| -> String {
        listed.iter().find(|d| d["order_id"] == order).unwrap_or_else(|| panic!("{order} listed"))["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let poison = listed.iter().find(|d| d["fields"]["user_id"] == "ghost").unwrap()["id"].as_str().unwrap().to_owned();
    let action = |id: &str, what: &str| format!("/admin/api/dead-letters/{a}/{id}/{what}");

    // Replayed: the order becomes its row, under the id its buyer was given.
    let (status, done) = api.post(&action(&dead_id(&orders[0]), "replay"), &admin, None).await;
    assert_eq!((status, done["action"].as_str()), (200, Some("replayed")), "{done}");
    let (status, order) = get(&api, &format!("/api/orders/{}", orders[0]), &jwt("buyer-0")).await;
    assert_eq!((status, order["status"].as_str()), (200, Some("pending_payment")), "{order}");
    let (status, _) = api.post(&action(&dead_id(&orders[0]), "refund"), &admin, None).await;
    assert_eq!(status, 404, "a settled dead letter is gone");

    // Refunded, by five operators at once: the unit comes back exactly once.
    let refund = action(&dead_id(&orders[1]), "refund");
    let answers = join_all((0..5).map(|_| api.post(&refund, &admin, None))).await;
    let won: Vec<_> = answers.iter().filter(|(s, _)| *s == 200).collect();
    assert_eq!(won.len(), 1, "{answers:?}");
    assert_eq!(won[0].1["action"], "refunded");
    assert!(answers.iter().all(|(s, _)| [200, 404, 503].contains(s)), "{answers:?}");
    assert_eq!(get_int(&mut c, &keys::inventory(a)).await, 8);
    assert_eq!(get_int(&mut c, &keys::sold(a)).await, 2);
    api.buy(a, "buyer-1", 1).await; // and its buyer, at the limit before, may buy again

    // An order whose stock was given back is never replayed into a row.
    let third = dead_id(&orders[2]);
    let _: i64 = redis::cmd("SADD").arg(keys::released(a)).arg(&orders[2]).query_async(&mut c).await.unwrap();
    let (status, body) = api.post(&action(&third, "replay"), &admin, None).await;
    assert_eq!((status, code(&body)), (409, "order_closed"), "{body}");
    let _: i64 = redis::cmd("SREM").arg(keys::released(a)).arg(&orders[2]).query_async(&mut c).await.unwrap();

    // Poison names nothing to write or refund: both say why, and it stays listed.
    for what in ["replay", "refund"] {
        let (status, body) = api.post(&action(&poison, what), &admin, None).await;
        assert_eq!((status, code(&body)), (400, "bad_request"), "{what}: {body}");
        assert!(body["message"].as_str().unwrap().contains("quantity"), "{body}");
    }
    for bad in [format!("/admin/api/dead-letters/{a}/nope/replay"), "/admin/api/dead-letters/x/1-0/refund".into()] {
        let (status, _) = api.post(&bad, &admin, None).await;
        assert_eq!(status, 404, "{bad}");
    }
    let (status, _) = api.post(&action(&third, "refund"), &jwt("buyer-2"), None).await;
    assert_eq!(status, 401, "operators only");

    // Reconciliation counts what is left: buyer-2's unit and the poison.
    let (_, report) = get(&api, &format!("/admin/api/activities/{a}/reconciliation"), &admin).await;
    assert_eq!((report["dead_letters"].as_i64(), report["dead_letter_quantity"].as_i64()), (Some(2), Some(1)));
    assert_eq!(report["drift"], 0, "{report}");
    let (status, _) = api.post(&action(&third, "refund"), &admin, None).await;
    assert_eq!(status, 200);
    let (_, report) = get(&api, &format!("/admin/api/activities/{a}/reconciliation"), &admin).await;
    assert_eq!((report["dead_letters"].as_i64(), report["drift"].as_i64()), (Some(1), Some(0)), "{report}");
}
