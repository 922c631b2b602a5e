//! The middleware that times every request by route, method and status
//! (`telemetry::REQUEST_DURATION`, a histogram), and counts the buyers'
//! requests by the scheme they reached the edge with.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;

use crate::telemetry::{BuyerSchemes, REQUEST_DURATION};

/// Records every request's latency by route and status.
pub async fn track_latency(State(schemes): State<Arc<BuyerSchemes>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    if route.starts_with("/api/") {
        let https = request.headers().get("x-forwarded-proto").is_some_and(|p| p.as_bytes() == b"https");
        let counter = if https { &schemes.https } else { &schemes.plain };
        counter.fetch_add(1, Ordering::Relaxed);
    }
    let method = request.method().as_str().to_owned();
    let start = Instant::now();
    let response = next.run(request).await;
    metrics::histogram!(
        REQUEST_DURATION,
        "method" => method,
        "route" => route,
        "status" => response.status().as_u16().to_string()
    )
    .record(start.elapsed().as_secs_f64());
    response
}
