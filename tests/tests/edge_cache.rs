//! The activity page cached at the edge: a real Envoy (`envoy/envoy.yaml`,
//! its HTTP cache filter after the real filter `.wasm`, two worker threads)
//! in front of a real `seckill-backend` process (its own `/metrics`, so the
//! requests counted are this test's only) and Redis, on loopback. The
//! backend marks the list (`GET /api/activities`) cacheable the same way;
//! Envoy's cache runs on the page's route only.
//!
//! What reaches the backend is counted with its request counter,
//! `seckill_http_request_duration_seconds_count{method, route}` (the route
//! as axum matched it, e.g. `/api/activities/{id}`), read before and after.
//!
//! Only Envoy caches: `seckill-edge` (our wasmtime proxy) has no cache and
//! passes the backend's `cache-control` on to whatever is in front of it.

use std::time::{Duration, Instant};

use seckill_tests::edge::{EdgeHost, RunningEdge, answered_by_the_filter, client_from, loopback};
use seckill_tests::{
    ActivitySpec, Backend, BackendProcess, RedisServer, TempDir, admin_token_at, create_activity_at, eventually,
    filter_config, jwt,
};
use serde_json::{Value, json};

const SYNC_MS: u64 = 200;
const EDGE_ID: &str = "cache-edge";
const PAGE: &str = "/api/activities/{id}";
const CACHEABLE: &str = "public, max-age=1";

/// A backend process, Envoy in front of it, synced once.
struct World {
    _redis: RedisServer,
    _db: TempDir,
    backend: BackendProcess,
    http: reqwest::Client,
    admin: String,
    edge: RunningEdge,
}

impl World {
    async fn start() -> Self {
        let redis = RedisServer::start().unwrap();
        let db = TempDir::new("edge-cache");
        let database_url = format!("sqlite://{}/orders.db", db.0.display());
        // Envoy connects from 127.0.0.1 and appends the client to x-forwarded-for.
        let backend =
            BackendProcess::start(&redis.url(), &database_url, &["--trusted-proxies", "127.0.0.1/32"]).await.unwrap();
        let http = reqwest::Client::new();
        let admin = admin_token_at(&http, backend.addr).await;
        let edge = RunningEdge::start(EdgeHost::Envoy, &[backend.addr], filter_config(backend.addr, EDGE_ID, SYNC_MS));
        let world = Self { _redis: redis, _db: db, backend, http, admin, edge };
        // The filter has the backend's state (rules, blacklist) before anything is measured.
        eventually(Duration::from_secs(15), "the edge synced", || async {
            let status = world.admin_get("/admin/api/edge-status").await;
            status.as_array()?.iter().find(|s| s["edge_id"] == EDGE_ID)?["rules_version"].as_i64().map(drop)
        })
        .await;
        world
    }

