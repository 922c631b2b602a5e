//! The one error type of every handler, and how it looks on the wire.
//!
//! Each code is a row of the contract's error table; `IntoResponse` turns it
//! into `{"code", "message"}` with the paired status, plus `retry-after` where the
//! client is told to come back later. The domain's errors become `ApiError`
//! here and only here (the `From` impls below); a failure inside (Redis, the
//! order DB, a bug) keeps its cause, which is logged when the answer is sent,
//! never shown to the client.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use seckill_api::{ErrorBody, ErrorCode};

use crate::activities::ActivityError;
use crate::admin_session::SessionError;
use crate::anti_bot::{AntiBotError, PowRefusal};
use crate::breaker::BreakerOpen;
use crate::credentials::BuyerTokenError;
use crate::dead_letters::DeadLetterError;
use crate::dependency::DependencyError;
use crate::edge::{DegradeError, InvalidRules, SaveRulesError};
use crate::orders::OrderError;
use crate::payments::CallbackError;
use crate::profile::ProfileError;
use crate::store::{ScriptRefusal, StoreError};

/// An error a handler answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Seconds the client should wait before retrying (`rate_limited`, `unavailable`).
    pub retry_after_secs: Option<u64>,
    /// What failed inside, for the log.
    pub cause: Option<Cause>,
}

/// A failure inside the backend behind an answer, logged when it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    Redis(String),
    OrderDb(String),
    /// The backend misused one of its own parts (a script refused its arguments).
    Bug(String),
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), retry_after_secs: None, cause: None }
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

    /// `unavailable` because of `cause`.
    fn failed(cause: Cause, message: &str) -> Self {
        Self { cause: Some(cause), ..Self::unavailable(message) }
    }

    /// `unavailable` without trying: the dependency's circuit breaker is open.
    fn breaker_open(open: BreakerOpen) -> Self {
        Self {
            retry_after_secs: Some(open.retry_after_ms.div_ceil(1000).max(1)),
            ..Self::unavailable(format!(
                "the {} is unavailable (circuit breaker open); retry shortly",
                match open.dependency {
                    "redis" => "stock store",
                    _ => "order database",
                }
            ))
        }
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
        match &self.cause {
            None => {}
            Some(Cause::Redis(e)) => tracing::warn!(error = %e, "redis call failed"),
            Some(Cause::OrderDb(e)) => {
                tracing::warn!(error = %e, "order database call failed");
                metrics::counter!("seckill_db_errors_total").increment(1);
            }
            Some(Cause::Bug(e)) => tracing::error!(error = %e, "internal error"),
        }
        let status = StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorBody { code: self.code, message: self.message };
        let mut response = (status, Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        // The code, for the access line (`routes::request_id`), which never reads bodies.
        response.extensions_mut().insert(self.code);
        response
    }
}

/// Redis failing or slow is a dependency being down: fail fast with `unavailable`.
impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            // The breaker logged when it opened; one line per refused request would flood the log.
            StoreError::BreakerOpen(open) => Self::breaker_open(open),
            err => Self::failed(Cause::Redis(err.to_string()), "the stock store is unavailable; retry shortly"),
        }
    }
}

/// The order database failing is a dependency being down, too.
impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        match BreakerOpen::in_db_error(&err) {
            Some(open) => Self::breaker_open(open),
            None => Self::failed(Cause::OrderDb(err.to_string()), "the order database is unavailable; retry shortly"),
        }
    }
}

impl From<DependencyError> for ApiError {
    fn from(err: DependencyError) -> Self {
        match err {
            DependencyError::Store(e) => e.into(),
            DependencyError::Db(e) => e.into(),
        }
    }
}

/// What a script refused, told to the buyer.
impl From<ScriptRefusal> for ApiError {
    fn from(refusal: ScriptRefusal) -> Self {
        use ScriptRefusal as R;
        match refusal {
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
            R::BadArg(why) => Self::failed(
                Cause::Bug(format!("a script refused the backend's arguments: {why}")),
                "internal error while processing the request",
            ),
        }
    }
}

