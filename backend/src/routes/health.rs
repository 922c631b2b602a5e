//! Liveness, readiness and the Prometheus scrape.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::routes::error::ApiError;
use crate::state::AppState;
use crate::store::Store;
use crate::telemetry;

pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).route("/metrics", get(metrics_text))
}

/// The process is up and serving.
async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The process can sell: Redis answers in time.
async fn readyz(State(store): State<Store>) -> Result<Json<Value>, ApiError> {
    store.ping().await?;
    Ok(Json(json!({"status": "ready", "redis": "ok"})))
}

async fn metrics_text() -> impl IntoResponse {
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], telemetry::prometheus().render())
}
