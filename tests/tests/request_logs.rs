//! One request id through every process of a buy, in JSON logs (issue #16
//! item 4): a real `seckill-backend` process (`SECKILL_LOG_FORMAT=json`,
//! `RUST_LOG=info`, its order worker inside) behind a real `seckill-edge`
//! process (`--access-log json`) or a real Envoy (`envoy/envoy.yaml`, its
//! access log on standard output), Redis and SQLite, on loopback.
//!
//! - `seckill-edge` keeps a client's well-formed `x-request-id`, makes one
//!   for a request without one or with a malformed one; the client gets it
//!   back, and the edge's and the backend's access lines name it.
//! - The backend's access line names the buyer, the activity, the route
//!   template, the status, the decision (the error code) and, for a 202, the
//!   order id, which the worker's line for the row names too: that is how a
//!   row joins the request that sold it (the order event in the stream does
//!   not carry the request id; see `deploy/LOGS.md`).
//! - Envoy replaces a client's id (it believes none from an external
//!   address) and its access line has the id the backend logged.
//!
//! Every wait is a poll of the log files with a deadline.

use std::time::Duration;

use seckill_tests::edge::{EdgeHost, EdgeProcess, RunningEdge};
use seckill_tests::{
    ActivitySpec, BackendProcess, RedisServer, TempDir, create_activity_at, eventually, filter_config, jwt,
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

/// Redis, an SQLite order DB, and a backend process writing JSON lines.
struct World {
    _redis: RedisServer,
    _db: TempDir,
    backend: BackendProcess,
    http: reqwest::Client,
}

impl World {
    async fn start(rust_log: &str) -> Self {
        let redis = RedisServer::start().unwrap();
        let db = TempDir::new("request-logs");
        let database_url = format!("sqlite://{}/orders.db", db.0.display());
        let env = [("RUST_LOG", rust_log), ("SECKILL_LOG_FORMAT", "json")];
        // The edge connects from 127.0.0.1 and appends the client to x-forwarded-for.
        let flags = ["--trusted-proxies", "127.0.0.1/32"];
        let backend = BackendProcess::start_with_env(&redis.url(), &database_url, &flags, &env).await.unwrap();
        Self { _redis: redis, _db: db, backend, http: reqwest::Client::new() }
    }

    async fn activity(&self) -> u64 {
        create_activity_at(&self.http, self.backend.addr, ActivitySpec::live(10, 2)).await
    }

    /// The backend's line on `target` whose `key` is `value`, once it is written.
    async fn backend_line(&self, target: &str, key: &str, value: &str) -> Value {
        let what = format!("the backend's {target} line with {key} {value}");
        eventually(WAIT, &what, || async {
            self.backend.json_lines().into_iter().find(|l| l["target"] == target && l[key] == value)
        })
        .await
    }

    /// Every access line of the backend for `id`.
    fn backend_access(&self, id: &str) -> Vec<Value> {
        let lines = self.backend.json_lines();
        lines.into_iter().filter(|l| l["target"] == "seckill::access" && l["request_id"] == id).collect()
    }
}

/// A response's `x-request-id`, status and body.
async fn sent(request: reqwest::RequestBuilder) -> (String, u16, Value) {
    let res = request.send().await.unwrap();
    let id = res.headers().get("x-request-id").expect("every answer carries x-request-id").to_str().unwrap();
    let id = id.to_owned();
    let status = res.status().as_u16();
    (id, status, res.json().await.unwrap_or(Value::Null))
}

/// A fresh id as the edges and the backend make them: a version 4 UUID.
fn is_fresh(id: &str) -> bool {
    id.len() == 36 && id.split('-').map(str::len).eq([8, 4, 4, 4, 12]) && id.as_bytes()[14] == b'4'
}

/// `seckill-edge`'s access lines so far (its standard output, every line JSON).
fn edge_lines(edge: &EdgeProcess) -> Vec<Value> {
    let out = edge.stdout();
    out.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect()
}

async fn edge_line(edge: &EdgeProcess, id: &str) -> Value {
    eventually(WAIT, &format!("seckill-edge's access line for {id}"), || async {
        edge_lines(edge).into_iter().find(|l| l["request_id"] == id)
    })
    .await
}

fn assert_fields(line: &Value, expected: &[(&str, Value)]) {
    for (key, value) in expected {
        assert_eq!(&line[key], value, "{key} in {line}");
    }
}

fn assert_line_shape(line: &Value) {
    assert_fields(line, &[("level", json!("INFO")), ("target", json!("seckill::access"))]);
    let ts = line["timestamp"].as_str().unwrap_or_else(|| panic!("no timestamp in {line}"));
    time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("timestamp {ts} is not RFC 3339: {e}"));
    assert!(line["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "latency_ms in {line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_id_through_seckill_edge_the_backend_and_the_worker() {
    let world = World::start("info").await;
    let edge = EdgeProcess::start(world.backend.addr, &["--access-log", "json"]).unwrap();
    let a = world.activity().await;
    let http = &world.http;
    let (user, other) = ("log-buyer-1", "log-buyer-2");

    // A token, then the purchase with the client's own id.
    let (_, status, body) =
        sent(http.post(edge.url(&format!("/api/activities/{a}/token"))).bearer_auth(jwt(user))).await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    let purchase = edge.url(&format!("/api/activities/{a}/purchase"));
    let (id, status, body) = sent(
        http.post(&purchase)
            .bearer_auth(jwt(user))
            .header("x-request-id", "test-req-1")
            .json(&json!({"token": token, "quantity": 1})),
    )
    .await;
    assert_eq!((id.as_str(), status), ("test-req-1", 202), "{body}");
    let order = body["order_id"].as_str().unwrap().to_owned();

    let at_edge = edge_line(&edge, "test-req-1").await;
    assert_line_shape(&at_edge);
    assert_fields(
        &at_edge,
        &[
            ("method", json!("POST")),
            ("path", json!(format!("/api/activities/{a}/purchase"))),
            ("status", json!(202)),
            ("client", json!("127.0.0.1")),
            ("decision", json!("forwarded")),
        ],
    );
    let at_backend = world.backend_line("seckill::access", "request_id", "test-req-1").await;
    assert_line_shape(&at_backend);
    assert_fields(
        &at_backend,
        &[
            ("method", json!("POST")),
            ("route", json!("/api/activities/{id}/purchase")),
            ("status", json!(202)),
            ("user", json!(user)),
            ("activity", json!(a)),
            ("order_id", json!(order)),
            ("decision", json!("ok")),
        ],
    );
    // The worker writes the row and names the order: the join to the request.
    let written = world.backend_line("seckill::orders", "order_id", &order).await;
    assert_fields(&written, &[("user", json!(user)), ("activity", json!(a)), ("quantity", json!(1))]);

    // No id: the edge makes one, and the backend logs the same.
    let token_url = edge.url(&format!("/api/activities/{a}/token"));
    let (id, status, body) = sent(http.post(&token_url).bearer_auth(jwt(other))).await;
    assert_eq!(status, 200, "{body}");
    assert!(is_fresh(&id), "{id}");
    let at_edge = edge_line(&edge, &id).await;
    assert_fields(&at_edge, &[("status", json!(200)), ("decision", json!("forwarded"))]);
    let at_backend = world.backend_line("seckill::access", "request_id", &id).await;
    assert_fields(
        &at_backend,
        &[("route", json!("/api/activities/{id}/token")), ("user", json!(other)), ("activity", json!(a))],
    );

    // A malformed id is replaced at the edge; nobody logs it.
    let long = "x".repeat(200);
    for bad in ["../..", long.as_str()] {
        let (id, status, _) = sent(http.post(&token_url).bearer_auth(jwt(other)).header("x-request-id", bad)).await;
        assert_eq!(status, 200);
        assert!(is_fresh(&id), "{bad} was kept as {id}");
        edge_line(&edge, &id).await;
        world.backend_line("seckill::access", "request_id", &id).await;
        assert!(edge_lines(&edge).iter().all(|l| l["request_id"] != bad), "{bad} logged by the edge");
        assert!(world.backend_access(bad).is_empty(), "{bad} logged by the backend");
    }

    // An error answer: the backend's line names its code; the edge forwarded it.
    let (id, status, body) = sent(
        http.post(&purchase)
            .bearer_auth(jwt(other))
            .header("x-request-id", "test-req-bad-token")
            .json(&json!({"token": "0123456789abcdef0123456789abcdef", "quantity": 1})),
    )
    .await;
    assert_eq!((id.as_str(), status), ("test-req-bad-token", 403), "{body}");
    let at_backend = world.backend_line("seckill::access", "request_id", &id).await;
    assert_fields(&at_backend, &[("status", json!(403)), ("decision", json!("invalid_token")), ("user", json!(other))]);
    assert!(at_backend.get("order_id").is_none(), "{at_backend}");
    assert_fields(&edge_line(&edge, &id).await, &[("status", json!(403)), ("decision", json!("forwarded"))]);

    // The filter's own answer (a forged JWT) carries the id too, and names its decision;
    // it never reached the backend.
    let forged = seckill_api::buyer_jwt::mint("not-the-secret", other, 4_000_000_000);
    let (id, status, _) =
        sent(http.post(&token_url).bearer_auth(forged).header("x-request-id", "test-req-forged")).await;
    assert_eq!((id.as_str(), status), ("test-req-forged", 401));
    assert_fields(&edge_line(&edge, &id).await, &[("status", json!(401)), ("decision", json!("unauthorized"))]);
    assert!(world.backend_access(&id).is_empty(), "a refused request reached the backend");

    // Straight to the backend, a malformed id is replaced there too.
    let direct = format!("http://{}/api/activities/{a}", world.backend.addr);
    let (id, status, _) = sent(http.get(&direct).header("x-request-id", "../..")).await;
    assert_eq!(status, 200);
    assert!(is_fresh(&id), "{id}");
    let at_backend = world.backend_line("seckill::access", "request_id", &id).await;
    assert_fields(&at_backend, &[("route", json!("/api/activities/{id}")), ("activity", json!(a))]);
    assert!(at_backend.get("user").is_none(), "{at_backend}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoys_access_line_has_the_id_the_backend_logged() {
    let world = World::start("info").await;
    let config = filter_config(world.backend.addr, "envoy-logs", 200);
    let edge = RunningEdge::start(EdgeHost::Envoy, &[world.backend.addr], config);
    let RunningEdge::Envoy(envoy) = &edge else { unreachable!("asked for Envoy") };
    let a = world.activity().await;
    let http = &world.http;
    let user = "envoy-log-buyer";

    // Envoy does not believe a client's id: it answers with its own, which the backend logged.
    let token_url = edge.url(&format!("/api/activities/{a}/token"));
    let (id, status, body) =
        sent(http.post(&token_url).bearer_auth(jwt(user)).header("x-request-id", "test-req-envoy")).await;
    assert_eq!(status, 200, "{body}");
    assert!(is_fresh(&id), "Envoy kept the client's id: {id}");
    let at_backend = world.backend_line("seckill::access", "request_id", &id).await;
    assert_fields(
        &at_backend,
        &[("route", json!("/api/activities/{id}/token")), ("user", json!(user)), ("activity", json!(a))],
    );
    let at_envoy = eventually(WAIT, "Envoy's access line", || async {
        envoy.access_log().lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).find(|l| l["request_id"] == id)
    })
    .await;
    assert_line_shape(&at_envoy);
    assert_fields(
        &at_envoy,
        &[
            ("method", json!("POST")),
            ("path", json!(format!("/api/activities/{a}/token"))),
            ("status", json!(200)),
            ("client", json!("127.0.0.1")),
            ("decision", json!("via_upstream")),
            ("upstream", json!(world.backend.addr.to_string())),
        ],
    );

    // A page Envoy's cache answers goes by its own id, not the one stored with it.
    let page = edge.url(&format!("/api/activities/{a}"));
    let (first, status, _) = sent(http.get(&page)).await;
    assert_eq!(status, 200);
    let hit = eventually(WAIT, "a cache hit", || async {
        let res = http.get(&page).send().await.unwrap();
        let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        res.headers().contains_key("age").then_some(id)
    })
    .await;
    assert!(is_fresh(&hit) && hit != first, "a hit answered with {hit}, the first with {first}");
    assert!(world.backend_access(&hit).is_empty(), "the hit reached the backend");

    // The filter's own answer carries Envoy's id too.
    let forged = seckill_api::buyer_jwt::mint("not-the-secret", user, 4_000_000_000);
    let (id, status, _) = sent(http.post(&token_url).bearer_auth(forged)).await;
    assert_eq!(status, 401);
    assert!(is_fresh(&id), "{id}");
    let at_envoy = eventually(WAIT, "Envoy's access line of the refusal", || async {
        envoy.access_log().lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).find(|l| l["request_id"] == id)
    })
    .await;
    assert_fields(&at_envoy, &[("status", json!(401)), ("decision", json!(""))]);
    assert!(world.backend_access(&id).is_empty(), "a refused request reached the backend");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_is_a_target_of_its_own_that_can_be_turned_off() {
    let world = World::start("info,seckill::access=off").await;
    let a = world.activity().await;
    let url = format!("http://{}/api/activities/{a}", world.backend.addr);
    let (id, status, _) = sent(world.http.get(&url).header("x-request-id", "quiet-1")).await;
    // The id still goes back; the line is written before the answer, so none means none.
    assert_eq!((id.as_str(), status), ("quiet-1", 200));
    assert!(world.backend_access("quiet-1").is_empty());
    assert!(world.backend.json_lines().iter().all(|l| l["target"] != "seckill::access"));
    // The rest of the log is still there, in JSON.
    assert!(world.backend.json_lines().iter().any(|l| l["message"] == "seckill backend serving"));
}