    fn backend_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.backend.addr)
    }

    async fn admin_get(&self, path: &str) -> Value {
        let res = self.http.get(self.backend_url(path)).bearer_auth(&self.admin).send().await.unwrap();
        res.json().await.unwrap()
    }

    async fn activity(&self, stock: i64) -> u64 {
        create_activity_at(&self.http, self.backend.addr, ActivitySpec::live(stock, 1)).await
    }

    /// How many `method path` requests the backend has answered (any status), by its `/metrics`.
    async fn reached(&self, method: &str, route: &str) -> u64 {
        let text = self.http.get(self.backend_url("/metrics")).send().await.unwrap().text().await.unwrap();
        let (method, route) = (format!("method=\"{method}\""), format!("route=\"{route}\""));
        text.lines()
            .filter_map(|line| line.strip_prefix("seckill_http_request_duration_seconds_count{"))
            .filter_map(|rest| rest.split_once("} "))
            .filter(|(labels, _)| labels.split(',').any(|l| l == method) && labels.split(',').any(|l| l == route))
            .map(|(_, n)| n.trim().parse::<f64>().unwrap() as u64)
            .sum()
    }

    /// Token and purchase of one unit, straight at the backend; the order id.
    async fn buy_at_backend(&self, a: u64, user: &str) -> String {
        let res = self.http.post(self.backend_url(&format!("/api/activities/{a}/token"))).bearer_auth(jwt(user));
        let token: Value = res.send().await.unwrap().json().await.unwrap();
        let res = self
            .http
            .post(self.backend_url(&format!("/api/activities/{a}/purchase")))
            .bearer_auth(jwt(user))
            .json(&json!({"token": token["token"], "quantity": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
        res.json::<Value>().await.unwrap()["order_id"].as_str().unwrap().to_owned()
    }
}

fn header<'a>(res: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    res.headers().get(name).map(|v| v.to_str().unwrap())
}

/// Served by Envoy's cache: it adds `age` to what it serves from it.
fn from_the_cache(res: &reqwest::Response) -> bool {
    res.headers().contains_key("age")
}

/// Answered by the filter itself (never kept by the cache: its answers are `no-store`).
fn from_the_filter(res: &reqwest::Response) -> bool {
    answered_by_the_filter(res.headers()) && header(res, "cache-control") == Some("no-store") && !from_the_cache(res)
}

/// The backend itself, in-process: the pages' 200s may be kept a second by
/// anyone (nothing in them depends on who asks), their errors never, and no
/// other GET says anything a cache could keep (no max-age, no expires: Envoy
/// stores nothing without them, it has no heuristic freshness).
#[tokio::test]
async fn the_backend_lets_caches_keep_the_pages_a_second_and_nothing_else() {
    let redis = RedisServer::start().unwrap();
    let api = Backend::start(&redis.url()).await.unwrap();
    let a = api.create_activity(ActivitySpec::live(5, 1)).await;
    let admin = api.admin_token().await;
    let get = |path: String| api.http.get(api.url(&path)).send();

    for path in [format!("/api/activities/{a}"), "/api/activities".to_owned()] {
        let res = get(path.clone()).await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(header(&res, "cache-control"), Some(CACHEABLE), "{path}");
        for personal in ["vary", "set-cookie", "expires"] {
            assert!(!res.headers().contains_key(personal), "{path} has {personal}");
        }
    }
    // The same bytes for a buyer who is logged in.
    let anonymous = get(format!("/api/activities/{a}")).await.unwrap().text().await.unwrap();
    let res = api.http.get(api.url(&format!("/api/activities/{a}"))).bearer_auth(jwt("vera")).send().await.unwrap();
    assert_eq!(header(&res, "cache-control"), Some(CACHEABLE));
    assert_eq!(res.text().await.unwrap(), anonymous);

    // Errors, and the page under another spelling of its URL: never stored.
    for (path, status) in [
        ("/api/activities/999999".to_owned(), 404),
        ("/api/activities/not-a-number".to_owned(), 404),
        (format!("/api/activities/0{a}"), 200),
        (format!("/api/activities/{a}?from=share"), 200),
        ("/api/activities?page=2".to_owned(), 200),
    ] {
        let res = get(path.clone()).await.unwrap();
        assert_eq!(res.status(), status, "{path}");
        assert_eq!(header(&res, "cache-control"), Some("no-store"), "{path}");
    }
    let res = api.http.delete(api.url(&format!("/api/activities/{a}"))).send().await.unwrap();
    assert_eq!((res.status().as_u16(), header(&res, "cache-control")), (405, Some("no-store")));

    // Every other answer: nothing a shared cache may keep.
    let order = api.buy(a, "vera", 1).await;
    let reads = [
        (format!("/api/orders/{order}"), jwt("vera")),
        ("/api/me/orders".to_owned(), jwt("vera")),
        ("/admin/api/activities".to_owned(), admin.clone()),
        (format!("/admin/api/activities/{a}"), admin.clone()),
        ("/admin/api/orders".to_owned(), admin.clone()),
        ("/admin/api/edge-rules".to_owned(), admin.clone()),
        ("/admin/api/blacklist/ips".to_owned(), admin.clone()),
        ("/healthz".to_owned(), String::new()),
        ("/readyz".to_owned(), String::new()),
        ("/metrics".to_owned(), String::new()),
        ("/api/no-such-route".to_owned(), String::new()),
    ];
    let token = api.http.post(api.url(&format!("/api/activities/{a}/token"))).bearer_auth(jwt("walt")).send();
    let mut answers = vec![("POST token".to_owned(), token.await.unwrap())];
    for (path, bearer) in reads {
        answers.push((path.clone(), api.http.get(api.url(&path)).bearer_auth(bearer).send().await.unwrap()));
    }
    for (what, res) in answers {
        let cache_control = header(&res, "cache-control").unwrap_or("");
        assert!(
            !cache_control.contains("max-age") && !res.headers().contains_key("expires"),
            "{what} ({}) may be kept by a cache: {cache_control}",
            res.status()
        );
    }
}

/// Fifty buyers refreshing the product page: the backend answers about once
/// a second, Envoy the rest from its cache, with `age`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_refreshes_reach_the_backend_about_once_a_second() {
    let w = World::start().await;
    let a = w.activity(100).await;
    let page = w.edge.url(&format!("/api/activities/{a}"));
    let before = w.reached("GET", PAGE).await;
    let start = Instant::now();
    let mut cached = 0;
    // Fifty buyers, each from a loopback address of its own (so no per-address
    // limit applies); every other one presses reload, which asks caches to revalidate.
    for n in 1..=50u8 {
        let mut request = client_from(loopback(n)).get(&page);
        if n % 2 == 0 {
            request = request.header("cache-control", "no-cache").header("pragma", "no-cache");
        }
        let res = request.send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(header(&res, "cache-control"), Some(CACHEABLE));
        if from_the_cache(&res) {
            let age: u64 = header(&res, "age").unwrap().parse().unwrap();
            assert!(age <= 1, "a copy {age} s old served for max-age=1");
            cached += 1;
        }
        assert_eq!(res.json::<Value>().await.unwrap()["id"], a);
    }
    let took = start.elapsed();
    let reached = w.reached("GET", PAGE).await - before;
    eprintln!("{reached} of 50 GETs of the page reached the backend, {cached} from Envoy's cache, in {took:?}");
    // A copy lives at least a second: the first request, then at most one per second begun.
    let allowed = 1 + took.as_secs_f64().ceil() as u64;
    assert!(reached <= allowed, "{reached} of 50 reached the backend in {took:?} (allowed {allowed})");
    assert_eq!(cached + reached, 50, "every answer without `age` came from the backend");
}

