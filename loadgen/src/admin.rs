//! The few admin API calls a run needs: log in, create (or look up) the
//! activity, and read its stats for the invariant check. They happen outside
//! the timed phases, so they favour clear errors over speed.

use anyhow::{Context, Result, bail};
use hyper::Method;
use hyper::StatusCode;
use hyper::body::Bytes;
use seckill_api::{Activity, ActivityStats, AdminSession, ErrorBody, LoginRequest, NewActivity};
use serde::de::DeserializeOwned;

use crate::client::Endpoint;

/// A logged-in admin API.
pub struct Admin<'a> {
    endpoint: &'a Endpoint,
    token: String,
}

impl<'a> Admin<'a> {
    /// `POST /admin/api/login {password}`.
    pub async fn login(endpoint: &'a Endpoint, password: &str) -> Result<Self> {
        let body = serde_json::to_vec(&LoginRequest { password: password.to_owned() })?;
        let (status, bytes) = endpoint.oneshot(Method::POST, "/admin/api/login", None, Some(body)).await?;
        let session: AdminSession = expect(status, &bytes, StatusCode::OK, "admin login")?;
        Ok(Self { endpoint, token: session.token })
    }

    /// `POST /admin/api/activities`.
    pub async fn create_activity(&self, new: &NewActivity) -> Result<Activity> {
        let body = serde_json::to_vec(new)?;
        let (status, bytes) =
            self.endpoint.oneshot(Method::POST, "/admin/api/activities", Some(&self.token), Some(body)).await?;
        expect(status, &bytes, StatusCode::CREATED, "creating the activity")
    }

    /// `GET /admin/api/activities/{id}`.
    pub async fn activity(&self, id: u64) -> Result<Activity> {
        let path = format!("/admin/api/activities/{id}");
        let (status, bytes) = self.endpoint.oneshot(Method::GET, &path, Some(&self.token), None).await?;
        expect(status, &bytes, StatusCode::OK, &format!("reading activity {id}"))
    }

    /// `PUT /admin/api/blacklist/{list}/{entry}` (`list`: `users` or `ips`).
    pub async fn blacklist(&self, list: &str, entry: &str) -> Result<()> {
        let path = format!("/admin/api/blacklist/{list}/{entry}");
        let (status, bytes) = self.endpoint.oneshot(Method::PUT, &path, Some(&self.token), None).await?;
        expect::<serde_json::Value>(status, &bytes, StatusCode::OK, &format!("blacklisting {entry}")).map(drop)
    }

    /// `DELETE /admin/api/blacklist/{list}/{entry}`.
    pub async fn unblacklist(&self, list: &str, entry: &str) -> Result<()> {
        let path = format!("/admin/api/blacklist/{list}/{entry}");
        let (status, bytes) = self.endpoint.oneshot(Method::DELETE, &path, Some(&self.token), None).await?;
        if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_FOUND {
            return Ok(());
        }
        expect::<serde_json::Value>(status, &bytes, StatusCode::NO_CONTENT, &format!("unblacklisting {entry}"))
            .map(drop)
    }

    /// `GET /admin/api/activities/{id}/stats`.
    pub async fn stats(&self, id: u64) -> Result<ActivityStats> {
        let path = format!("/admin/api/activities/{id}/stats");
        let (status, bytes) = self.endpoint.oneshot(Method::GET, &path, Some(&self.token), None).await?;
        expect(status, &bytes, StatusCode::OK, &format!("reading the stats of activity {id}"))
    }
}

/// Decodes the body when the status is `want`; otherwise an error that quotes
/// the contract error (or the start of whatever else came back).
fn expect<T: DeserializeOwned>(status: StatusCode, body: &Bytes, want: StatusCode, what: &str) -> Result<T> {
    if status == want {
        return serde_json::from_slice(body).with_context(|| format!("{what}: unexpected answer body"));
    }
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => bail!("{what} failed: {status} {}: {}", e.code.as_str(), e.message),
        Err(_) => {
            let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
            bail!("{what} failed: {status}: {text}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_quote_the_contract_error() {
        let body = Bytes::from_static(br#"{"code":"unauthorized","message":"wrong admin password"}"#);
        let err = expect::<AdminSession>(StatusCode::UNAUTHORIZED, &body, StatusCode::OK, "admin login").unwrap_err();
        assert_eq!(err.to_string(), "admin login failed: 401 Unauthorized unauthorized: wrong admin password");
        let err = expect::<AdminSession>(
            StatusCode::BAD_GATEWAY,
            &Bytes::from_static(b"no healthy upstream"),
            StatusCode::OK,
            "admin login",
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "admin login failed: 502 Bad Gateway: no healthy upstream");
    }
}
