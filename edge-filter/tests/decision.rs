//! The whole decision, through `Engine` and an in-memory shared store: every
//! check, its order, its answer, and what it leaves in shared data.
//!
//! Longer than 500 lines on purpose: it is the decision's whole spec, one
//! test per check and per ordering between two checks, read top to bottom.

mod common;

use common::*;
use seckill_api::buyer_jwt::{self, sign_hs256};
use seckill_api::{ErrorCode, RateRule, RouteRule};
use seckill_edge_filter::decision::{DecisionKind, EDGE_HEADER, Lease, Verdict};
use seckill_edge_filter::engine::Engine;
use seckill_edge_filter::jwt::Identity;
use seckill_edge_filter::state::INFLIGHT_TOTAL_KEY;
use seckill_edge_filter::store::{MemoryStore, SharedStore};
use serde_json::json;

#[test]
fn nginx_edge_through_the_filter_21_pass_22nd_refused_one_more_after_100_ms() {
    let store = MemoryStore::new();
    let mut e = engine(json!({}));
    let h = req("GET", "/api/activities");
    let peer = ip("198.51.100.7");
    for i in 1..=21 {
        assert_eq!(run(&mut e, &store, &h, peer, T0), Ok(()), "request {i}");
    }
    let r = refused(e.decide(&store, &h, peer, T0));
    assert_eq!(r.code, ErrorCode::RateLimited);
    assert_eq!(r.kind, DecisionKind::RateLimited);
    let headers = r.headers();
    assert!(headers.contains(&("retry-after", "1".into())), "{headers:?}");
    assert!(headers.contains(&("x-ratelimit-limit", "21".into())));
    // Which decision answered, for clients telling the edge's refusals from the backend's.
    assert!(headers.contains(&(EDGE_HEADER, "rate_limited".into())), "{headers:?}");
    assert!(headers.contains(&("x-ratelimit-remaining", "0".into())));
    // Full again after 2.1 s (21 requests at 10 r/s).
    assert!(headers.contains(&("x-ratelimit-reset", "3".into())), "{headers:?}");
    assert!(r.message.contains("per-IP limit of 10 per second with a burst of 20"), "{}", r.message);
    assert_eq!(run(&mut e, &store, &h, peer, T0 + 99 * MS), Err(ErrorCode::RateLimited));
    assert_eq!(run(&mut e, &store, &h, peer, T0 + 100 * MS), Ok(()));
    assert_eq!(run(&mut e, &store, &h, peer, T0 + 100 * MS), Err(ErrorCode::RateLimited));
    // Another client is not affected.
    assert_eq!(run(&mut e, &store, &h, ip("198.51.100.8"), T0), Ok(()));
}

#[test]
fn purchase_and_token_routes_are_tighter_than_reads() {
    let store = MemoryStore::new();
    let mut e = engine(json!({}));
    let peer = ip("198.51.100.7");
    // Defaults: token per IP 5/s burst 10, so 11 at once.
    let token = req("POST", "/api/activities/7/token");
    let passed = (0..30).filter(|_| run(&mut e, &store, &token, peer, T0).is_ok()).count();
    assert_eq!(passed, 11);
    // The purchase route has its own bucket, and the per-IP one still has room.
    let purchase = req("POST", "/api/activities/7/purchase");
    let passed = (0..30).filter(|_| run(&mut e, &store, &purchase, peer, T0).is_ok()).count();
    assert_eq!(passed, 21 - 11, "per-IP 1 + 20 shared by both routes");
}

#[test]
fn per_user_limits_follow_the_user_across_ips() {
    let store = MemoryStore::new();
    let mut e = engine(json!({}));
    let auth = bearer("alice", T0);
    let h = with(req("POST", "/api/activities/7/token"), "authorization", &auth);
    // Token per user: 2/s burst 5 → 6 at once, from six different IPs.
    let passed = (0..12).filter(|i| run(&mut e, &store, &h, ip(&format!("203.0.113.{i}")), T0).is_ok()).count();
    assert_eq!(passed, 6);
    let r = refused(e.decide(&store, &h, ip("203.0.113.99"), T0));
    assert!(r.message.contains("`token` per-user"), "{}", r.message);
    assert!(r.headers().contains(&("x-ratelimit-limit", "6".into())));
    assert_header_map_is_headers(&r);
    let body: seckill_api::ErrorBody = serde_json::from_slice(&r.body()).unwrap();
    assert_eq!((body.code, body.message), (r.code, r.message.clone()));
    // Bob is not alice.
    let bob = with(req("POST", "/api/activities/7/token"), "authorization", bearer("bob", T0));
    assert_eq!(run(&mut e, &store, &bob, ip("203.0.113.99"), T0), Ok(()));
}

