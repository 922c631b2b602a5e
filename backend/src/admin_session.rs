//! Admin sessions: who may operate the sale, and how that right is taken back.
//!
//! A session is an HS256 JWT signed with a key of its own: 32 random bytes
//! kept in Redis, created by whichever backend needs it first, so that every
//! backend behind the edge accepts every session, and so that nothing holding
//! the buyers' JWT secret (the edge's configuration holds it) can mint one.
//! Each session carries three things that can end it before it expires:
//! - the password generation, a keyed hash of the admin password: a backend
//!   started with a new password refuses every session issued under the old one;
//! - the epoch: `POST /admin/api/sessions/revoke` bumps it and every session
//!   issued before is refused ("log out everywhere");
//! - its id: `POST /admin/api/logout` revokes that one session.
//!
//! Failed logins are throttled in Redis (shared by every backend): per client
//! IP, and for the account as a whole so that an attacker spread over many
//! addresses is slowed down too. A throttled login answers `rate_limited` with
//! `retry-after` before the password is even looked at.

use std::net::IpAddr;
use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::OnceCell;

use crate::store::keys;
use crate::store::{Store, StoreError};

/// How long an admin session lasts.
pub const SESSION_SECS: i64 = 8 * 3600;
/// The audience every admin session carries (the edge recognises it).
pub const AUDIENCE: &str = "seckill-admin";
/// The window failed logins are counted in.
pub const FAILURE_WINDOW_MS: u64 = 15 * 60 * 1000;
/// Failed logins from one IP address per window before it must wait.
pub const MAX_FAILURES_PER_IP: i64 = 10;
/// Failed logins from everywhere per window before everyone must wait.
pub const MAX_FAILURES_PER_ACCOUNT: i64 = 100;

/// The claims of an admin session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionClaims {
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    /// The session's id, for revoking it alone.
    pub jti: String,
    /// The password generation it was issued under.
    pub generation: String,
    /// The revocation epoch it was issued in.
    pub epoch: i64,
}

/// Why an admin session or login was refused.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("admin session missing, expired or invalid; log in again")]
    Invalid,
    #[error("admin session was revoked; log in again")]
    Revoked,
    #[error("wrong admin password")]
    WrongPassword,
    #[error("too many failed logins; retry in {retry_after_secs} s")]
    Throttled { retry_after_secs: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The signing key and what is derived from it, loaded once from Redis.
struct SessionKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// The current password's generation under this key.
    generation: String,
}

/// Issues, checks and revokes admin sessions. Cheap to clone.
#[derive(Clone)]
pub struct AdminSessions {
    store: Store,
    password_digest: [u8; 32],
    password: Arc<str>,
    key: Arc<OnceCell<SessionKey>>,
    validation: Arc<Validation>,
}

impl AdminSessions {
    pub fn new(store: Store, admin_password: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub", "aud"]);
        validation.set_audience(&[AUDIENCE]);
        validation.leeway = 0;
        Self {
            store,
            password_digest: Sha256::digest(admin_password.as_bytes()).into(),
            password: admin_password.into(),
            key: Arc::default(),
            validation: Arc::new(validation),
        }
    }

    /// The signing key: Redis's, or a new random one if this is the first backend to ask.
    async fn key(&self) -> Result<&SessionKey, StoreError> {
        self.key
            .get_or_try_init(|| async {
                let candidate = hex::encode(rand::random::<[u8; 32]>());
                let stored: String = self
                    .store
                    .bounded(|mut c| async move {
                        let (stored,): (String,) = redis::pipe()
                            .cmd("SET")
                            .arg(keys::ADMIN_SESSION_KEY)
                            .arg(&candidate)
                            .arg("NX")
                            .ignore()
                            .cmd("GET")
                            .arg(keys::ADMIN_SESSION_KEY)
                            .query_async(&mut c)
                            .await?;
                        Ok(stored)
                    })
                    .await?;
                let generation = hex::encode(
                    &Sha256::new().chain_update(stored.as_bytes()).chain_update(self.password.as_bytes()).finalize()
                        [..8],
                );
                Ok(SessionKey {
                    encoding: EncodingKey::from_secret(stored.as_bytes()),
                    decoding: DecodingKey::from_secret(stored.as_bytes()),
                    generation,
                })
            })
            .await
    }

    /// Checks the password (constant time, both sides hashed first so not even
    /// the length leaks) under the failed-login throttle, and issues a session.
    pub async fn login(&self, password: &str, client: IpAddr) -> Result<(String, SessionClaims), SessionError> {
        let ip_key = keys::admin_login_failures_ip(&client.to_string());
        let (ip_failures, ip_ttl, all_failures, all_ttl) = self.failures(&ip_key).await?;
        let waiting =
            [(ip_failures >= MAX_FAILURES_PER_IP, ip_ttl), (all_failures >= MAX_FAILURES_PER_ACCOUNT, all_ttl)];
        if let Some(ttl_ms) = waiting.iter().filter(|(over, _)| *over).map(|(_, ttl)| *ttl).max() {
            metrics::counter!("seckill_admin_logins_total", "result" => "throttled").increment(1);
            tracing::warn!(%client, ip_failures, all_failures, "admin login throttled");
            return Err(SessionError::Throttled { retry_after_secs: (ttl_ms.max(1) as u64).div_ceil(1000) });
        }
        let given: [u8; 32] = Sha256::digest(password.as_bytes()).into();
        if !bool::from(given.ct_eq(&self.password_digest)) {
            self.count_failure(&ip_key).await?;
            metrics::counter!("seckill_admin_logins_total", "result" => "wrong_password").increment(1);
            tracing::warn!(%client, failures_from_ip = ip_failures + 1, "admin login refused: wrong password");
            return Err(SessionError::WrongPassword);
        }
        self.store
            .bounded(|mut c| async move { redis::cmd("DEL").arg(&ip_key).query_async::<()>(&mut c).await })
            .await?;
        metrics::counter!("seckill_admin_logins_total", "result" => "ok").increment(1);
        tracing::info!(%client, "admin logged in");
        self.issue().await
    }

