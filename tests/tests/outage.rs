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