#[test]
fn a_refused_request_costs_no_tokens() {
    let store = MemoryStore::new();
    let mut e = engine(json!({}));
    let peer = ip("198.51.100.7");
    let alice = with(req("POST", "/api/activities/7/token"), "authorization", bearer("alice", T0));
    // Exhaust alice's per-user token bucket (6) from this IP…
    for _ in 0..6 {
        run(&mut e, &store, &alice, peer, T0).unwrap();
    }
    // …then 20 more refused attempts: the IP's buckets were not charged for them.
    for _ in 0..20 {
        assert_eq!(run(&mut e, &store, &alice, peer, T0), Err(ErrorCode::RateLimited));
    }
    let anon = req("POST", "/api/activities/7/token");
    let passed = (0..20).filter(|_| run(&mut e, &store, &anon, peer, T0).is_ok()).count();
    assert_eq!(passed, 11 - 6, "the token route per-IP bucket lost only the 6 admitted");
}

#[test]
fn a_spoofed_forwarded_for_does_not_evade_the_limit() {
    let store = MemoryStore::new();
    let mut e = engine(json!({"trusted_proxies": ["127.0.0.1/32"]}));
    let peer = ip("198.51.100.7");
    let passed = (0..40)
        .filter(|i| {
            let h = with(req("GET", "/api/activities"), "x-forwarded-for", format!("10.9.9.{i}"));
            run(&mut e, &store, &h, peer, T0).is_ok()
        })
        .count();
    assert_eq!(passed, 21, "an untrusted peer's header is ignored");
    // Behind the trusted proxy, each forwarded client has its own bucket; what
    // a client put in front of its proxy's entry is ignored.
    let proxy = ip("127.0.0.1");
    for i in 0..40 {
        let h = with(req("GET", "/api/activities"), "x-forwarded-for", format!("6.6.6.6, 10.9.9.{i}"));
        let a = admitted(e.decide(&store, &h, proxy, T0));
        assert_eq!(a.client_ip, format!("10.9.9.{i}"));
        Engine::release(&store, a.lease);
    }
}

#[test]
fn oversized_and_malformed_headers_are_bad_requests() {
    let store = MemoryStore::new();
    let mut e = engine(json!({"max_header_bytes": 1024}));
    let peer = ip("198.51.100.7");
    let big = with(req("GET", "/api/activities"), "cookie", "x".repeat(1100));
    let r = refused(e.decide(&store, &big, peer, T0));
    assert_eq!((r.code, r.status()), (ErrorCode::BadRequest, 400));
    assert!(r.message.starts_with("request headers are too large"), "{}", r.message);

    let cases = [
        (with(req("GET", "/api/me/orders"), "authorization", "Basic dXNlcjpwYXNz"), "Bearer scheme"),
        (with(req("GET", "/api/me/orders"), "authorization", "Bearer"), "Bearer <JWT>"),
        (with(req("GET", "/api/me/orders"), "authorization", "Bearer a b c"), "characters"),
        (
            with(with(req("GET", "/api/me/orders"), "authorization", "Bearer a"), "authorization", "Bearer b"),
            "more than one",
        ),
        (with(req("GET", "/api/me/orders"), "x-note", b"a\x01b"), "control characters"),
        (vec![(":method".to_string(), b"GET".to_vec())], "no path"),
        (req("GET", "api/activities"), "must start with `/`"),
    ];
    for (h, expected) in cases {
        let r = refused(e.decide(&store, &h, peer, T0));
        assert_eq!(r.code, ErrorCode::BadRequest, "{expected}");
        assert!(r.message.contains(expected), "`{}` should mention `{expected}`", r.message);
    }
    assert!(store.live_keys().is_empty(), "refusals leave nothing behind: {:?}", store.live_keys());
}

#[test]
fn jwts_are_verified_at_the_edge() {
    let store = MemoryStore::new();
    let mut e = engine(json!({}));
    let peer = ip("198.51.100.7");
    let path = "/api/me/orders";
    let a = admitted(e.decide(&store, &with(req("GET", path), "authorization", bearer("alice", T0)), peer, T0));
    assert_eq!(a.identity, Some(Identity::User("alice".into())));
    Engine::release(&store, a.lease);

    let forged = buyer_jwt::mint("not-the-secret", "alice", (T0 / SEC) as i64 + 600);
    let expired = buyer_jwt::mint(JWT_SECRET, "alice", (T0 / SEC) as i64 - 60);
    let none = format!("{}.{}.", "eyJhbGciOiJub25lIn0", "eyJzdWIiOiJhbGljZSIsImV4cCI6OTk5OTk5OTk5OX0");
    let bad_sub = sign_hs256(JWT_SECRET, &json!({"alg": "HS256"}), &json!({"sub": "a b", "exp": 9999999999i64}));
    for (token, why) in [
        (forged, "wrong signature"),
        (expired, "expired"),
        (none, "`none`"),
        (bad_sub, "`sub`"),
        ("x.y.z".into(), "invalid bearer token"),
    ] {
        let r =
            refused(e.decide(&store, &with(req("GET", path), "authorization", format!("Bearer {token}")), peer, T0));
        assert_eq!((r.code, r.status()), (ErrorCode::Unauthorized, 401), "{why}");
        assert!(r.message.contains(why), "`{}` should mention `{why}`", r.message);
    }
    // No token on a public read: the backend decides.
    assert_eq!(run(&mut e, &store, &req("GET", "/api/activities/1"), peer, T0), Ok(()));
    // Outside the JWT paths (the admin API), the header is the backend's business.
    let admin = with(req("GET", "/admin/api/activities"), "authorization", "Bearer opaque-admin-session");
    assert_eq!(run(&mut e, &store, &admin, peer, T0), Ok(()));
}

