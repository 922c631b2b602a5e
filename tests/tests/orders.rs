//! Durable orders: every accepted purchase reaches the order database exactly
//! once, whatever crashes; pay, cancel and expiry are exclusive; stock comes
//! back exactly once; poison is dead-lettered and shows in reconciliation.

use std::collections::HashSet;
use std::time::Duration;

use futures::future::join_all;
use seckill_api::OrderStatus;
use seckill_backend::db::{Db, OrderFilter};
use seckill_backend::keys;
use seckill_backend::store::Store;
use seckill_backend::worker::{Worker, WorkerConfig};
use seckill_tests::{ActivitySpec, Backend, RedisServer, eventually, get_int, jwt};
use serde_json::Value;

fn code(body: &Value) -> &str {
    body["code"].as_str().unwrap_or("<no code>")
}

async fn rows(db: &Db, a: u64) -> Vec<seckill_backend::db::OrderRow> {
    let filter = OrderFilter { activity_id: Some(a), ..OrderFilter::default() };
    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let (page, next) = db.orders(&filter, cursor.as_ref(), 500).await.unwrap();
        all.extend(page);
        match next {
            Some(c) => cursor = Some(c),
            None => return all,
        }
    }
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
    let small = WorkerConfig { batch: 7, ..WorkerConfig::default() };
    let doomed = Worker::new(store.clone(), db.clone(), "doomed", small).spawn();
    eventually(Duration::from_secs(20), "the first worker to write some rows", || async {
        (rows(&db, a).await.len() >= 40).then_some(())
    })
    .await;
    doomed.abort();
    let _ = doomed.await;
    let written_before = rows(&db, a).await.len();
    assert!(written_before < 300, "the worker must die mid-stream ({written_before} rows)");

    // Two new workers at once; they claim what the dead one left pending.
    let quick_claim = WorkerConfig { batch: 13, claim_idle_ms: 200, ..WorkerConfig::default() };
    let w1 = Worker::new(store.clone(), db.clone(), "w1", quick_claim.clone()).spawn();
    let w2 = Worker::new(store.clone(), db.clone(), "w2", quick_claim).spawn();
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
    // The worker has taken the entries and cannot write them: they stay pending in the stream.
    let store = Store::connect(&redis.url(), Duration::from_secs(2)).await.unwrap();
    eventually(Duration::from_secs(20), "the worker to hold the entries it cannot write", || async {
        let (len, pending) = store.stream_lag(a).await.unwrap();
        (len == 20 && pending == 20).then_some(())
    })
    .await;
    assert!(rows(&db, a).await.is_empty());
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn payment_racing_expiry_ends_paid_xor_expired() {
    let redis = RedisServer::start().unwrap();
    let api =
        Backend::start_with(&redis.url(), &["--pay-timeout-secs", "1", "--sweep-interval-ms", "10"]).await.unwrap();
    const N: usize = 60;
    let a = api.create_activity(ActivitySpec::live(N as i64, 1)).await;
    let orders = buy_many(&api, a, N).await;
    // Each buyer pays at a different moment around their deadline, while the sweeper expires.
    let payments = orders.iter().enumerate().map(|(i, order)| {
        let api = &api;
        async move {
            tokio::time::sleep(Duration::from_millis(700 + (i as u64 * 10))).await;
            let (path, user) = (format!("/api/orders/{order}/pay"), format!("buyer-{i}"));
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
    let _: String = redis::cmd("XADD")
        .arg(keys::order_stream(a))
        .arg("*")
        .arg(&["activity_id", &a.to_string(), "user_id", "ghost", "quantity", "abc"])
        .query_async(&mut c)
        .await
        .unwrap();
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
