//! The admin routes behind the dashboard: editing and deleting activities,
//! pre-flight, the checklist, the live event stream, an activity's recent
//! series and the UI's files.

use std::time::Duration;

use seckill_tests::{ActivitySpec, Backend, RedisServer, TempDir, eventually};
use serde_json::{Value, json};

async fn admin_json(api: &Backend, admin: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = api.http.request(method.parse().unwrap(), api.url(path)).bearer_auth(admin);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn activities_can_be_edited_within_the_rules_and_deleted_unless_sold() {
    let redis = RedisServer::start().unwrap();
    let api = Backend::start(&redis.url()).await.unwrap();
    let admin = api.admin_token().await;
    let a = api.create_activity(ActivitySpec::live(5, 2)).await;
    api.buy(a, "ann", 2).await;
    let path = format!("/admin/api/activities/{a}");

    let (status, body) = admin_json(&api, &admin, "PATCH", &path, Some(json!({"total_stock": 1}))).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_request")), "{body}");
    assert!(body["message"].as_str().unwrap().starts_with("total_stock"));
    let (status, body) = admin_json(&api, &admin, "PATCH", &path, Some(json!({"limit_per_user": 0}))).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) =
        admin_json(&api, &admin, "PATCH", &path, Some(json!({"ends_at": "2000-01-01T00:00:00Z"}))).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = admin_json(&api, &admin, "PATCH", &path, Some(json!({"bogus": 1}))).await;
    assert_eq!(status, 400, "{body}");

    let (status, body) =
        admin_json(&api, &admin, "PATCH", &path, Some(json!({"total_stock": 10, "name": "bigger batch"}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["total_stock"].as_i64(), body["remaining"].as_i64(), body["sold"].as_i64()),
        (Some(10), Some(8), Some(2))
    );
    assert_eq!(body["name"], "bigger batch");

    let (status, body) = admin_json(&api, &admin, "DELETE", &path, None).await;
    assert_eq!(status, 400, "an activity with sales is ended, not deleted: {body}");
    let b = api.create_activity(ActivitySpec::live(5, 2)).await;
    let (status, _) = admin_json(&api, &admin, "DELETE", &format!("/admin/api/activities/{b}"), None).await;
    assert_eq!(status, 204);
    let (status, _) = admin_json(&api, &admin, "GET", &format!("/admin/api/activities/{b}"), None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn preflight_says_what_is_missing() {
    let redis = RedisServer::start().unwrap();
    let api = Backend::start(&redis.url()).await.unwrap();
    let admin = api.admin_token().await;
    let a = api.create_activity(ActivitySpec::live(5, 2)).await;
    let (status, report) = admin_json(&api, &admin, "GET", &format!("/admin/api/activities/{a}/preflight"), None).await;
    assert_eq!(status, 200, "{report}");
    let check = |id: &str| report["checks"].as_array().unwrap().iter().find(|c| c["id"] == id).unwrap().clone();
    assert_eq!(check("stock_warmed")["ok"], true);
    assert_eq!(check("scripts_loaded")["ok"], true);
    assert_eq!(check("db_reachable")["ok"], true);
    assert_eq!(check("window_open")["ok"], true);
    // No edge has synced in this test: not ready, and it says why.
    assert_eq!(check("edge_synced")["ok"], false);
    assert!(check("edge_synced")["detail"].as_str().unwrap().contains("no edge"));
    assert_eq!(report["ready"], false);

    // The embedded worker reads the activity's stream: it shows as an active consumer.
    let path = format!("/admin/api/activities/{a}/preflight");
    let (api, admin) = (&api, &admin);
    eventually(Duration::from_secs(10), "the worker to show as consuming", || {
        let path = path.clone();
        async move {
            let (_, report) = admin_json(api, admin, "GET", &path, None).await;
            let workers = report["checks"].as_array()?.iter().find(|c| c["id"] == "workers_consuming")?.clone();
            (workers["ok"] == true).then_some(())
        }
    })
    .await;
}

#[tokio::test]
async fn the_checklist_probes_what_it_can_and_keeps_operators_ticks() {
    let redis = RedisServer::start().unwrap();
    let api = Backend::start_with(&redis.url(), &["--database-pool-size", "3"]).await.unwrap();
    let admin = api.admin_token().await;
    let (status, items) = admin_json(&api, &admin, "GET", "/admin/api/checklist", None).await;
    assert_eq!(status, 200);
    let items = items.as_array().unwrap().clone();
    assert_eq!(items.len(), 20);
    let item = |items: &[Value], id: &str| items.iter().find(|i| i["id"] == id).unwrap().clone();
    // The seed's twenty items, in its order, under its names.
    let titles: Vec<&str> = items.iter().map(|i| i["title_zh"].as_str().unwrap()).collect();
    assert_eq!(&titles[..4], ["Redis 集群部署（主从+哨兵）", "MySQL 读写分离", "CDN 静态资源加速", "负载均衡配置"]);
    assert_eq!(titles[19], "限流熔断");
    // One test redis-server with AOF: persistent, but nobody replaces it.
    let redis = item(&items, "infra.redis_cluster");
    assert_eq!(redis["status"], "warning", "{redis}");
    let evidence = redis["evidence"].as_str().unwrap();
    assert!(evidence.contains("single redis:// server"), "{redis}");
    assert!(evidence.contains("aof_enabled:1"), "{redis}");
    let pools = item(&items, "code.connection_pools");
    assert_eq!(pools["status"], "ok", "{pools}");
    assert!(pools["evidence"].as_str().unwrap().contains("pool of 3 ("), "the setting, and its use now: {pools}");
    assert_eq!(item(&items, "infra.mysql_rw_split")["status"], "warning", "SQLite has no replica");
    // This backend beats; no edge has synced with it.
    let balancing = item(&items, "infra.load_balancing");
    assert_eq!(balancing["status"], "failing", "{balancing}");
    assert!(balancing["evidence"].as_str().unwrap().contains("backends alive: 1"), "{balancing}");
    let sql = item(&items, "code.sql");
    assert_eq!(sql["status"], "ok", "{sql}");
    assert!(sql["evidence"].as_str().unwrap().contains("all 7 hot queries answered from an index"), "{sql}");
    assert_eq!(item(&items, "dr.failover")["status"], "manual");

    let tick = |id: &str, note: &str| json!({"id": id, "ticked": true, "note": note});
    let (status, _) =
        admin_json(&api, &admin, "PUT", "/admin/api/checklist", Some(tick("infra.redis_cluster", "x"))).await;
    assert_eq!(status, 400, "probed items are not ticked by hand");
    let (status, _) = admin_json(&api, &admin, "PUT", "/admin/api/checklist", Some(tick("dr.failover", " "))).await;
    assert_eq!(status, 400, "a tick needs a note");
    let (status, items) = admin_json(
        &api,
        &admin,
        "PUT",
        "/admin/api/checklist",
        Some(tick("dr.failover", "drill 2026-11-20: sentinel failover in 3 s")),
    )
    .await;
    assert_eq!(status, 200);
    let drill = item(items.as_array().unwrap(), "dr.failover");
    assert_eq!(
        (drill["status"].as_str(), drill["evidence"].as_str()),
        (Some("ok"), Some("drill 2026-11-20: sentinel failover in 3 s"))
    );
    assert!(drill["ticked_at"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_shows_sales_as_they_happen() {
    let redis = RedisServer::start().unwrap();
    let api = Backend::start(&redis.url()).await.unwrap();
    let admin = api.admin_token().await;
    let a = api.create_activity(ActivitySpec::live(5, 2)).await;
    let unauthorized = api.http.get(api.url("/admin/api/events")).send().await.unwrap();
    assert_eq!(unauthorized.status(), 401);
    let mut res = api.http.get(api.url("/admin/api/events")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut buffer = String::new();
    let mut next_snapshot = async || -> Value {
        loop {
            if let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) {
                    return serde_json::from_str(data).unwrap();
                }
                continue;
            }
            let chunk = res.chunk().await.unwrap().expect("the stream stays open");
            buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    };
    let first = next_snapshot().await;
    assert_eq!(first["activities"][0]["sold"], 0);
    api.buy(a, "bea", 2).await;
    // Snapshots come about once a second: the sale shows within a few of them.
    let mut seen = None;
    for _ in 0..15 {
        let snap = next_snapshot().await;
        if snap["activities"][0]["sold"] == 2 {
            seen = Some(snap["activities"][0].clone());
            break;
        }
    }
    let sold = seen.expect("no snapshot showed the sale");
    assert_eq!(sold["remaining"], 3);
    assert!(sold["purchases_per_sec"].as_f64().unwrap() >= 0.0);
}

/// Purchases and refusals by code in a series answer: `(purchases, {code: count})`.
fn series_totals(series: &Value) -> (u64, std::collections::BTreeMap<String, u64>) {
    let mut refused = std::collections::BTreeMap::new();
    let mut purchases = 0;
    for bucket in series["buckets"].as_array().unwrap() {
        purchases += bucket["purchases"].as_u64().unwrap();
        for r in bucket["rejections"].as_array().unwrap() {
            *refused.entry(r["code"].as_str().unwrap().to_owned()).or_default() += r["count"].as_u64().unwrap();
        }
    }
    (purchases, refused)
}

#[tokio::test]
async fn the_series_holds_the_recent_purchases_and_refusals_per_second() {
    let redis = RedisServer::start().unwrap();
    let api = Backend::start(&redis.url()).await.unwrap();
    let admin = api.admin_token().await;
    let a = api.create_activity(ActivitySpec::live(3, 1)).await;
    let other = api.create_activity(ActivitySpec::live(5, 1)).await;
    for user in ["s1", "s2", "s3"] {
        api.buy(a, user, 1).await;
    }
    api.buy(other, "s1", 1).await;
    // Refusals, counted by the code each answer carried.
    let mut refused = std::collections::BTreeMap::<String, u64>::new();
    for user in ["late-1", "late-2"] {
        let (status, body) = api.token(a, user).await;
        assert_eq!(status, 409, "{body}");
        *refused.entry(body["code"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    let (status, body) = api.purchase(a, "late-3", &"0".repeat(32), json!(1)).await;
    assert!(status >= 400, "{body}");
    *refused.entry(body["code"].as_str().unwrap().to_owned()).or_default() += 1;

    // The second in progress is left out: the counts show once it is over.
    let path = format!("/admin/api/activities/{a}/series");
    let (api_ref, admin_ref) = (&api, &admin);
    let series = eventually(Duration::from_secs(5), "the series to hold every sale and refusal", || {
        let (path, refused) = (path.clone(), refused.clone());
        async move {
            let (status, series) = admin_json(api_ref, admin_ref, "GET", &path, None).await;
            assert_eq!(status, 200, "{series}");
            (series_totals(&series) == (3, refused)).then_some(series)
        }
    })
    .await;
    assert_eq!((series["activity_id"].as_u64(), series["bucket_secs"].as_u64()), (Some(a), Some(1)));
    let (since, until) = (series["since"].as_str().unwrap(), series["until"].as_str().unwrap());
    let times: Vec<&str> = series["buckets"].as_array().unwrap().iter().map(|b| b["at"].as_str().unwrap()).collect();
    let parse = |t: &str| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).unwrap();
    assert!(times.windows(2).all(|w| parse(w[0]) < parse(w[1])), "oldest first, one bucket a second: {times:?}");
    assert!(times.iter().all(|t| parse(since) <= parse(t) && parse(t) < parse(until)), "{series}");
    let sold: Vec<i64> = series["buckets"].as_array().unwrap().iter().filter_map(|b| b["sold"].as_i64()).collect();
    assert_eq!(sold.last(), Some(&3), "the sales curve ends at the activity's sold count: {series}");
    assert!(sold.windows(2).all(|w| w[0] <= w[1]), "sold never falls without a release: {sold:?}");
    let (_, other_series) =
        admin_json(&api, &admin, "GET", &format!("/admin/api/activities/{other}/series"), None).await;
    assert_eq!(series_totals(&other_series).0, 1, "each activity counts its own: {other_series}");

    let (status, body) = admin_json(&api, &admin, "GET", "/admin/api/activities/999999/series", None).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")), "{body}");
    let (status, body) = admin_json(&api, &admin, "GET", "/admin/api/activities/nope/series", None).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")), "{body}");
    let res = api.http.get(api.url(&path)).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "unauthorized");
}

#[tokio::test]
async fn ui_assets_are_hashed_and_immutable_and_routes_fall_back_to_the_page() {
    let redis = RedisServer::start().unwrap();
    let dir = TempDir::new("ui");
    std::fs::write(dir.0.join("index.html"), "<!doctype html><title>seckill</title>").unwrap();
    std::fs::write(dir.0.join("app-0123abcd.js"), "export default 1").unwrap();
    let ui_dir = dir.0.display().to_string();
    let api = Backend::start_with(&redis.url(), &["--admin-ui-dir", &ui_dir]).await.unwrap();
    let get = |path: &'static str| api.http.get(api.url(path)).send();
    let page = get("/admin/").await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["cache-control"], "no-cache");
    let asset = get("/admin/app-0123abcd.js").await.unwrap();
    assert_eq!(asset.headers()["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(asset.headers()["content-type"], "text/javascript; charset=utf-8");
    let route = get("/admin/orders").await.unwrap();
    assert_eq!((route.status().as_u16(), route.text().await.unwrap().contains("<title>seckill")), (200, true));
    assert_eq!(get("/admin/missing.js").await.unwrap().status(), 404);
}

/// A CPU profile of the live backend, in pprof's protobuf, for admins only,
/// one at a time, of a bounded length.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_takes_a_cpu_profile_of_the_live_backend() {
    let redis = RedisServer::start().unwrap();
    let api = Backend::start(&redis.url()).await.unwrap();
    let admin = api.admin_token().await;
    let profile = |query: &str, bearer: Option<&str>| {
        let req = api.http.get(api.url(&format!("/admin/api/profile{query}")));
        match bearer {
            Some(b) => req.bearer_auth(b).send(),
            None => req.send(),
        }
    };
    assert_eq!(profile("?seconds=1", None).await.unwrap().status(), 401);
    for bad in ["?seconds=0", "?seconds=61", "?seconds=x", "?minutes=1"] {
        assert_eq!(profile(bad, Some(&admin)).await.unwrap().status(), 400, "{bad}");
    }
    // Work to sample for as long as the profile runs.
    let a = api.create_activity(ActivitySpec::live(100_000, 1)).await;
    let (http, url) = (api.http.clone(), api.url(&format!("/api/activities/{a}/token")));
    let load = tokio::spawn(async move {
        for i in 0.. {
            let _ = http.post(&url).bearer_auth(seckill_tests::jwt(&format!("profiled-{i}"))).send().await;
        }
    });
    // Two at once: one profiles, the other is told to come back.
    let (one, other) = tokio::join!(profile("?seconds=2", Some(&admin)), profile("?seconds=2", Some(&admin)));
    load.abort();
    let (one, other) = (one.unwrap(), other.unwrap());
    let (taken, refused) = if one.status() == 200 { (one, other) } else { (other, one) };
    assert_eq!(refused.status(), 429, "one profile at a time");
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(taken.status(), 200);
    assert_eq!(taken.headers()["content-type"], "application/octet-stream");
    let body = taken.bytes().await.unwrap();
    // A pprof Profile message: field 1 (sample_type) first, and the function names in its string table.
    assert_eq!(body[0], 0x0a, "a protobuf Profile");
    assert!(body.windows(b"seckill".len()).any(|w| w == b"seckill"), "our own frames are in it");
}

/// The bench scripts' last kept summaries, for the checklist and the dashboard.
#[tokio::test]
async fn the_last_benchmark_results_are_shown_with_their_verdicts() {
    let redis = RedisServer::start().unwrap();
    let dir = TempDir::new("bench");
    let summary = "# compare\n| (c) | 20,083 |\nPASS (c) beats (b)\nFAIL (c) p99 under 10 ms\nnot a verdict\n";
    std::fs::write(dir.0.join("compare-latest.md"), summary).unwrap();
    std::fs::write(dir.0.join("notes.txt"), "not a summary").unwrap();
    let bench_dir = dir.0.display().to_string();
    let api = Backend::start_with(&redis.url(), &["--bench-dir", &bench_dir]).await.unwrap();
    let admin = api.admin_token().await;
    let (status, results) = admin_json(&api, &admin, "GET", "/admin/api/benchmarks", None).await;
    assert_eq!(status, 200);
    let results = results.as_array().unwrap();
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0]["name"], "compare");
    assert_eq!(results[0]["verdicts"], json!(["PASS (c) beats (b)", "FAIL (c) p99 under 10 ms"]));
    assert_eq!(results[0]["summary"], summary);
    let (_, items) = admin_json(&api, &admin, "GET", "/admin/api/checklist", None).await;
    let item = items.as_array().unwrap().iter().find(|i| i["id"] == "monitoring.profiling").unwrap().clone();
    assert!(item["evidence"].as_str().unwrap().contains("compare 0 h ago (2 goals, 1 failed)"), "{item}");
}