#[test]
fn admin_sessions_pass_on_buyer_routes_without_a_user_bucket() {
    let store = MemoryStore::new();
    let mut e = engine(json!({}));
    // Signed with the backend's admin key, which the edge does not hold.
    let t = sign_hs256(
        b"the backend's own admin session key",
        &json!({"alg": "HS256"}),
        &json!({"sub": "admin", "aud": "seckill-admin", "exp": (T0 / SEC) as i64 + 60}),
    );
    let a = admitted(e.decide(
        &store,
        &with(req("GET", "/api/orders/o1"), "authorization", format!("Bearer {t}")),
        ip("192.0.2.1"),
        T0,
    ));
    assert_eq!(a.identity, Some(Identity::Admin));
    Engine::release(&store, a.lease);
    assert!(!store.live_keys().iter().any(|k| k.contains(".user.")));
}

#[test]
fn internal_routes_are_never_forwarded() {
    let store = MemoryStore::new();
    let mut e = engine(json!({}));
    for path in [
        "/internal/edge/state",
        "/internal",
        "/%69nternal/edge/state",
        "//internal/edge/state",
        "/api/../internal/edge/state",
    ] {
        let r = refused(e.decide(&store, &req("GET", path), ip("127.0.0.1"), T0));
        assert_eq!((r.code, r.status()), (ErrorCode::NotFound, 404), "{path}");
    }
    assert_eq!(run(&mut e, &store, &req("GET", "/internalx"), ip("127.0.0.1"), T0), Ok(()));
}

#[test]
fn blacklisted_ips_ranges_and_users_are_refused() {
    let store = MemoryStore::new();
    let mut e = engine(json!({}));
    let mut st = state("v1");
    st.blacklist_ips = vec!["203.0.113.7".into(), "10.0.0.0/8".into(), "2001:db8::/32".into()];
    st.blacklist_users = vec!["mallory".into()];
    push_state(&store, &mut e, &st, T0);
    let h = req("GET", "/api/activities");
    for bad in ["203.0.113.7", "10.20.30.40", "2001:db8::1", "::ffff:10.0.0.1"] {
        let r = refused(e.decide(&store, &h, ip(bad), T0));
        assert_eq!((r.code, r.status(), r.kind), (ErrorCode::Blacklisted, 403, DecisionKind::Blacklisted), "{bad}");
    }
    assert_eq!(run(&mut e, &store, &h, ip("203.0.113.8"), T0), Ok(()));
    let m = with(req("GET", "/api/me/orders"), "authorization", bearer("mallory", T0));
    let r = refused(e.decide(&store, &m, ip("203.0.113.8"), T0));
    assert_eq!((r.code, r.message.as_str()), (ErrorCode::Blacklisted, "this user is blacklisted"));
    // A blacklisted IP is refused before its headers' token is even looked at.
    let forged = with(req("GET", "/api/me/orders"), "authorization", "Bearer x.y.z");
    assert_eq!(refused(e.decide(&store, &forged, ip("10.1.1.1"), T0)).code, ErrorCode::Blacklisted);
}

#[test]
fn degraded_mode_sheds_buyer_requests_but_token_purchase_and_admin() {
    let store = MemoryStore::new();
    let mut e = engine(json!({}));
    let mut st = state("v1");
    st.degraded = true;
    push_state(&store, &mut e, &st, T0);
    let peer = ip("198.51.100.7");
    for path in ["/api/activities", "/api/activities/7", "/api/orders/abc", "/api/activities/7/other"] {
        let r = refused(e.decide(&store, &req("GET", path), peer, T0));
        assert_eq!((r.code, r.status(), r.kind), (ErrorCode::Unavailable, 503, DecisionKind::Unavailable), "{path}");
        assert!(r.headers().contains(&("retry-after", "5".into())), "{path}");
        assert!(r.message.contains("degraded mode"), "{}", r.message);
    }
    let auth = bearer("alice", T0);
    for step in ["token", "purchase"] {
        let h = with(req("POST", &format!("/api/activities/7/{step}")), "authorization", &auth);
        assert_eq!(run(&mut e, &store, &h, peer, T0), Ok(()), "{step} goes on");
    }
    let challenge = with(req("GET", "/api/activities/7/challenge"), "authorization", &auth);
    assert_eq!(run(&mut e, &store, &challenge, peer, T0), Ok(()), "the token's proof of work is part of buying");
    for path in ["/admin/api/degraded", "/admin/", "/healthz"] {
        assert_eq!(run(&mut e, &store, &req("GET", path), peer, T0), Ok(()), "{path} stays reachable");
    }
    // Switched off: reads pass again.
    st.degraded = false;
    st.version = "v2".into();
    push_state(&store, &mut e, &st, T0);
    assert_eq!(run(&mut e, &store, &req("GET", "/api/activities"), peer, T0), Ok(()));
}

