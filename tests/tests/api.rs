//! The HTTP contract of the buy path, one error code at a time, plus the
//! admin routes and health endpoints. Every bad request must change nothing.
//!
//! Longer than 500 lines on purpose: one file is the contract's whole error
//! table as it is exercised, each test on its own.

use std::time::Duration;

use seckill_api::buyer_jwt;
use seckill_backend::store::keys;
use seckill_tests::{ActivitySpec, Backend, JWT_SECRET, RedisServer, eventually, get_int, jwt};
use serde_json::{Value, json};

struct World {
    redis: RedisServer,
    api: Backend,
}

async fn world() -> World {
    world_with(&[]).await
}

async fn world_with(args: &[&str]) -> World {
    let redis = RedisServer::start().unwrap();
    let api = Backend::start_with(&redis.url(), args).await.unwrap();
    World { redis, api }
}

fn code(body: &Value) -> &str {
    body["code"].as_str().unwrap_or("<no code>")
}

async fn post_raw(w: &World, path: &str, auth: Option<&str>, body: &str) -> (u16, Value) {
    let mut req = w.api.http.post(w.api.url(path)).header("content-type", "application/json").body(body.to_owned());
    if let Some(token) = auth {
        req = req.bearer_auth(token);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn assert_untouched(w: &World, a: u64, stock: i64) {
    let mut c = w.redis.conn().await;
    assert_eq!(get_int(&mut c, &keys::inventory(a)).await, stock, "inventory changed");
    assert_eq!(get_int(&mut c, &keys::sold(a)).await, 0, "sold changed");
}

#[tokio::test]
async fn bad_request_for_malformed_purchases_changes_nothing() {
    let w = world().await;
    let a = w.api.create_activity(ActivitySpec::live(10, 5)).await;
    let (_, t) = w.api.token(a, "alice").await;
    let token = t["token"].as_str().unwrap();
    let path = format!("/api/activities/{a}/purchase");
    let bearer = jwt("alice");
    let huge_token = "x".repeat(20_000);
    let bodies = [
        "{\"token\":".to_owned(),
        "not json".to_owned(),
        json!({"token": 5, "quantity": 1}).to_string(),
        json!({"quantity": 1}).to_string(),
        json!({"token": token}).to_string(),
        json!({"token": token, "quantity": 0}).to_string(),
        json!({"token": token, "quantity": -1}).to_string(),
        json!({"token": token, "quantity": 1.5}).to_string(),
        json!({"token": token, "quantity": "1"}).to_string(),
        json!({"token": token, "quantity": 10_000_000}).to_string(),
        json!({"token": token, "quantity": 1e300}).to_string(),
        json!({"token": huge_token, "quantity": 1}).to_string(),
    ];
    for body in &bodies {
        let (status, answer) = post_raw(&w, &path, Some(&bearer), body).await;
        assert_eq!((status, code(&answer)), (400, "bad_request"), "body {:.80}", body);
        assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()), "a human message is required");
    }
    assert_untouched(&w, a, 10).await;
    // The token was not consumed by any of it.
    let (status, _) = w.api.purchase(a, "alice", token, json!(1)).await;
    assert_eq!(status, 202);
}

