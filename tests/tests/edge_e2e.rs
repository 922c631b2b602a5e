//! The edge's behaviour end to end, the same test bodies on both hosts that
//! run the filter: a real Envoy (`envoy/envoy.yaml`, two worker threads)
//! and `seckill-edge`, our wasmtime proxy. Buyers → the edge running the
//! real filter `.wasm` → a real backend → Redis. The rules, the blacklist
//! and the sold-out list reach the edge through its state sync, with no
//! restart. Distinct clients are distinct loopback source addresses.
//!
//! Why one file of ~500 lines: it is the edge's whole behaviour suite, each
//! body written once and run on both hosts by `on_both_hosts!`.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use seckill_tests::edge::{EdgeHost, RunningEdge, answered_by_the_filter, client_from, loopback};
use seckill_tests::{ActivitySpec, Backend, BackendProcess, RedisServer, TempDir, eventually, filter_config, jwt};
use serde_json::{Value, json};

/// Sync period of the edge in these tests.
const SYNC_MS: u64 = 200;
const EDGE_ID: &str = "suite-edge";

/// Runs each named `async fn(EdgeHost)` as one test per host.
macro_rules! on_both_hosts {
    ($($name:ident),* $(,)?) => {
        mod envoy {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(seckill_tests::edge::EdgeHost::Envoy).await
                }
            )*
        }
        mod seckill_edge {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(seckill_tests::edge::EdgeHost::SeckillEdge).await
                }
            )*
        }
    };
}

on_both_hosts!(
    per_ip_limit_is_nginx_burst_and_says_when_to_retry,
    a_burst_split_over_both_workers_is_limited_as_one,
    per_user_limit_holds_across_addresses,
    in_flight_limit_per_address_while_the_backend_is_stuck,
    jwts_are_checked_at_the_edge_and_the_side_door_is_closed,
    blacklisted_users_addresses_and_ranges_are_refused_once_synced,
    sold_out_not_started_and_ended_are_answered_by_the_edge,
    forwarded_for_is_believed_only_from_trusted_proxies,
    rule_changes_from_the_dashboard_take_effect_and_buyers_buy,
    a_vm_that_fails_answers_503_and_the_next_request_gets_a_new_one,
    admin_assets_are_cached_for_a_year_through_the_edge,
    degraded_mode_from_the_dashboard_sheds_all_but_buying,
);

/// edge-host's fixture modules: `mini_filter` answers `x-deny` itself and
/// traps on `x-crash`, whichever host runs it.
#[path = "../../edge-host/tests/common/mod.rs"]
#[allow(unused_imports)]
mod fixtures;

/// A backend (in-process) and the edge in front of it, synced once.
struct World {
    _redis: RedisServer,
    api: Backend,
    admin: String,
    edge: RunningEdge,
}

impl World {
    async fn start(host: EdgeHost) -> Self {
        Self::start_with(host, |_| {}).await
    }

    /// `adjust` changes the filter configuration before the edge starts.
    async fn start_with(host: EdgeHost, adjust: impl FnOnce(&mut Value)) -> Self {
        let redis = RedisServer::start().unwrap();
        // The edge connects from 127.0.0.1 and appends the client to x-forwarded-for.
        let api = Backend::start_with(&redis.url(), &["--trusted-proxies", "127.0.0.1/32"]).await.unwrap();
        let admin = api.admin_token().await;
        let mut config: Value = serde_json::from_slice(&filter_config(api.addr, EDGE_ID, SYNC_MS)).unwrap();
        adjust(&mut config);
        let edge = RunningEdge::start(host, &[api.addr], serde_json::to_vec(&config).unwrap());
        let world = Self { _redis: redis, api, admin, edge };
        world.wait_for_rules(0).await;
        world
    }

