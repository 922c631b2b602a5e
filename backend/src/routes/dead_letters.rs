//! The operators' way out for dead letters: list them, replay one (after a
//! fix) or refund it (its units back on sale). See `dead_letters` for the rules.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::routing::{get, post};
use axum::{Json, Router};
use seckill_api::{DeadLetter, DeadLetterResolution, Page};
use serde::Deserialize;

use crate::orders::Orders;
use crate::routes::auth::Admin;
use crate::routes::error::ApiError;
use crate::routes::extract::Query;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/api/dead-letters", get(list))
        .route("/admin/api/dead-letters/{activity_id}/{id}/replay", post(replay))
        .route("/admin/api/dead-letters/{activity_id}/{id}/refund", post(refund))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    activity_id: Option<u64>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// A page cursor, `<activity id>:<dead letter id>` (a stream id, `ms-seq`).
fn decode_cursor(raw: &str) -> Option<(u64, String)> {
    let (a, id) = raw.split_once(':')?;
    let valid_id = id.split_once('-').is_some_and(|(ms, seq)| {
        !ms.is_empty() && !seq.is_empty() && ms.bytes().chain(seq.bytes()).all(|b| b.is_ascii_digit())
    });
    valid_id.then(|| Some((a.parse().ok()?, id.to_owned()))).flatten()
}

async fn list(
    State(orders): State<Orders>,
    _: Admin,
    Query(q): Query<ListQuery>,
) -> Result<Json<Page<DeadLetter>>, ApiError> {
    let limit = crate::routes::extract::PageQuery { limit: q.limit, cursor: None }.limit()?;
    let after = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(decode_cursor(c).ok_or_else(|| ApiError::bad_request("cursor: not one this API returned"))?),
    };
    let (items, next) = orders.dead_letter_page(q.activity_id, after, limit).await?;
    Ok(Json(Page { items, next_cursor: next.map(|(a, id)| format!("{a}:{id}")) }))
}

/// `{activity_id}/{id}` of a dead letter; anything malformed is one that does not exist.
struct DeadLetterRef(u64, String);

impl<S: Send + Sync> FromRequestParts<S> for DeadLetterRef {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path((a, id)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::not_found("dead letter"))?;
        decode_cursor(&format!("{a}:{id}")).map(|(a, id)| Self(a, id)).ok_or_else(|| ApiError::not_found("dead letter"))
    }
}

async fn replay(
    State(orders): State<Orders>,
    _: Admin,
    DeadLetterRef(activity, id): DeadLetterRef,
) -> Result<Json<DeadLetterResolution>, ApiError> {
    Ok(Json(orders.replay_dead_letter(activity, &id).await?))
}

async fn refund(
    State(orders): State<Orders>,
    _: Admin,
    DeadLetterRef(activity, id): DeadLetterRef,
) -> Result<Json<DeadLetterResolution>, ApiError> {
    Ok(Json(orders.refund_dead_letter(activity, &id).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_name_an_activity_and_a_stream_id() {
        assert_eq!(decode_cursor("7:1764083707629-3"), Some((7, "1764083707629-3".into())));
        for bad in ["", "7", "7:", "x:1-0", "7:1", "7:a-b", "7:1-0 OR 1"] {
            assert_eq!(decode_cursor(bad), None, "{bad}");
        }
    }
}
