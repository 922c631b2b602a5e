//! The middleware that times every request by route, method and status
//! (`telemetry::REQUEST_DURATION`, a histogram), and counts the buyers'
//! requests by the scheme they reached the edge with.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::Method;
use metrics::Histogram;

use crate::telemetry::{BuyerSchemes, REQUEST_DURATION};

/// Records every request's latency by route and status.
pub async fn track_latency(State(schemes): State<Arc<BuyerSchemes>>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map_or("unmatched", |p| p.as_str());
    if route.starts_with("/api/") {
        let https = request.headers().get("x-forwarded-proto").is_some_and(|p| p.as_bytes() == b"https");
        let counter = if https { &schemes.https } else { &schemes.plain };
        counter.fetch_add(1, Ordering::Relaxed);
    }
    let method = request.method().clone();
    let start = Instant::now();
    let response = next.run(request).await;
    record_duration(route, &method, response.status().as_u16(), start.elapsed().as_secs_f64());
    response
}

/// A method, a status and the handle on their series (of one route).
type Series = (Method, u16, Histogram);

thread_local! {
    /// This thread's handles on the `REQUEST_DURATION` series it has recorded
    /// to, by route, then method and status: a handle records without the
    /// label strings and the registry look-up that `histogram!` costs per call
    /// (the registry holds every series anyway, so this holds no more).
    static DURATIONS: RefCell<HashMap<String, Vec<Series>>> = RefCell::default();
}

fn record_duration(route: &str, method: &Method, status: u16, seconds: f64) {
    DURATIONS.with_borrow_mut(|series| {
        if !series.contains_key(route) {
            series.insert(route.to_owned(), Vec::new());
        }
        let Some(by_route) = series.get_mut(route) else { return };
        let known = by_route.iter().find(|(m, s, _)| m == method && *s == status);
        match known {
            Some((_, _, histogram)) => histogram.record(seconds),
            None => {
                let histogram = metrics::histogram!(
                    REQUEST_DURATION,
                    "method" => method.as_str().to_owned(),
                    "route" => route.to_owned(),
                    "status" => status.to_string()
                );
                histogram.record(seconds);
                by_route.push((method.clone(), status, histogram));
            }
        }
    });
}