#[tokio::test]
async fn unauthorized_without_a_valid_jwt() {
    let w = world().await;
    let a = w.api.create_activity(ActivitySpec::live(10, 5)).await;
    let path = format!("/api/activities/{a}/token");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let header = |v: &str| ("authorization", v.to_owned());
    let cases = [
        None,
        Some(header("Bearer")),
        Some(header("Bearer not.a.jwt")),
        Some(header(&format!("Basic {}", jwt("alice")))),
        Some(header(&format!("Bearer {}", buyer_jwt::mint(JWT_SECRET, "alice", now - 600)))),
        Some(header(&format!("Bearer {}", buyer_jwt::mint("wrong-secret", "alice", now + 600)))),
        Some(header(&format!("Bearer {}", buyer_jwt::mint(JWT_SECRET, "bad user!", now + 600)))),
        Some(header(&format!("Bearer {}", buyer_jwt::mint(JWT_SECRET, &"a".repeat(65), now + 600)))),
    ];
    for case in cases {
        let mut req = w.api.http.post(w.api.url(&path));
        if let Some((k, v)) = &case {
            req = req.header(*k, v);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap();
        assert_eq!((status, code(&body)), (401, "unauthorized"), "{case:?}");
    }
    // A JWT without `exp` is refused too.
    let no_exp = buyer_jwt::sign_hs256(JWT_SECRET, &json!({"alg": "HS256", "typ": "JWT"}), &json!({"sub": "alice"}));
    let (status, body) = post_raw(&w, &path, Some(&no_exp), "").await;
    assert_eq!((status, code(&body)), (401, "unauthorized"));
    assert_untouched(&w, a, 10).await;
}

#[tokio::test]
async fn admin_routes_need_a_session() {
    let w = world().await;
    for (method, path) in
        [("GET", "/admin/api/activities"), ("POST", "/admin/api/activities"), ("GET", "/admin/api/blacklist/users")]
    {
        let req = w.api.http.request(method.parse().unwrap(), w.api.url(path));
        for auth in [None, Some(jwt("admin"))] {
            let req = req.try_clone().unwrap();
            let req = match &auth {
                Some(t) => req.bearer_auth(t),
                None => req,
            };
            let res = req.json(&json!({})).send().await.unwrap();
            assert_eq!(res.status(), 401, "{method} {path} with {auth:?}");
        }
    }
    let (status, body) = post_raw(&w, "/admin/api/login", None, &json!({"password": "guess"}).to_string()).await;
    assert_eq!((status, code(&body)), (401, "unauthorized"));
}

#[tokio::test]
async fn admin_login_sets_a_strict_httponly_cookie_that_works() {
    let w = world().await;
    let res = w
        .api
        .http
        .post(w.api.url("/admin/api/login"))
        .json(&json!({"password": seckill_tests::ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let body: Value = res.json().await.unwrap();
    assert!(body["expires_at"].as_str().is_some());
    let pair = cookie.split(';').next().unwrap();
    let res = w.api.http.get(w.api.url("/admin/api/activities")).header("cookie", pair).send().await.unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn blacklisted_users_and_ips_are_refused_before_any_script() {
    let w = world_with(&["--trusted-proxies", "127.0.0.1/32"]).await;
    let a = w.api.create_activity(ActivitySpec::live(10, 5)).await;
    let admin = w.api.admin_token().await;
    let (_, t) = w.api.token(a, "mallory").await;
    let token = t["token"].as_str().unwrap().to_owned();

    let put = w.api.http.put(w.api.url("/admin/api/blacklist/users/mallory")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(put.status(), 200);
    let (status, body) = w.api.token(a, "mallory").await;
    assert_eq!((status, code(&body)), (403, "blacklisted"));
    let (status, body) = w.api.purchase(a, "mallory", &token, json!(1)).await;
    assert_eq!((status, code(&body)), (403, "blacklisted"));
    assert_untouched(&w, a, 10).await;

    // A CIDR range, matched against the client behind a trusted proxy.
    let put = w
        .api
        .http
        .put(w.api.url("/admin/api/blacklist/ips/203.0.113.0%2F24"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let from = |xff: &'static str| {
        w.api
            .http
            .post(w.api.url(&format!("/api/activities/{a}/token")))
            .bearer_auth(jwt("trent"))
            .header("x-forwarded-for", xff)
    };
    let res = from("203.0.113.77").send().await.unwrap();
    assert_eq!(res.status(), 403);
    // Hops as proxies write them (a port, brackets, quotes, a mapped address) are the
    // same client, by the rule the edge applies too (`seckill_api::client_addr`).
    for written in ["203.0.113.78:4444", "\"203.0.113.79\"", "::ffff:203.0.113.80", "198.51.100.1, 203.0.113.81"] {
        let res = from(written).send().await.unwrap();
        assert_eq!(res.status(), 403, "{written}");
    }
    let res = from("198.51.100.1").send().await.unwrap();
    assert_eq!(res.status(), 200);

    // Removing the entry lets the buyer in again.
    let del =
        w.api.http.delete(w.api.url("/admin/api/blacklist/users/mallory")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(del.status(), 204);
    let (status, _) = w.api.purchase(a, "mallory", &token, json!(1)).await;
    assert_eq!(status, 202);
}

#[tokio::test]
async fn a_spoofed_forwarded_for_from_an_untrusted_peer_changes_nothing() {
    let w = world().await; // no trusted proxies
    let a = w.api.create_activity(ActivitySpec::live(10, 5)).await;
    let admin = w.api.admin_token().await;
    w.api.http.put(w.api.url("/admin/api/blacklist/ips/127.0.0.1")).bearer_auth(&admin).send().await.unwrap();
    let res = w
        .api
        .http
        .post(w.api.url(&format!("/api/activities/{a}/token")))
        .bearer_auth(jwt("sly"))
        .header("x-forwarded-for", "198.51.100.1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "the peer address decides, not the header");
}

#[tokio::test]
async fn invalid_token_when_missing_forged_foreign_or_expired() {
    let w = world_with(&["--token-ttl-secs", "1"]).await;
    let a = w.api.create_activity(ActivitySpec::live(10, 5)).await;
    let (_, t) = w.api.token(a, "olga").await;
    let token = t["token"].as_str().unwrap().to_owned();
    for (user, tok) in [("olga", ""), ("olga", "garbage"), ("olga", &"0".repeat(32)[..]), ("peter", &token[..])] {
        let (status, body) = w.api.purchase(a, user, tok, json!(1)).await;
        assert_eq!((status, code(&body)), (403, "invalid_token"), "{user} with {tok:?}");
    }
    // Once the token's TTL passes it is refused as well (its expiry is in its
    // hash field's value: Redis 7.0 cannot expire a field).
    let mut c = w.redis.conn().await;
    let held: String = redis::cmd("HGET").arg(keys::tokens(a)).arg(&token).query_async(&mut c).await.unwrap();
    let expires: i64 = held.strip_prefix("olga:").and_then(|e| e.parse().ok()).unwrap_or_else(|| panic!("{held}"));
    eventually(Duration::from_secs(5), "the purchase token to expire", || async {
        (seckill_backend::clock::now_ms() > expires).then_some(())
    })
    .await;
    let (status, body) = w.api.purchase(a, "olga", &token, json!(1)).await;
    assert_eq!((status, code(&body)), (403, "invalid_token"));
    assert_untouched(&w, a, 10).await;
}

#[tokio::test]
async fn not_found_for_unknown_activities_and_routes() {
    let w = world().await;
    for path in ["/api/activities/999", "/api/activities/abc", "/api/nope"] {
        let res = w.api.http.get(w.api.url(path)).send().await.unwrap();
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap();
        assert_eq!((status, code(&body)), (404, "not_found"), "{path}");
    }
    let (status, body) = w.api.token(999, "u").await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    let (status, body) = w.api.purchase(999, "u", &"a".repeat(32), json!(1)).await;
    assert_eq!((status, code(&body)), (404, "not_found"));
}

#[tokio::test]
async fn not_started_and_ended_outside_the_window() {
    let w = world().await;
    let mut later = ActivitySpec::live(10, 5);
    later.starts_in = time::Duration::hours(1);
    let a = w.api.create_activity(later).await;
    let (status, body) = w.api.token(a, "u").await;
    assert_eq!((status, code(&body)), (409, "not_started"));
    let mut past = ActivitySpec::live(10, 5);
    past.starts_in = time::Duration::hours(-2);
    let b = w.api.create_activity(past).await;
    let (status, body) = w.api.token(b, "u").await;
    assert_eq!((status, code(&body)), (409, "ended"));
    let res = w.api.http.get(w.api.url(&format!("/api/activities/{a}"))).send().await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "scheduled");
    let res = w.api.http.get(w.api.url(&format!("/api/activities/{b}"))).send().await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "ended");
}

#[tokio::test]
async fn sold_out_and_limit_exceeded() {
    let w = world().await;
    let a = w.api.create_activity(ActivitySpec::live(2, 1)).await;
    let (_, t) = w.api.token(a, "quinn").await;
    let (status, body) = w.api.purchase(a, "quinn", t["token"].as_str().unwrap(), json!(2)).await;
    assert_eq!((status, code(&body)), (409, "limit_exceeded"));
    let (_, t_rose) = w.api.token(a, "rose").await;
    w.api.buy(a, "quinn", 1).await;
    w.api.buy(a, "sam", 1).await;
    // Rose got her token before the stock ran out; it no longer buys anything.
    let (status, body) = w.api.purchase(a, "rose", t_rose["token"].as_str().unwrap(), json!(1)).await;
    assert_eq!((status, code(&body)), (409, "sold_out"));
    let (status, body) = w.api.token(a, "tom").await;
    assert_eq!((status, code(&body)), (409, "sold_out"));
    let res = w.api.http.get(w.api.url(&format!("/api/activities/{a}"))).send().await.unwrap();
    let activity: Value = res.json().await.unwrap();
    assert_eq!((activity["remaining"].as_i64(), activity["sold"].as_i64()), (Some(0), Some(2)));
    assert_eq!(activity["status"], "sold_out");
}

#[tokio::test]
async fn rate_limited_when_live_tokens_cover_the_stock() {
    let w = world_with(&["--token-factor", "1"]).await;
    let a = w.api.create_activity(ActivitySpec::live(1, 1)).await;
    let (status, _) = w.api.token(a, "first").await;
    assert_eq!(status, 200);
    let res = w
        .api
        .http
        .post(w.api.url(&format!("/api/activities/{a}/token")))
        .bearer_auth(jwt("second"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    let retry_after: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry_after >= 1);
    let body: Value = res.json().await.unwrap();
    assert_eq!(code(&body), "rate_limited");
}

#[tokio::test]
async fn a_retried_purchase_returns_the_same_order_concurrently_and_after() {
    let w = world().await;
    let a = w.api.create_activity(ActivitySpec::live(10, 5)).await;
    let (_, t) = w.api.token(a, "uma").await;
    let token = t["token"].as_str().unwrap().to_owned();
    let retries = (0..20).map(|_| w.api.purchase(a, "uma", &token, json!(1)));
    let answers = futures::future::join_all(retries).await;
    let first = answers[0].1["order_id"].as_str().unwrap().to_owned();
    for (status, body) in &answers {
        assert_eq!(*status, 202, "{body}");
        assert_eq!(body["order_id"], first.as_str());
        assert_eq!(body["status"], "queued");
    }
    let (status, body) = w.api.purchase(a, "uma", &token, json!(1)).await;
    assert_eq!((status, body["order_id"].as_str()), (202, Some(first.as_str())));
    let mut c = w.redis.conn().await;
    assert_eq!(get_int(&mut c, &keys::sold(a)).await, 1);
    let res = w.api.http.get(w.api.url("/api/me/orders")).bearer_auth(jwt("uma")).send().await.unwrap();
    let page: Value = res.json().await.unwrap();
    let db = w.api.db().await;
    let api = &w.api;
    eventually(Duration::from_secs(10), "the order row", || async {
        api.http.get(api.url(&format!("/api/orders/{first}"))).bearer_auth(jwt("uma")).send().await.ok()?;
        db.order(&first).await.unwrap()
    })
    .await;
    let filter = seckill_backend::db::OrderFilter { activity_id: Some(a), ..Default::default() };
    assert_eq!(db.orders(&filter, None, 10).await.unwrap().0.len(), 1, "one order, however many retries");
    assert!(page["items"].is_array());
}

#[tokio::test]
async fn creating_an_activity_validates_and_prewarms_stock() {
    let w = world().await;
    let admin = w.api.admin_token().await;
    let base = json!({
        "name": "tv", "price_cents": 100, "total_stock": 7, "limit_per_user": 1,
        "starts_at": "2026-11-11T00:00:00Z", "ends_at": "2030-11-12T00:00:00Z"
    });
    let spoil = |field: &str, value: Value| {
        let mut b = base.clone();
        b[field] = value;
        b
    };
    for (body, field) in [
        (spoil("total_stock", json!(-1)), "total_stock"),
        // price × quantity must stay exact in Lua's doubles and SQL's BIGINT.
        (spoil("price_cents", json!(1_000_000_001)), "price_cents"),
        (spoil("price_cents", json!(i64::MAX)), "price_cents"),
        (spoil("price_cents", json!(1e300)), "price_cents"),
        (spoil("limit_per_user", json!(0)), "limit_per_user"),
        (spoil("ends_at", json!("2026-11-10T00:00:00Z")), "ends_at"),
        (spoil("starts_at", json!("yesterday")), "starts_at"),
        (spoil("unknown", json!(1)), "unknown"),
    ] {
        let (status, answer) = post_raw(&w, "/admin/api/activities", Some(&admin), &body.to_string()).await;
        assert_eq!((status, code(&answer)), (400, "bad_request"), "{body}");
        assert!(answer["message"].as_str().unwrap().contains(field), "{answer}");
    }
    let (status, created) = post_raw(&w, "/admin/api/activities", Some(&admin), &base.to_string()).await;
    assert_eq!(status, 201, "{created}");
    let a = created["id"].as_u64().unwrap();
    assert_eq!((created["remaining"].as_i64(), created["sold"].as_i64()), (Some(7), Some(0)));
    assert_untouched(&w, a, 7).await;

    let res = w
        .api
        .http
        .get(w.api.url(&format!("/admin/api/activities/{a}/stats")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let stats: Value = res.json().await.unwrap();
    assert_eq!(stats["invariant_ok"], true);
    assert_eq!(stats["total_stock"], 7);
    let list: Value = w.api.http.get(w.api.url("/api/activities")).send().await.unwrap().json().await.unwrap();
    assert!(list.as_array().unwrap().iter().any(|x| x["id"] == a));
}

#[tokio::test]
async fn blacklist_lists_are_pages() {
    let w = world().await;
    let admin = w.api.admin_token().await;
    let users: Vec<String> = (0..7).map(|i| format!("bot-{i}")).collect();
    for u in &users {
        let res = w
            .api
            .http
            .put(w.api.url(&format!("/admin/api/blacklist/users/{u}")))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut cursor: Option<String> = None;
    for _ in 0..20 {
        let mut url = w.api.url("/admin/api/blacklist/users?limit=3");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = w.api.http.get(url).bearer_auth(&admin).send().await.unwrap().json().await.unwrap();
        for item in page["items"].as_array().unwrap() {
            seen.insert(item["value"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), users);
    for bad in ["limit=0", "limit=501", "cursor=xyz"] {
        let res = w
            .api
            .http
            .get(w.api.url(&format!("/admin/api/blacklist/users?{bad}")))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{bad}");
    }
    let res = w.api.http.get(w.api.url("/admin/api/blacklist/users/nobody")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(res.status(), 404);
    let res = w.api.http.put(w.api.url("/admin/api/blacklist/ips/not-an-ip")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn a_price_patched_out_of_bounds_is_refused_and_changes_nothing() {
    let w = world().await;
    let admin = w.api.admin_token().await;
    let a = w.api.create_activity(ActivitySpec::live(5, 1)).await;
    let path = w.api.url(&format!("/admin/api/activities/{a}"));
    for price in [json!(1_000_000_001), json!(-1), json!("12")] {
        let res =
            w.api.http.patch(&path).bearer_auth(&admin).json(&json!({"price_cents": price})).send().await.unwrap();
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap();
        assert_eq!((status, code(&body)), (400, "bad_request"), "{price}: {body}");
        assert!(body["message"].as_str().unwrap().contains("price_cents"), "{body}");
    }
    let (_, activity) = w.api.get(&format!("/admin/api/activities/{a}"), &admin).await;
    assert_eq!(activity["price_cents"], 1999);
}

/// Deletes and purchases of one activity at the same moment: either the
/// delete wins and nobody bought, or a purchase won and the activity stays,
/// with every accepted order and the invariant intact. Never an accepted
/// order whose activity, stock or stream was deleted under it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_an_activity_never_races_a_purchase() {
    let w = world_with(&["--role", "api"]).await;
    let admin = w.api.admin_token().await;
    for round in 0..12 {
        const BUYERS: usize = 24;
        let a = w.api.create_activity(ActivitySpec::live(100, 1)).await;
        let mut tokens = Vec::new();
        for i in 0..BUYERS {
            let user = format!("r{round}-{i}");
            let (status, body) = w.api.token_retrying(a, &user).await;
            assert_eq!(status, 200, "{body}");
            tokens.push((user, body["token"].as_str().unwrap().to_owned()));
        }
        let purchases = tokens.iter().map(|(user, token)| w.api.purchase_retrying(a, user, token, json!(1)));
        let delete = async {
            let res = w.api.http.delete(w.api.url(&format!("/admin/api/activities/{a}"))).bearer_auth(&admin).send();
            let res = res.await.unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap_or(Value::Null))
        };
        // Half the rounds send the delete first, half after the purchases.
        let (answers, (status, body)) = if round % 2 == 0 {
            let (d, p) = tokio::join!(delete, futures::future::join_all(purchases));
            (p, d)
        } else {
            tokio::join!(futures::future::join_all(purchases), delete)
        };
        let accepted = answers.iter().filter(|(s, _)| *s == 202).count() as i64;
        let mut c = w.redis.conn().await;
        match status {
            204 => {
                assert_eq!(accepted, 0, "round {round}: the activity was deleted after {accepted} sales");
                for (s, b) in &answers {
                    assert_eq!((*s, code(b)), (404, "not_found"), "round {round}: {b}");
                }
                let (status, _) = w.api.get(&format!("/admin/api/activities/{a}"), &admin).await;
                assert_eq!(status, 404);
                let len: i64 = redis::cmd("XLEN").arg(keys::order_stream(a)).query_async(&mut c).await.unwrap();
                assert_eq!(len, 0);
            }
            400 => {
                assert!(accepted > 0, "round {round}: refused without a sale: {body}");
                assert!(body["message"].as_str().unwrap().contains("sold"), "{body}");
                assert_eq!(get_int(&mut c, &keys::sold(a)).await, accepted, "round {round}");
                assert_eq!(get_int(&mut c, &keys::inventory(a)).await + accepted, 100, "round {round}");
                let len: i64 = redis::cmd("XLEN").arg(keys::order_stream(a)).query_async(&mut c).await.unwrap();
                assert_eq!(len, accepted, "round {round}: one event per accepted order");
            }
            other => panic!("round {round}: delete answered {other} {body}"),
        }
    }
}
