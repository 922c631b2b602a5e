//! End to end through the edge: buyers → the local edge proxy running the
//! real filter `.wasm` (with `envoy/filter-config.json`) → a real backend →
//! Redis. The rules, the blacklist and the sold-out list reach the edge
//! through its state sync, with no restart.

use std::time::Duration;

use seckill_edge_host::proxy::EdgeProxy;
use seckill_tests::{ActivitySpec, Backend, RedisServer, eventually, jwt};
use serde_json::{Value, json};

/// Sync period of the edge in this test.
const SYNC_MS: u64 = 200;

fn start_edge(backend: &Backend) -> EdgeProxy {
    seckill_tests::start_edge(backend.addr, "e2e-edge", SYNC_MS)
}

async fn edge_rules_version(api: &Backend, admin: &str) -> Option<i64> {
    let (_, status) = api.get("/admin/api/edge-status", admin).await;
    status.as_array()?.iter().find(|s| s["edge_id"] == "e2e-edge")?["rules_version"].as_i64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buyers_through_the_edge_and_state_that_reaches_it_without_restart() {
    let redis = RedisServer::start().unwrap();
    let api = Backend::start_with(&redis.url(), &["--trusted-proxies", "127.0.0.1/32"]).await.unwrap();
    let admin = api.admin_token().await;
    let edge = start_edge(&api);
    let http = reqwest::Client::new();
    let at_edge = |path: &str| format!("http://{}{path}", edge.listen_addr());

    // The edge syncs and reports itself.
    eventually(Duration::from_secs(10), "the edge's first sync", || async {
        edge_rules_version(&api, &admin).await.filter(|v| *v == 0)
    })
    .await;

    // The seed's limit: burst 20 → 21 instant reads pass, the 22nd is refused.
    let mut statuses = Vec::new();
    for _ in 0..22 {
        statuses.push(http.get(at_edge("/api/activities")).send().await.unwrap());
    }
    let codes: Vec<u16> = statuses.iter().map(|r| r.status().as_u16()).collect();
    assert!(codes[..21].iter().all(|c| *c == 200), "{codes:?}");
    assert_eq!(codes[21], 429, "{codes:?}");
    let refused = statuses.pop().unwrap();
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited");

    // New rules through the admin API reach the edge within a sync period, no restart.
    let (_, current) = api.get("/admin/api/edge-rules", &admin).await;
    let mut rules = current["rules"].clone();
    rules["per_ip"] = json!({"rate_per_sec": 10000.0, "burst": 10000});
    rules["per_user"] = json!({"rate_per_sec": 10000.0, "burst": 10000});
    for route in rules["routes"].as_array_mut().unwrap() {
        route["per_ip"] = json!({"rate_per_sec": 10000.0, "burst": 10000});
        route["per_user"] = json!({"rate_per_sec": 10000.0, "burst": 10000});
    }
    rules["max_in_flight_per_ip"] = json!(1000);
    let res = api.http.put(api.url("/admin/api/edge-rules")).bearer_auth(&admin).json(&rules).send().await.unwrap();
    assert_eq!(res.status(), 200);
    eventually(Duration::from_secs(10), "the edge to pick up rules v1", || async {
        edge_rules_version(&api, &admin).await.filter(|v| *v == 1)
    })
    .await;
    for _ in 0..50 {
        assert_eq!(http.get(at_edge("/api/activities")).send().await.unwrap().status(), 200);
    }

    // Buyers through the edge: token and purchase, end to end.
    let a = api.create_activity(ActivitySpec::live(20, 1)).await;
    for i in 0..20 {
        let user = format!("edge-buyer-{i}");
        let res =
            http.post(at_edge(&format!("/api/activities/{a}/token"))).bearer_auth(jwt(&user)).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let token: Value = res.json().await.unwrap();
        let res = http
            .post(at_edge(&format!("/api/activities/{a}/purchase")))
            .bearer_auth(jwt(&user))
            .json(&json!({"token": token["token"], "quantity": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
    }

    // Sold out: once the edge knows, the backend no longer sees token requests.
    let sold_out_at_backend = || async {
        let text = api.http.get(api.url("/metrics")).send().await.unwrap().text().await.unwrap();
        text.lines()
            .find(|l| l.starts_with("seckill_tokens_total{result=\"sold_out\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    eventually(Duration::from_secs(10), "the edge to answer sold_out by itself", || async {
        let before = sold_out_at_backend().await;
        let res = http
            .post(at_edge(&format!("/api/activities/{a}/token")))
            .bearer_auth(jwt("late-buyer"))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap();
        assert_eq!((status, body["code"].as_str()), (409, Some("sold_out")));
        (sold_out_at_backend().await == before).then_some(())
    })
    .await;

    // A blacklist entry added through the admin API reaches the edge.
    let put = api.http.put(api.url("/admin/api/blacklist/users/edge-cheat")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(put.status(), 200);
    eventually(Duration::from_secs(10), "the blacklist entry at the edge", || async {
        let res = http.get(at_edge("/api/me/orders")).bearer_auth(jwt("edge-cheat")).send().await.unwrap();
        (res.status() == 403).then_some(())
    })
    .await;
    // A forged JWT is refused at the edge; the side door is closed.
    let forged = seckill_api::buyer_jwt::mint("not-the-secret", "edge-buyer-1", 4_000_000_000);
    let res = http.get(at_edge("/api/me/orders")).bearer_auth(forged).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let res = http.get(at_edge("/internal/edge/state")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    edge.shutdown();
}
