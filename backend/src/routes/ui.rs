//! The admin UI's files under `/admin/`, from the directory `cargo xtask`
//! builds (`target/admin-ui` by default).
//!
//! Every asset but `index.html` carries its content hash in its name, so it
//! is served `immutable` for a year; `index.html` is `no-cache` and answers
//! every other path under `/admin/` so the UI's own router can take over.

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use std::sync::Arc;

use crate::state::AppState;
use crate::ui_assets::UiAssets;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(|| async { Redirect::permanent("/admin/") }))
        .route("/admin/", get(index))
        .route("/admin/{*path}", get(asset))
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("js") => "text/javascript; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

async fn index(State(ui): State<Arc<UiAssets>>) -> Response {
    match ui.files().and_then(|files| files.get("index.html")) {
        Some(html) => (
            [(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")), (CACHE_CONTROL, HeaderValue::from_static("no-cache"))],
            html.to_vec(),
        )
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(CONTENT_TYPE, "text/html; charset=utf-8")],
            "<!doctype html><title>seckill admin</title><p>The admin UI is not built yet. <code>cargo xtask start</code> \
             builds it after the sale is up (reload this page when it says so), or set <code>SECKILL_ADMIN_UI_DIR</code>.</p>",
        )
            .into_response(),
    }
}

async fn asset(State(assets): State<Arc<UiAssets>>, UrlPath(path): UrlPath<String>) -> Response {
    let Some(ui) = assets.files() else { return index(State(assets)).await };
    match ui.get(&path) {
        Some(bytes) if path != "index.html" => (
            [
                (CONTENT_TYPE, HeaderValue::from_static(content_type(&path))),
                (CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable")),
            ],
            bytes.to_vec(),
        )
            .into_response(),
        // A file-like path that does not exist is a 404; anything else is a UI route.
        None if path.rsplit('/').next().is_some_and(|last| last.contains('.')) => {
            crate::routes::error::ApiError::not_found("file").into_response()
        }
        _ => index(State(assets.clone())).await,
    }
}
