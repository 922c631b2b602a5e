//! Crashes in the middle of a rush, with real processes and real signals:
//! the backend `kill -9`ed behind the edge, one of three backends `kill -9`ed
//! behind Envoy (and left dead), and Redis `kill -9`ed and restarted from its
//! AOF. Buyers come from addresses of their own and do
//! what the contract allows (ask again, with the same token, on `429`/`5xx`).
//! Whatever the timing: every purchase that got a 202 is a row in the end,
//! nothing is oversold, and no unit is sold twice.

use std::time::Duration;

use seckill_backend::db::Db;
use seckill_backend::store::{Store, keys};
use seckill_tests::crowd::{Crowd, assert_nothing_lost_or_oversold};
use seckill_tests::edge::{EdgeHost, RunningEdge};
use seckill_tests::{
    ActivitySpec, Backend, BackendProcess, RedisServer, TempDir, create_activity_at, eventually, get_int,
};

/// Redis as the checks read it.
async fn store(redis: &RedisServer) -> Store {
    Store::connect(&redis.url(), Duration::from_secs(2)).await.unwrap()
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

    let finished = crowd.finish().await;
    assert_eq!(finished.tokens_lost, 0, "a token handed out was lost");
    let (bought, sold_out) = (finished.bought, finished.sold_out);
    assert_eq!(sold_out, 0, "{STOCK} units for {BUYERS} buyers");
    assert_eq!(bought.len(), BUYERS, "every buyer got an order");
    let db = Db::connect(&database_url).await.unwrap();
    assert_nothing_lost_or_oversold(&store(&redis).await, &db, a, STOCK, &bought).await;
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

    let finished = crowd.finish().await;
    assert_eq!(finished.tokens_lost, 0, "a token handed out was lost");
    let (bought, sold_out) = (finished.bought, finished.sold_out);
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
    assert_nothing_lost_or_oversold(&store(&redis).await, &db, a, STOCK, &bought).await;
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

    let finished = crowd.finish().await;
    assert_eq!(finished.tokens_lost, 0, "a token handed out was lost");
    let (bought, sold_out) = (finished.bought, finished.sold_out);
    assert_eq!(bought.len() as i64, STOCK, "demand exceeds the stock: exactly the stock is sold");
    assert_eq!(sold_out, BUYERS - STOCK as usize);
    let db = api.db().await;
    assert_nothing_lost_or_oversold(&store(&redis).await, &db, a, STOCK, &bought).await;
}
