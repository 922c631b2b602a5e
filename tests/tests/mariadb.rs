//! The order database on a real MariaDB: the migrations, the idempotent insert
//! (`ON DUPLICATE KEY UPDATE`), `SUM()` in reconciliation, keyset pagination
//! and the compare-and-set transitions behave as they do on SQLite; and the
//! database failing as it does in production (read-only during a failover, out
//! of connections) loses and buries no accepted order.
//!
//! Why one file of ~550 lines: it is the whole MariaDB spec (dialect parity
//! and the two outages), each test starting its own server and reading top
//! to bottom on its own.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::future::join_all;
use seckill_api::OrderStatus;
use seckill_backend::db::{Db, NewOrder, OrderFilter, OrderRow};
use seckill_backend::store::Store;
use seckill_backend::store::keys;
use seckill_backend::worker::{OrderWorker, OrderWorkerConfig};
use seckill_tests::mariadb::MariaDb;
use seckill_tests::{
    ActivitySpec, Backend, RedisServer, eventually, get_int, jwt, pay_deadline_ms, sleep_until_unix_ms,
};
use serde_json::Value;

fn code(body: &Value) -> &str {
    body["code"].as_str().unwrap_or("<no code>")
}

/// Every row of activity `a`, read in pages of `page` through the cursor.
async fn rows(db: &Db, a: u64, page: usize) -> Vec<OrderRow> {
    let filter = OrderFilter { activity_id: Some(a), ..OrderFilter::default() };
    let mut all = Vec::new();
    let mut cursor = None;
    loop {
        let (rows, next) = db.orders(&filter, cursor.as_ref(), page).await.unwrap();
        assert!(rows.len() <= page);
        all.extend(rows);
        match next {
            Some(c) => cursor = Some(c),
            None => return all,
        }
    }
}

/// Every order id of activity `a` through the admin API, `limit` per page.
async fn admin_list(api: &Backend, admin: &str, a: u64, limit: usize) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let path = format!("/admin/api/orders?activity_id={a}&limit={limit}&cursor={cursor}");
        let (status, page) = api.get(&path, admin).await;
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= limit);
        seen.extend(items.iter().map(|o| o["order_id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => return seen,
        }
    }
}

