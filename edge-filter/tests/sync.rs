//! The state sync protocol against an in-memory shared store: one claimer per
//! period, 200 / 304 / failures, and what every worker VM then sees.

mod common;

use common::*;
use seckill_api::{EdgeState, ErrorCode, RateRule};
use seckill_edge_filter::state::{STATE_GEN_KEY, STATE_KEY};
use seckill_edge_filter::store::MemoryStore;
use seckill_edge_filter::sync::{self, SyncOutcome, read_record, request_headers, try_claim};
use serde_json::json;

#[test]
fn one_vm_claims_each_period() {
    let store = MemoryStore::new();
    let period = 1000 * MS;
    assert!(try_claim(&store, T0, period));
    // Other VMs ticking in the same period do not send a second request.
    assert!(!try_claim(&store, T0 + 10 * MS, period));
    assert!(!try_claim(&store, T0 + 899 * MS, period));
    // A tick a period later claims again (90 % of a period is enough, so that
    // ticks of different VMs never push a sync past one period).
    assert!(try_claim(&store, T0 + 900 * MS, period));
    assert!(!try_claim(&store, T0 + 1000 * MS, period));
    assert!(try_claim(&store, T0 + 1900 * MS, period));
}

#[test]
fn the_request_carries_the_secret_the_id_and_the_version() {
    let c = config(json!({"edge_id": "edge-7", "backend_authority": "backend:8081"}));
    let h = request_headers(&c, None);
    let get = |name: &str| h.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone());
    assert_eq!(get(":method").as_deref(), Some("GET"));
    assert_eq!(get(":path").as_deref(), Some("/internal/edge/state"));
    assert_eq!(get(":authority").as_deref(), Some("backend:8081"));
    assert_eq!(get("x-seckill-edge-secret").as_deref(), Some("edge-secret"));
    assert_eq!(get("x-seckill-edge-id").as_deref(), Some("edge-7"));
    assert_eq!(get("if-none-match"), None);
    let h = request_headers(&c, Some("abc123"));
    assert!(h.contains(&("if-none-match", "\"abc123\"".into())));
}

#[test]
fn a_new_state_is_stored_once_and_every_vm_sees_it() {
    let store = MemoryStore::new();
    let mut a = engine(json!({}));
    let mut b = engine(json!({}));
    let mut st = state("v1");
    st.sold_out = vec![9];
    let body = serde_json::to_vec(&st).unwrap();
    let out = sync::handle_response(&store, a.current(), Some(200), Some(&body), T0);
    assert!(matches!(&out, SyncOutcome::Updated { version, .. } if version == "v1"), "{out:?}");
    assert_eq!(out.metric_name(), "seckill_edge_sync_updated");
    let stored: EdgeState = serde_json::from_slice(&store.raw(STATE_KEY).unwrap()).unwrap();
    assert_eq!(stored, st);
    let (record, _) = read_record(&store);
    assert_eq!(record.version.as_deref(), Some("v1"));
    assert_eq!(record.last_ok_us, Some(T0));
    assert_eq!(record.last_change_us, Some(T0));

    for e in [&mut a, &mut b] {
        e.refresh(&store);
        assert_eq!(e.current().version.as_deref(), Some("v1"));
        assert!(e.has_state());
    }
    let h = with(req("POST", "/api/activities/9/token"), "authorization", bearer("alice", T0));
    assert_eq!(run(&mut b, &store, &h, ip("192.0.2.1"), T0), Err(ErrorCode::SoldOut));

    // The same version again (a backend that ignored if-none-match) is not rewritten.
    let marker = store.raw(STATE_GEN_KEY);
    let again = sync::handle_response(&store, a.current(), Some(200), Some(&body), T0 + 1);
    assert_eq!(again, SyncOutcome::NotModified);
    assert_eq!(store.raw(STATE_GEN_KEY), marker);
}

#[test]
fn not_modified_keeps_the_state_and_records_the_success() {
    let store = MemoryStore::new();
    let mut e = engine(json!({}));
    push_state(&store, &mut e, &state("v1"), T0);
    let out = sync::handle_response(&store, e.current(), Some(304), None, T0 + SEC);
    assert_eq!(out, SyncOutcome::NotModified);
    assert_eq!(read_record(&store).0.last_ok_us, Some(T0 + SEC));
    assert_eq!(read_record(&store).0.last_change_us, Some(T0));
}

