//! Health, readiness and the Prometheus scrape. A test binary of its own:
//! the metrics registry is process-wide, and other tests' activities would
//! share its gauges.

use seckill_tests::{ActivitySpec, Backend, RedisServer};

#[tokio::test]
async fn health_readiness_and_metrics() {
    let redis = RedisServer::start().unwrap();
    let api = Backend::start(&redis.url()).await.unwrap();
    let a = api.create_activity(ActivitySpec::live(5, 1)).await;
    api.buy(a, "vera", 1).await;
    for path in ["/healthz", "/readyz"] {
        assert_eq!(api.http.get(api.url(path)).send().await.unwrap().status(), 200, "{path}");
    }
    let text = api.http.get(api.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for needle in [
        "seckill_purchases_total{result=\"accepted\"}",
        "seckill_http_request_duration_seconds_bucket",
        &format!("seckill_stock_remaining{{activity=\"{a}\"}} 4"),
        &format!("seckill_stock_sold{{activity=\"{a}\"}} 1"),
    ] {
        assert!(text.contains(needle), "/metrics lacks {needle}");
    }
}
