//! The payment provider's door (`POST /api/payments/callback`, signed) and
//! the operators' view of applied payments (`GET /admin/api/payments`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use seckill_api::payment::{Payment, PaymentCallback, SIGNATURE_HEADER};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::clock::from_ms;
use crate::credentials::Credentials;
use crate::db::PaymentRow;
use crate::orders::Orders;
use crate::payments;
use crate::routes::auth::Admin;
use crate::routes::error::ApiError;
use crate::routes::extract::Query;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/payments/callback", post(callback)).route("/admin/api/payments", get(list))
}

/// Verifies the signature over the exact body, then queues the callback: `202`.
async fn callback(
    State(credentials): State<Arc<Credentials>>,
    State(orders): State<Orders>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    match credentials.check_payment_signature(&body, signature) {
        None => return Err(ApiError::unavailable("payment callbacks are off: SECKILL_PAYMENT_SECRET is not set")),
        Some(false) => return Err(ApiError::unauthorized(format!("{SIGNATURE_HEADER} missing or wrong"))),
        Some(true) => {}
    }
    let callback: PaymentCallback =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("payment callback: {e}")))?;
    payments::accept(&orders, &callback).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"payment_id": callback.payment_id, "status": "queued"}))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    outcome: Option<String>,
    limit: Option<usize>,
}

async fn list(
    State(orders): State<Orders>,
    _: Admin,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<Payment>>, ApiError> {
    let outcome = match q.outcome.as_deref() {
        None | Some("") => None,
        Some(o @ ("applied" | "refund_needed")) => Some(o),
        Some(other) => return Err(ApiError::bad_request(format!("outcome: applied or refund_needed, not {other:?}"))),
    };
    let limit = match q.limit {
        None => 100,
        Some(n @ 1..=500) => n,
        Some(n) => return Err(ApiError::bad_request(format!("limit must be between 1 and 500, got {n}"))),
    };
    let rows = orders.db.payments(outcome, limit).await?;
    Ok(Json(rows.into_iter().map(view).collect()))
}

fn view(row: PaymentRow) -> Payment {
    Payment {
        payment_id: row.payment_id,
        order_id: row.order_id,
        amount_cents: row.amount_cents,
        paid_at: from_ms(row.paid_at_ms),
        applied_at: from_ms(row.applied_at_ms),
        outcome: row.outcome,
        reason: row.reason,
    }
}
