//! The buyers' API: activities, purchase tokens, purchases.

use axum::extract::{Request, State};
use axum::http::header::CACHE_CONTROL;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use seckill_api::limits::MAX_QUANTITY;
use seckill_api::pow::POW_HEADER;
use seckill_api::{Activity, ErrorCode, OrderStatus, PurchaseAccepted, PurchaseRequest, PurchaseToken};

use crate::activities;
use crate::anti_bot::AntiBot;
use crate::clock::{from_ms, now_ms};
use crate::live::Answer;
use crate::routes::auth::{Buyer, ClientIp};
use crate::routes::error::ApiError;
use crate::routes::extract::{ActivityId, JsonBody};
use crate::routes::request_id::AcceptedOrder;
use std::sync::Arc;

use crate::blacklist::Blacklist;
use crate::config::Settings;
use crate::live::LiveStats;
use crate::purchase_batch::PurchaseBatcher;
use crate::state::AppState;
use crate::store::{self, PurchaseOutcome, Store, TokenOutcome};
use crate::telemetry;

pub fn router() -> Router<AppState> {
    // The activity pages: the same for every buyer, so a shared cache may keep them a second.
    let cache_control = middleware::from_fn(edge_cache_control);
    Router::new()
        .route("/api/activities", get(list_activities).layer(cache_control.clone()))
        .route("/api/activities/{id}", get(get_activity).layer(cache_control))
        .route("/api/activities/{id}/token", post(issue_token))
        .route("/api/activities/{id}/purchase", post(purchase))
}

/// The `cache-control` of the activity pages ([`activities::PAGE_CACHE_CONTROL`] or
/// `no-store`). Only the URL's one spelling is cacheable: no query, the id as
/// the backend writes it (`7`, not `07`, `+7` or `%37`), so that an edge cache
/// keyed by URL (Envoy's keeps what it stores, without a size bound) holds one
/// copy per activity, however many ways a client spells it.
async fn edge_cache_control(request: Request, next: Next) -> Response {
    let canonical = canonical_page_url(request.uri());
    let mut response = next.run(request).await;
    let value =
        if canonical && response.status() == StatusCode::OK { activities::PAGE_CACHE_CONTROL } else { "no-store" };
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static(value));
    response
}

/// `/api/activities` or `/api/activities/{id}` spelled as the backend spells it.
fn canonical_page_url(uri: &Uri) -> bool {
    if uri.query().is_some() {
        return false;
    }
    match uri.path().strip_prefix("/api/activities") {
        Some("") => true,
        Some(rest) => rest.strip_prefix('/').is_some_and(|id| id.parse::<u64>().is_ok_and(|n| n.to_string() == id)),
        None => false,
    }
}

async fn list_activities(State(store): State<Store>) -> Result<Json<Vec<Activity>>, ApiError> {
    Ok(Json(activities::list(&store).await?))
}

async fn get_activity(State(store): State<Store>, ActivityId(id): ActivityId) -> Result<Json<Activity>, ApiError> {
    Ok(Json(activities::get(&store, id).await?))
}

/// Refuses blacklisted buyers before any script runs.
fn check_blacklist(blacklist: &Blacklist, user: &str, ip: ClientIp) -> Result<(), ApiError> {
    if blacklist.blocks_user(user) || blacklist.blocks_ip(ip.0) {
        return Err(ApiError::new(ErrorCode::Blacklisted, "this buyer is blocked from flash sales"));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)] // one extractor per thing the token step checks
async fn issue_token(
    State(settings): State<Arc<Settings>>,
    State(store): State<Store>,
    State(blacklist): State<Blacklist>,
    State(live): State<LiveStats>,
    State(anti_bot): State<AntiBot>,
    Buyer(user): Buyer,
    ip: ClientIp,
    ActivityId(id): ActivityId,
    headers: HeaderMap,
) -> Result<Json<PurchaseToken>, ApiError> {
    check_blacklist(&blacklist, &user, ip)?;
    let proof = headers.get(POW_HEADER).and_then(|v| v.to_str().ok());
    anti_bot.check(id, &user, proof, now_ms())?;
    let s = &settings;
    let outcome = store.issue_token(id, &user, now_ms(), s.token_ttl_secs * 1000, s.token_factor_per_mille()).await;
    let result = match outcome {
        Ok(TokenOutcome::Issued { token, expires_at_ms }) => {
            Ok(Json(PurchaseToken { token, expires_at: from_ms(expires_at_ms) }))
        }
        Ok(TokenOutcome::Rejected(r)) => Err(ApiError::from(r)),
        Err(e) => Err(ApiError::from(e)),
    };
    metrics::counter!(telemetry::TOKENS, "result" => result_label(&result)).increment(1);
    if let Err(e) = &result {
        live.record(id, Answer::Refused(e.code));
    }
    result
}

