//! Who may operate the sale: admin sessions are signed with a key of their
//! own (never derived from the buyers' JWT secret), end with logout, with
//! "revoke all" and with a password change, and failed logins are throttled
//! per client address and for the account.

use seckill_tests::{ADMIN_PASSWORD, Backend, JWT_SECRET, RedisServer, jwt};
use serde_json::{Value, json};

async fn login(api: &Backend, password: &str, from: Option<&str>) -> (u16, Value, Option<String>) {
    let mut req = api.http.post(api.url("/admin/api/login")).json(&json!({"password": password}));
    if let Some(ip) = from {
        req = req.header("x-forwarded-for", ip);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let retry_after = res.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    (status, res.json().await.unwrap_or(Value::Null), retry_after)
}

async fn activities_with(api: &Backend, session: &str) -> u16 {
    api.get("/admin/api/activities", session).await.0
}

/// An admin session as anyone holding the buyers' secret could once derive it.
fn minted_from_the_buyer_secret() -> String {
    use sha2::{Digest, Sha256};
    let key = Sha256::new().chain_update(b"seckill admin session\0").chain_update(JWT_SECRET.as_bytes()).finalize();
    let exp = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
    seckill_api::buyer_jwt::sign_hs256(
        key,
        &json!({"alg": "HS256", "typ": "JWT"}),
        &json!({"sub": "admin", "aud": "seckill-admin", "exp": exp, "jti": "x", "generation": "x", "epoch": 0}),
    )
}

#[tokio::test]
async fn the_buyer_secret_cannot_mint_an_admin_session() {
    let redis = RedisServer::start().unwrap();
    let api = Backend::start(&redis.url()).await.unwrap();
    assert_eq!(activities_with(&api, &minted_from_the_buyer_secret()).await, 401);
    assert_eq!(activities_with(&api, &jwt("admin")).await, 401, "nor is a buyer token a session");
    let real = api.admin_token().await;
    assert_eq!(activities_with(&api, &real).await, 200);
}

#[tokio::test]
async fn logout_ends_the_session_and_revoke_all_ends_every_one_on_every_backend() {
    let redis = RedisServer::start().unwrap();
    let api = Backend::start(&redis.url()).await.unwrap();
    let other = Backend::start(&redis.url()).await.unwrap();
    let (first, second, third) = (api.admin_token().await, api.admin_token().await, other.admin_token().await);
    // A session from one backend is good on another: they share the key.
    assert_eq!(activities_with(&other, &first).await, 200);
    assert_eq!(activities_with(&api, &third).await, 200);

    let (status, _) = api.post("/admin/api/logout", &first, None).await;
    assert_eq!(status, 204);
    assert_eq!(activities_with(&api, &first).await, 401, "a logged-out session is over");
    assert_eq!(activities_with(&other, &first).await, 401, "everywhere");
    assert_eq!(activities_with(&api, &second).await, 200, "the other sessions go on");

    let (status, _) = other.post("/admin/api/sessions/revoke", &third, None).await;
    assert_eq!(status, 204);
    for session in [&second, &third] {
        assert_eq!(activities_with(&api, session).await, 401);
        assert_eq!(activities_with(&other, session).await, 401);
    }
    let fresh = api.admin_token().await;
    assert_eq!(activities_with(&other, &fresh).await, 200, "a new login works after revoke-all");
    let (status, _) = api.post("/admin/api/sessions/revoke", &jwt("mallory"), None).await;
    assert_eq!(status, 401, "revoking takes an admin");
}

#[tokio::test]
async fn a_new_admin_password_ends_the_sessions_of_the_old_one() {
    let redis = RedisServer::start().unwrap();
    let old = Backend::start(&redis.url()).await.unwrap();
    let session = old.admin_token().await;
    drop(old);
    let renewed = Backend::start_with(&redis.url(), &["--admin-password", "a-new-password"]).await.unwrap();
    assert_eq!(activities_with(&renewed, &session).await, 401, "the old password's session is over");
    let (status, body, _) = login(&renewed, ADMIN_PASSWORD, None).await;
    assert_eq!(status, 401, "{body}");
    let (status, body, _) = login(&renewed, "a-new-password", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(activities_with(&renewed, body["token"].as_str().unwrap()).await, 200);
}

#[tokio::test]
async fn failed_logins_are_throttled_per_address_and_counted() {
    let redis = RedisServer::start().unwrap();
    // The test client's "addresses" come through a trusted proxy (itself).
    let api = Backend::start_with(&redis.url(), &["--trusted-proxies", "127.0.0.1/32"]).await.unwrap();
    for i in 0..10 {
        let (status, body, _) = login(&api, "guess", Some("198.51.100.7")).await;
        assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")), "attempt {i}");
    }
    // The eleventh is refused before the password is looked at, even the right one.
    let (status, body, retry_after) = login(&api, ADMIN_PASSWORD, Some("198.51.100.7")).await;
    assert_eq!((status, body["code"].as_str()), (429, Some("rate_limited")), "{body}");
    let wait: u64 = retry_after.expect("retry-after").parse().unwrap();
    assert!((1..=15 * 60).contains(&wait), "retry-after {wait}");
    // Another address is not held back.
    let (status, body, _) = login(&api, ADMIN_PASSWORD, Some("198.51.100.8")).await;
    assert_eq!(status, 200, "{body}");

    let metrics = api.http.get(api.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let count = |result: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with("seckill_admin_logins_total") && l.contains(&format!("result=\"{result}\"")))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0)
    };
    assert!(count("wrong_password") >= 10.0, "{metrics}");
    assert!(count("throttled") >= 1.0);
}
