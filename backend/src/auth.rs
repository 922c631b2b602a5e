//! Who is calling: buyers by their HS256 JWT, admins by the session from
//! `POST /admin/api/login`, and the client IP for the blacklist.
//!
//! Each is an axum extractor, so a handler that takes `Buyer` cannot run for
//! an unauthenticated request. Admin sessions are JWTs too, signed with a key
//! derived from the buyers' secret, so a buyer's token can never pass as an
//! admin's even though both come from one configured secret.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::app::AppState;
use crate::error::ApiError;

/// Name of the admin session cookie.
pub const ADMIN_COOKIE: &str = "seckill_admin";
/// How long an admin session lasts.
pub const ADMIN_SESSION_SECS: i64 = 8 * 3600;
const ADMIN_AUDIENCE: &str = "seckill-admin";

/// Claims of a buyer's JWT.
#[derive(Debug, Serialize, Deserialize)]
pub struct BuyerClaims {
    pub sub: String,
    pub exp: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct AdminClaims {
    sub: String,
    aud: String,
    exp: i64,
}

/// The signing keys and validation rules, built once from the secrets.
pub struct Keys {
    buyer: DecodingKey,
    buyer_validation: Validation,
    admin_encoding: EncodingKey,
    admin_decoding: DecodingKey,
    admin_validation: Validation,
    admin_password_digest: [u8; 32],
    edge_secret_digest: [u8; 32],
}

impl Keys {
    pub fn new(jwt_secret: &str, admin_password: &str, edge_secret: &str) -> Self {
        let mut buyer_validation = Validation::new(Algorithm::HS256);
        buyer_validation.set_required_spec_claims(&["exp", "sub"]);
        buyer_validation.leeway = 5;
        let admin_secret =
            Sha256::new().chain_update(b"seckill admin session\0").chain_update(jwt_secret.as_bytes()).finalize();
        let mut admin_validation = Validation::new(Algorithm::HS256);
        admin_validation.set_required_spec_claims(&["exp", "sub", "aud"]);
        admin_validation.set_audience(&[ADMIN_AUDIENCE]);
        admin_validation.leeway = 0;
        Self {
            buyer: DecodingKey::from_secret(jwt_secret.as_bytes()),
            buyer_validation,
            admin_encoding: EncodingKey::from_secret(&admin_secret),
            admin_decoding: DecodingKey::from_secret(&admin_secret),
            admin_validation,
            admin_password_digest: Sha256::digest(admin_password.as_bytes()).into(),
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

    /// Checks the admin password in constant time (both sides hashed first, so
    /// not even the length leaks).
    pub fn check_admin_password(&self, password: &str) -> bool {
        same_secret(password, &self.admin_password_digest)
    }

    /// Checks the secret the edge presents, in constant time.
    pub fn check_edge_secret(&self, presented: &str) -> bool {
        same_secret(presented, &self.edge_secret_digest)
    }

    /// Issues an admin session token valid until `exp` (unix seconds).
    pub fn issue_admin_session(&self, exp: i64) -> String {
        let claims = AdminClaims { sub: "admin".into(), aud: ADMIN_AUDIENCE.into(), exp };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.admin_encoding)
            .expect("HS256 encoding of plain claims cannot fail")
    }

    fn verify_admin(&self, token: &str) -> Result<(), ApiError> {
        jsonwebtoken::decode::<AdminClaims>(token, &self.admin_decoding, &self.admin_validation)
            .map(drop)
            .map_err(|_| ApiError::unauthorized("admin session missing, expired or invalid; log in again"))
    }
}

fn same_secret(given: &str, expected_digest: &[u8; 32]) -> bool {
    let given: [u8; 32] = Sha256::digest(given.as_bytes()).into();
    given.ct_eq(expected_digest).into()
}

/// A user id as the contract allows it: 1–64 characters of `[A-Za-z0-9_-]`.
pub fn valid_user_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
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

/// An authenticated admin: a valid session from the cookie or the bearer header.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)
            .or_else(|| cookie(parts, ADMIN_COOKIE))
            .ok_or_else(|| ApiError::unauthorized("admin session required; log in at POST /admin/api/login"))?;
        state.keys.verify_admin(token).map(|()| Admin)
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
        match Admin::from_request_parts(parts, state).await {
            Ok(Admin) => Ok(Self::Admin),
            Err(_) => Err(ApiError::unauthorized("a buyer JWT or an admin session is required")),
        }
    }
}

/// The client's IP: the peer address, or the first untrusted hop of
/// `x-forwarded-for` when the peer is a trusted proxy (a client cannot spoof
/// its way past the blacklist by sending the header itself).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer =
            parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ci| ci.0.ip()).unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let trusted = |ip: &IpAddr| state.settings.trusted_proxies.iter().any(|net| net.contains(ip));
        if !trusted(&peer) {
            return Ok(ClientIp(peer));
        }
        let hops = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        let mut client = peer;
        for hop in hops.iter().rev() {
            match hop.parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !trusted(&ip) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        Ok(ClientIp(client))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_follow_the_contract() {
        assert!(valid_user_id("alice_01-x"));
        assert!(!valid_user_id(""));
        assert!(!valid_user_id(&"a".repeat(65)));
        assert!(!valid_user_id("al ice"));
        assert!(!valid_user_id("bob:1"));
    }

    #[test]
    fn admin_password_check() {
        let keys = Keys::new("secret", "hunter2", "edge");
        assert!(keys.check_admin_password("hunter2"));
        assert!(!keys.check_admin_password("hunter3"));
        assert!(!keys.check_admin_password(""));
    }

    #[test]
    fn a_buyer_token_is_not_an_admin_session() {
        let keys = Keys::new("secret", "pw", "edge");
        let exp = time::OffsetDateTime::now_utc().unix_timestamp() + 60;
        let buyer = jsonwebtoken::encode(
            &Header::default(),
            &BuyerClaims { sub: "admin".into(), exp },
            &EncodingKey::from_secret(b"secret"),
        )
        .unwrap();
        assert!(keys.verify_admin(&buyer).is_err());
        assert!(keys.verify_admin(&keys.issue_admin_session(exp)).is_ok());
        assert!(keys.verify_buyer(&keys.issue_admin_session(exp)).is_err());
    }
}
