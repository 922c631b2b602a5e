//! Request parsing that answers in the contract's words: a malformed body, a
//! wrong type or an oversized body is `bad_request`, an id that cannot exist
//! is `not_found` — never axum's plain-text rejections.

use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::routes::error::ApiError;
use crate::routes::request_id;

/// `Json<T>` whose rejections are `bad_request` with the parser's reason.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::bad_request(rejection.body_text())),
        }
    }
}

/// The `{id}` of an activity route; anything that is not an id is `not_found`.
pub struct ActivityId(pub u64);

impl<S: Send + Sync> FromRequestParts<S> for ActivityId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) =
            Path::<String>::from_request_parts(parts, state).await.map_err(|_| ApiError::not_found("activity"))?;
        let id = raw.parse::<u64>().map_err(|_| ApiError::not_found("activity"))?;
        request_id::note_activity(parts, id);
        Ok(Self(id))
    }
}

/// `?limit=&cursor=` of a paged list (`CONTRACT.md`: default 50, at most 500).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct PageQuery {
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

impl PageQuery {
    pub const DEFAULT_LIMIT: usize = 50;
    pub const MAX_LIMIT: usize = 500;

    /// The page size, refusing what the contract does not allow.
    pub fn limit(&self) -> Result<usize, ApiError> {
        match self.limit {
            None => Ok(Self::DEFAULT_LIMIT),
            Some(n) if (1..=Self::MAX_LIMIT).contains(&n) => Ok(n),
            Some(n) => Err(ApiError::bad_request(format!("limit must be between 1 and 500, got {n}"))),
        }
    }
}

/// Query string parsed into `T`, with `bad_request` on failure.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|r| ApiError::bad_request(r.body_text()))
    }
}
