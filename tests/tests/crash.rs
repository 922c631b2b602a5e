//! Crashes in the middle of a rush, with real processes and real signals:
//! the backend `kill -9`ed behind the edge, one of three backends `kill -9`ed
//! behind Envoy (and left dead), and Redis `kill -9`ed and restarted from its
//! AOF. Buyers come from addresses of their own and do
//! what the contract allows (ask again, with the same token, on `429`/`5xx`).
//! Whatever the timing: every purchase that got a 202 is a row in the end,
//! nothing is oversold, and no unit is sold twice.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::future::join_all;
use seckill_backend::db::Db;
use seckill_backend::store::keys;
use seckill_tests::edge::{EdgeHost, RunningEdge};
use seckill_tests::{
    ActivitySpec, Backend, BackendProcess, RedisServer, TempDir, create_activity_at, eventually, get_int, jwt,
    order_rows,
};
use serde_json::{Value, json};

/// How long a buyer keeps asking again.
const PATIENCE: Duration = Duration::from_secs(90);

/// What came of one buyer.
#[derive(Debug)]
enum Outcome {
    Bought(String),
    SoldOut,
}

/// One buyer from an address of its own: token, then purchase with that token,
/// each asked again while the answer says "come back" (429, 5xx, a reset connection).
async fn buyer(base: &str, i: usize, a: u64) -> Outcome {
    let ip = Ipv4Addr::new(127, 20, (i / 250) as u8, (i % 250 + 1) as u8);
    let http = reqwest::Client::builder().local_address(IpAddr::V4(ip)).build().unwrap();
    let user = format!("crash-{i}");
    let bearer = jwt(&user);
    let start = Instant::now();
    let mut token: Option<String> = None;
    loop {
        assert!(start.elapsed() < PATIENCE, "buyer {i} never got an answer");
        let request = match &token {
            None => http.post(format!("{base}/api/activities/{a}/token")).bearer_auth(&bearer),
            Some(t) => http
                .post(format!("{base}/api/activities/{a}/purchase"))
                .bearer_auth(&bearer)
                .json(&json!({"token": t, "quantity": 1})),
        };
        let (status, retry_after, body) = match request.send().await {
            Ok(res) => {
                let status = res.status().as_u16();
                let retry_after = res.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                (status, retry_after, res.json::<Value>().await.unwrap_or(Value::Null))
            }
            // The backend died under the request: the edge dropped it.
            Err(_) => (0, None, Value::Null),
        };
        match (status, body["code"].as_str()) {
            (200, _) if token.is_none() => token = Some(body["token"].as_str().unwrap().to_owned()),
            (202, _) => return Outcome::Bought(body["order_id"].as_str().unwrap().to_owned()),
            (409, Some("sold_out")) => return Outcome::SoldOut,
            (0 | 429 | 500..=599, _) => {
                // Honour retry-after, briefly: this crowd is in a hurry.
                let wait = retry_after.map_or(20, |s| (s * 1000).min(500));
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
            other => panic!("buyer {i}: unexpected answer {other:?}: {body}"),
        }
    }
}

/// A crowd of `n` buyers let loose on activity `a` at `base`, and how many
/// of them are done so far.
struct Crowd {
    buyers: Vec<tokio::task::JoinHandle<(usize, Outcome)>>,
    done: Arc<AtomicUsize>,
}

impl Crowd {
    fn start(base: &str, a: u64, n: usize) -> Self {
        let done = Arc::new(AtomicUsize::new(0));
        let buyers = (0..n)
            .map(|i| {
                let (base, done) = (base.to_owned(), done.clone());
                tokio::spawn(async move {
                    let outcome = buyer(&base, i, a).await;
                    done.fetch_add(1, Ordering::Relaxed);
                    (i, outcome)
                })
            })
            .collect();
        Self { buyers, done }
    }

    fn done(&self) -> usize {
        self.done.load(Ordering::Relaxed)
    }

    /// Waits for every buyer: the orders they were given (order id → buyer), and how many found it sold out.
    async fn finish(self) -> (HashMap<String, usize>, usize) {
        let (mut bought, mut sold_out) = (HashMap::new(), 0);
        for result in join_all(self.buyers).await {
            match result.unwrap() {
                (i, Outcome::Bought(order)) => assert!(bought.insert(order, i).is_none(), "one order, two buyers"),
                (_, Outcome::SoldOut) => sold_out += 1,
            }
        }
        (bought, sold_out)
    }
}

/// What must hold once the dust settles: every accepted order is exactly one
/// row of its buyer, the rows are exactly `sold`, and `inventory + sold == total`.
async fn assert_nothing_lost_or_oversold(
    redis: &RedisServer,
    db: &Db,
    a: u64,
    stock: i64,
    bought: &HashMap<String, usize>,
) {
    let mut c = redis.conn().await;
    eventually(Duration::from_secs(60), "every accepted order to become a row", || async {
        let len: i64 = redis::cmd("XLEN").arg(keys::order_stream(a)).query_async(&mut c.clone()).await.unwrap();
        (len == 0 && order_rows(db, a).await.len() >= bought.len()).then_some(())
    })
    .await;
    let rows = order_rows(db, a).await;
    let ids: HashSet<&str> = rows.iter().map(|r| r.order_id.as_str()).collect();
    assert_eq!(ids.len(), rows.len(), "an order id has two rows");
    for (order, i) in bought {
        let row = rows.iter().find(|r| &r.order_id == order).unwrap_or_else(|| panic!("accepted order {order} lost"));
        assert_eq!(row.user_id, format!("crash-{i}"));
    }
    let users: HashSet<&str> = rows.iter().map(|r| r.user_id.as_str()).collect();
    assert_eq!(users.len(), rows.len(), "a buyer (limit 1) holds two orders");
    let sold = get_int(&mut c, &keys::sold(a)).await;
    assert!(rows.len() as i64 <= stock, "{} rows for {stock} units", rows.len());
    assert_eq!(sold, rows.len() as i64, "sold counts exactly the rows: no unit sold twice, none lost");
    assert_eq!(get_int(&mut c, &keys::inventory(a)).await + sold, stock, "inventory + sold == total");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backend_killed_mid_rush_behind_the_edge_loses_no_accepted_purchase() {
    const BUYERS: usize = 300;
    const STOCK: i64 = 1_000;
    let redis = RedisServer::start_durable().unwrap();
    let dir = TempDir::new("crash-db");
    let database_url = format!("sqlite://{}/orders.db", dir.0.display());
    let mut backend =
        BackendProcess::start(&redis.url(), &database_url, &["--trusted-proxies", "127.0.0.0/8"]).await.unwrap();
    let edge = seckill_tests::edge::start_edge(backend.addr, "crash-edge", 200);
    let base = format!("http://{}", edge.listen_addr());
    let a = create_activity_at(&reqwest::Client::new(), backend.addr, ActivitySpec::live(STOCK, 1)).await;

    let crowd = Crowd::start(&base, a, BUYERS);
    // The crash: once some sales are through, kill -9 the backend, then bring it back.
    eventually(Duration::from_secs(60), "the first sales", || async { (crowd.done() >= 40).then_some(()) }).await;
    backend.kill();
    backend.restart().await.unwrap();

    let (bought, sold_out) = crowd.finish().await;
    assert_eq!(sold_out, 0, "{STOCK} units for {BUYERS} buyers");
    assert_eq!(bought.len(), BUYERS, "every buyer got an order");
    let db = Db::connect(&database_url).await.unwrap();
    assert_nothing_lost_or_oversold(&redis, &db, a, STOCK, &bought).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_of_three_backends_killed_behind_envoy_is_ejected_and_the_others_sell_on() {
    const BUYERS: usize = 300;
    const STOCK: i64 = 1_000;
    let redis = RedisServer::start_durable().unwrap();
    let dir = TempDir::new("three-db");
    let database_url = format!("sqlite://{}/orders.db", dir.0.display());
    // Each runs the API and an order worker; a dead worker's pending orders are claimed after 1 s.
    let flags = ["--trusted-proxies", "127.0.0.0/8", "--claim-idle-ms", "1000"];
    let mut backends = Vec::new();
    for _ in 0..3 {
        backends.push(BackendProcess::start(&redis.url(), &database_url, &flags).await.unwrap());
    }
    let addrs: Vec<_> = backends.iter().map(|b| b.addr).collect();
    let config = seckill_tests::filter_config(addrs[0], "envoy-three", 200);
    let edge = RunningEdge::start(EdgeHost::Envoy, &addrs, config);
    let RunningEdge::Envoy(envoy) = &edge else { unreachable!() };
    let base = edge.url("");
    let a = create_activity_at(&reqwest::Client::new(), addrs[0], ActivitySpec::live(STOCK, 1)).await;

    let crowd = Crowd::start(&base, a, BUYERS);
    eventually(Duration::from_secs(60), "the first sales", || async { (crowd.done() >= 40).then_some(()) }).await;
    // The crash: kill -9 the second backend, and leave it dead.
    let dead = addrs[1];
    backends[1].kill();
    let at_kill = crowd.done();

    let (bought, sold_out) = crowd.finish().await;
    assert_eq!(sold_out, 0, "{STOCK} units for {BUYERS} buyers");
    assert_eq!(bought.len(), BUYERS, "every buyer got an order");
    assert!(at_kill < BUYERS, "the crash came mid-rush ({at_kill} of {BUYERS} done)");
    // Envoy took the dead backend out (active health checks, outlier detection).
    eventually(Duration::from_secs(30), "the dead backend ejected", || async {
        let clusters = envoy.admin_get("/clusters").unwrap();
        let flags = clusters.lines().find(|l| l.contains(&format!("::{dead}::health_flags::")))?.to_owned();
        (flags.contains("failed_active_hc") || flags.contains("failed_outlier_check")).then_some(())
    })
    .await;
    let db = Db::connect(&database_url).await.unwrap();
    assert_nothing_lost_or_oversold(&redis, &db, a, STOCK, &bought).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_killed_mid_rush_and_restarted_from_its_aof_sells_no_unit_twice() {
    const BUYERS: usize = 400;
    const STOCK: i64 = 150;
    let mut redis = RedisServer::start_durable().unwrap();
    let api = Backend::start_with(&redis.url(), &["--trusted-proxies", "127.0.0.0/8"]).await.unwrap();
    let a = api.create_activity(ActivitySpec::live(STOCK, 1)).await;
    let base = format!("http://{}", api.addr);

    let crowd = Crowd::start(&base, a, BUYERS);
    // The crash: kill -9 Redis once some sales are through; it comes back from its AOF.
    let c = redis.conn().await;
    eventually(Duration::from_secs(60), "the first sales", || async {
        (get_int(&mut c.clone(), &keys::sold(a)).await >= 40).then_some(())
    })
    .await;
    redis.kill();
    redis.restart().unwrap();
    drop(c);

    let (bought, sold_out) = crowd.finish().await;
    assert_eq!(bought.len() as i64, STOCK, "demand exceeds the stock: exactly the stock is sold");
    assert_eq!(sold_out, BUYERS - STOCK as usize);
    let db = api.db().await;
    assert_nothing_lost_or_oversold(&redis, &db, a, STOCK, &bought).await;
}
