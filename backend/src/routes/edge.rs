//! The edge's side door (`/internal/edge/state`, secret-guarded, never
//! forwarded by the public edge) and the admin routes for the edge rules.

use axum::extract::State;
use axum::http::header::{ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use seckill_api::{DegradedMode, DegradedModeChange, EdgeRules, EdgeRulesVersion, EdgeSync, Page};

use crate::clock::from_ms;
use crate::db::StoredRules;
use crate::edge::{self, picked_up_at};
use crate::routes::auth::Admin;
use crate::routes::error::ApiError;
use crate::routes::extract::{JsonBody, PageQuery, Query};
use std::sync::Arc;

use crate::credentials::Credentials;
use crate::orders::Orders;
use crate::state::AppState;

/// Header the edge presents its secret in.
pub const EDGE_SECRET_HEADER: &str = "x-seckill-edge-secret";
/// Header naming the edge instance, so its sync can be shown to operators.
pub const EDGE_ID_HEADER: &str = "x-seckill-edge-id";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/internal/edge/state", get(edge_state))
        .route("/admin/api/edge-rules", get(current_rules).put(put_rules))
        .route("/admin/api/edge-rules/history", get(rules_history))
        .route("/admin/api/edge-status", get(edge_status))
        .route("/admin/api/degraded", get(degraded_mode).put(switch_degraded_mode))
}

async fn edge_state(
    State(credentials): State<Arc<Credentials>>,
    State(orders): State<Orders>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let presented = headers.get(EDGE_SECRET_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !credentials.check_edge_secret(presented) {
        return Err(ApiError::unauthorized("edge secret missing or wrong"));
    }
    let built = edge::build(&orders.store, &orders.db).await?;
    // The edge names the version it applied (the one it holds), not merely
    // one it was sent: that is what says its blacklist reached the edge.
    let held = headers.get(IF_NONE_MATCH).and_then(|v| v.to_str().ok()).map(|v| v.trim().trim_matches('"'));
    let held = held.filter(|v| !v.is_empty() && v.len() <= 128);
    if let Some(edge_id) = headers.get(EDGE_ID_HEADER).and_then(|v| v.to_str().ok()).filter(|id| id.len() <= 128)
        && let Err(e) = edge::record_served(&orders.store, edge_id, &built, held).await
    {
        tracing::warn!(error = %e, "recording the edge's sync failed");
    }
    let current = built.state;
    let etag = format!("\"{}\"", current.version);
    let etag_value = HeaderValue::from_str(&etag).expect("hex etag is a valid header");
    let unchanged = held == Some(current.version.as_str());
    if unchanged {
        return Ok((StatusCode::NOT_MODIFIED, [(ETAG, etag_value)]).into_response());
    }
    Ok(([(ETAG, etag_value)], Json(current)).into_response())
}

fn version_view(stored: StoredRules, syncs: &[EdgeSync]) -> EdgeRulesVersion {
    EdgeRulesVersion {
        version: stored.version,
        created_at: from_ms(stored.created_at_ms),
        edge_synced_at: picked_up_at(syncs, stored.version).map(from_ms),
        rules: stored.rules,
    }
}

async fn current_rules(State(orders): State<Orders>, _: Admin) -> Result<Json<EdgeRulesVersion>, ApiError> {
    let current = orders.db.current_rules().await?;
    let syncs = edge::syncs(&orders.store).await?;
    Ok(Json(version_view(current, &syncs)))
}

async fn put_rules(
    State(orders): State<Orders>,
    _: Admin,
    JsonBody(rules): JsonBody<EdgeRules>,
) -> Result<Json<EdgeRulesVersion>, ApiError> {
    let saved = edge::save_rules(&orders.store, &orders.db, &rules).await?;
    Ok(Json(version_view(saved, &[])))
}

async fn rules_history(
    State(orders): State<Orders>,
    _: Admin,
    Query(q): Query<PageQuery>,
) -> Result<Json<Page<EdgeRulesVersion>>, ApiError> {
    let limit = q.limit()?;
    let before = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(c.parse::<i64>().map_err(|_| ApiError::bad_request("cursor: not one this API returned"))?),
    };
    let mut versions = orders.db.rules_history(before, limit + 1).await?;
    let next = (versions.len() > limit).then(|| {
        versions.truncate(limit);
        versions.last().map(|v| v.version.to_string())
    });
    let syncs = edge::syncs(&orders.store).await?;
    Ok(Json(Page {
        items: versions.into_iter().map(|v| version_view(v, &syncs)).collect(),
        next_cursor: next.flatten(),
    }))
}

async fn edge_status(State(orders): State<Orders>, _: Admin) -> Result<Json<Vec<EdgeSync>>, ApiError> {
    Ok(Json(edge::syncs(&orders.store).await?))
}

async fn degraded_mode(State(orders): State<Orders>, _: Admin) -> Result<Json<DegradedMode>, ApiError> {
    Ok(Json(edge::degraded_mode(&orders.store).await?))
}

async fn switch_degraded_mode(
    State(orders): State<Orders>,
    _: Admin,
    JsonBody(change): JsonBody<DegradedModeChange>,
) -> Result<Json<DegradedMode>, ApiError> {
    Ok(Json(edge::switch_degraded_mode(&orders.store, &change).await?))
}
