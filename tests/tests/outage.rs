//! Redis going away mid-sale: requests fail fast with `unavailable` (never
//! hang), readiness says so, the circuit breaker opens and closes, and sales
//! resume by themselves once it is back.

use std::time::{Duration, Instant};

use seckill_tests::{
    ActivitySpec, Backend, BackendProcess, RedisServer, TempDir, admin_token_at, create_activity_at, eventually, jwt,
};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_is_unavailable_fast_and_sales_resume_after() {
    let mut redis = RedisServer::start().unwrap();
    let api = Backend::start(&redis.url()).await.unwrap();
    let a = api.create_activity(ActivitySpec::live(10, 5)).await;
    api.buy(a, "before", 1).await;
    let (_, t) = api.token(a, "during").await;
    let token = t["token"].as_str().unwrap().to_owned();

    redis.kill();
    for _ in 0..3 {
        let started = Instant::now();
        let (status, body) = api.purchase(a, "during", &token, json!(1)).await;
        assert_eq!((status, body["code"].as_str()), (503, Some("unavailable")), "{body}");
        assert!(started.elapsed() < Duration::from_secs(2), "took {:?}: must fail fast", started.elapsed());
    }
    let res = api.http.get(api.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));

    // Back up (same data, AOF): the token issued before the outage still buys.
    redis.restart().unwrap();
    let order = eventually(Duration::from_secs(15), "sales to resume after redis restarts", || async {
        let (status, body) = api.purchase(a, "during", &token, json!(1)).await;
        (status == 202).then(|| body["order_id"].as_str().unwrap().to_owned())
    })
    .await;
    assert!(!order.is_empty());
    let res = api.http.get(api.url(&format!("/api/activities/{a}"))).send().await.unwrap();
    let activity: Value = res.json().await.unwrap();
    assert_eq!((activity["remaining"].as_i64(), activity["sold"].as_i64()), (Some(8), Some(2)));
}

/// Redis that hangs (rather than refusing connections) while hundreds of purchases are queued behind
/// the stuck calls: every one of them still answers `unavailable` fast, and sales go on after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_redis_fails_queued_purchases_fast_too() {
    let redis = RedisServer::start().unwrap();
    let api = Backend::start(&redis.url()).await.unwrap();
    let a = api.create_activity(ActivitySpec::live(1000, 1)).await;
    let buyers: Vec<(String, String)> = futures::future::join_all((0..700).map(|i| {
        let api = &api;
        async move {
            let user = format!("queued{i}");
            let (status, t) = api.token(a, &user).await;
            assert_eq!(status, 200, "{t}");
            (user, t["token"].as_str().unwrap().to_owned())
        }
    }))
    .await;

    // Every client of Redis waits (the backend's calls included) for 3 s: more than the backend's
    // 800 ms timeout, and long enough that the purchases queue behind the first, stuck calls.
    let mut admin = redis.conn().await;
    let () = redis::cmd("CLIENT").arg("PAUSE").arg(3000).arg("ALL").query_async(&mut admin).await.unwrap();
    let answers = futures::future::join_all(buyers.iter().map(|(user, token)| {
        let api = &api;
        async move {
            let started = Instant::now();
            let (status, body) = api.purchase(a, user, token, json!(1)).await;
            (status, body, started.elapsed())
        }
    }))
    .await;
    for (status, body, took) in &answers {
        assert_eq!((*status, body["code"].as_str()), (503, Some("unavailable")), "{body}");
        assert!(*took < Duration::from_secs(2), "took {took:?}: a queued purchase must fail fast too");
    }

    // Redis answers again: sales go on.
    eventually(Duration::from_secs(15), "sales to resume after the pause", || async {
        let (_, t) = api.token(a, "after").await;
        let token = t["token"].as_str()?.to_owned();
        let (status, _) = api.purchase(a, "after", &token, json!(1)).await;
        (status == 202).then_some(())
    })
    .await;
    let res = api.http.get(api.url(&format!("/api/activities/{a}"))).send().await.unwrap();
    let activity: Value = res.json().await.unwrap();
    let (remaining, sold) = (activity["remaining"].as_i64().unwrap(), activity["sold"].as_i64().unwrap());
    assert_eq!(remaining + sold, 1000, "inventory + sold == total");
}

/// A paused Redis opens the circuit breaker: after a few calls time out,
/// requests fail at once without waiting on Redis, `/metrics` shows it open,
/// and once Redis answers a probe closes it and sales go on. A process of its
/// own, so that its metrics are its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_redis_opens_the_breaker_and_a_probe_closes_it_when_redis_answers() {
    let redis = RedisServer::start().unwrap();
    let dir = TempDir::new("breaker");
    let database_url = format!("sqlite://{}/orders.db", dir.0.display());
    let flags = ["--redis-timeout-ms", "300", "--breaker-failures", "3", "--breaker-open-ms", "500"];
    let backend = BackendProcess::start(&redis.url(), &database_url, &flags).await.unwrap();
    let http = reqwest::Client::new();
    let url = |path: &str| format!("http://{}{path}", backend.addr);
    let a = create_activity_at(&http, backend.addr, ActivitySpec::live(10, 5)).await;
    let res = http.post(url(&format!("/api/activities/{a}/token"))).bearer_auth(jwt("buyer")).send().await.unwrap();
    let token: Value = res.json().await.unwrap();
    let token = token["token"].as_str().unwrap().to_owned();
    let purchase = || {
        http.post(url(&format!("/api/activities/{a}/purchase")))
            .bearer_auth(jwt("buyer"))
            .json(&json!({"token": token, "quantity": 1}))
            .send()
    };
    let metrics = || async { http.get(url("/metrics")).send().await.unwrap().text().await.unwrap() };
    assert!(metrics().await.contains(r#"seckill_breaker_open{dependency="redis"} 0"#));

    redis.pause();
    // Calls time out until three in a row have failed; then the breaker answers by itself.
    let refused = eventually(Duration::from_secs(15), "the breaker to open", || async {
        let res = purchase().await.unwrap();
        assert_eq!(res.status(), 503);
        let retry_after = res.headers().get("retry-after").cloned();
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["code"], "unavailable", "{body}");
        body["message"].as_str().unwrap().contains("circuit breaker open").then_some((body, retry_after))
    })
    .await;
    assert!(refused.1.is_some(), "an open breaker says when to retry: {:?}", refused.0);
    let open = metrics().await;
    assert!(open.contains(r#"seckill_breaker_open{dependency="redis"} 1"#), "{open}");
    assert!(open.contains(r#"seckill_breaker_rejected_total{dependency="redis"}"#), "{open}");

    redis.resume();
    eventually(Duration::from_secs(15), "a probe to close the breaker and the sale to go on", || async {
        (purchase().await.unwrap().status() == 202).then_some(())
    })
    .await;
    assert!(metrics().await.contains(r#"seckill_breaker_open{dependency="redis"} 0"#));
    let admin = admin_token_at(&http, backend.addr).await;
    let res = http.get(url("/admin/api/checklist")).bearer_auth(admin).send().await.unwrap();
    let checklist: Value = res.json().await.unwrap();
    let item = checklist.as_array().unwrap().iter().find(|i| i["id"] == "dr.rate_limit_breaker").unwrap();
    assert_eq!(item["status"], "ok", "{item}");
    assert!(item["evidence"].as_str().unwrap().contains("opens after 3 failures in a row for 500 ms"), "{item}");
}