#[test]
fn sold_out_and_not_live_activities_are_answered_at_the_edge() {
    let store = MemoryStore::new();
    let mut e = engine(json!({}));
    let mut st = state("v1");
    st.sold_out = vec![1];
    st.not_started = vec![2];
    st.ended = vec![3];
    push_state(&store, &mut e, &st, T0);
    let peer = ip("198.51.100.7");
    let auth = bearer("alice", T0);
    for (id, action, code) in [
        (1, "token", ErrorCode::SoldOut),
        (2, "token", ErrorCode::NotStarted),
        (2, "purchase", ErrorCode::NotStarted),
        (3, "token", ErrorCode::Ended),
    ] {
        let h = with(req("POST", &format!("/api/activities/{id}/{action}")), "authorization", &auth);
        let r = refused(e.decide(&store, &h, peer, T0));
        assert_eq!((r.code, r.status()), (code, 409), "{id}/{action}");
    }
    // Many of them cost no rate tokens: the answer is cheap and final.
    let h = with(req("POST", "/api/activities/1/token"), "authorization", &auth);
    for _ in 0..100 {
        assert_eq!(run(&mut e, &store, &h, peer, T0), Err(ErrorCode::SoldOut));
    }
    // A purchase of a sold-out or ended activity may be the retry of one
    // accepted before, whose answer was lost: the backend returns its order.
    for id in [1, 3] {
        let retry = with(req("POST", &format!("/api/activities/{id}/purchase")), "authorization", &auth);
        assert_eq!(run(&mut e, &store, &retry, peer, T0), Ok(()), "{id}/purchase");
    }
    // Reads of a sold-out activity, and buys of a live one, go to the backend.
    assert_eq!(run(&mut e, &store, &req("GET", "/api/activities/1"), peer, T0), Ok(()));
    let live = with(req("POST", "/api/activities/4/token"), "authorization", &auth);
    assert_eq!(run(&mut e, &store, &live, peer, T0), Ok(()));
    // Encoded paths are no way around it.
    let sneaky = with(req("POST", "/api/activities/1/%74oken"), "authorization", &auth);
    assert_eq!(run(&mut e, &store, &sneaky, peer, T0), Err(ErrorCode::SoldOut));
}

#[test]
fn in_flight_limits_count_up_on_admission_and_down_on_release() {
    let store = MemoryStore::new();
    let mut e = engine(json!({}));
    Engine::prepare(&store);
    let h = req("GET", "/api/activities");
    let peer = ip("198.51.100.7");
    let mut leases: Vec<_> = (0..10).map(|i| admitted(e.decide(&store, &h, peer, T0 + i)).lease).collect();
    let r = refused(e.decide(&store, &h, peer, T0 + 10));
    assert_eq!((r.code, r.kind), (ErrorCode::RateLimited, DecisionKind::InFlightLimited));
    assert!(r.headers().contains(&("retry-after", "1".into())));
    assert!(r.message.contains("at most 10"), "{}", r.message);
    // Another client still gets in; the refusal did not keep a slot.
    let other = admitted(e.decide(&store, &h, ip("198.51.100.8"), T0 + 11));
    assert_eq!(other.in_flight, 11);
    // One stream ends (normally, or by reset: the filter releases either way).
    assert!(Engine::release(&store, leases.pop().unwrap()));
    leases.push(admitted(e.decide(&store, &h, peer, T0 + 12)).lease);
    for l in leases {
        assert!(Engine::release(&store, l));
    }
    assert!(Engine::release(&store, other.lease));
    let leftovers: Vec<_> = store.live_keys().into_iter().filter(|k| k.contains("inflight")).collect();
    assert!(leftovers.is_empty(), "nothing in flight leaks: {leftovers:?}");
}

/// A VM that is lost mid-request leaves its leases' keys in the streams'
/// properties; another VM gives the slots back from those alone.
#[test]
fn a_lease_is_given_back_by_another_vm_from_its_key() {
    let store = MemoryStore::new();
    let mut lost = engine(json!({}));
    Engine::prepare(&store);
    let h = req("GET", "/api/activities");
    let keys: Vec<String> = (0..5)
        .map(|i| admitted(lost.decide(&store, &h, ip("198.51.100.7"), T0 + i)).lease.ip_key().to_owned())
        .collect();
    drop(lost);
    assert_eq!(store.raw(INFLIGHT_TOTAL_KEY), Some(5u32.to_le_bytes().to_vec()));
    for key in &keys {
        assert!(Engine::release(&store, Lease::adopt(key).unwrap()));
    }
    assert!(store.live_keys().iter().all(|k| !k.contains("inflight")), "{:?}", store.live_keys());
    // Only an in-flight counter's key is taken for a lease.
    assert_eq!(Lease::adopt("seckill.edge.state"), None);
    assert_eq!(Lease::adopt(INFLIGHT_TOTAL_KEY), None);
}

