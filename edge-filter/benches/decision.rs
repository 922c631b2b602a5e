//! The pure decision for an allowed request: header parsing, client IP,
//! blacklist lookups, in-flight counters, JWT verification, route matching and
//! four buckets charged in an in-memory store, then the in-flight slot released.

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{Criterion, criterion_group, criterion_main};
use seckill_api::buyer_jwt;
use seckill_edge_filter::config::Config;
use seckill_edge_filter::decision::Verdict;
use seckill_edge_filter::engine::Engine;
use seckill_edge_filter::store::MemoryStore;

const NOW_US: u64 = 1_800_000_000_000_000;

fn engine() -> Engine {
    // Generous limits so that every iteration is admitted.
    let config = serde_json::json!({
        "backend_cluster": "backend", "edge_secret": "edge", "jwt_secret": "secret",
        "defaults": {
            "per_ip": {"rate_per_sec": 1_000_000, "burst": 1_000_000},
            "per_user": {"rate_per_sec": 1_000_000, "burst": 1_000_000},
            "routes": [
                {"name": "token", "method": "POST", "path": "/api/activities/*/token",
                 "per_ip": {"rate_per_sec": 1_000_000, "burst": 1_000_000},
                 "per_user": {"rate_per_sec": 1_000_000, "burst": 1_000_000}},
                {"name": "purchase", "method": "POST", "path": "/api/activities/*/purchase",
                 "per_ip": {"rate_per_sec": 1_000_000, "burst": 1_000_000}, "per_user": null}
            ],
            "max_in_flight_per_ip": 10, "max_in_flight_total": 1000
        }
    });
    Engine::new(Config::from_json(config.to_string().as_bytes()).unwrap())
}

fn bench(c: &mut Criterion) {
    let store = MemoryStore::new();
    let mut engine = engine();
    let token = format!("Bearer {}", buyer_jwt::mint("secret", "alice", (NOW_US / 1_000_000) as i64 + 3600));
    let headers: Vec<(String, Vec<u8>)> = vec![
        (":method".into(), b"POST".to_vec()),
        (":path".into(), b"/api/activities/42/token".to_vec()),
        (":authority".into(), b"shop.example".to_vec()),
        ("user-agent".into(), b"loadgen/1".to_vec()),
        ("content-type".into(), b"application/json".to_vec()),
        ("authorization".into(), token.into_bytes()),
    ];
    let peer: IpAddr = "198.51.100.7".parse().unwrap();
    let mut now = NOW_US;
    c.bench_function("decide_allowed_token_request", |b| {
        b.iter(|| {
            now += 1;
            match engine.decide(&store, black_box(&headers), Some(peer), now) {
                Verdict::Allow(a) => {
                    Engine::release(&store, a.lease);
                }
                Verdict::Reject(r) => panic!("refused: {r:?}"),
            }
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