/// A purchase token as the token script issues it: 32 lowercase hex digits.
fn plausible_token(token: &str) -> bool {
    token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The quantity as the contract allows it, or the reason it is not.
fn parse_quantity(value: &serde_json::Value) -> Result<u64, ApiError> {
    match value.as_u64() {
        Some(0) => Err(ApiError::bad_request("quantity must be at least 1")),
        Some(q) if q <= MAX_QUANTITY => Ok(q),
        Some(_) => Err(ApiError::bad_request(format!("quantity must be at most {MAX_QUANTITY}"))),
        None if value.as_i64().is_some() => Err(ApiError::bad_request("quantity must be positive")),
        None => Err(ApiError::bad_request("quantity must be a positive integer")),
    }
}

async fn purchase(
    State(purchases): State<PurchaseBatcher>,
    State(blacklist): State<Blacklist>,
    State(live): State<LiveStats>,
    Buyer(user): Buyer,
    ip: ClientIp,
    ActivityId(id): ActivityId,
    JsonBody(body): JsonBody<PurchaseRequest>,
) -> Result<(StatusCode, Extension<AcceptedOrder>, Json<PurchaseAccepted>), ApiError> {
    check_blacklist(&blacklist, &user, ip)?;
    let result = buy(&purchases, id, &user, &body).await;
    metrics::counter!(telemetry::PURCHASES, "result" => result_label(&result)).increment(1);
    match result {
        Ok((accepted, sold)) => {
            live.record_purchase(id, sold);
            // The order id for the access line, which the worker's line for the row names too.
            let order = Extension(AcceptedOrder(accepted.order_id.clone()));
            Ok((StatusCode::ACCEPTED, order, Json(accepted)))
        }
        Err(e) => {
            live.record(id, Answer::Refused(e.code));
            Err(e)
        }
    }
}

/// The purchase, and the activity's `sold` after it when it is a new sale.
async fn buy(
    purchases: &PurchaseBatcher,
    id: u64,
    user: &str,
    body: &PurchaseRequest,
) -> Result<(PurchaseAccepted, Option<i64>), ApiError> {
    let quantity = parse_quantity(&body.quantity)?;
    if body.token.is_empty() {
        return Err(ApiError::new(ErrorCode::InvalidToken, "purchase token missing"));
    }
    if !plausible_token(&body.token) {
        return Err(ApiError::new(ErrorCode::InvalidToken, "purchase token is invalid: unknown or expired"));
    }
    let purchase = store::Purchase {
        user: user.to_owned(),
        token: body.token.clone(),
        quantity: quantity.to_string(),
        now_ms: now_ms(),
    };
    let (order_id, sold) = match purchases.purchase(id, purchase).await? {
        // (The batcher has set the stock gauges from the call's last sale.)
        PurchaseOutcome::Accepted(sale) => (sale.order_id, Some(sale.sold)),
        PurchaseOutcome::Replay { order_id } => (order_id, None),
        PurchaseOutcome::Rejected(r) => return Err(r.into()),
    };
    Ok((PurchaseAccepted { order_id, status: OrderStatus::Queued }, sold))
}

fn result_label<T>(result: &Result<T, ApiError>) -> &'static str {
    match result {
        Ok(_) => "accepted",
        Err(e) => e.code.as_str(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quantity_must_be_a_positive_integer_within_bounds() {
        assert_eq!(parse_quantity(&json!(1)).unwrap(), 1);
        assert_eq!(parse_quantity(&json!(MAX_QUANTITY)).unwrap(), MAX_QUANTITY);
        for bad in [json!(0), json!(-1), json!(1.5), json!("1"), json!(null), json!(MAX_QUANTITY + 1), json!(1e300)] {
            let err = parse_quantity(&bad).unwrap_err();
            assert_eq!(err.code, ErrorCode::BadRequest, "{bad} was accepted");
        }
    }

    #[test]
    fn only_the_one_spelling_of_a_page_url_is_cacheable() {
        for good in
            ["/api/activities", "/api/activities/7", "/api/activities/0", "/api/activities/18446744073709551615"]
        {
            assert!(canonical_page_url(&good.parse().unwrap()), "{good}");
        }
        for bad in [
            "/api/activities?",
            "/api/activities?page=2",
            "/api/activities/7?x=1",
            "/api/activities/07",
            "/api/activities/+7",
            "/api/activities/%37",
            "/api/activities/7/",
            "/api/activities/",
            "/api/activities/18446744073709551616",
            "/api/activitiesx",
        ] {
            assert!(!canonical_page_url(&bad.parse().unwrap()), "{bad}");
        }
    }

    #[test]
    fn tokens_are_32_hex_digits() {
        assert!(plausible_token("0123456789abcdef0123456789abcdef"));
        assert!(!plausible_token("0123456789abcdef0123456789abcde"));
        assert!(!plausible_token("0123456789abcdef0123456789abcdeg"));
        assert!(!plausible_token("{1}:0123456789abcdef0123456789ab"));
    }
}