/// The stock a cached page shows is behind by at most Envoy's freshness
/// (max-age=1, age counted in whole seconds: under two seconds), and any
/// answer still showing the old stock came from the cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_shows_at_the_edge_within_two_seconds() {
    let w = World::start().await;
    let a = w.activity(10).await;
    let page = w.edge.url(&format!("/api/activities/{a}"));
    let mut n = 0u8;
    let mut next_buyer = || {
        n = n % 200 + 1;
        client_from(loopback(n))
    };
    let res = next_buyer().get(&page).send().await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["remaining"], 10);

    w.buy_at_backend(a, "first-buyer").await;
    let sold = Instant::now();
    let at_backend = w.http.get(w.backend_url(&format!("/api/activities/{a}"))).send().await.unwrap();
    let at_backend: Value = at_backend.json().await.unwrap();
    assert_eq!(at_backend["remaining"], 9, "the backend shows the sale at once");
    let stale = std::cell::Cell::new(0);
    let shown = eventually(Duration::from_secs(10), "the edge showing the sale", || {
        let (client, page, stale) = (next_buyer(), page.clone(), &stale);
        async move {
            let sent = Instant::now();
            let res = client.get(&page).send().await.unwrap();
            assert_eq!(res.status(), 200);
            let cached = from_the_cache(&res);
            let remaining = res.json::<Value>().await.unwrap()["remaining"].as_i64().unwrap();
            if remaining == 10 {
                assert!(cached, "the old stock from the backend itself");
                stale.set(stale.get() + 1);
                return None;
            }
            assert_eq!(remaining, 9);
            Some(sent)
        }
    })
    .await;
    // From the sale to the request that first saw it.
    let behind = shown.duration_since(sold);
    eprintln!(
        "the edge showed the sale {behind:?} after it ({} answers with the old stock, all from the cache)",
        stale.get()
    );
    assert!(behind < Duration::from_secs(3), "the edge showed the sale only {behind:?} after it");
}

/// Tokens, purchases, the admin API and anything a buyer sends with
/// `authorization` always reach the backend; so does a page asked for under
/// another spelling of its URL (the backend says `no-store`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_the_admin_api_and_personal_reads_are_never_cached() {
    let w = World::start().await;
    let a = w.activity(10).await;
    let http = client_from(loopback(1));
    let edge = |path: String| w.edge.url(&path);
    let tokens = twice(&w, "token", "POST", "/api/activities/{id}/token", || {
        http.post(edge(format!("/api/activities/{a}/token"))).bearer_auth(jwt("buyer"))
    })
    .await;
    assert_eq!(tokens[0]["token"], tokens[1]["token"], "the same token, from the backend");
    let purchase = json!({"token": tokens[0]["token"], "quantity": 1});
    let orders = twice(&w, "purchase", "POST", "/api/activities/{id}/purchase", || {
        http.post(edge(format!("/api/activities/{a}/purchase"))).bearer_auth(jwt("buyer")).json(&purchase)
    })
    .await;
    assert_eq!(orders[0]["order_id"], orders[1]["order_id"]);

    let admin = &w.admin;
    twice(&w, "admin GET (bearer)", "GET", "/admin/api/activities", || {
        http.get(edge("/admin/api/activities".into())).bearer_auth(admin)
    })
    .await;
    // The dashboard's own requests carry the session cookie, not authorization.
    twice(&w, "admin GET (cookie)", "GET", "/admin/api/activities/{id}", || {
        http.get(edge(format!("/admin/api/activities/{a}"))).header("cookie", format!("seckill_admin={admin}"))
    })
    .await;
    twice(&w, "a buyer's orders", "GET", "/api/me/orders", || {
        http.get(edge("/api/me/orders".into())).bearer_auth(jwt("buyer"))
    })
    .await;
    twice(&w, "the page with authorization", "GET", PAGE, || {
        http.get(edge(format!("/api/activities/{a}"))).bearer_auth(jwt("buyer"))
    })
    .await;
    twice(&w, "the page with a query", "GET", PAGE, || http.get(edge(format!("/api/activities/{a}?from=share")))).await;
    twice(&w, "the page as 0{id}", "GET", PAGE, || http.get(edge(format!("/api/activities/0{a}")))).await;
}

