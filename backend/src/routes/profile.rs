//! `GET /admin/api/profile?seconds=N`: a CPU profile of this backend, in
//! pprof's protobuf format, behind admin auth.

use axum::Router;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Deserialize;

use crate::profile;
use crate::routes::auth::Admin;
use crate::routes::error::ApiError;
use crate::routes::extract::Query;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/admin/api/profile", get(cpu_profile))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileQuery {
    seconds: Option<u64>,
}

async fn cpu_profile(_: Admin, Query(q): Query<ProfileQuery>) -> Result<impl IntoResponse, ApiError> {
    let seconds = q.seconds.unwrap_or(10);
    if !profile::SECONDS.contains(&seconds) {
        return Err(ApiError::bad_request(format!("seconds must be between 1 and 60, got {seconds}")));
    }
    let pprof = profile::cpu_profile(seconds).await?;
    Ok((
        [
            (CONTENT_TYPE, "application/octet-stream"),
            (CONTENT_DISPOSITION, "attachment; filename=\"seckill-backend.pprof.pb\""),
        ],
        pprof,
    ))
}
