//! Request ids and the access log.
//!
//! Why this exists: one buy crosses three processes — the edge, a backend,
//! the order worker — and each writes its own log. To read them as one story
//! every request carries one id, `x-request-id`: the edge's (Envoy and
//! `seckill-edge` make one, or keep a well-formed one, and forward it), or one
//! made here for a request that arrives without a usable one. The middleware
//! below
//!
//! - keeps a well-formed incoming id (1–64 of `[A-Za-z0-9._-]`) or makes one
//!   (a random UUID, as Envoy makes them), and puts it on the response;
//! - runs the request inside a span (`request`, fields `request_id`, `user`,
//!   `activity`; the extractors fill the last two through [`note_user`] and
//!   [`note_activity`]), so every line logged while it runs carries them;
//! - writes one access line per request at `info` on the target
//!   [`ACCESS_TARGET`] (`seckill::access`): `request_id`, `method`, `route`
//!   (the path template), `status`, `latency_ms`, `user` and `activity` where
//!   known, `order_id` on an accepted purchase (the worker's line for the row
//!   names the same `order_id`), and `decision` (the error code of an error
//!   answer, which `ApiError` leaves in the response's extensions, so no body
//!   is ever read here; `ok` for a success).
//!
//! One line per request is a lot at tens of thousands of purchases a second:
//! `RUST_LOG=info,seckill::access=off` turns the line and the span off, and
//! with them every per-request cost of this module but the id itself. The
//! fields and how to ship them are in `deploy/LOGS.md`.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use seckill_api::ErrorCode;
use tracing::Instrument as _;

/// The access log's tracing target; the per-request span has it too.
pub const ACCESS_TARGET: &str = "seckill::access";

/// The request id header, as Envoy names it.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub use seckill_api::request_id::well_formed;

/// A fresh id: a random (version 4) UUID, the shape Envoy's ids have.
pub fn generate() -> String {
    uuid::Builder::from_random_bytes(rand::random()).into_uuid().hyphenated().to_string()
}

/// The order an accepted purchase answered with, left in the response's
/// extensions by the purchase handler for the access line.
#[derive(Debug, Clone)]
pub struct AcceptedOrder(pub String);

/// What the extractors learnt about the caller, for the access line.
#[derive(Debug, Clone, Default)]
struct Seen(Arc<SeenFields>);

#[derive(Debug, Default)]
struct SeenFields {
    user: OnceLock<String>,
    activity: OnceLock<u64>,
}

/// The buyer the request is from (the `Buyer` extractor calls this).
pub fn note_user(parts: &Parts, user: &str) {
    tracing::Span::current().record("user", user);
    if let Some(seen) = parts.extensions.get::<Seen>() {
        let _ = seen.0.user.set(user.to_owned());
    }
}

/// The activity the request is about (the `ActivityId` extractor calls this).
pub fn note_activity(parts: &Parts, activity: u64) {
    tracing::Span::current().record("activity", activity);
    if let Some(seen) = parts.extensions.get::<Seen>() {
        let _ = seen.0.activity.set(activity);
    }
}

/// The id a request goes by: its own if well-formed, else a new one.
fn request_id(request: &Request) -> HeaderValue {
    match request.headers().get(&X_REQUEST_ID) {
        Some(v) if well_formed(v.as_bytes()) => v.clone(),
        _ => HeaderValue::try_from(generate()).expect("a UUID is a header value"),
    }
}

/// Gives every request its id (on the request, for the handlers, and on the
/// response), and, while `seckill::access` is enabled, its span and its
/// access line.
pub async fn access_log(mut request: Request, next: Next) -> Response {
    let id = request_id(&request);
    request.headers_mut().insert(X_REQUEST_ID.clone(), id.clone());
    if !tracing::enabled!(target: ACCESS_TARGET, tracing::Level::INFO) {
        let mut response = next.run(request).await;
        response.headers_mut().insert(X_REQUEST_ID.clone(), id);
        return response;
    }
    let request_id = id.to_str().unwrap_or_default();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let seen = Seen::default();
    request.extensions_mut().insert(seen.clone());
    let span = tracing::info_span!(
        target: ACCESS_TARGET,
        "request",
        request_id,
        user = tracing::field::Empty,
        activity = tracing::field::Empty,
    );
    let start = Instant::now();
    let mut response = next.run(request).instrument(span).await;
    let latency_ms = (start.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0;
    let status = response.status().as_u16();
    let decision = match response.extensions().get::<ErrorCode>() {
        Some(code) => code.as_str(),
        None if status < 400 => "ok",
        None => "error",
    };
    let order = response.extensions_mut().remove::<AcceptedOrder>();
    tracing::info!(
        target: ACCESS_TARGET,
        request_id,
        method = method.as_str(),
        route = route.as_ref().map_or("unmatched", |r| r.as_str()),
        status,
        latency_ms,
        user = seen.0.user.get().map(String::as_str),
        activity = seen.0.activity.get(),
        order_id = order.as_ref().map(|o| o.0.as_str()),
        decision,
    );
    response.headers_mut().insert(X_REQUEST_ID.clone(), id);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_short_plain_text() {
        for good in ["test-req-1", "a", "0123456789abcdef0123456789abcdef", "A.b_C-d", &"x".repeat(64)] {
            assert!(well_formed(good.as_bytes()), "{good}");
        }
        for bad in ["", "../..", "a b", "a/b", "a\"b", "é", &"x".repeat(65), &"x".repeat(200)] {
            assert!(!well_formed(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn fresh_ids_are_well_formed_uuids_and_differ() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        for id in [a, b] {
            assert!(well_formed(id.as_bytes()), "{id}");
            let uuid = uuid::Uuid::parse_str(&id).unwrap();
            assert_eq!(uuid.get_version_num(), 4, "{id}");
        }
    }
}