/// Counts the shared-data operations a decision makes (each is a host call,
/// and a host call is what a request costs most inside Envoy's V8).
#[derive(Default)]
struct Counting {
    inner: MemoryStore,
    reads: std::cell::Cell<usize>,
    writes: std::cell::Cell<usize>,
}

impl SharedStore for Counting {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        self.reads.set(self.reads.get() + 1);
        self.inner.get(key)
    }
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), seckill_edge_filter::store::SetError> {
        self.writes.set(self.writes.get() + 1);
        self.inner.set(key, value, cas)
    }
}

/// A flood from one address is refused by its per-IP bucket with one read
/// and no write: the in-flight counters are taken after the buckets (as
/// nginx runs limit_conn after limit_req), so a refused request never takes
/// and gives back a slot; and while the bucket is known to refuse, the
/// next refusals read nothing at all.
#[test]
fn a_request_its_bucket_refuses_costs_one_read_then_none() {
    let store = Counting::default();
    let mut e = engine(json!({}));
    Engine::prepare(&store);
    let h = req("GET", "/api/activities");
    let peer = ip("198.51.100.7");
    for _ in 0..21 {
        let lease = admitted(e.decide(&store, &h, peer, T0)).lease;
        assert!(Engine::release(&store, lease));
    }
    let ops = |s: &Counting| (s.reads.get(), s.writes.get());
    let before = ops(&store);
    let first = refused(e.decide(&store, &h, peer, T0));
    assert_eq!(first.kind, DecisionKind::RateLimited);
    assert_eq!((ops(&store).0 - before.0, ops(&store).1 - before.1), (1, 0));
    let before = ops(&store);
    let next = refused(e.decide(&store, &h, peer, T0 + 10_000));
    assert_eq!(ops(&store), before, "no shared data touched");
    assert_eq!(next.kind, DecisionKind::RateLimited);
    assert_eq!(next.headers(), first.headers(), "the same answer: retry in 1 s, the same x-ratelimit-*");
    let in_flight: Vec<_> = store.inner.live_keys().into_iter().filter(|k| k.contains("inflight.ip")).collect();
    assert!(in_flight.is_empty(), "{in_flight:?}");
}

/// A bucket remembered as refusing refuses only as long as its own refill
/// says: the client gets in as soon as a token is back (10/s: 100 ms after
/// its burst), and a raised limit applies at once.
#[test]
fn a_remembered_refusal_ends_with_the_refill_or_a_new_limit() {
    let store = Counting::default();
    let mut e = engine(json!({}));
    Engine::prepare(&store);
    push_state(&store.inner, &mut e, &state("v1"), T0);
    let h = req("GET", "/api/activities");
    let peer = ip("198.51.100.7");
    let pass = |e: &mut Engine, now: u64| match e.decide(&store, &h, peer, now) {
        Verdict::Allow(a) => {
            assert!(Engine::release(&store, a.lease));
            true
        }
        Verdict::Reject(_) => false,
    };
    assert_eq!((0..22).filter(|_| pass(&mut e, T0)).count(), 21);
    assert!(!pass(&mut e, T0 + 99_000), "no token back yet");
    assert!(pass(&mut e, T0 + 100_000), "one token back after 100 ms");
    assert!(!pass(&mut e, T0 + 100_001));
    let mut raised = state("v2");
    raised.rules.per_ip = RateRule { rate_per_sec: 1000.0, burst: 1000 };
    push_state(&store.inner, &mut e, &raised, T0 + 100_002);
    assert!(pass(&mut e, T0 + 100_003), "the raised limit, at once");
    assert!(e.refusals_len() <= 1);
}

/// The backend believes the edge's x-forwarded-for, so the edge passes on
/// exactly the client it vouches for; a request that carries that one value
/// already (Envoy writes the peer there before any filter runs) is left as
/// it is.
#[test]
fn x_forwarded_for_is_rewritten_unless_it_is_exactly_the_client() {
    let store = MemoryStore::new();
    let mut e = engine(json!({}));
    Engine::prepare(&store);
    let peer = ip("198.51.100.7");
    let mut admit = |xff: Option<&str>| {
        let h = req("GET", "/api/activities");
        let h = match xff {
            Some(v) => with(h, "x-forwarded-for", v),
            None => h,
        };
        let a = admitted(e.decide(&store, &h, peer, T0));
        assert!(Engine::release(&store, a.lease));
        (a.client_ip, a.rewrite_forwarded_for)
    };
    assert_eq!(admit(None), ("198.51.100.7".into(), true));
    assert_eq!(admit(Some("198.51.100.7")), ("198.51.100.7".into(), false));
    assert_eq!(admit(Some("203.0.113.9")), ("198.51.100.7".into(), true));
    assert_eq!(admit(Some("203.0.113.9,198.51.100.7")), ("198.51.100.7".into(), true));
}