async fn reconciliation(api: &Backend, admin: &str, a: u64) -> Value {
    let (status, report) = api.get(&format!("/admin/api/activities/{a}/reconciliation"), admin).await;
    assert_eq!(status, 200, "{report}");
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_buyers_become_two_hundred_rows_on_mariadb() {
    const N: usize = 200;
    let mariadb = MariaDb::start().await.unwrap();
    let redis = RedisServer::start().unwrap();
    let api = Backend::start_on_db(&redis.url(), &mariadb.url(), None, &[]).await.unwrap();
    let a = api.create_activity(ActivitySpec::live(N as i64, 1)).await;

    let buys = (0..N).map(|i| {
        let api = &api;
        async move { api.buy(a, &format!("buyer-{i}"), 1).await }
    });
    let sold: Vec<String> = join_all(buys).await;
    let sold_set: HashSet<String> = sold.iter().cloned().collect();
    assert_eq!(sold_set.len(), N, "one order id per buyer");

    let db = api.db().await;
    eventually(Duration::from_secs(30), "every order to reach MariaDB", || async {
        (rows(&db, a, 500).await.len() == N).then_some(())
    })
    .await;

    // Small pages walk the keyset cursor through many orders created in the same millisecond.
    let all = rows(&db, a, 7).await;
    let ids: Vec<String> = all.iter().map(|r| r.order_id.clone()).collect();
    assert_eq!(ids.len(), N);
    assert_eq!(ids.iter().cloned().collect::<HashSet<_>>(), sold_set, "exactly the sold orders, none doubled");
    let mut newest_first = all.iter().map(|r| (r.created_at_ms, r.order_id.clone())).collect::<Vec<_>>();
    newest_first.sort_by(|x, y| y.cmp(x));
    assert_eq!(all.iter().map(|r| (r.created_at_ms, r.order_id.clone())).collect::<Vec<_>>(), newest_first);
    let users: HashSet<&str> = all.iter().map(|r| r.user_id.as_str()).collect();
    assert_eq!(users.len(), N, "one row per buyer");
    for row in &all {
        assert_eq!((row.activity_id, row.quantity, row.amount_cents), (a, 1, 1999), "{row:?}");
        assert_eq!((row.status, row.stock_released), (OrderStatus::PendingPayment, 0), "{row:?}");
    }
    let mut c = redis.conn().await;
    assert_eq!(all.iter().map(|r| r.quantity).sum::<i64>(), get_int(&mut c, &keys::sold(a)).await);

    let admin = api.admin_token().await;
    let mut listed = admin_list(&api, &admin, a, 13).await;
    listed.sort();
    let mut expected = sold.clone();
    expected.sort();
    assert_eq!(listed, expected, "the admin list pages through every order once");

    // Reconciliation sums the quantities in SQL (SUM() is a DECIMAL on MySQL).
    let report = reconciliation(&api, &admin, a).await;
    assert_eq!((report["drift"].as_i64(), report["ok"].as_bool()), (Some(0), Some(true)), "{report}");
    assert_eq!(report["redis_sold"], N);
    assert_eq!(report["db_orders"], N);
    assert_eq!(report["db_holding_quantity"], N);
    assert_eq!(report["db_unreleased_quantity"], 0);

    // The insert is idempotent per order id: an event seen twice never changes its row,
    // and the rest of the batch is still written in the same transaction.
    let first = all[0].clone();
    let replay = NewOrder {
        order_id: first.order_id.clone(),
        activity_id: a,
        user_id: "mallory".into(),
        quantity: 99,
        amount_cents: 1,
        created_at_ms: 1,
        pay_deadline_ms: 1,
        event_seq: 1,
    };
    let elsewhere = NewOrder { order_id: "999999-1-0".into(), activity_id: 999_999, ..replay.clone() };
    db.insert_orders(&[replay.clone(), elsewhere.clone(), replay], 1).await.unwrap();
    assert_eq!(db.order(&first.order_id).await.unwrap(), Some(first));
    let written = db.order(&elsewhere.order_id).await.unwrap().expect("the new order of the batch");
    assert_eq!((written.user_id.as_str(), written.quantity), ("mallory", 99));
    assert_eq!(db.existing(&[elsewhere.order_id.clone(), "1-2-3".into()]).await.unwrap(), vec![elsewhere.order_id]);
    let report = reconciliation(&api, &admin, a).await;
    assert_eq!((report["drift"].as_i64(), report["db_orders"].as_i64()), (Some(0), Some(N as i64)), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pay_cancel_and_expiry_are_exclusive_on_mariadb() {
    const STOCK: i64 = 40;
    const RACERS: usize = 20;
    let mariadb = MariaDb::start().await.unwrap();
    let redis = RedisServer::start().unwrap();
    // Two processes on one database: both run a worker, a sweeper and a reconciler.
    let api = Backend::start_on_db(&redis.url(), &mariadb.url(), None, &[]).await.unwrap();
    let hasty = Backend::start_on_db(
        &redis.url(),
        &mariadb.url(),
        None,
        &["--pay-timeout-secs", "1", "--sweep-interval-ms", "10"],
    )
    .await
    .unwrap();
    let a = api.create_activity(ActivitySpec::live(STOCK, 2)).await;
    let admin = api.admin_token().await;

    // Paid, twice at once and once more: the same answer every time; then it cannot be cancelled.
    let paid = api.buy(a, "payer", 1).await;
    let pay = format!("/api/orders/{paid}/pay");
    let payer = jwt("payer");
    let mut answers = join_all((0..2).map(|_| api.post(&pay, &payer, None))).await;
    answers.push(api.post(&pay, &payer, None).await);
    for (status, body) in &answers {
        assert_eq!((*status, body["status"].as_str()), (200, Some("paid")), "{body}");
    }
    let (status, body) = api.post(&format!("/api/orders/{paid}/cancel"), &payer, None).await;
    assert_eq!((status, code(&body)), (409, "order_closed"), "a paid order cannot be cancelled");

    // Cancelled by 20 requests at once: one wins, the stock comes back once.
    let cancelled = api.buy(a, "canceller", 2).await;
    let cancel = format!("/api/orders/{cancelled}/cancel");
    let canceller = jwt("canceller");
    let answers = join_all((0..20).map(|_| api.post(&cancel, &canceller, None))).await;
    let won: Vec<_> = answers.iter().filter(|(s, _)| *s == 200).collect();
    assert_eq!(won.len(), 1, "one cancel wins: {answers:?}");
    assert_eq!(won[0].1["status"], "cancelled");
    for (status, body) in answers.iter().filter(|(s, _)| *s != 200) {
        assert_eq!((*status, code(body)), (409, "order_closed"), "{body}");
    }
    let (status, body) = api.post(&format!("/api/orders/{cancelled}/pay"), &canceller, None).await;
    assert_eq!((status, code(&body)), (409, "order_closed"), "a cancelled order is never paid");
    let mut c = redis.conn().await;
    assert_eq!(get_int(&mut c, &keys::sold(a)).await, 1, "only the paid unit stays sold");
    assert_eq!(get_int(&mut c, &keys::inventory(a)).await, STOCK - 1);

    // Expiry: bought through the hasty process (1 s to pay), never paid, expired by a sweeper.
    let sleeper = hasty.buy(a, "sleeper", 1).await;
    // Racers pay (three requests at once) around their deadline while the sweepers expire.
    let racers = (0..RACERS).map(|i| {
        let hasty = &hasty;
        async move {
            let user = format!("racer-{i}");
            let order = hasty.buy(a, &user, 1).await;
            // Around its own deadline (600 ms before to 540 ms after), whatever the machine's speed.
            let deadline = pay_deadline_ms(hasty, &order, &user).await;
            sleep_until_unix_ms(deadline - 600 + i as i64 * 60).await;
            let path = format!("/api/orders/{order}/pay");
            let bearer = jwt(&user);
            let answers = join_all((0..3).map(|_| hasty.post(&path, &bearer, None))).await;
            for (status, body) in &answers {
                assert!(
                    *status == 200 && body["status"] == "paid" || (*status, code(body)) == (409, "order_closed"),
                    "pay answered {status} {body}"
                );
            }
            let won = answers.iter().any(|(s, _)| *s == 200);
            assert!(answers.iter().all(|(s, _)| (*s == 200) == won), "one order, one outcome: {answers:?}");
            (order, won)
        }
    });
    let raced: Vec<(String, bool)> = join_all(racers).await;

    let db = api.db().await;
    let total = 3 + RACERS;
    let settled = eventually(Duration::from_secs(30), "every order to be settled", || async {
        let rows = rows(&db, a, 4).await;
        (rows.len() == total
            && rows.iter().all(|r| match r.status {
                OrderStatus::Paid => r.stock_released == 0,
                OrderStatus::Cancelled | OrderStatus::Expired => r.stock_released == 1,
                _ => false,
            }))
        .then_some(rows)
    })
    .await;
    let status_of = |id: &str| settled.iter().find(|r| r.order_id == id).unwrap().status;
    assert_eq!(status_of(&paid), OrderStatus::Paid);
    assert_eq!(status_of(&cancelled), OrderStatus::Cancelled);
    assert_eq!(status_of(&sleeper), OrderStatus::Expired);
    for (order, won) in &raced {
        let want = if *won { OrderStatus::Paid } else { OrderStatus::Expired };
        assert_eq!(status_of(order), want, "order {order}: the answer and the row agree");
    }
    for path in [format!("/api/orders/{sleeper}/pay"), format!("/api/orders/{sleeper}/cancel")] {
        let (status, body) = hasty.post(&path, &jwt("sleeper"), None).await;
        assert_eq!((status, code(&body)), (409, "order_closed"), "{path}: {body}");
    }

    let paid_qty: i64 = settled.iter().filter(|r| r.status == OrderStatus::Paid).map(|r| r.quantity).sum();
    assert_eq!(get_int(&mut c, &keys::sold(a)).await, paid_qty, "sold is exactly what was paid");
    assert_eq!(get_int(&mut c, &keys::inventory(a)).await, STOCK - paid_qty, "closed orders gave stock back once");
    let (_, by_status) = api.get(&format!("/admin/api/orders?activity_id={a}&status=paid&limit=500"), &admin).await;
    assert_eq!(by_status["items"].as_array().unwrap().len() as i64, paid_qty, "{by_status}");

    let report = reconciliation(&api, &admin, a).await;
    assert_eq!((report["drift"].as_i64(), report["ok"].as_bool()), (Some(0), Some(true)), "{report}");
    assert_eq!(report["db_holding_quantity"], paid_qty);
    assert_eq!(report["db_unreleased_quantity"], 0);
    assert_eq!(report["db_orders"], total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paying_queued_orders_while_the_worker_writes_them_on_mariadb() {
    // Paying a queued order writes its row first: the same insert the worker makes of
    // the same order at the same moment. Neither may fail on the other's row lock.
    const N: usize = 100;
    let mariadb = MariaDb::start().await.unwrap();
    let redis = RedisServer::start().unwrap();
    let api = Backend::start_on_db(&redis.url(), &mariadb.url(), None, &["--role", "api"]).await.unwrap();
    let a = api.create_activity(ActivitySpec::live(N as i64, 1)).await;
    let buys = (0..N).map(|i| {
        let api = &api;
        async move { api.buy(a, &format!("buyer-{i}"), 1).await }
    });
    let orders: Vec<String> = join_all(buys).await;

    let db = api.db().await;
    let store = Store::connect(&redis.url(), Duration::from_secs(2)).await.unwrap();
    let worker = OrderWorker::new(store, db.clone(), "mariadb-worker", OrderWorkerConfig::default()).spawn();
    let payments = orders.iter().enumerate().map(|(i, order)| {
        let api = &api;
        async move {
            let (path, bearer) = (format!("/api/orders/{order}/pay"), jwt(&format!("buyer-{i}")));
            join_all((0..2).map(|_| api.post(&path, &bearer, None))).await
        }
    });
    for (status, body) in join_all(payments).await.into_iter().flatten() {
        assert_eq!((status, body["status"].as_str()), (200, Some("paid")), "{body}");
    }
    eventually(Duration::from_secs(30), "the worker to drain the stream", || async {
        let mut c = redis.conn().await;
        let len: i64 = redis::cmd("XLEN").arg(keys::order_stream(a)).query_async(&mut c).await.unwrap();
        (len == 0).then_some(())
    })
    .await;
    worker.abort();
    let all = rows(&db, a, 500).await;
    assert_eq!(all.len(), N);
    assert!(all.iter().all(|r| r.status == OrderStatus::Paid), "every order paid once");
    let admin = api.admin_token().await;
    let report = reconciliation(&api, &admin, a).await;
    assert_eq!((report["drift"].as_i64(), report["ok"].as_bool()), (Some(0), Some(true)), "{report}");
    assert_eq!(report["db_holding_quantity"], N);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buyers_list_only_their_own_orders_on_mariadb() {
    // User ids are case-sensitive; MySQL's default collations are not.
    let mariadb = MariaDb::start().await.unwrap();
    let redis = RedisServer::start().unwrap();
    let api = Backend::start_on_db(&redis.url(), &mariadb.url(), None, &[]).await.unwrap();
    let a = api.create_activity(ActivitySpec::live(10, 2)).await;
    let carol = [api.buy(a, "carol", 1).await, api.buy(a, "carol", 1).await];
    let other = api.buy(a, "Carol", 1).await;
    let db = api.db().await;
    eventually(Duration::from_secs(10), "the rows", || async { (rows(&db, a, 10).await.len() == 3).then_some(()) })
        .await;

    let mut listed = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = api.get(&format!("/api/me/orders?limit=1&cursor={cursor}"), &jwt("carol")).await;
        assert_eq!(status, 200, "{page}");
        listed.extend(page["items"].as_array().unwrap().iter().map(|o| o["order_id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    assert!(!listed.contains(&other), "carol must not see Carol's order {other}: {listed:?}");
    listed.sort();
    let mut expected = carol.to_vec();
    expected.sort();
    assert_eq!(listed, expected);
    let (status, page) = api.get("/api/me/orders", &jwt("Carol")).await;
    assert_eq!(status, 200);
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(page["items"][0]["order_id"], other.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_rules_and_checklist_ticks_round_trip_on_mariadb() {
    let redis = RedisServer::start().unwrap();
    let db = MariaDb::start().await.unwrap();
    let api = Backend::start_on_db(&redis.url(), &db.url(), None, &[]).await.unwrap();
    let admin = api.admin_token().await;
    let (status, current) = api.get("/admin/api/edge-rules", &admin).await;
    assert_eq!((status, current["version"].as_i64()), (200, Some(0)), "{current}");
    let mut rules = current["rules"].clone();
    rules["per_ip"]["burst"] = serde_json::json!(33);
    let res = api.http.put(api.url("/admin/api/edge-rules")).bearer_auth(&admin).json(&rules).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let (_, current) = api.get("/admin/api/edge-rules", &admin).await;
    assert_eq!((current["version"].as_i64(), current["rules"]["per_ip"]["burst"].as_i64()), (Some(1), Some(33)));
    let tick = serde_json::json!({"id": "dr.failover", "ticked": true, "note": "故障演练 2026-11-20 done"});
    let res = api.http.put(api.url("/admin/api/checklist")).bearer_auth(&admin).json(&tick).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let (_, items) = api.get("/admin/api/checklist", &admin).await;
    let drill = items.as_array().unwrap().iter().find(|i| i["id"] == "dr.failover").unwrap().clone();
    assert_eq!((drill["status"].as_str(), drill["evidence"].as_str()), (Some("ok"), Some("故障演练 2026-11-20 done")));
}

// ---- Outages of the order database: no accepted order is lost or buried ----

/// Buyers who keep coming, a new user each, in small waves until `stop`;
/// returns every order that was accepted (202).
async fn rush_until(api: &Backend, a: u64, stop: &AtomicBool) -> Vec<String> {
    let mut orders = Vec::new();
    let mut next = 0;
    while !stop.load(Ordering::Relaxed) {
        let wave = (next..next + 8).map(|i| async move { api.buy(a, &format!("rusher-{i}"), 1).await });
        orders.extend(join_all(wave).await);
        next += 8;
        // A steady crowd rather than a flood: the point is the outage, not the load.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    orders
}

async fn order_count(db: &Db, a: u64) -> i64 {
    db.activity_totals(a, i64::MAX).await.unwrap().orders
}

/// A rush runs on MariaDB through `outage`; afterwards every accepted order is
/// a row, nothing was dead-lettered and reconciliation balances.
async fn rush_through(outage: impl AsyncFnOnce(&MariaDb, &Db, u64)) {
    let mariadb = MariaDb::start().await.unwrap();
    let redis = RedisServer::start().unwrap();
    // The backend as production runs it: its own account, no admin rights.
    let api = Backend::start_on_db(&redis.url(), &mariadb.app_url(), None, &[]).await.unwrap();
    let a = api.create_activity(ActivitySpec::live(1_000_000, 1)).await;
    // The test reads as root, whom neither fault concerns.
    let db = Db::connect(&mariadb.url()).await.unwrap();
    let stop = AtomicBool::new(false);
    let (accepted, ()) = tokio::join!(rush_until(&api, a, &stop), async {
        eventually(Duration::from_secs(30), "the worker to write the first rows", || async {
            (order_count(&db, a).await >= 16).then_some(())
        })
        .await;
        outage(&mariadb, &db, a).await;
        // Sales go on a little after the database is back, then the rush ends.
        let back = order_count(&db, a).await;
        eventually(Duration::from_secs(30), "rows to be written again", || async {
            (order_count(&db, a).await > back).then_some(())
        })
        .await;
        stop.store(true, Ordering::Relaxed);
    });
    let store = Store::connect(&redis.url(), Duration::from_secs(2)).await.unwrap();
    eventually(Duration::from_secs(60), "every accepted order to become a row", || async {
        let (len, _) = store.stream_lag(a).await.unwrap();
        (len == 0 && order_count(&db, a).await == accepted.len() as i64).then_some(())
    })
    .await;
    assert!(store.dead_letters(a, 10).await.unwrap().is_empty(), "an outage dead-letters nothing");
    let ids: HashSet<String> = rows(&db, a, 500).await.into_iter().map(|r| r.order_id).collect();
    assert_eq!(ids, accepted.iter().cloned().collect::<HashSet<_>>(), "exactly the accepted orders");
    let admin = api.admin_token().await;
    let report = reconciliation(&api, &admin, a).await;
    assert_eq!((report["drift"].as_i64(), report["dead_letters"].as_i64()), (Some(0), Some(0)), "{report}");
}

/// How long each outage lasts: a failover's switch, or a burst of connections.
const OUTAGE: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_seconds_of_read_only_in_a_rush_lose_and_bury_nothing_on_mariadb() {
    rush_through(async |mariadb: &MariaDb, db: &Db, a: u64| {
        // As during a failover: the server refuses writes with 1290 (--read-only).
        let mut root = mariadb.root().await.unwrap();
        sqlx::query("SET GLOBAL read_only = 1").execute(&mut root).await.unwrap();
        // A transaction that was committing at the switch may still land; after a second none can.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let during = order_count(db, a).await;
        tokio::time::sleep(OUTAGE - Duration::from_secs(1)).await;
        assert_eq!(order_count(db, a).await, during, "no row is written while the server is read-only");
        sqlx::query("SET GLOBAL read_only = 0").execute(&mut root).await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_seconds_without_a_free_connection_in_a_rush_lose_and_bury_nothing_on_mariadb() {
    rush_through(async |mariadb: &MariaDb, _: &Db, _: u64| {
        use sqlx::Connection as _;
        let mut root = mariadb.root().await.unwrap();
        sqlx::query("SET GLOBAL max_connections = 12").execute(&mut root).await.unwrap();
        // Take every slot, and cut the backend's own connections so that it needs new
        // ones: it gets 1040 (too many connections) until the hogs let go.
        let mut hogs: Vec<(i64, sqlx::MySqlConnection)> = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            loop {
                match sqlx::MySqlConnection::connect(&mariadb.app_url()).await {
                    Ok(mut hog) => {
                        let id: i64 = sqlx::query_scalar("SELECT CAST(CONNECTION_ID() AS SIGNED)")
                            .fetch_one(&mut hog)
                            .await
                            .unwrap();
                        hogs.push((id, hog));
                    }
                    Err(sqlx::Error::Database(e))
                        if e.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>().map(|e| e.number())
                            == Some(1040) =>
                    {
                        break;
                    }
                    Err(e) => panic!("a hog could not connect: {e}"),
                }
            }
            let theirs: Vec<i64> = sqlx::query_scalar(
                "SELECT CAST(id AS SIGNED) FROM information_schema.processlist WHERE user = 'seckill'",
            )
            .fetch_all(&mut root)
            .await
            .unwrap();
            let theirs: Vec<i64> = theirs.into_iter().filter(|id| hogs.iter().all(|(h, _)| h != id)).collect();
            if theirs.is_empty() {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the backend kept its connections: {theirs:?}");
            for id in theirs {
                // It may be gone already; the next pass checks.
                let _ = sqlx::query(&format!("KILL CONNECTION {id}")).execute(&mut root).await;
            }
        }
        tokio::time::sleep(OUTAGE).await;
        drop(hogs);
        sqlx::query("SET GLOBAL max_connections = 151").execute(&mut root).await.unwrap();
    })
    .await;
}

/// The edge's state needs Redis alone: an order DB that is stuck (paused)
/// from two seconds before a sale starts does not keep the edge refusing the
/// sale as `not_started`; buyers through the edge buy as soon as it starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sale_that_starts_while_the_database_is_stuck_sells_through_the_edge() {
    let mariadb = MariaDb::start().await.unwrap();
    let redis = RedisServer::start().unwrap();
    let api = Backend::start_on_db(&redis.url(), &mariadb.app_url(), None, &[]).await.unwrap();
    let admin = api.admin_token().await;
    let starts_in = time::Duration::seconds(4);
    let a = api.create_activity(ActivitySpec { starts_in, ..ActivitySpec::live(10, 1) }).await;
    let (_, activity) = api.get(&format!("/admin/api/activities/{a}"), &admin).await;
    let starts_at = time::OffsetDateTime::parse(
        activity["starts_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let starts_ms = (starts_at.unix_timestamp_nanos() / 1_000_000) as i64;
    let edge = seckill_tests::edge::start_edge(api.addr, "stuck-db-edge", 200);
    let base = format!("http://{}", edge.listen_addr());
    let http = reqwest::Client::new();
    let token = || http.post(format!("{base}/api/activities/{a}/token")).bearer_auth(jwt("early-bird")).send();

    // Before the start the edge itself answers not_started (it has synced the state).
    eventually(Duration::from_secs(10), "the edge to sync", || async {
        let (_, syncs) = api.get("/admin/api/edge-status", &admin).await;
        syncs.as_array()?.iter().any(|s| s["edge_id"] == "stuck-db-edge").then_some(())
    })
    .await;
    let res = token().await.unwrap();
    assert_eq!(res.status(), 409, "before the start");

    // Two seconds before the start the order DB gets stuck, and stays stuck through the start.
    sleep_until_unix_ms(starts_ms - 2_000).await;
    mariadb.pause();
    sleep_until_unix_ms(starts_ms).await;
    let bought = eventually(Duration::from_secs(10), "a purchase through the edge after the start", || async {
        let res = token().await.ok()?;
        if res.status() != 200 {
            return None;
        }
        let t: Value = res.json().await.ok()?;
        let res = http
            .post(format!("{base}/api/activities/{a}/purchase"))
            .bearer_auth(jwt("early-bird"))
            .json(&serde_json::json!({"token": t["token"], "quantity": 1}))
            .send()
            .await
            .ok()?;
        if res.status() != 202 {
            return None;
        }
        res.json::<Value>().await.ok()
    })
    .await;
    mariadb.resume();
    let order = bought["order_id"].as_str().unwrap().to_owned();
    let db = api.db().await;
    eventually(Duration::from_secs(30), "the order's row once the DB is back", || async {
        db.order(&order).await.ok().flatten().map(|_| ())
    })
    .await;
}
