//! The sale on replicated Redis, with real processes on loopback: Sentinel
//! (a master, two replicas, three sentinels) and a Cluster (three masters
//! with a replica each), each in front of the real backend process (API and
//! order worker) behind the edge.
//!
//! A master is `kill -9`ed in the middle of a rush. Whatever the timing,
//! every purchase that got a 202 is an order row, `sold` is exactly the
//! rows, nothing is oversold; the time from the kill to the first sale after
//! it is printed (`-- --nocapture`). A purchase that no replica confirms in
//! time is `unavailable`, and its retry returns the one order it made. And
//! the whole buyer's and operator's path (token, purchase, retry, cancel,
//! orders, reconciliation, edge state) works on a Cluster with activities
//! spread over its masters.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use seckill_backend::db::Db;
use seckill_backend::store::{Store, keys};
use seckill_tests::crowd::{Crowd, Finished, assert_nothing_lost_or_oversold};
use seckill_tests::redis_topology::{RedisCluster, SentinelRedis};
use seckill_tests::{
    ActivitySpec, Backend, BackendProcess, EDGE_SECRET, RedisServer, TempDir, create_activity_at, eventually,
};
use serde_json::{Value, json};

const FAILOVER_DEADLINE: Duration = Duration::from_secs(30);
/// Buyers arrive one every 15 ms: 300 of them over 4.5 s, so that the kill
/// (after 40 sales) lands mid-rush and buyers keep coming through the failover.
const ARRIVAL: Duration = Duration::from_millis(15);

/// The backend process (API and order worker) on `redis_url`, with a fresh
/// SQLite order DB, and the edge in front of it.
async fn backend_behind_edge(
    redis_url: &str,
    tag: &str,
) -> (BackendProcess, seckill_edge_host::proxy::EdgeProxy, TempDir, String) {
    let dir = TempDir::new(tag);
    let database_url = format!("sqlite://{}/orders.db", dir.0.display());
    // A worker's pending orders are claimed after 1 s if its reads were cut off.
    let flags = ["--trusted-proxies", "127.0.0.0/8", "--claim-idle-ms", "1000"];
    let backend = BackendProcess::start(redis_url, &database_url, &flags).await.unwrap();
    let edge = seckill_tests::edge::start_edge(backend.addr, tag, 200);
    (backend, edge, dir, database_url)
}

