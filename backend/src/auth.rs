//! Who is calling: buyers by their HS256 JWT, admins by the session from
//! `POST /admin/api/login`, and the client IP for the blacklist.
//!
//! Each is an axum extractor, so a handler that takes `Buyer` cannot run for
//! an unauthenticated request. Admin sessions are JWTs too, but signed with a
//! key of their own (`admin_session`), never derived from the buyers' secret.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, OptionalFromRequestParts};
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::admin_session::{SessionClaims, SessionError};
use crate::app::AppState;
use crate::error::ApiError;
use seckill_api::valid_user_id;

/// Name of the admin session cookie.
pub const ADMIN_COOKIE: &str = "seckill_admin";

/// Claims of a buyer's JWT.
#[derive(Debug, Serialize, Deserialize)]
pub struct BuyerClaims {
    pub sub: String,
    pub exp: i64,
}

/// The buyers' key and the edge's secret, built once from the secrets.
pub struct Keys {
    buyer: DecodingKey,
    buyer_validation: Validation,
    edge_secret_digest: [u8; 32],
}

impl Keys {
    pub fn new(jwt_secret: &str, edge_secret: &str) -> Self {
        let mut buyer_validation = Validation::new(Algorithm::HS256);
        buyer_validation.set_required_spec_claims(&["exp", "sub"]);
        buyer_validation.leeway = 5;
        Self {
            buyer: DecodingKey::from_secret(jwt_secret.as_bytes()),
            buyer_validation,
            edge_secret_digest: Sha256::digest(edge_secret.as_bytes()).into(),
        }
    }

    /// Verifies a buyer's JWT and returns the user id.
    pub fn verify_buyer(&self, token: &str) -> Result<String, ApiError> {
        let data = jsonwebtoken::decode::<BuyerClaims>(token, &self.buyer, &self.buyer_validation)
            .map_err(|e| ApiError::unauthorized(format!("invalid bearer token: {e}")))?;
        let sub = data.claims.sub;
        if !valid_user_id(&sub) {
            return Err(ApiError::unauthorized("the token's sub must be 1-64 characters of [A-Za-z0-9_-]"));
        }
        Ok(sub)
    }

    /// Checks the secret the edge presents, in constant time.
    pub fn check_edge_secret(&self, presented: &str) -> bool {
        same_secret(presented, &self.edge_secret_digest)
    }
}

fn same_secret(given: &str, expected_digest: &[u8; 32]) -> bool {
    let given: [u8; 32] = Sha256::digest(given.as_bytes()).into();
    given.ct_eq(expected_digest).into()
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(k, v)| (k == name).then_some(v))
}

/// An authenticated buyer: the `sub` of a valid JWT.
#[derive(Debug, Clone)]
pub struct Buyer(pub String);

impl FromRequestParts<AppState> for Buyer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or_else(|| ApiError::unauthorized("missing `Authorization: Bearer <JWT>`"))?;
        state.keys.verify_buyer(token).map(Buyer)
    }
}

/// The admin session a request presents: the bearer header, or the cookie.
pub fn admin_token(parts: &Parts) -> Option<&str> {
    bearer(parts).or_else(|| cookie(parts, ADMIN_COOKIE))
}

/// An authenticated admin: a valid, unrevoked session.
#[derive(Debug, Clone)]
pub struct Admin(pub SessionClaims);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = admin_token(parts)
            .ok_or_else(|| ApiError::unauthorized("admin session required; log in at POST /admin/api/login"))?;
        state.admin.verify(token).await.map(Admin).map_err(ApiError::from)
    }
}

/// `Option<Admin>`: the session if a valid one is presented, else `None`
/// (Redis failing while checking it is still `unavailable`).
impl OptionalFromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Option<Self>, Self::Rejection> {
        let Some(token) = admin_token(parts) else { return Ok(None) };
        match state.admin.verify(token).await {
            Ok(claims) => Ok(Some(Admin(claims))),
            Err(SessionError::Store(e)) => Err(e.into()),
            Err(_) => Ok(None),
        }
    }
}

/// Whoever may read an order: its buyer, or an admin.
#[derive(Debug, Clone)]
pub enum Caller {
    Buyer(String),
    Admin,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(token) = bearer(parts)
            && let Ok(user) = state.keys.verify_buyer(token)
        {
            return Ok(Self::Buyer(user));
        }
        match <Admin as FromRequestParts<AppState>>::from_request_parts(parts, state).await {
            Ok(_) => Ok(Self::Admin),
            Err(_) => Err(ApiError::unauthorized("a buyer JWT or an admin session is required")),
        }
    }
}

/// The client's IP, by the rule the edge applies too
/// (`seckill_api::client_addr`): the peer address, or behind a trusted proxy
/// the rightmost untrusted `x-forwarded-for` hop (a client cannot spoof its
/// way past the blacklist by sending the header itself).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ci| ci.0.ip());
        let forwarded: Vec<&str> =
            parts.headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect();
        let trusted = |ip: IpAddr| state.settings.trusted_proxies.iter().any(|net| net.contains(&ip));
        Ok(ClientIp(seckill_api::client_addr::client_ip(peer, &forwarded, trusted)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_edge_secret_is_checked() {
        let keys = Keys::new("secret", "edge");
        assert!(keys.check_edge_secret("edge"));
        assert!(!keys.check_edge_secret("edgy"));
        assert!(!keys.check_edge_secret(""));
    }
}
