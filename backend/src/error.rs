//! The one error type of every handler, and how it looks on the wire.
//!
//! Each variant is a row of the contract's error table; `IntoResponse` turns it
//! into `{"code", "message"}` with the paired status, plus `retry-after` where the
//! client is told to come back later.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use seckill_api::{ErrorBody, ErrorCode};

/// An error a handler answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Seconds the client should wait before retrying (`rate_limited`, `unavailable`).
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), retry_after_secs: None }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self { retry_after_secs: Some(1), ..Self::new(ErrorCode::Unavailable, message) }
    }

    pub fn rate_limited(message: impl Into<String>, retry_after_secs: u64) -> Self {
        Self { retry_after_secs: Some(retry_after_secs.max(1)), ..Self::new(ErrorCode::RateLimited, message) }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorBody { code: self.code, message: self.message };
        let mut response = (status, Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Redis failing or slow is a dependency being down: fail fast with `unavailable`.
impl From<crate::store::StoreError> for ApiError {
    fn from(err: crate::store::StoreError) -> Self {
        tracing::warn!(error = %err, "redis call failed");
        Self::unavailable("the stock store is unavailable; retry shortly")
    }
}

/// The order database failing is a dependency being down, too.
impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        tracing::warn!(error = %err, "order database call failed");
        metrics::counter!("seckill_db_errors_total").increment(1);
        Self::unavailable("the order database is unavailable; retry shortly")
    }
}

/// What a script refused, told to the buyer.
impl From<crate::store::Rejection> for ApiError {
    fn from(rejection: crate::store::Rejection) -> Self {
        use crate::store::Rejection as R;
        match rejection {
            R::NotFound => Self::not_found("activity"),
            R::NotStarted => Self::new(ErrorCode::NotStarted, "the activity has not started yet"),
            R::Ended => Self::new(ErrorCode::Ended, "the activity has ended"),
            R::SoldOut => Self::new(ErrorCode::SoldOut, "not enough stock left"),
            R::LimitExceeded => {
                Self::new(ErrorCode::LimitExceeded, "this would pass the per-user limit of the activity")
            }
            R::TokensExhausted { retry_after_ms } => Self::rate_limited(
                "purchase tokens for the remaining stock are all handed out; retry shortly",
                retry_after_ms.div_ceil(1000),
            ),
            R::InvalidToken(why) => Self::new(ErrorCode::InvalidToken, format!("purchase token is invalid: {why}")),
            R::BadQuantity => Self::bad_request("quantity must be a positive integer"),
            R::BadArg(why) => {
                tracing::error!(%why, "a script refused the backend's arguments");
                Self::unavailable("internal error while processing the request")
            }
        }
    }
}

/// An admin session or login refused, or Redis failing while checking it.
impl From<crate::admin_session::SessionError> for ApiError {
    fn from(err: crate::admin_session::SessionError) -> Self {
        use crate::admin_session::SessionError as E;
        match err {
            E::Throttled { retry_after_secs } => {
                Self::rate_limited("too many failed admin logins; retry later", retry_after_secs)
            }
            E::Store(e) => e.into(),
            other => Self::unauthorized(other.to_string()),
        }
    }
}
