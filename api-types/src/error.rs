//! The machine-readable part of every error (`CONTRACT.md`, "Errors").

use serde::{Deserialize, Serialize};

/// The machine-readable part of every error (`CONTRACT.md`, "Errors").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    Forbidden,
    Blacklisted,
    InvalidToken,
    NotFound,
    NotStarted,
    Ended,
    SoldOut,
    LimitExceeded,
    OrderClosed,
    RateLimited,
    Unavailable,
}

impl ErrorCode {
    /// The HTTP status the contract pairs with this code.
    pub fn http_status(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::Unauthorized => 401,
            Self::Forbidden | Self::Blacklisted | Self::InvalidToken => 403,
            Self::NotFound => 404,
            Self::NotStarted | Self::Ended | Self::SoldOut | Self::LimitExceeded | Self::OrderClosed => 409,
            Self::RateLimited => 429,
            Self::Unavailable => 503,
        }
    }

    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::Blacklisted => "blacklisted",
            Self::InvalidToken => "invalid_token",
            Self::NotFound => "not_found",
            Self::NotStarted => "not_started",
            Self::Ended => "ended",
            Self::SoldOut => "sold_out",
            Self::LimitExceeded => "limit_exceeded",
            Self::OrderClosed => "order_closed",
            Self::RateLimited => "rate_limited",
            Self::Unavailable => "unavailable",
        }
    }
}

/// Every error body: `{"code": "...", "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
}
