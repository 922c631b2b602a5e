//! HTTP routes, grouped by who calls them. Handlers stay thin: they parse
//! (through extractors), call the store, and shape the answer.

pub mod admin;
pub mod anti_bot;
pub mod auth;
pub mod dashboard;
pub mod dead_letters;
pub mod edge;
pub mod error;
pub mod extract;
pub mod health;
pub mod latency;
pub mod orders;
pub mod payments;
pub mod profile;
pub mod public;
pub mod request_id;
pub mod ui;

use axum::Router;
use axum::extract::DefaultBodyLimit;

use crate::state::AppState;
use error::ApiError;

/// Largest request body accepted; anything bigger is `bad_request`.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The whole HTTP surface of the backend.
pub fn router(state: AppState) -> Router {
    crate::telemetry::prometheus();
    Router::new()
        .merge(public::router())
        .merge(orders::router())
        .merge(edge::router())
        .merge(dashboard::router())
        .merge(ui::router())
        .merge(admin::router())
        .merge(dead_letters::router())
        .merge(profile::router())
        .merge(payments::router())
        .merge(anti_bot::router())
        .merge(health::router())
        .fallback(|| async { ApiError::not_found("route") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(state.schemes.clone(), latency::track_latency))
        .layer(axum::middleware::from_fn(request_id::access_log))
        .with_state(state)
}
