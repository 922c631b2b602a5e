//! The backend's side of the edge: the secret-guarded state the edge syncs
//! (versioned, `304` while unchanged), when each blacklist entry reached the
//! edge (when an edge confirmed it applied a state holding it), and the edge rules, versioned in the order database so they survive
//! restarts.

use std::time::Duration;

use seckill_tests::{ActivitySpec, Backend, EDGE_SECRET, RedisServer, TempDir, eventually};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

async fn state(api: &Backend, secret: Option<&str>, etag: Option<&str>) -> (u16, Option<String>, Value) {
    let mut req = api.http.get(api.url("/internal/edge/state")).header("x-seckill-edge-id", "edge-test");
    if let Some(s) = secret {
        req = req.header("x-seckill-edge-secret", s);
    }
    if let Some(e) = etag {
        req = req.header("if-none-match", e);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let etag = res.headers().get("etag").map(|v| v.to_str().unwrap().to_owned());
    (status, etag, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_state_needs_the_edge_secret_and_is_versioned() {
    let redis = RedisServer::start().unwrap();
    let api = Backend::start(&redis.url()).await.unwrap();
    for secret in [None, Some("wrong"), Some("")] {
        let (status, _, body) = state(&api, secret, None).await;
        assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")), "{secret:?}");
    }
    let live = api.create_activity(ActivitySpec::live(1, 1)).await;
    let mut later = ActivitySpec::live(5, 1);
    later.starts_in = time::Duration::hours(1);
    let scheduled = api.create_activity(later).await;
    let mut past = ActivitySpec::live(5, 1);
    past.starts_in = time::Duration::hours(-3);
    let ended = api.create_activity(past).await;

    let (status, etag, body) = state(&api, Some(EDGE_SECRET), None).await;
    assert_eq!(status, 200);
    let etag = etag.expect("the state carries an etag");
    assert_eq!(etag, format!("\"{}\"", body["version"].as_str().unwrap()));
    assert_eq!(body["sold_out"], json!([]));
    assert_eq!(body["not_started"], json!([scheduled]));
    assert_eq!(body["ended"], json!([ended]));
    assert_eq!(body["rules_version"], 0);
    assert_eq!(body["rules"]["per_ip"], json!({"rate_per_sec": 10.0, "burst": 20}));

    // Unchanged: 304 without a body.
    let (status, _, _) = state(&api, Some(EDGE_SECRET), Some(&etag)).await;
    assert_eq!(status, 304);

    // A sale that sells out and a blacklist entry change it.
    api.buy(live, "zoe", 1).await;
    let admin = api.admin_token().await;
    let put = api.http.put(api.url("/admin/api/blacklist/ips/10.0.0.0%2F8")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(put.status(), 200);
    let (status, new_etag, body) = state(&api, Some(EDGE_SECRET), Some(&etag)).await;
    assert_eq!(status, 200);
    assert_ne!(new_etag.unwrap(), etag);
    assert_eq!(body["sold_out"], json!([live]));
    assert_eq!(body["blacklist_ips"], json!(["10.0.0.0/8"]));

    let status: Value =
        api.http.get(api.url("/admin/api/edge-status")).bearer_auth(&admin).send().await.unwrap().json().await.unwrap();
    assert_eq!(status[0]["edge_id"], "edge-test");
}

/// The edge's status says what it runs, never merely what it was sent: an
/// operator (or a test) who saved rules and sees them on the edge can rely
/// on the edge applying them.
#[tokio::test]
async fn the_edge_status_names_the_state_the_edge_holds() {
    let redis = RedisServer::start().unwrap();
    let api = Backend::start(&redis.url()).await.unwrap();
    let admin = api.admin_token().await;
    let edge_status = || async {
        let (_, all) = api.get("/admin/api/edge-status", &admin).await;
        all.as_array().unwrap().iter().find(|s| s["edge_id"] == "edge-test").cloned()
    };

    // Served, never named: the edge holds nothing the backend knows of.
    let (_, v0, _) = state(&api, Some(EDGE_SECRET), None).await;
    let v0 = v0.unwrap();
    assert_eq!(edge_status().await, None);
    // The edge names it in its next sync: it runs rules v0.
    assert_eq!(state(&api, Some(EDGE_SECRET), Some(&v0)).await.0, 304);
    let held = edge_status().await.expect("the edge holds v0");
    assert_eq!((held["version"].as_str(), held["rules_version"].as_i64()), (Some(v0.trim_matches('"')), Some(0)));

    // New rules are saved and served; the edge still names v0, so it runs v0.
    let (_, rules) = api.get("/admin/api/edge-rules", &admin).await;
    let mut rules = rules["rules"].clone();
    rules["per_ip"]["burst"] = json!(5);
    let res = api.http.put(api.url("/admin/api/edge-rules")).bearer_auth(&admin).json(&rules).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let (status, v1, body) = state(&api, Some(EDGE_SECRET), Some(&v0)).await;
    assert_eq!((status, body["rules_version"].as_i64()), (200, Some(1)));
    assert_eq!(edge_status().await.unwrap()["rules_version"], 0, "served v1, still running v0");
    let (_, current) = api.get("/admin/api/edge-rules", &admin).await;
    assert_eq!(current["edge_synced_at"], Value::Null, "{current}");

    // It names the new state: now it runs rules v1.
    let v1 = v1.unwrap();
    assert_eq!(state(&api, Some(EDGE_SECRET), Some(&v1)).await.0, 304);
    let held = edge_status().await.unwrap();
    assert_eq!((held["version"].as_str(), held["rules_version"].as_i64()), (Some(v1.trim_matches('"')), Some(1)));
    let (_, current) = api.get("/admin/api/edge-rules", &admin).await;
    assert!(current["edge_synced_at"].is_string(), "{current}");

    // A version the backend never served names nothing it can vouch for.
    state(&api, Some(EDGE_SECRET), Some("\"forged\"")).await;
    assert_eq!(edge_status().await.unwrap()["version"].as_str(), Some(v1.trim_matches('"')));
}

#[tokio::test]
async fn edge_rules_are_versioned_validated_and_survive_a_restart() {
    let redis = RedisServer::start().unwrap();
    let dir = TempDir::new("edge-rules");
    let db_url = format!("sqlite://{}/orders.db", dir.0.display());
    let api = Backend::start_on_db(&redis.url(), &db_url, None, &[]).await.unwrap();
    let admin = api.admin_token().await;
    let current: Value =
        api.http.get(api.url("/admin/api/edge-rules")).bearer_auth(&admin).send().await.unwrap().json().await.unwrap();
    assert_eq!(current["version"], 0, "defaults before anyone saved: {current}");

    let mut rules = current["rules"].clone();
    rules["per_ip"]["burst"] = json!(0);
    rules["per_ip"]["rate_per_sec"] = json!(-1.0);
    let res = api.http.put(api.url("/admin/api/edge-rules")).bearer_auth(&admin).json(&rules).send().await.unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().starts_with("per_ip.rate_per_sec"), "{body}");
    let res = api
        .http
        .put(api.url("/admin/api/edge-rules"))
        .bearer_auth(&admin)
        .json(&json!({"per_ip": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);

    for burst in [5, 6, 7] {
        rules["per_ip"] = json!({"rate_per_sec": 2.0, "burst": burst});
        let res = api.http.put(api.url("/admin/api/edge-rules")).bearer_auth(&admin).json(&rules).send().await.unwrap();
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    }
    let (_, etag, edge_view) = state(&api, Some(EDGE_SECRET), None).await;
    assert_eq!(edge_view["rules_version"], 3);
    assert_eq!(edge_view["rules"]["per_ip"]["burst"], 7);
    // Served is not running: the rules count as picked up once the edge
    // names the state it holds, in its next sync.
    let current: Value =
        api.http.get(api.url("/admin/api/edge-rules")).bearer_auth(&admin).send().await.unwrap().json().await.unwrap();
    assert_eq!(current["edge_synced_at"], Value::Null, "only served so far: {current}");
    assert_eq!(state(&api, Some(EDGE_SECRET), etag.as_deref()).await.0, 304);
    drop(api);

    // A restart on the same database keeps every version.
    let api = Backend::start_on_db(&redis.url(), &db_url, None, &[]).await.unwrap();
    let admin = api.admin_token().await;
    let current: Value =
        api.http.get(api.url("/admin/api/edge-rules")).bearer_auth(&admin).send().await.unwrap().json().await.unwrap();
    assert_eq!((current["version"].as_i64(), current["rules"]["per_ip"]["burst"].as_i64()), (Some(3), Some(7)));
    assert!(current["edge_synced_at"].is_string(), "the edge picked version 3 up: {current}");
    let page: Value = api
        .http
        .get(api.url("/admin/api/edge-rules/history?limit=2"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let versions: Vec<i64> = page["items"].as_array().unwrap().iter().map(|v| v["version"].as_i64().unwrap()).collect();
    assert_eq!(versions, vec![3, 2]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest: Value = api
        .http
        .get(api.url(&format!("/admin/api/edge-rules/history?limit=2&cursor={cursor}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rest["items"][0]["version"], 1);
    assert_eq!(rest["next_cursor"], Value::Null);
}

/// `(status, body)` of an admin call.
async fn admin_call(api: &Backend, admin: &str, method: &str, path: &str) -> (u16, Value) {
    let res = api.http.request(method.parse().unwrap(), api.url(path)).bearer_auth(admin).send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

/// The listed entries of a blacklist as `value → reached_edge_at`.
async fn listed(api: &Backend, admin: &str, list: &str) -> Vec<(String, Value)> {
    let (status, page) = admin_call(api, admin, "GET", &format!("/admin/api/blacklist/{list}?limit=500")).await;
    assert_eq!(status, 200, "{page}");
    let items = page["items"].as_array().unwrap();
    items.iter().map(|e| (e["value"].as_str().unwrap().to_owned(), e["reached_edge_at"].clone())).collect()
}

/// Polls the single-entry route until the entry has reached the edge; returns when.
async fn reached(api: &Backend, admin: &str, path: &str) -> OffsetDateTime {
    eventually(Duration::from_secs(10), &format!("{path} to have reached the edge"), || async {
        let (status, entry) = admin_call(api, admin, "GET", path).await;
        assert_eq!(status, 200, "{entry}");
        entry["reached_edge_at"].as_str().map(|t| OffsetDateTime::parse(t, &Rfc3339).unwrap())
    })
    .await
}

#[tokio::test]
async fn blacklist_entries_say_when_they_reached_the_edge() {
    let redis = RedisServer::start().unwrap();
    let api = Backend::start(&redis.url()).await.unwrap();
    let admin = api.admin_token().await;
    let (user, ip) = ("/admin/api/blacklist/users/slow-cheat", "/admin/api/blacklist/ips/10.0.0.0%2F8");

    let (status, added) = admin_call(&api, &admin, "PUT", user).await;
    assert_eq!(status, 200, "{added}");
    assert_eq!(added, json!({"value": "slow-cheat", "reached_edge_at": null}), "no edge has synced yet");
    assert_eq!(listed(&api, &admin, "users").await, [("slow-cheat".to_owned(), Value::Null)]);
    assert_eq!(admin_call(&api, &admin, "GET", user).await.1["reached_edge_at"], Value::Null);

    // An edge syncs: the state it is served holds the entry, but being sent
    // a state is not applying it (the edge may fail to store it).
    let (status, etag, body) = state(&api, Some(EDGE_SECRET), None).await;
    assert_eq!((status, body["blacklist_users"].clone()), (200, json!(["slow-cheat"])));
    assert_eq!(admin_call(&api, &admin, "GET", user).await.1["reached_edge_at"], Value::Null, "not confirmed yet");
    // Its next sync names that version as the one it holds: now it has reached the edge.
    let before_sync = OffsetDateTime::now_utc();
    let (status, _, _) = state(&api, Some(EDGE_SECRET), etag.as_deref()).await;
    assert_eq!(status, 304);
    let user_reached = reached(&api, &admin, user).await;
    let after_sync = OffsetDateTime::now_utc();
    assert!(
        before_sync - Duration::from_millis(1) <= user_reached && user_reached <= after_sync,
        "{user_reached} is not the sync's time ({before_sync}..{after_sync})"
    );
    let user_listed = listed(&api, &admin, "users").await;
    assert_eq!(user_listed[0].1.as_str().map(|t| OffsetDateTime::parse(t, &Rfc3339).unwrap()), Some(user_reached));

    // A later entry waits for the next sync; the first keeps its time, and
    // adding it again (it is still listed) changes nothing.
    let (status, added) = admin_call(&api, &admin, "PUT", ip).await;
    assert_eq!(
        (status, added["value"].as_str(), added["reached_edge_at"].clone()),
        (200, Some("10.0.0.0/8"), Value::Null)
    );
    let (_, again) = admin_call(&api, &admin, "PUT", user).await;
    assert_eq!(OffsetDateTime::parse(again["reached_edge_at"].as_str().unwrap(), &Rfc3339).unwrap(), user_reached);
    let (status, new_etag, _) = state(&api, Some(EDGE_SECRET), etag.as_deref()).await;
    assert_eq!(status, 200, "the state changed");
    assert_eq!(admin_call(&api, &admin, "GET", ip).await.1["reached_edge_at"], Value::Null, "sent, not applied");
    // An edge that still holds the old version (it could not store the new
    // one) confirms nothing new.
    let (status, _, _) = state(&api, Some(EDGE_SECRET), etag.as_deref()).await;
    assert_eq!(status, 200);
    assert_eq!(admin_call(&api, &admin, "GET", ip).await.1["reached_edge_at"], Value::Null, "still not applied");
    let (status, _, _) = state(&api, Some(EDGE_SECRET), new_etag.as_deref()).await;
    assert_eq!(status, 304);
    let ip_reached = reached(&api, &admin, ip).await;
    assert!(ip_reached >= user_reached);
    assert_eq!(reached(&api, &admin, user).await, user_reached);

    // Removed entries are not listed; added again, an entry waits for the edge again.
    assert_eq!(admin_call(&api, &admin, "DELETE", user).await.0, 204);
    assert_eq!(listed(&api, &admin, "users").await, []);
    assert_eq!(admin_call(&api, &admin, "GET", user).await.0, 404);
    let (_, added) = admin_call(&api, &admin, "PUT", user).await;
    assert_eq!(added["reached_edge_at"], Value::Null, "a new life of the entry: {added}");
    drop(api);

    // The times are kept in Redis: a restarted backend still knows them.
    let api = Backend::start(&redis.url()).await.unwrap();
    let admin = api.admin_token().await;
    assert_eq!(reached(&api, &admin, ip).await, ip_reached);
    assert_eq!(admin_call(&api, &admin, "GET", user).await.1["reached_edge_at"], Value::Null);
    let (status, etag, _) = state(&api, Some(EDGE_SECRET), None).await;
    assert_eq!(status, 200);
    assert_eq!(admin_call(&api, &admin, "GET", user).await.1["reached_edge_at"], Value::Null);
    let (status, _, _) = state(&api, Some(EDGE_SECRET), etag.as_deref()).await;
    assert_eq!(status, 304);
    assert!(reached(&api, &admin, user).await > ip_reached);
}
