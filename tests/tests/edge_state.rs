//! The backend's side of the edge: the secret-guarded state the edge syncs
//! (versioned, `304` while unchanged) and the edge rules, versioned in the
//! order database so they survive restarts.

use seckill_tests::{ActivitySpec, Backend, EDGE_SECRET, RedisServer, TempDir};
use serde_json::{Value, json};

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
    let (_, _, edge_view) = state(&api, Some(EDGE_SECRET), None).await;
    assert_eq!(edge_view["rules_version"], 3);
    assert_eq!(edge_view["rules"]["per_ip"]["burst"], 7);
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