    /// (failures from the IP, their ms to live, failures overall, their ms to live).
    async fn failures(&self, ip_key: &str) -> Result<(i64, i64, i64, i64), StoreError> {
        let ip_key = ip_key.to_owned();
        self.store
            .bounded(|mut c| async move {
                let (ip, ip_ttl, all, all_ttl): (Option<i64>, i64, Option<i64>, i64) = redis::pipe()
                    .cmd("GET")
                    .arg(&ip_key)
                    .cmd("PTTL")
                    .arg(&ip_key)
                    .cmd("GET")
                    .arg(keys::ADMIN_LOGIN_FAILURES)
                    .cmd("PTTL")
                    .arg(keys::ADMIN_LOGIN_FAILURES)
                    .query_async(&mut c)
                    .await?;
                Ok((ip.unwrap_or(0), ip_ttl, all.unwrap_or(0), all_ttl))
            })
            .await
    }

    async fn count_failure(&self, ip_key: &str) -> Result<(), StoreError> {
        let ip_key = ip_key.to_owned();
        self.store
            .bounded(|mut c| async move {
                // The window starts at the first failure (NX) and is not extended by the next ones.
                redis::pipe()
                    .cmd("INCR")
                    .arg(&ip_key)
                    .ignore()
                    .cmd("PEXPIRE")
                    .arg(&ip_key)
                    .arg(FAILURE_WINDOW_MS)
                    .arg("NX")
                    .ignore()
                    .cmd("INCR")
                    .arg(keys::ADMIN_LOGIN_FAILURES)
                    .ignore()
                    .cmd("PEXPIRE")
                    .arg(keys::ADMIN_LOGIN_FAILURES)
                    .arg(FAILURE_WINDOW_MS)
                    .arg("NX")
                    .ignore()
                    .query_async::<()>(&mut c)
                    .await
            })
            .await
    }

    /// A new session in the current epoch.
    async fn issue(&self) -> Result<(String, SessionClaims), SessionError> {
        let key = self.key().await?;
        let epoch = self.epoch().await?;
        let claims = SessionClaims {
            sub: "admin".into(),
            aud: AUDIENCE.into(),
            exp: time::OffsetDateTime::now_utc().unix_timestamp() + SESSION_SECS,
            jti: hex::encode(rand::random::<[u8; 16]>()),
            generation: key.generation.clone(),
            epoch,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key.encoding)
            .expect("HS256 encoding of plain claims cannot fail");
        Ok((token, claims))
    }

    async fn epoch(&self) -> Result<i64, StoreError> {
        self.store
            .bounded(|mut c| async move {
                let epoch: Option<i64> = redis::cmd("GET").arg(keys::ADMIN_SESSION_EPOCH).query_async(&mut c).await?;
                Ok(epoch.unwrap_or(0))
            })
            .await
    }

    /// Verifies a session: signature, audience, expiry, password generation,
    /// epoch and revocation.
    pub async fn verify(&self, token: &str) -> Result<SessionClaims, SessionError> {
        let key = self.key().await?;
        let claims = jsonwebtoken::decode::<SessionClaims>(token, &key.decoding, &self.validation)
            .map_err(|_| SessionError::Invalid)?
            .claims;
        if !bool::from(claims.generation.as_bytes().ct_eq(key.generation.as_bytes())) {
            return Err(SessionError::Revoked);
        }
        let jti = claims.jti.clone();
        let (epoch, revoked): (Option<i64>, Option<f64>) = self
            .store
            .bounded(|mut c| async move {
                redis::pipe()
                    .cmd("GET")
                    .arg(keys::ADMIN_SESSION_EPOCH)
                    .cmd("ZSCORE")
                    .arg(keys::ADMIN_REVOKED_SESSIONS)
                    .arg(&jti)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        if claims.epoch < epoch.unwrap_or(0) || revoked.is_some() {
            return Err(SessionError::Revoked);
        }
        Ok(claims)
    }

    /// Revokes one session until it would have expired anyway.
    pub async fn revoke(&self, claims: &SessionClaims) -> Result<(), StoreError> {
        let (jti, exp_ms, now_ms) = (claims.jti.clone(), claims.exp * 1000, crate::clock::now_ms());
        self.store
            .bounded(|mut c| async move {
                redis::pipe()
                    .cmd("ZADD")
                    .arg(keys::ADMIN_REVOKED_SESSIONS)
                    .arg(exp_ms)
                    .arg(&jti)
                    .ignore()
                    // Revocations of sessions past their expiry are no longer needed.
                    .cmd("ZREMRANGEBYSCORE")
                    .arg(keys::ADMIN_REVOKED_SESSIONS)
                    .arg("-inf")
                    .arg(now_ms)
                    .ignore()
                    .query_async::<()>(&mut c)
                    .await
            })
            .await
    }

    /// Ends every session issued so far, on every backend.
    pub async fn revoke_all(&self) -> Result<(), StoreError> {
        self.store
            .bounded(|mut c| async move {
                redis::cmd("INCR").arg(keys::ADMIN_SESSION_EPOCH).query_async::<()>(&mut c).await
            })
            .await
    }
}