fn report(topology: &str, killed_at: Instant, failover: Duration, finished: &Finished) {
    let first = finished.first_sale_after(killed_at).expect("a sale was accepted after the kill");
    eprintln!(
        "{topology}: master killed; new master after {:.2} s; first sale after the kill {:.2} s; \
         {} orders; {} tokens lost with the old master and asked for again",
        failover.as_secs_f64(),
        first.as_secs_f64(),
        finished.bought.len(),
        finished.tokens_lost
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sentinel_master_killed_mid_rush_is_replaced_and_no_accepted_sale_is_lost() {
    const BUYERS: usize = 300;
    const STOCK: i64 = 200;
    let mut redis = SentinelRedis::start().unwrap();
    let (backend, edge, _dir, database_url) = backend_behind_edge(&redis.url(), "sentinel-failover").await;
    let http = reqwest::Client::new();
    let a = create_activity_at(&http, backend.addr, ActivitySpec::live(STOCK, 1)).await;
    let store = Store::connect(&redis.url(), Duration::from_secs(2)).await.unwrap();

    let crowd = Crowd::arriving(&format!("http://{}", edge.listen_addr()), a, BUYERS, ARRIVAL);
    eventually(Duration::from_secs(60), "the first sales", || async {
        (store.counters(a, 0).await.ok()?.sold >= 40).then_some(())
    })
    .await;
    let old = redis.master_port().unwrap();
    redis.kill_node(old);
    let killed_at = Instant::now();
    let at_kill = crowd.done();
    let new = redis.wait_for_new_master(old, FAILOVER_DEADLINE).unwrap();
    let failover = killed_at.elapsed();
    assert_ne!(new, old);

    let finished = crowd.finish().await;
    assert!(at_kill < BUYERS, "the kill came mid-rush ({at_kill} of {BUYERS} done)");
    assert_eq!(finished.bought.len() as i64, STOCK, "demand exceeds the stock: exactly the stock is sold");
    assert_eq!(finished.sold_out, BUYERS - STOCK as usize);
    report("sentinel", killed_at, failover, &finished);
    let db = Db::connect(&database_url).await.unwrap();
    assert_nothing_lost_or_oversold(&store, &db, a, STOCK, &finished.bought).await;

    // The dashboard's checklist asks the sentinels and the new master for real.
    let admin = seckill_tests::admin_token_at(&http, backend.addr).await;
    let checklist: Value = http
        .get(format!("http://{}/admin/api/checklist", backend.addr))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let item = |id: &str| checklist.as_array().unwrap().iter().find(|i| i["id"] == id).unwrap().clone();
    // Ok only if the sentinels have their quorum, the new master kept the other
    // replica, and it fsyncs its AOF on every write.
    let redis = item("infra.redis_cluster");
    assert_eq!(redis["status"], "ok", "{redis}");
    let evidence = redis["evidence"].as_str().unwrap();
    assert!(evidence.contains("3 usable Sentinels"), "{redis}");
    assert!(evidence.contains("replicas 1"), "the new master keeps the other replica: {redis}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_master_killed_mid_rush_fails_over_and_the_other_masters_sell_on() {
    const BUYERS: usize = 300;
    const STOCK: i64 = 200;
    let mut cluster = RedisCluster::start().unwrap();
    let (backend, edge, _dir, database_url) = backend_behind_edge(&cluster.url(), "cluster-failover").await;
    let http = reqwest::Client::new();
    // Activities until two of them live on different masters.
    let mut activities = Vec::new();
    while activities.iter().map(|(_, m)| *m).collect::<HashSet<u16>>().len() < 2 {
        let a = create_activity_at(&http, backend.addr, ActivitySpec::live(STOCK, 1)).await;
        activities.push((a, cluster.master_of_key(&keys::inventory(a)).unwrap()));
    }
    let (a, old) = activities[0];
    let (b, _) = *activities.iter().find(|(_, m)| *m != old).unwrap();
    let store = Store::connect(&cluster.url(), Duration::from_secs(2)).await.unwrap();

    let crowd = Crowd::arriving(&format!("http://{}", edge.listen_addr()), a, BUYERS, ARRIVAL);
    eventually(Duration::from_secs(60), "the first sales", || async {
        (store.counters(a, 0).await.ok()?.sold >= 40).then_some(())
    })
    .await;
    cluster.kill_node(old);
    let killed_at = Instant::now();
    let at_kill = crowd.done();
    // Another master's activity sells while the first one's slots move.
    let elsewhere = Crowd::start(&format!("http://{}", edge.listen_addr()), b, 50).finish().await;
    assert_eq!(elsewhere.bought.len(), 50, "the other masters sell on");
    let new = cluster.wait_for_failover(old, FAILOVER_DEADLINE).unwrap();
    let failover = killed_at.elapsed();
    // The promoted replica has no replica of its own until the old node
    // comes back (as a supervisor restarts it): until then no purchase of
    // its slots can be acknowledged, and buyers hear `unavailable`.
    cluster.restart_node(old).unwrap();
    cluster.wait_for_replica(old, new, FAILOVER_DEADLINE).unwrap();

    let finished = crowd.finish().await;
    assert!(at_kill < BUYERS, "the kill came mid-rush ({at_kill} of {BUYERS} done)");
    assert_eq!(finished.bought.len() as i64, STOCK, "demand exceeds the stock: exactly the stock is sold");
    report("cluster", killed_at, failover, &finished);
    let db = Db::connect(&database_url).await.unwrap();
    assert_nothing_lost_or_oversold(&store, &db, a, STOCK, &finished.bought).await;
    assert_nothing_lost_or_oversold(&store, &db, b, STOCK, &elsewhere.bought).await;
}

/// An admin call on the in-process backend.
async fn admin(api: &Backend, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let token = api.admin_token().await;
    let http = reqwest::Client::new();
    let mut request = http.request(method.parse().unwrap(), api.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_buyers_and_operators_path_works_on_a_cluster_with_activities_on_every_master() {
    let cluster = RedisCluster::start().unwrap();
    let api = Backend::start(&cluster.url()).await.unwrap();

    // Enough activities to land on all three masters.
    let mut activities = Vec::new();
    while activities.iter().map(|(_, m)| *m).collect::<HashSet<u16>>().len() < 3 {
        let a = api.create_activity(ActivitySpec::live(5, 2)).await;
        activities.push((a, cluster.master_of_key(&keys::inventory(a)).unwrap()));
        assert!(activities.len() < 40, "40 activities and still not on every master: {activities:?}");
    }

    for &(a, _) in &activities {
        // Token, purchase, and the retry with the same token: the same order.
        let (status, token) = api.token(a, "alice").await;
        assert_eq!(status, 200, "{token}");
        let token = token["token"].as_str().unwrap().to_owned();
        let (status, order) = api.purchase(a, "alice", &token, json!(1)).await;
        assert_eq!(status, 202, "{order}");
        let (status, again) = api.purchase(a, "alice", &token, json!(1)).await;
        assert_eq!((status, &again["order_id"]), (202, &order["order_id"]), "a retry returns the same order");
        let order_id = order["order_id"].as_str().unwrap().to_owned();

        // The worker turns it into a row; the buyer sees it and cancels it; the stock goes back once.
        let bearer = seckill_tests::jwt("alice");
        eventually(Duration::from_secs(20), "the order row", || async {
            let (status, o) = api.get(&format!("/api/orders/{order_id}"), &bearer).await;
            (status == 200 && o["status"] == "pending_payment").then_some(())
        })
        .await;
        let (status, cancelled) = api.post(&format!("/api/orders/{order_id}/cancel"), &bearer, None).await;
        assert_eq!((status, cancelled["status"].as_str()), (200, Some("cancelled")), "{cancelled}");
        let (status, again) = api.post(&format!("/api/orders/{order_id}/cancel"), &bearer, None).await;
        assert_eq!((status, again["code"].as_str()), (409, Some("order_closed")), "{again}");
        let (_, activity) = api.get(&format!("/api/activities/{a}"), &bearer).await;
        assert_eq!((activity["remaining"].as_i64(), activity["sold"].as_i64()), (Some(5), Some(0)), "{activity}");

        let (status, mine) = api.get("/api/me/orders", &bearer).await;
        assert_eq!(status, 200);
        assert!(mine["items"].as_array().unwrap().iter().any(|o| o["order_id"] == order_id.as_str()), "{mine}");
        let (status, reconciliation) =
            admin(&api, "GET", &format!("/admin/api/activities/{a}/reconciliation"), None).await;
        assert_eq!(status, 200, "{reconciliation}");
        assert_eq!(reconciliation["drift"], 0, "{reconciliation}");
    }

    // The operator's keys outside any activity (blacklist, edge rules) and the edge's view of them.
    let (status, _) = admin(&api, "PUT", "/admin/api/blacklist/users/mallory", None).await;
    assert_eq!(status, 200);
    let (status, rules) = admin(&api, "GET", "/admin/api/edge-rules", None).await;
    assert_eq!(status, 200, "{rules}");
    let response = reqwest::Client::new()
        .get(api.url("/internal/edge/state"))
        .header("x-seckill-edge-id", "cluster-test")
        .header("x-seckill-edge-secret", EDGE_SECRET)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let state: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 200, "{state}");
    assert!(state.to_string().contains("mallory"), "the blacklist reaches the edge state: {state}");
    let (status, checklist) = admin(&api, "GET", "/admin/api/checklist", None).await;
    assert_eq!(status, 200);
    let redis = checklist.as_array().unwrap().iter().find(|i| i["id"] == "infra.redis_cluster").unwrap().clone();
    assert_eq!(redis["status"], "ok", "{redis}");
    let evidence = redis["evidence"].as_str().unwrap();
    assert!(evidence.contains("3 masters, each with a live replica"), "{redis}");
    assert!(evidence.contains("appendfsync always on all 3 masters"), "{redis}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purchase_no_replica_confirms_is_unavailable_and_its_retry_returns_the_one_order() {
    let primary = RedisServer::start().unwrap();
    let flags = ["--redis-replicas-ack", "1", "--redis-replicas-ack-timeout-ms", "100"];
    let api = Backend::start_with(&primary.url(), &flags).await.unwrap();
    let a = api.create_activity(ActivitySpec::live(5, 1)).await;
    let (status, token) = api.token(a, "bob").await;
    assert_eq!(status, 200, "{token}");
    let token = token["token"].as_str().unwrap().to_owned();

    // No replica: the sale is made on the master, but nobody is told it stands.
    let (status, refused) = api.purchase(a, "bob", &token, json!(1)).await;
    assert_eq!((status, refused["code"].as_str()), (503, Some("unavailable")), "{refused}");

    // A replica catches up; the buyer's retry with the same token gets the one order.
    let replica = RedisServer::start().unwrap();
    let mut c = replica.conn().await;
    let _: () = redis::cmd("REPLICAOF").arg("127.0.0.1").arg(primary.port).query_async(&mut c).await.unwrap();
    eventually(Duration::from_secs(20), "the replica in sync", || async {
        let info: String = redis::cmd("INFO").arg("replication").query_async(&mut c.clone()).await.ok()?;
        info.contains("master_link_status:up").then_some(())
    })
    .await;
    let (status, order) = api.purchase_retrying(a, "bob", &token, json!(1)).await;
    assert_eq!(status, 202, "{order}");
    // Again: the same order. (Each answer waits for the replica's ack, 100 ms
    // at most; on a busy machine one may miss it, and a client retries that.)
    let (status, again) = api.purchase_retrying(a, "bob", &token, json!(1)).await;
    assert_eq!((status, &again["order_id"]), (202, &order["order_id"]));
    let mut p = primary.conn().await;
    assert_eq!(seckill_tests::get_int(&mut p, &keys::sold(a)).await, 1, "one sale, however many answers");
}