#[test]
fn the_total_in_flight_limit_covers_every_client() {
    let store = MemoryStore::new();
    let rules = seckill_api::EdgeRules { max_in_flight_total: 3, ..Default::default() };
    let mut e = engine(json!({ "defaults": rules }));
    let h = req("GET", "/api/activities");
    let held: Vec<_> = (0..3).map(|i| admitted(e.decide(&store, &h, ip(&format!("192.0.2.{i}")), T0)).lease).collect();
    let r = refused(e.decide(&store, &h, ip("192.0.2.9"), T0));
    assert_eq!(r.kind, DecisionKind::InFlightLimited);
    assert!(r.message.contains("limit of 3 requests in flight"), "{}", r.message);
    for l in held {
        Engine::release(&store, l);
    }
    assert!(store.raw(INFLIGHT_TOTAL_KEY).unwrap().is_empty());
}

#[test]
fn refusals_after_admission_give_the_slot_back() {
    let store = MemoryStore::new();
    let mut e = engine(json!({}));
    let peer = ip("198.51.100.7");
    for _ in 0..50 {
        let h = with(req("GET", "/api/me/orders"), "authorization", "Bearer x.y.z");
        assert_eq!(refused(e.decide(&store, &h, peer, T0)).code, ErrorCode::Unauthorized);
    }
    assert!(store.live_keys().iter().all(|k| !k.contains("inflight")), "{:?}", store.live_keys());
}

#[test]
fn limits_are_exact_across_worker_vms() {
    // Two VMs (two engines) share one store, as Envoy's workers share data.
    let store = MemoryStore::new();
    let mut a = engine(json!({}));
    let mut b = engine(json!({}));
    let h = req("GET", "/api/activities");
    let peer = ip("198.51.100.7");
    let mut passed = 0;
    for i in 0..60 {
        let e = if i % 2 == 0 { &mut a } else { &mut b };
        passed += usize::from(run(e, &store, &h, peer, T0 + i).is_ok());
    }
    assert_eq!(passed, 21);
}

#[test]
fn fail_closed_refuses_until_the_first_state_then_serves() {
    let store = MemoryStore::new();
    let mut closed = engine(json!({"fail_open": false}));
    let h = req("GET", "/api/activities");
    let r = refused(closed.decide(&store, &h, ip("192.0.2.1"), T0));
    assert_eq!((r.code, r.status()), (ErrorCode::Unavailable, 503));
    assert!(r.headers().iter().any(|(k, _)| *k == "retry-after"));
    let mut open = engine(json!({"fail_open": true}));
    assert_eq!(run(&mut open, &store, &h, ip("192.0.2.1"), T0), Ok(()));
    push_state(&store, &mut closed, &state("v1"), T0);
    assert_eq!(run(&mut closed, &store, &h, ip("192.0.2.1"), T0), Ok(()));
}

#[test]
fn new_rules_take_effect_on_the_next_request_without_a_restart() {
    let store = MemoryStore::new();
    let mut e = engine(json!({}));
    let mut other_vm = engine(json!({}));
    let h = req("GET", "/api/activities");
    let peer = ip("198.51.100.7");
    let mut st = state("v2");
    st.rules.per_ip = RateRule { rate_per_sec: 1.0, burst: 2 };
    st.rules.routes.push(RouteRule {
        name: "reads".into(),
        method: Some("GET".into()),
        path: "/api/activities".into(),
        per_ip: Some(RateRule { rate_per_sec: 1.0, burst: 1 }),
        per_user: None,
    });
    push_state(&store, &mut e, &st, T0);
    // The other VM never saw the sync; it picks the state up from shared data.
    let passed = (0..10).filter(|_| run(&mut other_vm, &store, &h, peer, T0).is_ok()).count();
    assert_eq!(passed, 2, "the tighter route rule decides");
    assert_eq!(other_vm.current().version.as_deref(), Some("v2"));
}

#[test]
fn idle_buckets_are_emptied_by_the_sweep() {
    let store = MemoryStore::new();
    let mut e = engine(json!({}));
    let auth = bearer("alice", T0);
    let h = with(req("POST", "/api/activities/7/token"), "authorization", &auth);
    run(&mut e, &store, &h, ip("198.51.100.7"), T0).unwrap();
    let buckets: Vec<_> = store.live_keys().into_iter().filter(|k| k.contains(".rl.")).collect();
    assert_eq!(buckets.len(), 4, "{buckets:?}");
    assert_eq!(e.touched_len(), 4);
    assert_eq!(e.sweep(&store, T0 + 50 * MS, 100), 0, "not idle yet");
    // The slowest bucket (per-user token, 2/s) is full again after 500 ms.
    assert_eq!(e.sweep(&store, T0 + 500 * MS, 100), 4);
    assert_eq!(e.touched_len(), 0);
    assert!(store.live_keys().iter().all(|k| !k.contains(".rl.")), "{:?}", store.live_keys());
    // An emptied bucket behaves as a fresh one.
    assert_eq!(run(&mut e, &store, &h, ip("198.51.100.7"), T0 + 500 * MS), Ok(()));
}

