//! Who is calling: buyers by their HS256 JWT, admins by the session from
//! `POST /admin/api/login`, and the client IP for the blacklist.
//!
//! Each is an axum extractor, so a handler that takes `Buyer` cannot run for
//! an unauthenticated request. Admin sessions are JWTs too, but signed with a
//! key of their own (`admin_session`), never derived from the buyers' secret.

use std::net::{IpAddr, SocketAddr};

use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRef, FromRequestParts, OptionalFromRequestParts};
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;

use crate::admin_session::{AdminSessions, SessionClaims, SessionError};
use crate::config::Settings;
use crate::credentials::Credentials;
use crate::routes::error::ApiError;
use crate::routes::request_id;

/// Name of the admin session cookie.
pub const ADMIN_COOKIE: &str = "seckill_admin";

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

impl<S> FromRequestParts<S> for Buyer
where
    Arc<Credentials>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or_else(|| ApiError::unauthorized("missing `Authorization: Bearer <JWT>`"))?;
        let user = Arc::<Credentials>::from_ref(state).verify_buyer(token)?;
        request_id::note_user(parts, &user);
        Ok(Buyer(user))
    }
}

/// The admin session a request presents: the bearer header, or the cookie.
pub fn admin_token(parts: &Parts) -> Option<&str> {
    bearer(parts).or_else(|| cookie(parts, ADMIN_COOKIE))
}

/// An authenticated admin: a valid, unrevoked session.
#[derive(Debug, Clone)]
pub struct Admin(pub SessionClaims);

impl<S> FromRequestParts<S> for Admin
where
    AdminSessions: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token = admin_token(parts)
            .ok_or_else(|| ApiError::unauthorized("admin session required; log in at POST /admin/api/login"))?;
        Ok(Admin(AdminSessions::from_ref(state).verify(token).await?))
    }
}

/// `Option<Admin>`: the session if a valid one is presented, else `None`
/// (Redis failing while checking it is still `unavailable`).
impl<S> OptionalFromRequestParts<S> for Admin
where
    AdminSessions: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Option<Self>, Self::Rejection> {
        let Some(token) = admin_token(parts) else { return Ok(None) };
        match AdminSessions::from_ref(state).verify(token).await {
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

impl<S> FromRequestParts<S> for Caller
where
    Arc<Credentials>: FromRef<S>,
    AdminSessions: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(token) = bearer(parts)
            && let Ok(user) = Arc::<Credentials>::from_ref(state).verify_buyer(token)
        {
            request_id::note_user(parts, &user);
            return Ok(Self::Buyer(user));
        }
        match <Admin as FromRequestParts<S>>::from_request_parts(parts, state).await {
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

impl<S> FromRequestParts<S> for ClientIp
where
    Arc<Settings>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let settings = Arc::<Settings>::from_ref(state);
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ci| ci.0.ip());
        let forwarded: Vec<&str> =
            parts.headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect();
        let trusted = |ip: IpAddr| settings.trusted_proxies.iter().any(|net| net.contains(&ip));
        Ok(ClientIp(seckill_api::client_addr::client_ip(peer, &forwarded, trusted)))
    }
}
