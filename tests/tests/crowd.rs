//! A short flash-sale crowd (`seckill-load --crowd`) through each edge host:
//! honest and eager buyers, page refreshers, bots, blacklisted users and
//! forged JWTs, every client from an address of its own, 20,000 requests
//! against 200 units. The tool's own checks must all pass (exactly the stock
//! sold, nobody past the limit, no blacklisted or forged purchase, every 202
//! an order row, `inventory + sold == total`), and the edge must have been
//! the one turning the bots and the forged JWTs away.

use std::process::Command;

use seckill_tests::edge::{EdgeHost, RunningEdge};
use seckill_tests::{ADMIN_PASSWORD, Backend, JWT_SECRET, RedisServer, filter_config, load_binary, run_load};
use serde_json::Value;

const STOCK: u64 = 200;
const REQUESTS: u64 = 20_000;

async fn crowd_through(host: EdgeHost) {
    let redis = RedisServer::start().unwrap();
    let backend = Backend::start(&redis.url()).await.unwrap();
    let edge = RunningEdge::start(host, &[backend.addr], filter_config(backend.addr, "crowd", 200));
    let args = [
        "--crowd".to_owned(),
        format!("--url={}", edge.url("")),
        format!("--admin-url={}", backend.url("")),
        format!("--database-url={}", backend.database_url),
        "--buyers=2000".to_owned(),
        format!("--stock={STOCK}"),
        "--refreshers=400".to_owned(),
        "--bots=2".to_owned(),
        "--bot-connections=2".to_owned(),
        format!("--requests={REQUESTS}"),
        "--connections=32".to_owned(),
        "--rows-deadline=60".to_owned(),
        "--json".to_owned(),
    ];
    let output = run_load(args.to_vec()).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let context = format!("{host:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}");
    assert!(output.status.success(), "the crowd failed its checks: {context}");
    assert_eq!(stdout.matches(": OK").count(), 5, "five checks, all OK: {context}");
    assert!(stderr.contains("req/s"), "a live progress line: {context}");

    let line = stdout.lines().find_map(|l| serde_json::from_str::<Value>(l).ok()).expect("the --json line");
    let crowd = &line["crowd"];
    assert_eq!((crowd["sold"].as_u64(), crowd["stock"].as_u64()), (Some(STOCK), Some(STOCK)), "{context}");
    assert!(crowd["requests"].as_u64().unwrap() >= REQUESTS, "{context}");
    let class = |name: &str| crowd["classes"].as_array().unwrap().iter().find(|c| c["class"] == name).unwrap().clone();
    // The bots hammer from one address each: the edge's per-IP limit turns most of them away.
    let bots = class("bot");
    assert!(bots["by_edge"].as_u64().unwrap() * 2 > bots["requests"].as_u64().unwrap(), "{context}");
    // Forged JWTs never reach the backend: the filter checks signatures and expiry.
    let forged = class("forged");
    assert_eq!(forged["bought"], 0);
    assert_eq!(forged["by_edge"], forged["requests"], "{context}");
    // The crowd starts once every worker of the edge refuses the blacklist by itself.
    let blacklisted = class("blacklisted");
    assert_eq!(blacklisted["bought"], 0);
    assert_eq!(blacklisted["by_edge"], blacklisted["requests"], "{context}");
    assert!(crowd["rows_trail_s"].as_f64().is_some(), "{context}");
    println!("{context}");
    drop(edge);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_through_seckill_edge_buys_exactly_the_stock() {
    crowd_through(EdgeHost::SeckillEdge).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_through_envoy_buys_exactly_the_stock() {
    crowd_through(EdgeHost::Envoy).await;
}

/// Ctrl-C in the middle of a crowd stops it and takes the run's blacklist
/// entries off again: an interrupted run leaves no buyer blacklisted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_crowd_leaves_the_blacklist_as_it_was() {
    use std::io::{BufRead, BufReader};
    let redis = RedisServer::start().unwrap();
    let backend = Backend::start(&redis.url()).await.unwrap();
    let edge = RunningEdge::start(EdgeHost::SeckillEdge, &[backend.addr], filter_config(backend.addr, "crowd", 200));
    let mut child = Command::new(load_binary())
        .args([
            "--crowd",
            &format!("--url={}", edge.url("")),
            &format!("--admin-url={}", backend.url("")),
            "--buyers=2000",
            "--mix=honest=1,blacklisted=1",
            // More than it can send before it is stopped.
            "--requests=100000000",
            "--connections=8",
        ])
        .env("SECKILL_JWT_SECRET", JWT_SECRET)
        .env("SECKILL_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (pid, status, seen) = tokio::task::spawn_blocking(move || {
        // The first progress line: the crowd is running, the blacklist filled.
        let mut lines = BufReader::new(stderr).lines();
        let mut seen = Vec::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            let running = line.starts_with("crowd ");
            seen.push(line);
            if running {
                break;
            }
        }
        seckill_tests::send_signal(child.id(), "-INT");
        seen.extend(lines.map_while(Result::ok));
        (child.id(), child.wait().unwrap(), seen)
    })
    .await
    .unwrap();
    assert_eq!(status.code(), Some(130), "pid {pid}: {seen:#?}");
    assert!(seen.iter().any(|l| l.contains("interrupted")), "{seen:#?}");
    let admin = backend.admin_token().await;
    let (code, users) = backend.get("/admin/api/blacklist/users", &admin).await;
    assert_eq!(code, 200);
    assert_eq!(users["items"], serde_json::json!([]), "{users}");
    let (_, ips) = backend.get("/admin/api/blacklist/ips", &admin).await;
    assert_eq!(ips["items"], serde_json::json!([]), "{ips}");
}