/// Sends `request()` twice through the edge: both succeed, neither from the
/// cache, and both reach the backend (`method route` counted there). The bodies.
async fn twice(
    w: &World,
    what: &str,
    method: &str,
    route: &str,
    request: impl Fn() -> reqwest::RequestBuilder,
) -> Vec<Value> {
    let before = w.reached(method, route).await;
    let mut bodies = Vec::new();
    for _ in 0..2 {
        let res = request().send().await.unwrap();
        assert!(res.status().is_success(), "{what}: {}", res.status());
        assert!(!from_the_cache(&res), "{what} served from the cache");
        bodies.push(res.json::<Value>().await.unwrap());
    }
    assert_eq!(w.reached(method, route).await - before, 2, "{what}: both reach the backend");
    bodies
}

/// `refuse()`, sent between two answers of the observers that are the same
/// cached copy (both with `age`, the same `date`: a copy is replaced only
/// once stale, by one with a later `date`), so it came while the page was in
/// Envoy's cache; tried again while a copy changes in between. The refusal.
async fn refused_while_cached<F, Fut>(w: &World, page: &str, mut refuse: F) -> reqwest::Response
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<reqwest::Response>>,
{
    let url = w.edge.url(page);
    for attempt in 0..10u8 {
        let observer = client_from(loopback(200 + attempt));
        let before = observer.get(&url).send().await.unwrap();
        let Some(refused) = refuse().await else { continue };
        let after = observer.get(&url).send().await.unwrap();
        let date = |res: &reqwest::Response| header(res, "date").map(str::to_owned);
        if from_the_cache(&before) && from_the_cache(&after) && date(&before) == date(&after) {
            return refused;
        }
    }
    panic!("no refusal between two answers of one cached copy in 10 tries");
}

/// The filter runs before the cache: a client over its rate limit, or
/// blacklisted, is refused by the filter even while the page is cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_filter_refuses_before_the_cache_answers() {
    let w = World::start().await;
    let a = w.activity(10).await;
    let page = format!("/api/activities/{a}");
    let url = w.edge.url(&page);

    // Over the per-address limit (burst 20 at 10/s): refused with the page in the cache.
    let mut n = 10u8;
    let res = refused_while_cached(&w, &page, || {
        n += 1;
        let (client, url) = (client_from(loopback(n)), url.clone());
        async move {
            for _ in 0..100 {
                let res = client.get(&url).send().await.unwrap();
                if res.status() == 429 {
                    // Its bucket is empty: the next one is refused too, unless a token came back meanwhile.
                    let next = client.get(&url).send().await.unwrap();
                    return (next.status() == 429).then_some(next);
                }
                assert_eq!(res.status(), 200);
            }
            panic!("100 requests passed the per-address limit");
        }
    })
    .await;
    assert!(from_the_filter(&res), "{:?}", res.headers());
    assert_eq!(header(&res, "retry-after"), Some("1"));
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "rate_limited");

    // A blacklisted address, once the edge has the entry.
    let blocked = loopback(3);
    let res = w
        .http
        .put(w.backend_url(&format!("/admin/api/blacklist/ips/{blocked}")))
        .bearer_auth(&w.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let client = client_from(blocked);
    eventually(Duration::from_secs(15), "the edge refusing the address", || async {
        (client.get(&url).send().await.unwrap().status() == 403).then_some(())
    })
    .await;
    let res = refused_while_cached(&w, &page, || async { Some(client.get(&url).send().await.unwrap()) }).await;
    assert_eq!(res.status(), 403);
    assert!(from_the_filter(&res), "{:?}", res.headers());
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "blacklisted");
}
