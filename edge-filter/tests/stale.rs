//! A state the backend stops confirming: past `state_max_age_ms` its activity
//! lists no longer answer token and purchase requests (they go to the
//! backend, which decides with fresh data), while its rules, blacklist and
//! limits keep applying; a sync that is stored or confirmed makes it fresh.

mod common;

use common::*;
use seckill_api::{EdgeState, ErrorCode, RateRule};
use seckill_edge_filter::decision::DecisionKind;
use seckill_edge_filter::engine::Engine;
use seckill_edge_filter::store::MemoryStore;
use seckill_edge_filter::sync::{self, SyncOutcome, Turn, check_freshness, is_stale, read_record};
use serde_json::json;

/// The default maximum age: 10 × the default `sync_period_ms` (1000).
const MAX_AGE: u64 = 10 * SEC;

fn listed(version: &str) -> EdgeState {
    let mut st = state(version);
    st.not_started = vec![7];
    st.sold_out = vec![8];
    st.ended = vec![9];
    st.blacklist_users = vec!["mallory".into()];
    st.blacklist_ips = vec!["203.0.113.66".into()];
    // The state's own limits, tighter than the defaults, so that the test
    // sees them (not the defaults) still applied once it is stale.
    st.rules.max_in_flight_per_ip = 3;
    st.rules.routes[0].per_user = Some(RateRule { rate_per_sec: 1.0, burst: 1 });
    st
}

fn buy(action: &str, id: u64, user: &str) -> Headers {
    with(req("POST", &format!("/api/activities/{id}/{action}")), "authorization", bearer(user, T0))
}

/// The backend fails every sync, one a second, in `from..=to`.
fn backend_down(store: &MemoryStore, syncer: &Engine, from: u64, to: u64) {
    for (i, at) in (from..=to).step_by(SEC as usize).enumerate() {
        let status = if i % 2 == 0 { None } else { Some(503) };
        let out = sync::handle_response(store, syncer.current(), status, None, at);
        assert!(matches!(out, SyncOutcome::Failed(_)), "{out:?}");
    }
}

#[test]
fn past_its_max_age_a_state_lets_listed_activities_through_and_a_sync_makes_it_fresh_again() {
    let store = MemoryStore::new();
    // One VM syncs; another judges, from what shared data tells it.
    let mut syncer = engine(json!({}));
    let mut vm = engine(json!({}));
    assert_eq!(vm.config().state_max_age_ms * MS, MAX_AGE);
    push_state(&store, &mut syncer, &listed("v1"), T0);
    let peer = ip("192.0.2.1");

    assert_eq!(run(&mut vm, &store, &buy("token", 7, "alice"), peer, T0 + SEC), Err(ErrorCode::NotStarted));
    backend_down(&store, &syncer, T0 + SEC, T0 + MAX_AGE);
    // Failed syncs do not make a state younger, but up to its max age it answers.
    assert_eq!(run(&mut vm, &store, &buy("token", 7, "alice"), peer, T0 + MAX_AGE), Err(ErrorCode::NotStarted));
    assert!(!vm.is_stale(T0 + MAX_AGE));

    // Past it, the backend decides (e.g. the sale has started since).
    let stale_at = T0 + MAX_AGE + MS;
    assert!(vm.is_stale(stale_at));
    assert_eq!(run(&mut vm, &store, &buy("token", 7, "alice"), peer, stale_at), Ok(()));
    assert_eq!(run(&mut vm, &store, &buy("purchase", 8, "bob"), peer, stale_at), Ok(()));
    assert_eq!(run(&mut vm, &store, &buy("token", 9, "carol"), peer, stale_at), Ok(()));

    // Everything else of the stale state still applies.
    assert_eq!(run(&mut vm, &store, &buy("token", 7, "mallory"), peer, stale_at), Err(ErrorCode::Blacklisted));
    assert_eq!(
        run(&mut vm, &store, &buy("token", 7, "dave"), ip("203.0.113.66"), stale_at),
        Err(ErrorCode::Blacklisted)
    );
    // alice's `token` bucket of the state's rules (1/s, burst 1) holds one more, then refuses.
    assert_eq!(run(&mut vm, &store, &buy("token", 7, "alice"), peer, stale_at), Ok(()));
    let r = refused(vm.decide(&store, &buy("token", 7, "alice"), peer, stale_at));
    assert_eq!(r.kind, DecisionKind::RateLimited, "{r:?}");
    // The state's in-flight limit per IP (3).
    let crowd = ip("198.51.100.9");
    let held: Vec<_> =
        ["e1", "e2", "e3"].iter().map(|u| admitted(vm.decide(&store, &buy("token", 7, u), crowd, stale_at))).collect();
    let r = refused(vm.decide(&store, &buy("token", 7, "e4"), crowd, stale_at));
    assert_eq!(r.kind, DecisionKind::InFlightLimited, "{r:?}");
    for a in held {
        assert!(Engine::release(&store, a.lease));
    }

    // The backend is back: its 304 confirms the state, which answers again
    // (on the other VM too, whose marker did not change).
    let back_at = T0 + MAX_AGE + 2 * SEC;
    assert_eq!(sync::handle_response(&store, syncer.current(), Some(304), None, back_at), SyncOutcome::NotModified);
    assert_eq!(run(&mut vm, &store, &buy("token", 7, "frank"), peer, back_at + 20 * MS), Err(ErrorCode::NotStarted));
    assert!(!vm.is_stale(back_at + 20 * MS));
}