#[test]
fn the_sweep_walks_round_robin() {
    let store = MemoryStore::new();
    let mut e = engine(json!({}));
    let h = req("GET", "/api/activities");
    for i in 0..10 {
        run(&mut e, &store, &h, ip(&format!("192.0.2.{i}")), T0).unwrap();
    }
    assert_eq!(e.touched_len(), 10);
    let mut emptied = 0;
    for _ in 0..4 {
        emptied += e.sweep(&store, T0 + 10 * SEC, 3);
    }
    assert_eq!(emptied, 10);
}

#[test]
fn allowed_verdicts_name_the_client_and_identity() {
    let store = MemoryStore::new();
    let mut e = engine(json!({}));
    let h = with(req("POST", "/api/activities/1/token"), "authorization", bearer("u-1", T0));
    match e.decide(&store, &h, ip("::ffff:198.51.100.7"), T0) {
        Verdict::Allow(a) => {
            assert_eq!(a.client_ip.to_string(), "198.51.100.7");
            assert_eq!(a.identity, Some(Identity::User("u-1".into())));
            Engine::release(&store, a.lease);
        }
        Verdict::Reject(r) => panic!("{r:?}"),
    }
}

/// An IPv6 client holds a whole /64 and can send every request from a fresh
/// address in it: the per-IP limits see the /64 as one client.
#[test]
fn rotating_ipv6_addresses_inside_one_64_is_limited_as_one_client() {
    let store = MemoryStore::new();
    let mut e = engine(json!({}));
    let h = req("GET", "/api/activities");
    let rotating = |i: u64| ip(&format!("2001:db8:1:2:{:x}:{:x}::{:x}", i >> 32, (i >> 16) & 0xffff, i & 0xffff));
    let passed = (0..500).filter(|&i| run(&mut e, &store, &h, rotating(i * 7919), T0).is_ok()).count();
    assert_eq!(passed, 21, "1 + burst, as from one address");
    // Each /64 is its own client.
    for net in 0..50 {
        let other = ip(&format!("2001:db8:1:{:x}::1", 3 + net));
        assert_eq!(run(&mut e, &store, &h, other, T0), Ok(()), "/64 number {net}");
    }
    // The backend still learns the exact address.
    let a = admitted(e.decide(&store, &h, ip("2001:db8:9:9::abcd"), T0));
    assert_eq!(a.client_ip, "2001:db8:9:9::abcd");
    Engine::release(&store, a.lease);
}

#[test]
fn the_in_flight_limit_per_ip_counts_an_ipv6_64_as_one_client() {
    let store = MemoryStore::new();
    let mut e = engine(json!({}));
    let h = req("GET", "/api/activities");
    let held: Vec<_> =
        (0..10).map(|i| admitted(e.decide(&store, &h, ip(&format!("2001:db8:5:5::{i:x}")), T0)).lease).collect();
    let r = refused(e.decide(&store, &h, ip("2001:db8:5:5:ffff::1"), T0));
    assert_eq!(r.kind, DecisionKind::InFlightLimited);
    assert_eq!(run(&mut e, &store, &h, ip("2001:db8:5:6::1"), T0), Ok(()), "another /64 is another client");
    for l in held {
        assert!(Engine::release(&store, l));
    }
    assert!(store.live_keys().iter().all(|k| !k.contains("inflight")), "{:?}", store.live_keys());
}

#[test]
fn ipv4_clients_stay_one_address_each_unless_configured() {
    let store = MemoryStore::new();
    let mut e = engine(json!({}));
    let h = req("GET", "/api/activities");
    for i in 0..22 {
        let passed = run(&mut e, &store, &h, ip("198.51.100.7"), T0).is_ok();
        assert_eq!(passed, i < 21, "request {i}");
    }
    for host in 8..60 {
        assert_eq!(run(&mut e, &store, &h, ip(&format!("198.51.100.{host}")), T0), Ok(()), "{host}");
    }
    assert!(store.raw("seckill.edge.rl.ip.198.51.100.7").is_some(), "{:?}", store.live_keys());

    // With `ipv4_prefix_len: 24` (and IPv6 by /48), the network is the client.
    let store = MemoryStore::new();
    let mut e = engine(json!({"ipv4_prefix_len": 24, "ipv6_prefix_len": 48}));
    let passed = (0..60).filter(|i| run(&mut e, &store, &h, ip(&format!("198.51.100.{i}")), T0).is_ok()).count();
    assert_eq!(passed, 21);
    let passed = (0..60).filter(|i| run(&mut e, &store, &h, ip(&format!("2001:db8:7:{i:x}::1")), T0).is_ok()).count();
    assert_eq!(passed, 21, "one /48");
}