    /// Waits until the edge reports running rules `version`.
    async fn wait_for_rules(&self, version: i64) {
        eventually(Duration::from_secs(15), &format!("the edge on rules v{version}"), || async {
            let (_, status) = self.api.get("/admin/api/edge-status", &self.admin).await;
            let running = status.as_array()?.iter().find(|s| s["edge_id"] == EDGE_ID)?["rules_version"].as_i64();
            (running == Some(version)).then_some(())
        })
        .await;
    }

    /// Saves `rules` through the admin API and waits until the edge runs them.
    async fn save_rules(&self, rules: &Value) {
        let res =
            self.api.http.put(self.api.url("/admin/api/edge-rules")).bearer_auth(&self.admin).json(rules).send().await;
        let res = res.unwrap();
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
        let saved: Value = res.json().await.unwrap();
        self.wait_for_rules(saved["version"].as_i64().unwrap()).await;
    }

    async fn rules(&self) -> Value {
        self.api.get("/admin/api/edge-rules", &self.admin).await.1["rules"].clone()
    }
}

/// Limits so high that only the limit under test can refuse.
fn generous(rules: &mut Value) {
    let open = json!({"rate_per_sec": 100000.0, "burst": 100000});
    rules["per_ip"] = open.clone();
    rules["per_user"] = open.clone();
    for route in rules["routes"].as_array_mut().unwrap() {
        route["per_ip"] = open.clone();
        route["per_user"] = open.clone();
    }
    rules["max_in_flight_per_ip"] = json!(1000);
}

/// An answer the filter gave by itself.
fn from_the_edge(res: &reqwest::Response) -> bool {
    answered_by_the_filter(res.headers())
}

/// Sends `send()` until the edge refuses; how many passed, and the refusal.
async fn until_refused<F, Fut>(mut send: F, at_most: usize) -> (usize, reqwest::Response, Duration)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = reqwest::Response>,
{
    let start = Instant::now();
    for passed in 0..at_most {
        let res = send().await;
        if res.status() == 429 {
            return (passed, res, start.elapsed());
        }
        assert!(res.status().is_success(), "request {passed}: {}", res.status());
    }
    panic!("{at_most} requests passed without a 429");
}

/// `burst + 1` pass at once (nginx `limit_req … nodelay`), plus what the rate
/// refilled while they were sent.
fn assert_burst(passed: usize, burst: usize, rate_per_sec: f64, took: Duration) {
    let refilled = (took.as_secs_f64() * rate_per_sec).ceil() as usize;
    assert!(
        (burst + 1..=burst + 1 + refilled).contains(&passed),
        "{passed} passed; burst {burst} + 1, plus {refilled} refilled in {took:?}"
    );
}

async fn per_ip_limit_is_nginx_burst_and_says_when_to_retry(host: EdgeHost) {
    let w = World::start(host).await;
    let (a, b) = (client_from(loopback(1)), client_from(loopback(2)));
    let url = w.edge.url("/api/activities");
    let (passed, refused, took) = until_refused(|| a.get(&url).send().map(Result::unwrap), 200).await;
    assert_burst(passed, 20, 10.0, took);
    assert!(from_the_edge(&refused));
    let header = |name: &str| refused.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(header("retry-after").as_deref(), Some("1"));
    assert_eq!(header("x-ratelimit-limit").as_deref(), Some("21"));
    assert_eq!(header("x-ratelimit-remaining").as_deref(), Some("0"));
    assert!(header("x-ratelimit-reset").is_some());
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited");
    // Another address has a bucket of its own.
    assert_eq!(b.get(&url).send().await.unwrap().status(), 200);
}

