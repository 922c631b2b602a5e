//! Redis going away mid-sale: requests fail fast with `unavailable` (never
//! hang), readiness says so, and sales resume by themselves once it is back.

use std::time::{Duration, Instant};

use seckill_tests::{ActivitySpec, Backend, RedisServer, eventually};
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