/// The blacklist matches what it lists, exactly: an address in it does not
/// take its /64 neighbours with it (list the range for that).
#[test]
fn the_blacklist_stays_exact_when_limits_group_by_prefix() {
    let store = MemoryStore::new();
    let mut e = engine(json!({}));
    let mut st = state("v1");
    st.blacklist_ips = vec!["2001:db8:1:2::66".into(), "2001:db8:9::/48".into()];
    push_state(&store, &mut e, &st, T0);
    let h = req("GET", "/api/activities");
    assert_eq!(run(&mut e, &store, &h, ip("2001:db8:1:2::66"), T0), Err(ErrorCode::Blacklisted));
    assert_eq!(run(&mut e, &store, &h, ip("2001:db8:1:2::67"), T0), Ok(()));
    assert_eq!(run(&mut e, &store, &h, ip("2001:db8:9:ffff::1"), T0), Err(ErrorCode::Blacklisted));
}

/// A limit whose state shared memory cannot hold is not skipped: the request
/// is refused (fail closed), as a decision of its own kind.
#[test]
fn a_full_store_limits_new_clients_instead_of_letting_them_through() {
    let store = MemoryStore::with_budget(2_000);
    let mut e = engine(json!({}));
    let h = req("GET", "/api/activities");
    let known = ip("198.51.100.7");
    assert_eq!(run(&mut e, &store, &h, known, T0), Ok(()));
    // Fill the store with other data.
    let filler = vec![1u8; 2_000 - store.bytes() - 20];
    store.set("filler", &filler, None).unwrap();
    for i in 0..30 {
        let r = refused(e.decide(&store, &h, ip(&format!("203.0.113.{i}")), T0));
        assert_eq!((r.kind, r.code, r.status()), (DecisionKind::StoreFull, ErrorCode::RateLimited, 429), "{i}");
        assert!(r.headers().contains(&("retry-after", "1".into())));
        assert!(r.message.contains("shared memory is full"), "{}", r.message);
    }
    assert_eq!(DecisionKind::StoreFull.metric_name(), "seckill_edge_decisions_store_full");
    // A known client too: its in-flight count needs room as well.
    assert_eq!(refused(e.decide(&store, &h, known, T0)).kind, DecisionKind::StoreFull);
    // Once memory is freed, clients get in again; the known one's bucket
    // was kept all along: the rest of its burst passes, no more (the
    // refused request was charged, as limit_req charges one that
    // limit_conn then refuses).
    store.set("filler", &[], None).unwrap();
    assert_eq!(run(&mut e, &store, &h, ip("203.0.113.1"), T0), Ok(()));
    let passed = (0..40).filter(|_| run(&mut e, &store, &h, known, T0).is_ok()).count();
    assert_eq!(passed, 19);
}

/// A crowd of one-off clients cannot grow shared memory past what the VM
/// tracks, nor push out the bucket of a client that keeps flooding.
#[test]
fn bucket_memory_stays_bounded_and_hot_clients_stay_limited() {
    const TRACKED: usize = 1_000;
    let store = MemoryStore::new();
    let mut e = engine(json!({})).with_max_tracked(TRACKED);
    let h = req("GET", "/api/activities");
    let hot = ip("198.51.100.7");
    let (mut hot_passed, mut hot_sent, mut most_keys) = (0u64, 0u64, 0);
    let mut now = T0;
    for i in 0..100_000u32 {
        // 10 µs apart: 100 000 requests a second, one in ten from the hot client.
        now += 10;
        let peer = if i % 10 == 0 { hot } else { ip(&format!("2001:db8:{:x}:{:x}::1", i >> 16, i & 0xffff)) };
        let passed = run(&mut e, &store, &h, peer, now).is_ok();
        if peer == hot {
            hot_sent += 1;
            hot_passed += u64::from(passed);
        }
        if i % 1000 == 0 {
            e.sweep(&store, now, 2_000);
            most_keys = most_keys.max(store.live_keys().len());
        }
    }
    assert!(most_keys <= TRACKED + 4, "shared memory bounded by what is tracked: {most_keys} keys");
    assert!(e.touched_len() <= TRACKED + 4);
    // 10 r/s with a burst of 20 over one second.
    let elapsed_s = (now - T0) as f64 / SEC as f64;
    assert!(hot_passed as f64 <= 21.0 + 10.0 * elapsed_s, "{hot_passed} of {hot_sent} passed in {elapsed_s} s");
    assert!(hot_passed >= 20, "{hot_passed}");
}

/// The map the filter hands the host is `headers()` in proxy-wasm's format.
fn assert_header_map_is_headers(r: &seckill_edge_filter::decision::LocalReply) {
    let map = r.header_map();
    let pairs = seckill_api::header_map::pairs(&map).unwrap();
    let read: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (String::from_utf8(k.to_vec()).unwrap(), String::from_utf8(v.to_vec()).unwrap()))
        .collect();
    let want: Vec<(String, String)> = r.headers().into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    assert_eq!(read, want);
    assert!(want.len() >= 6, "retry-after and x-ratelimit-* are among them: {want:?}");
}