#[test]
fn failures_keep_the_last_state() {
    let store = MemoryStore::new();
    let mut e = engine(json!({"fail_open": false}));
    let mut st = state("v1");
    st.blacklist_users = vec!["mallory".into()];
    push_state(&store, &mut e, &st, T0);
    for (i, (status, body)) in [
        (None, None),
        (Some(503), None),
        (Some(401), None),
        (Some(200), Some(&b"<html>oops</html>"[..])),
        (Some(200), Some(&br#"{"version": ""}"#[..])),
    ]
    .into_iter()
    .enumerate()
    {
        let out = sync::handle_response(&store, e.current(), status, body, T0 + i as u64);
        assert!(matches!(out, SyncOutcome::Failed(_) | SyncOutcome::Invalid(_)), "{out:?}");
        e.refresh(&store);
        assert_eq!(e.current().version.as_deref(), Some("v1"));
    }
    let (record, _) = read_record(&store);
    assert_eq!(record.consecutive_failures, 5);
    assert!(record.last_error.is_some());
    assert_eq!(record.last_ok_us, Some(T0));
    // Still enforcing the last state, fail-closed or not.
    let m = with(req("GET", "/api/me/orders"), "authorization", bearer("mallory", T0));
    assert_eq!(run(&mut e, &store, &m, ip("192.0.2.1"), T0 + SEC), Err(ErrorCode::Blacklisted));
    // A success clears the failure streak.
    sync::handle_response(&store, e.current(), Some(304), None, T0 + 2 * SEC);
    assert_eq!(read_record(&store).0.consecutive_failures, 0);
}

#[test]
fn bad_rules_from_the_backend_do_not_freeze_the_lists() {
    let store = MemoryStore::new();
    let mut e = engine(json!({}));
    let mut good = state("v1");
    good.rules.per_ip = RateRule { rate_per_sec: 3.0, burst: 1 };
    push_state(&store, &mut e, &good, T0);
    let mut bad = state("v2");
    bad.rules.per_ip = RateRule { rate_per_sec: f64::MAX, burst: 1 };
    bad.sold_out = vec![5];
    let out = sync::handle_response(&store, e.current(), Some(200), Some(&serde_json::to_vec(&bad).unwrap()), T0 + 1);
    let SyncOutcome::Updated { version, repairs } = out else { panic!("{out:?}") };
    assert_eq!(version, "v2");
    assert_eq!(repairs.rules_refused.unwrap().field, "rules.per_ip.rate_per_sec");
    e.refresh(&store);
    assert!(e.current().sold_out.contains(&5));
    assert_eq!(e.current().rules.per_ip.rate_per_sec(), 3.0, "the last good rules stay");
}

#[test]
fn a_vm_that_starts_late_reads_the_stored_state() {
    let store = MemoryStore::new();
    let mut first = engine(json!({}));
    push_state(&store, &mut first, &state("v3"), T0);
    let mut late = engine(json!({"fail_open": false}));
    late.refresh(&store);
    assert_eq!(late.current().version.as_deref(), Some("v3"));
    assert_eq!(run(&mut late, &store, &req("GET", "/api/activities"), ip("192.0.2.1"), T0), Ok(()));
}

#[test]
fn a_send_failure_is_recorded() {
    let store = MemoryStore::new();
    let out = sync::record_failure(&store, T0, "dispatch_http_call to cluster `x` failed: BadArgument");
    assert_eq!(out.metric_name(), "seckill_edge_sync_failed");
    assert_eq!(read_record(&store).0.consecutive_failures, 1);
}

/// A state shared memory cannot hold is not applied and not reported as
/// applied: the failure is recorded, every VM keeps (and asks again with)
/// the version it had.
#[test]
fn a_state_that_cannot_be_stored_is_not_reported_as_applied() {
    let store = MemoryStore::with_budget(4_000);
    let mut e = engine(json!({}));
    push_state(&store, &mut e, &state("v1"), T0);
    let mut big = state("v2");
    big.blacklist_users = (0..500).map(|i| format!("user-{i}")).collect();
    let body = serde_json::to_vec(&big).unwrap();
    let out = sync::handle_response(&store, e.current(), Some(200), Some(&body), T0 + SEC);
    assert!(matches!(&out, SyncOutcome::Failed(why) if why.contains("shared data is full")), "{out:?}");
    e.refresh(&store);
    assert_eq!(e.current().version.as_deref(), Some("v1"));
    let (record, _) = read_record(&store);
    assert_eq!(record.version.as_deref(), Some("v1"));
    assert_eq!(record.last_failure_us, Some(T0 + SEC));
    let c = config(json!({}));
    assert!(request_headers(&c, e.current().version.as_deref()).contains(&("if-none-match", "\"v1\"".into())));
}