/// An admin session or login refused, or Redis failing while checking it.
impl From<SessionError> for ApiError {
    fn from(err: SessionError) -> Self {
        match err {
            SessionError::Throttled { retry_after_secs } => {
                Self::rate_limited("too many failed admin logins; retry later", retry_after_secs)
            }
            SessionError::Store(e) => e.into(),
            other => Self::unauthorized(other.to_string()),
        }
    }
}

/// A buyer's JWT refused.
impl From<BuyerTokenError> for ApiError {
    fn from(err: BuyerTokenError) -> Self {
        Self::unauthorized(err.to_string())
    }
}

impl From<ActivityError> for ApiError {
    fn from(err: ActivityError) -> Self {
        match err {
            ActivityError::NotFound => Self::not_found("activity"),
            ActivityError::Store(e) => e.into(),
            ActivityError::Invalid(_)
            | ActivityError::BelowSold { .. }
            | ActivityError::HasSales { .. }
            | ActivityError::OrdersWaiting { .. } => Self::bad_request(err.to_string()),
        }
    }
}

impl From<OrderError> for ApiError {
    fn from(err: OrderError) -> Self {
        match err {
            OrderError::NotFound => Self::not_found("order"),
            OrderError::NotYours => Self::forbidden(err.to_string()),
            OrderError::Closed(_) => Self::new(ErrorCode::OrderClosed, err.to_string()),
            OrderError::Dependency(e) => e.into(),
        }
    }
}

impl From<InvalidRules> for ApiError {
    fn from(err: InvalidRules) -> Self {
        Self::bad_request(err.to_string())
    }
}

impl From<SaveRulesError> for ApiError {
    fn from(err: SaveRulesError) -> Self {
        match err {
            SaveRulesError::Invalid(e) => e.into(),
            SaveRulesError::Conflict { .. } => Self::bad_request(err.to_string()),
            SaveRulesError::Dependency(e) => e.into(),
        }
    }
}

impl From<DeadLetterError> for ApiError {
    fn from(err: DeadLetterError) -> Self {
        match err {
            DeadLetterError::NotFound => Self::not_found("dead letter"),
            DeadLetterError::Busy => Self::unavailable(err.to_string()),
            DeadLetterError::Unusable(why) => Self::bad_request(why),
            DeadLetterError::AlreadyAnOrder(_) | DeadLetterError::AlreadyRefunded(_) => {
                Self::new(ErrorCode::OrderClosed, err.to_string())
            }
            DeadLetterError::Store(e) => e.into(),
            DeadLetterError::Database(e) => e.into(),
        }
    }
}

impl From<DegradeError> for ApiError {
    fn from(err: DegradeError) -> Self {
        match err {
            DegradeError::BadReason(_) => Self::bad_request(err.to_string()),
            DegradeError::Store(e) => e.into(),
        }
    }
}

impl From<ProfileError> for ApiError {
    fn from(err: ProfileError) -> Self {
        match err {
            ProfileError::Busy => Self::rate_limited(err.to_string(), 5),
            ProfileError::Failed(why) => Self::unavailable(format!("profiling failed: {why}")),
        }
    }
}

impl From<CallbackError> for ApiError {
    fn from(err: CallbackError) -> Self {
        match err {
            CallbackError::Invalid(why) => Self::bad_request(why),
            CallbackError::UnknownActivity(_) => Self::not_found("activity"),
            CallbackError::Store(e) => e.into(),
        }
    }
}

impl From<AntiBotError> for ApiError {
    fn from(err: AntiBotError) -> Self {
        match err {
            AntiBotError::TooHard => Self::bad_request(err.to_string()),
            AntiBotError::Store(e) => e.into(),
        }
    }
}

/// A token request without its proof of work is refused like a forbidden action.
impl From<PowRefusal> for ApiError {
    fn from(refusal: PowRefusal) -> Self {
        Self::forbidden(refusal.to_string())
    }
}