async fn a_burst_split_over_both_workers_is_limited_as_one(host: EdgeHost) {
    let w = World::start(host).await;
    // Only the per-address rate may refuse: no cap on requests in flight.
    let mut rules = w.rules().await;
    rules["max_in_flight_per_ip"] = json!(1000);
    w.save_rules(&rules).await;
    let url = w.edge.url("/api/activities");
    // 60 requests at once, each on a connection of its own, so both workers take some.
    let start = Instant::now();
    let sends = (0..60).map(|_| {
        let url = url.clone();
        async move {
            let client = reqwest::Client::builder().local_address(loopback(7)).pool_max_idle_per_host(0).build();
            client.unwrap().get(&url).send().await.unwrap().status().as_u16()
        }
    });
    let statuses = futures::future::join_all(sends).await;
    let took = start.elapsed();
    let passed = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(passed + statuses.iter().filter(|s| **s == 429).count(), 60, "{statuses:?}");
    assert_burst(passed, 20, 10.0, took);
    if let RunningEdge::Envoy(envoy) = &w.edge {
        // Proof that both worker threads served part of the burst.
        let stats = envoy.admin_get("/stats?filter=worker_.\\.downstream_cx_total").unwrap();
        let per_worker: Vec<u64> = stats.lines().filter_map(|l| l.rsplit(": ").next()?.parse().ok()).collect();
        assert!(per_worker.len() == 2 && per_worker.iter().all(|n| *n > 0), "connections per worker: {stats}");
    }
    if let RunningEdge::SeckillEdge(edge) = &w.edge {
        // Each worker accepts on its own socket (SO_REUSEPORT): the kernel gave both some.
        let text = edge.plugin().render_metrics();
        let per_worker: Vec<u64> = text
            .lines()
            .filter(|l| l.starts_with("seckill_edge_connections_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .collect();
        assert!(per_worker.len() == 2 && per_worker.iter().all(|n| *n > 0), "connections per worker: {text}");
    }
}

async fn per_user_limit_holds_across_addresses(host: EdgeHost) {
    let w = World::start(host).await;
    let a = w.api.create_activity(ActivitySpec::live(100, 1)).await;
    let url = w.edge.url(&format!("/api/activities/{a}/token"));
    // The token route allows a user 2/s with a burst of 5, from wherever it comes.
    let mut n = 0u8;
    let (passed, refused, took) = until_refused(
        || {
            n += 1;
            client_from(loopback(n)).post(&url).bearer_auth(jwt("roaming-buyer")).send().map(Result::unwrap)
        },
        60,
    )
    .await;
    assert_burst(passed, 5, 2.0, took);
    assert!(from_the_edge(&refused));
    // Another user from the same addresses is not limited by it.
    let res = client_from(loopback(1)).post(&url).bearer_auth(jwt("other-buyer")).send().await.unwrap();
    assert_eq!(res.status(), 200);
}

async fn in_flight_limit_per_address_while_the_backend_is_stuck(host: EdgeHost) {
    let redis = RedisServer::start().unwrap();
    let dir = seckill_tests::TempDir::new("inflight");
    let db = format!("sqlite://{}/orders.db", dir.0.display());
    let backend = BackendProcess::start(&redis.url(), &db, &["--trusted-proxies", "127.0.0.1/32"]).await.unwrap();
    let edge = RunningEdge::start(host, &[backend.addr], filter_config(backend.addr, EDGE_ID, SYNC_MS));
    let url = edge.url("/api/activities");
    let a = client_from(loopback(1));
    eventually(Duration::from_secs(15), "the edge serving", || async {
        a.get(&url).send().await.ok().filter(|r| r.status() == 200).map(drop)
    })
    .await;

    backend.pause();
    // Fifteen requests at once from one address: ten hang at the stuck backend,
    // and the other five are refused at once, whatever the rate would allow.
    let sent: Vec<_> = (0..15).map(|_| tokio::spawn(a.get(&url).send())).collect();
    let mut pending = sent;
    let mut refused = Vec::new();
    eventually(Duration::from_secs(15), "five requests refused", || {
        let (done, still): (Vec<_>, Vec<_>) = std::mem::take(&mut pending).into_iter().partition(|t| t.is_finished());
        pending = still;
        refused.extend(done);
        std::future::ready((refused.len() >= 5).then_some(()))
    })
    .await;
    assert_eq!((refused.len(), pending.len()), (5, 10), "ten in flight, five refused");
    for request in refused {
        let res = request.await.unwrap().unwrap();
        assert_eq!(res.status(), 429);
        assert!(from_the_edge(&res));
        let body: Value = res.json().await.unwrap();
        assert!(body["message"].as_str().unwrap().contains("in flight"), "{body}");
    }
    backend.resume();
    for request in pending {
        let status = request.await.unwrap().unwrap().status();
        assert_eq!(status, 200, "a held request, once the backend is back");
    }
}

async fn jwts_are_checked_at_the_edge_and_the_side_door_is_closed(host: EdgeHost) {
    let w = World::start(host).await;
    let http = client_from(loopback(1));
    let forged = seckill_api::buyer_jwt::mint("not-the-secret", "edge-buyer", 4_000_000_000);
    let expired = seckill_api::buyer_jwt::mint(seckill_tests::JWT_SECRET, "edge-buyer", 1_000_000_000);
    for (what, token) in [("forged", forged.as_str()), ("expired", expired.as_str()), ("garbage", "x.y.z")] {
        let res = http.get(w.edge.url("/api/me/orders")).bearer_auth(token).send().await.unwrap();
        assert_eq!(res.status(), 401, "{what}");
        assert!(from_the_edge(&res), "{what} went past the edge");
    }
    let res = http.get(w.edge.url("/api/me/orders")).bearer_auth(jwt("edge-buyer")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    // The side door stays closed even to a caller presenting the edge's secret.
    let res = http
        .get(w.edge.url("/internal/edge/state"))
        .header("x-seckill-edge-secret", seckill_tests::EDGE_SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    // The backends' metrics are scraped from inside, never read through the
    // public edge, however the path is spelled.
    for path in ["/metrics", "/metrics/", "/Metrics/../metrics", "/%6detrics", "/metrics?format=prometheus"] {
        let res = http.get(w.edge.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 404, "{path}");
        assert!(from_the_edge(&res), "{path} reached the backend");
    }
    assert_eq!(
        w.api.http.get(w.api.url("/metrics")).send().await.unwrap().status(),
        200,
        "the backend still serves them"
    );
}

async fn blacklisted_users_addresses_and_ranges_are_refused_once_synced(host: EdgeHost) {
    let w = World::start(host).await;
    let mut rules = w.rules().await;
    generous(&mut rules);
    w.save_rules(&rules).await;
    let put = |path: &str| w.api.http.put(w.api.url(path)).bearer_auth(&w.admin).send();
    assert_eq!(put("/admin/api/blacklist/users/edge-cheat").await.unwrap().status(), 200);
    assert_eq!(put(&format!("/admin/api/blacklist/ips/{}", loopback(3))).await.unwrap().status(), 200);
    assert_eq!(put("/admin/api/blacklist/ips/127.0.2.0%2F24").await.unwrap().status(), 200);
    let orders = w.edge.url("/api/me/orders");
    let blocked = |source: IpAddr, user: &'static str| {
        let orders = orders.clone();
        async move {
            let res = client_from(source).get(&orders).bearer_auth(jwt(user)).send().await.unwrap();
            (res.status() == 403 && from_the_edge(&res)).then_some(())
        }
    };
    eventually(Duration::from_secs(15), "the user refused at the edge", || blocked(loopback(1), "edge-cheat")).await;
    eventually(Duration::from_secs(15), "the address refused", || blocked(loopback(3), "honest")).await;
    eventually(Duration::from_secs(15), "the range refused", || blocked(IpAddr::from([127, 0, 2, 9]), "honest")).await;
    let res = client_from(loopback(4)).get(&orders).bearer_auth(jwt("honest")).send().await.unwrap();
    assert_eq!(res.status(), 200, "an address outside every entry");
    // Taken off the list, the user buys again.
    let del = w.api.http.delete(w.api.url("/admin/api/blacklist/users/edge-cheat")).bearer_auth(&w.admin).send();
    assert_eq!(del.await.unwrap().status(), 204);
    eventually(Duration::from_secs(15), "the user let through again", || async {
        let res = client_from(loopback(1)).get(&orders).bearer_auth(jwt("edge-cheat")).send().await.unwrap();
        (res.status() == 200).then_some(())
    })
    .await;
}

async fn sold_out_not_started_and_ended_are_answered_by_the_edge(host: EdgeHost) {
    let w = World::start(host).await;
    let mut rules = w.rules().await;
    generous(&mut rules);
    w.save_rules(&rules).await;
    let sold_out = w.api.create_activity(ActivitySpec::live(0, 1)).await;
    let later = ActivitySpec { starts_in: time::Duration::hours(1), ..ActivitySpec::live(5, 1) };
    let not_started = w.api.create_activity(later).await;
    let over = ActivitySpec { lasts: time::Duration::seconds(1), ..ActivitySpec::live(5, 1) };
    let ended = w.api.create_activity(over).await;
    let http = client_from(loopback(1));
    for (a, code, status) in [(sold_out, "sold_out", 409), (not_started, "not_started", 409), (ended, "ended", 409)] {
        eventually(Duration::from_secs(15), &format!("the edge answering {code}"), || async {
            let res = http.post(w.edge.url(&format!("/api/activities/{a}/token"))).bearer_auth(jwt("early")).send();
            let res = res.await.unwrap();
            let by_edge = from_the_edge(&res);
            let got = (res.status().as_u16(), res.json::<Value>().await.unwrap()["code"].clone());
            assert_eq!(got, (status, json!(code)), "activity {a}");
            by_edge.then_some(())
        })
        .await;
    }

    // The last unit sells; once the edge knows it is sold out, the buyer's
    // retry of that purchase (its answer lost, say) still returns the order.
    let last = w.api.create_activity(ActivitySpec::live(1, 1)).await;
    let buy = |path: String, body: Value| {
        http.post(w.edge.url(&path)).bearer_auth(jwt("last-buyer")).json(&body).send().map(Result::unwrap)
    };
    let token = buy(format!("/api/activities/{last}/token"), json!({})).await.json::<Value>().await.unwrap();
    let purchase = json!({"token": token["token"], "quantity": 1});
    let order = buy(format!("/api/activities/{last}/purchase"), purchase.clone()).await.json::<Value>().await.unwrap();
    assert!(order["order_id"].is_string(), "{order}");
    eventually(Duration::from_secs(15), "the edge to know the last unit sold", || async {
        let res = http.post(w.edge.url(&format!("/api/activities/{last}/token"))).bearer_auth(jwt("late")).send();
        let res = res.await.unwrap();
        (from_the_edge(&res) && res.status() == 409).then_some(())
    })
    .await;
    let retry = buy(format!("/api/activities/{last}/purchase"), purchase).await;
    assert_eq!(retry.status(), 202);
    assert_eq!(retry.json::<Value>().await.unwrap()["order_id"], order["order_id"], "the same order");
}

async fn degraded_mode_from_the_dashboard_sheds_all_but_buying(host: EdgeHost) {
    let w = World::start(host).await;
    let mut rules = w.rules().await;
    generous(&mut rules);
    w.save_rules(&rules).await;
    let a = w.api.create_activity(ActivitySpec::live(10, 1)).await;
    let switch = |body: Value| {
        w.api.http.put(w.api.url("/admin/api/degraded")).bearer_auth(&w.admin).json(&body).send().map(Result::unwrap)
    };
    let res = switch(json!({"degraded": true, "reason": "  "})).await;
    assert_eq!(res.status(), 400, "switching it on needs a reason");
    let res = switch(json!({"degraded": true, "reason": "redis at 95% CPU"})).await;
    assert_eq!(res.status(), 200);
    let mode: Value = res.json().await.unwrap();
    assert_eq!((mode["degraded"].as_bool(), mode["reason"].as_str()), (Some(true), Some("redis at 95% CPU")));
    assert!(mode["since"].is_string(), "{mode}");

    let http = client_from(loopback(1));
    eventually(Duration::from_secs(15), "the edge to shed the product page", || async {
        let res = http.get(w.edge.url(&format!("/api/activities/{a}"))).send().await.unwrap();
        if res.status() != 503 {
            return None;
        }
        assert!(from_the_edge(&res));
        assert_eq!(res.headers()["retry-after"], "5");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["code"], "unavailable");
        assert!(body["message"].as_str().unwrap().contains("degraded mode"), "{body}");
        Some(())
    })
    .await;
    // The sale goes on: token and purchase pass, and the operator still reaches the admin API.
    let token: Value = http
        .post(w.edge.url(&format!("/api/activities/{a}/token")))
        .bearer_auth(jwt("steady"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let res = http
        .post(w.edge.url(&format!("/api/activities/{a}/purchase")))
        .bearer_auth(jwt("steady"))
        .json(&json!({"token": token["token"], "quantity": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
    let res = http.get(w.edge.url("/admin/api/degraded")).bearer_auth(&w.admin).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let (_, checklist) = w.api.get("/admin/api/checklist", &w.admin).await;
    let item = checklist.as_array().unwrap().iter().find(|i| i["id"] == "dr.degradation").unwrap().clone();
    assert_eq!(item["status"], "warning", "{item}");
    assert!(item["evidence"].as_str().unwrap().contains("redis at 95% CPU"), "{item}");

    let res = switch(json!({"degraded": false})).await;
    assert_eq!(res.json::<Value>().await.unwrap()["degraded"], false);
    eventually(Duration::from_secs(15), "the edge to serve the product page again", || async {
        let res = http.get(w.edge.url(&format!("/api/activities/{a}"))).send().await.unwrap();
        (res.status() == 200).then_some(())
    })
    .await;
}

async fn forwarded_for_is_believed_only_from_trusted_proxies(host: EdgeHost) {
    let proxy = loopback(9);
    let w = World::start_with(host, |config| config["trusted_proxies"] = json!([format!("{proxy}/32")])).await;
    let url = w.edge.url("/api/activities");
    let get_as = |source: IpAddr, forwarded: &'static str| {
        client_from(source).get(&url).header("x-forwarded-for", forwarded).send().map(Result::unwrap)
    };
    // A client cannot pick its bucket: its own address is what counts.
    let (passed, _, took) = until_refused(|| get_as(loopback(1), "10.9.9.9"), 200).await;
    assert_burst(passed, 20, 10.0, took);
    assert_eq!(get_as(loopback(2), "10.9.9.9").await.status(), 200, "10.9.9.9 was never limited");
    // Behind the trusted proxy, the address it forwards is the client.
    let (passed, _, took) = until_refused(|| get_as(proxy, "10.9.9.8"), 200).await;
    assert_burst(passed, 20, 10.0, took);
    assert_eq!(get_as(proxy, "10.9.9.7").await.status(), 200, "another client behind the same proxy");
}

async fn rule_changes_from_the_dashboard_take_effect_and_buyers_buy(host: EdgeHost) {
    let w = World::start(host).await;
    let http = client_from(loopback(1));
    let mut rules = w.rules().await;
    generous(&mut rules);
    w.save_rules(&rules).await;
    for _ in 0..50 {
        assert_eq!(http.get(w.edge.url("/api/activities")).send().await.unwrap().status(), 200);
    }
    // Buyers through the edge: token and purchase, end to end.
    let a = w.api.create_activity(ActivitySpec::live(20, 1)).await;
    for i in 0..20 {
        let user = format!("edge-buyer-{i}");
        let res = http.post(w.edge.url(&format!("/api/activities/{a}/token"))).bearer_auth(jwt(&user)).send();
        let res = res.await.unwrap();
        assert_eq!(res.status(), 200);
        let token: Value = res.json().await.unwrap();
        let res = http
            .post(w.edge.url(&format!("/api/activities/{a}/purchase")))
            .bearer_auth(jwt(&user))
            .json(&json!({"token": token["token"], "quantity": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
    }
    // Sold out: once the edge knows, the backend no longer sees token requests.
    let sold_out_at_backend = || async {
        let text = w.api.http.get(w.api.url("/metrics")).send().await.unwrap().text().await.unwrap();
        text.lines()
            .find(|l| l.starts_with("seckill_tokens_total{result=\"sold_out\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    eventually(Duration::from_secs(15), "the edge to answer sold_out by itself", || async {
        let before = sold_out_at_backend().await;
        let res = http.post(w.edge.url(&format!("/api/activities/{a}/token"))).bearer_auth(jwt("late-buyer")).send();
        let res = res.await.unwrap();
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap();
        assert_eq!((status, body["code"].as_str()), (409, Some("sold_out")));
        (sold_out_at_backend().await == before).then_some(())
    })
    .await;
}

async fn a_vm_that_fails_answers_503_and_the_next_request_gets_a_new_one(host: EdgeHost) {
    let redis = RedisServer::start().unwrap();
    let api = Backend::start(&redis.url()).await.unwrap();
    let module = fixtures::mini_filter(&fixtures::Mini { deny_status: 429, ..fixtures::Mini::default() });
    let wasm = fixtures::write_wasm("crashing", &module);
    let edge = RunningEdge::start_module(host, &[api.addr], wasm, b"mini".to_vec());
    let http = client_from(loopback(1));
    let get = |header: Option<&'static str>| {
        let request = http.get(edge.url("/healthz"));
        let request = match header {
            Some(name) => request.header(name, "1"),
            None => request,
        };
        request.send().map(|res| res.unwrap().status().as_u16())
    };
    assert_eq!(get(None).await, 200);
    assert_eq!(get(Some("x-deny")).await, 429, "the module answers by itself");
    // The module traps: that request fails closed, never forwarded unchecked…
    assert_eq!(get(Some("x-crash")).await, 503);
    // …and a new VM takes the next requests, filtering again. Until every
    // worker has its new VM (Envoy reloads a failed one after a backoff),
    // a request may still fail closed, but none passes unfiltered.
    eventually(Duration::from_secs(15), "a new VM filtering", || async {
        let status = get(Some("x-deny")).await;
        assert!(matches!(status, 429 | 503), "a denied request got {status}: it passed unfiltered");
        (status == 429).then_some(())
    })
    .await;
    eventually(Duration::from_secs(15), "a new VM serving", || async { (get(None).await == 200).then_some(()) }).await;
}

/// The seed's `expires 1y` for static files: the dashboard's hashed assets
/// reach the browser through the edge with the backend's year-long,
/// immutable caching, and its page is revalidated every time.
async fn admin_assets_are_cached_for_a_year_through_the_edge(host: EdgeHost) {
    let redis = RedisServer::start().unwrap();
    let ui = TempDir::new("ui");
    std::fs::write(ui.0.join("index.html"), "<!doctype html><title>seckill</title>").unwrap();
    std::fs::write(ui.0.join("app-0123abcd.js"), "export default 1").unwrap();
    let ui_dir = ui.0.display().to_string();
    let backend_args = ["--trusted-proxies", "127.0.0.1/32", "--admin-ui-dir", &ui_dir];
    let api = Backend::start_with(&redis.url(), &backend_args).await.unwrap();
    let edge = RunningEdge::start(host, &[api.addr], filter_config(api.addr, EDGE_ID, SYNC_MS));
    let http = client_from(loopback(1));
    let asset = http.get(edge.url("/admin/app-0123abcd.js")).send().await.unwrap();
    assert_eq!(asset.status(), 200);
    assert_eq!(asset.headers()["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(asset.text().await.unwrap(), "export default 1");
    let page = http.get(edge.url("/admin/")).send().await.unwrap();
    assert_eq!((page.status().as_u16(), page.headers()["cache-control"].to_str().unwrap()), (200, "no-cache"));
}
