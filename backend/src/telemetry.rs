//! Prometheus metrics: their names, the process's registry, and the stock
//! gauges (the request-latency middleware that fills `REQUEST_DURATION` is
//! HTTP, in `routes::latency`).
//!
//! The recorder is process-global (the `metrics` facade has one), so it is
//! installed once and every router in the process renders the same registry.

use std::sync::OnceLock;
use std::sync::atomic::AtomicU64;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const PURCHASES: &str = "seckill_purchases_total";
pub const TOKENS: &str = "seckill_tokens_total";
pub const REQUEST_DURATION: &str = "seckill_http_request_duration_seconds";
pub const STOCK: &str = "seckill_stock_remaining";
pub const SOLD: &str = "seckill_stock_sold";
/// Purchases per purchase-script call (see `purchase_batch`).
pub const PURCHASE_BATCH_SIZE: &str = "seckill_purchase_batch_size";
/// Writes that fewer replicas than `SECKILL_REDIS_REPLICAS_ACK` confirmed in
/// time (answered `unavailable`; see `Store::acknowledged`).
pub const REPLICAS_ACK_MISSED: &str = "seckill_redis_replicas_ack_missed_total";

/// Buyer requests (`/api/…`) that reached the edge over HTTPS or plain HTTP
/// (the edge's `x-forwarded-proto`), since this backend started; the
/// checklist's 数据加密 reads them.
#[derive(Debug, Default)]
pub struct BuyerSchemes {
    pub https: AtomicU64,
    pub plain: AtomicU64,
}

/// The process's Prometheus registry, installed on first use.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let buckets = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.into()), &buckets)
            .expect("bucket list is not empty")
            .set_buckets_for_metric(
                Matcher::Full(PURCHASE_BATCH_SIZE.into()),
                &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0],
            )
            .expect("bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
        }
        handle
    })
}

/// Publishes an activity's stock and sold counts.
pub fn record_stock(activity: u64, remaining: i64, sold: i64) {
    let id = activity.to_string();
    metrics::gauge!(STOCK, "activity" => id.clone()).set(remaining as f64);
    metrics::gauge!(SOLD, "activity" => id).set(sold as f64);
}
