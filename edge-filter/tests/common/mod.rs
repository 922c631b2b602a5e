#![allow(dead_code)]

use std::net::IpAddr;

use seckill_api::{EdgeRules, EdgeState, ErrorBody, ErrorCode, buyer_jwt};
use seckill_edge_filter::config::Config;
use seckill_edge_filter::decision::{Admission, LocalReply, Verdict};
use seckill_edge_filter::engine::Engine;
use seckill_edge_filter::state::Snapshot;
use seckill_edge_filter::store::MemoryStore;
use seckill_edge_filter::sync;
use serde_json::{Value, json};

pub const JWT_SECRET: &str = "jwt-secret";
pub const T0: u64 = 1_800_000_000_000_000;
pub const MS: u64 = 1_000;
pub const SEC: u64 = 1_000_000;

pub fn config(patch: Value) -> Config {
    let mut v = json!({"backend_cluster": "seckill_backend", "edge_secret": "edge-secret", "jwt_secret": JWT_SECRET});
    for (k, val) in patch.as_object().unwrap() {
        v[k] = val.clone();
    }
    Config::from_json(v.to_string().as_bytes()).unwrap()
}

pub fn engine(patch: Value) -> Engine {
    Engine::new(config(patch))
}

pub type Headers = Vec<(String, Vec<u8>)>;

pub fn req(method: &str, path: &str) -> Headers {
    vec![
        (":method".into(), method.as_bytes().to_vec()),
        (":path".into(), path.as_bytes().to_vec()),
        (":authority".into(), b"edge.test".to_vec()),
    ]
}

pub fn with(mut h: Headers, name: &str, value: impl AsRef<[u8]>) -> Headers {
    h.push((name.into(), value.as_ref().to_vec()));
    h
}

pub fn bearer(user: &str, now_us: u64) -> String {
    format!("Bearer {}", buyer_jwt::mint(JWT_SECRET, user, (now_us / SEC) as i64 + 600))
}

pub fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

pub fn admitted(v: Verdict) -> Admission {
    match v {
        Verdict::Allow(a) => a,
        Verdict::Reject(r) => panic!("refused: {r:?}"),
    }
}

pub fn refused(v: Verdict) -> LocalReply {
    match v {
        Verdict::Allow(a) => panic!("admitted: {a:?}"),
        Verdict::Reject(r) => {
            // Every refusal is the contract's JSON error with the matching status.
            let body: ErrorBody = serde_json::from_slice(&r.body()).unwrap();
            assert_eq!(body.code, r.code);
            assert_eq!(body.message, r.message);
            assert_eq!(r.status(), r.code.http_status());
            assert!(r.headers().contains(&("content-type", "application/json".into())));
            r
        }
    }
}

/// Admits (and releases at once) or returns the refusal's code.
pub fn run(
    engine: &mut Engine,
    store: &MemoryStore,
    h: &Headers,
    peer: Option<IpAddr>,
    now: u64,
) -> Result<(), ErrorCode> {
    match engine.decide(store, h, peer, now) {
        Verdict::Allow(a) => {
            assert!(Engine::release(store, a.lease));
            Ok(())
        }
        Verdict::Reject(r) => Err(r.code),
    }
}

pub fn state(version: &str) -> EdgeState {
    EdgeState {
        version: version.into(),
        rules_version: 1,
        rules: EdgeRules::default(),
        blacklist_users: vec![],
        blacklist_ips: vec![],
        sold_out: vec![],
        not_started: vec![],
        ended: vec![],
        degraded: false,
    }
}

/// Stores `state` as a successful sync would, and lets `engine` see it.
pub fn push_state(store: &MemoryStore, engine: &mut Engine, state: &EdgeState, now: u64) {
    let body = serde_json::to_vec(state).unwrap();
    let current: Snapshot = engine.current().clone();
    let outcome = sync::handle_response(store, &current, Some(200), Some(&body), now);
    assert!(matches!(outcome, sync::SyncOutcome::Updated { .. }), "{outcome:?}");
    engine.refresh(store);
}