#[test]
fn only_a_sync_that_is_stored_or_confirms_the_state_makes_it_fresh() {
    // Room for a small state, not for a large one.
    let store = MemoryStore::with_budget(4_000);
    let mut e = engine(json!({}));
    push_state(&store, &mut e, &listed("v1"), T0);
    let peer = ip("192.0.2.1");
    let late = T0 + MAX_AGE + SEC;

    let mut big = listed("v2");
    big.blacklist_users = (0..500).map(|i| format!("user-{i}")).collect();
    let big = serde_json::to_vec(&big).unwrap();
    for (status, body) in [(Some(503), None), (Some(200), Some(&b"<html>oops</html>"[..])), (Some(200), Some(&big[..]))]
    {
        let out = sync::handle_response(&store, e.current(), status, body, late);
        assert!(matches!(out, SyncOutcome::Failed(_) | SyncOutcome::Invalid(_)), "{out:?}");
    }
    assert_eq!(read_record(&store).0.last_ok_us, Some(T0));
    assert_eq!(run(&mut e, &store, &buy("token", 7, "alice"), peer, late), Ok(()));

    // A 200 carrying the version held confirms it.
    let again = serde_json::to_vec(&listed("v1")).unwrap();
    let confirmed_at = late + SEC;
    let out = sync::handle_response(&store, e.current(), Some(200), Some(&again), confirmed_at);
    assert_eq!(out, SyncOutcome::NotModified);
    assert_eq!(run(&mut e, &store, &buy("token", 7, "alice"), peer, confirmed_at), Err(ErrorCode::NotStarted));

    // Stale again; then a new state that is stored.
    let late = confirmed_at + MAX_AGE + SEC;
    assert_eq!(run(&mut e, &store, &buy("token", 7, "bob"), peer, late), Ok(()));
    let mut v3 = listed("v3");
    v3.not_started = vec![7, 10];
    let out = sync::handle_response(&store, e.current(), Some(200), Some(&serde_json::to_vec(&v3).unwrap()), late);
    assert!(matches!(&out, SyncOutcome::Updated { version, .. } if version == "v3"), "{out:?}");
    assert_eq!(run(&mut e, &store, &buy("token", 10, "bob"), peer, late + 20 * MS), Err(ErrorCode::NotStarted));
}

#[test]
fn the_defaults_before_any_state_are_never_stale() {
    let store = MemoryStore::new();
    let mut e = engine(json!({}));
    let far = T0 + 100 * MAX_AGE;
    e.refresh(&store);
    assert!(!e.is_stale(far));
    let f = check_freshness(&store, far, MAX_AGE);
    assert_eq!((f.stale, f.turned), (false, None));
}

/// Every VM checks on its tick; the turn is recorded in the sync record by
/// compare-and-swap, so exactly one VM logs each.
#[test]
fn each_turn_is_reported_once_edge_wide() {
    let store = MemoryStore::new();
    let mut e = engine(json!({}));
    push_state(&store, &mut e, &listed("v1"), T0);

    let f = check_freshness(&store, T0 + MAX_AGE, MAX_AGE);
    assert_eq!((f.stale, f.age_us, f.turned), (false, Some(MAX_AGE), None));

    let stale_at = T0 + MAX_AGE + MS;
    let first = check_freshness(&store, stale_at, MAX_AGE);
    assert_eq!((first.stale, first.turned), (true, Some(Turn::Stale)));
    assert_eq!(first.record.version.as_deref(), Some("v1"));
    let other_vm = check_freshness(&store, stale_at + MS, MAX_AGE);
    assert_eq!((other_vm.stale, other_vm.turned), (true, None));
    assert_eq!(read_record(&store).0.stale_since_us, Some(stale_at));

    let back_at = stale_at + 3 * SEC;
    sync::handle_response(&store, e.current(), Some(304), None, back_at);
    let first = check_freshness(&store, back_at, MAX_AGE);
    assert_eq!((first.stale, first.turned), (false, Some(Turn::Fresh { stale_for_us: 3 * SEC })));
    assert_eq!(check_freshness(&store, back_at + MS, MAX_AGE).turned, None);
    assert_eq!(read_record(&store).0.stale_since_us, None);
}

#[test]
fn the_age_counts_from_the_last_confirmation() {
    assert!(!is_stale(Some(T0), T0 + MAX_AGE, MAX_AGE));
    assert!(is_stale(Some(T0), T0 + MAX_AGE + 1, MAX_AGE));
    // A clock that steps back does not make a state stale.
    assert!(!is_stale(Some(T0), T0 - SEC, MAX_AGE));
    assert!(is_stale(None, T0, MAX_AGE));
}
