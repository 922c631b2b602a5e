//! The decision for one request: given its headers, the peer, the current
//! [`Snapshot`], the shared counters and `now`, either admit it (holding one
//! in-flight slot until the stream ends) or refuse it with the contract's
//! JSON error.
//!
//! Longer than 500 lines on purpose: the checks below are one ordered
//! sequence, each answering with its own reply, and reading them in one
//! place is how their order is reviewed; the reply shapes sit beside them.
//!
//! Checks, in order (the first that fails answers):
//!
//! 1. headers: larger than `max_header_bytes`, control characters, no
//!    `:method`/`:path` → `400 bad_request`
//! 2. a blocked path (`/internal/…`) → `404 not_found`
//! 3. no state yet and `fail_open: false` → `503 unavailable`; degraded
//!    mode and a buyer request (`/api/…`) other than token, its challenge or
//!    purchase → `503 unavailable` with `retry-after`
//! 4. client IP (or its range) blacklisted → `403 blacklisted`
//! 5. `Authorization` on a JWT path: malformed header → `400 bad_request`,
//!    bad token → `401 unauthorized`
//! 6. user blacklisted → `403 blacklisted`
//! 7. `POST /api/activities/{id}/token` of an activity listed as ended / not
//!    started / sold out → `409 ended|not_started|sold_out`, and `…/purchase`
//!    of one not started → `409 not_started`, only while the state is fresh
//!    ([`StateView::stale`]). A purchase of a sold-out or ended activity goes
//!    on: it may be the retry of a purchase that was accepted before the end
//!    and whose answer was lost, and the backend answers it with its order.
//!    (Only token holders can send one, and tokens stop with the stock.)
//! 8. buckets: per IP, each matching route per IP, per user, each matching
//!    route per user → `429 rate_limited` with `retry-after` and `x-ratelimit-*`
//! 9. in flight: total, then per client (IPv6 by /64, see
//!    [`crate::client_ip::limit_key`]) → `429 rate_limited`
//!
//! Buckets are checked all before any is charged, so a request a bucket
//! refuses costs no tokens, and it never takes an in-flight slot; a request
//! the in-flight limits refuse has been charged (nginx runs `limit_req`
//! before `limit_conn` alike). A bucket known to refuse ([`Refusals`]) is
//! not read again until it would pass.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::ops::Range;

use seckill_api::ErrorCode;

use crate::bucket::{self, BucketState, Check, Limit};
use crate::client_ip::{client_ip, ip_text_into, limit_key};
use crate::config::Config;
use crate::jwt::{Identity, bearer};
use crate::matcher::path_segments;
use crate::state::{self, Snapshot};
use crate::store::{self, CAS_RETRIES, NotCounted, SetError, SharedStore};

/// How long a request shed in degraded mode is told to wait.
const DEGRADED_RETRY_AFTER_SECS: u64 = 5;

/// Which kind of decision the filter took about a request, one metric each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecisionKind {
    Allowed,
    BadRequest,
    NotFound,
    Unavailable,
    Blacklisted,
    InFlightLimited,
    Unauthorized,
    SoldOut,
    NotStarted,
    Ended,
    RateLimited,
    /// Limited because a limit's state could not be stored (shared memory full).
    StoreFull,
}

impl DecisionKind {
    pub const ALL: [DecisionKind; 12] = [
        DecisionKind::Allowed,
        DecisionKind::BadRequest,
        DecisionKind::NotFound,
        DecisionKind::Unavailable,
        DecisionKind::Blacklisted,
        DecisionKind::InFlightLimited,
        DecisionKind::Unauthorized,
        DecisionKind::SoldOut,
        DecisionKind::NotStarted,
        DecisionKind::Ended,
        DecisionKind::RateLimited,
        DecisionKind::StoreFull,
    ];

    /// The counter's name: `seckill_edge_decisions_<kind>`.
    pub fn metric_name(self) -> &'static str {
        match self {
            DecisionKind::Allowed => "seckill_edge_decisions_allowed",
            DecisionKind::BadRequest => "seckill_edge_decisions_bad_request",
            DecisionKind::NotFound => "seckill_edge_decisions_not_found",
            DecisionKind::Unavailable => "seckill_edge_decisions_unavailable",
            DecisionKind::Blacklisted => "seckill_edge_decisions_blacklisted",
            DecisionKind::InFlightLimited => "seckill_edge_decisions_in_flight_limited",
            DecisionKind::Unauthorized => "seckill_edge_decisions_unauthorized",
            DecisionKind::SoldOut => "seckill_edge_decisions_sold_out",
            DecisionKind::NotStarted => "seckill_edge_decisions_not_started",
            DecisionKind::Ended => "seckill_edge_decisions_ended",
            DecisionKind::RateLimited => "seckill_edge_decisions_rate_limited",
            DecisionKind::StoreFull => "seckill_edge_decisions_store_full",
        }
    }

    /// The kind alone (`rate_limited`, `store_full`, …): the value of the
    /// [`EDGE_HEADER`] on the filter's own answers.
    pub fn as_str(self) -> &'static str {
        let name = self.metric_name();
        &name["seckill_edge_decisions_".len()..]
    }

    pub fn index(self) -> usize {
        Self::ALL.iter().position(|o| *o == self).unwrap_or(0)
    }
}

pub use seckill_api::EDGE_DECISION_HEADER as EDGE_HEADER;

/// The `x-ratelimit-*` values of the bucket that decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateHeaders {
    /// Requests a fresh key lets through at once (`1 + burst`).
    pub limit: u64,
    /// Requests that would pass right now.
    pub remaining: u64,
    /// Seconds until the bucket is full again.
    pub reset_secs: u64,
}

/// What the filter answers itself when it refuses a request, instead of
/// forwarding it (a local reply, in Envoy's words): the contract's error
/// body and headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    pub kind: DecisionKind,
    pub code: ErrorCode,
    pub message: String,
    pub retry_after_secs: Option<u64>,
    pub rate: Option<RateHeaders>,
}

impl LocalReply {
    fn new(kind: DecisionKind, code: ErrorCode, message: impl Into<String>) -> Self {
        Self { kind, code, message: message.into(), retry_after_secs: None, rate: None }
    }

    pub fn status(&self) -> u16 {
        self.code.http_status()
    }

    /// `content-type`, `cache-control`, and `retry-after` / `x-ratelimit-*` when known.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = Vec::with_capacity(7);
        self.each_header(|k, v| h.push((k, v.to_owned())));
        h
    }

    /// [`LocalReply::headers`] as the proxy-wasm header map a local response
    /// carries (pair count, each pair's lengths, then each name and value
    /// NUL-terminated), in one buffer: a flood's every reply is built here,
    /// and a `String` per header and the SDK's `Vec` of pairs were a visible
    /// share of a shed request's cost.
    pub fn header_map(&self) -> Vec<u8> {
        let (mut pairs, mut size) = (0u32, 4);
        self.each_header(|k, v| {
            pairs += 1;
            size += 8 + k.len() + v.len() + 2;
        });
        let mut out = Vec::with_capacity(size);
        out.extend_from_slice(&pairs.to_le_bytes());
        let len = |s: &str| u32::try_from(s.len()).unwrap_or(u32::MAX).to_le_bytes();
        self.each_header(|k, v| {
            out.extend_from_slice(&len(k));
            out.extend_from_slice(&len(v));
        });
        self.each_header(|k, v| {
            for part in [k, v] {
                out.extend_from_slice(part.as_bytes());
                out.push(0);
            }
        });
        out
    }

    /// Each header of the reply, in order, its numbers written on the stack.
    fn each_header(&self, mut f: impl FnMut(&'static str, &str)) {
        f("content-type", "application/json");
        f("cache-control", "no-store");
        f(EDGE_HEADER, self.kind.as_str());
        if let Some(s) = self.retry_after_secs {
            f("retry-after", Digits::of(s).as_str());
        }
        if let Some(r) = self.rate {
            f("x-ratelimit-limit", Digits::of(r.limit).as_str());
            f("x-ratelimit-remaining", Digits::of(r.remaining).as_str());
            f("x-ratelimit-reset", Digits::of(r.reset_secs).as_str());
        }
    }

    /// `{"code": "...", "message": "..."}`.
    pub fn body(&self) -> Vec<u8> {
        // seckill_api::ErrorBody, its fields borrowed: no copy of the message per reply.
        #[derive(serde::Serialize)]
        struct Borrowed<'a> {
            code: ErrorCode,
            message: &'a str,
        }
        serde_json::to_vec(&Borrowed { code: self.code, message: &self.message })
            .unwrap_or_else(|_| br#"{"code":"unavailable","message":"error body failed to serialise"}"#.to_vec())
    }
}

/// A `u64` in decimal, written on the stack.
struct Digits {
    buf: [u8; 20],
    start: usize,
}

impl Digits {
    fn of(mut n: u64) -> Self {
        let mut d = Self { buf: [0; 20], start: 20 };
        loop {
            d.start -= 1;
            d.buf[d.start] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                return d;
            }
        }
    }

    fn as_str(&self) -> &str {
        // Only ASCII digits were written.
        std::str::from_utf8(&self.buf[self.start..]).unwrap_or("0")
    }
}

/// The in-flight slot an admitted request holds until its stream ends.
/// Give it back with [`release`] exactly once.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "an in-flight slot that is never released leaks"]
pub struct Lease {
    ip_key: String,
}

impl Lease {
    /// The shared-data key of the per-IP in-flight counter it holds a slot of.
    pub fn ip_key(&self) -> &str {
        &self.ip_key
    }

    /// The lease a stream of another VM took (its [`Lease::ip_key`]), so that
    /// this VM can give the slot back when that VM is gone. `None` for a key
    /// that is not a per-IP in-flight counter.
    pub fn adopt(ip_key: &str) -> Option<Self> {
        let ip = ip_key.strip_prefix(state::INFLIGHT_IP_PREFIX)?;
        (!ip.is_empty()).then(|| Self { ip_key: ip_key.to_owned() })
    }
}

/// An admitted request.
#[derive(Debug, PartialEq, Eq)]
pub struct Admission {
    /// The client's address as text, as it goes on in `x-forwarded-for`.
    pub client_ip: String,
    /// `x-forwarded-for` must be set to `client_ip`: false when the request
    /// carries exactly that one value already (Envoy, trusting no hop,
    /// writes the peer's address there before any filter runs), which
    /// saves a host call per admitted request.
    pub rewrite_forwarded_for: bool,
    pub identity: Option<Identity>,
    pub lease: Lease,
    /// Requests in flight in total, this one included.
    pub in_flight: u32,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow(Admission),
    Reject(LocalReply),
}

impl Verdict {
    pub fn kind(&self) -> DecisionKind {
        match self {
            Verdict::Allow(_) => DecisionKind::Allowed,
            Verdict::Reject(r) => r.kind,
        }
    }
}

/// What the filter reads from a request's headers, borrowed from them where
/// they are text already (a shed request copies none of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFacts<'a> {
    pub method: Cow<'a, str>,
    /// Decoded, normalised segments of `:path` ([`path_segments`]).
    pub segments: Vec<Cow<'a, str>>,
    /// Every `Authorization` value.
    pub authorization: Vec<&'a [u8]>,
    /// Every `x-forwarded-for` value, in order.
    pub forwarded_for: Vec<Cow<'a, str>>,
    /// Bytes of header names and values.
    pub header_bytes: usize,
}

impl RequestFacts<'_> {
    /// `/seg/seg/` with a trailing slash, for prefix tests that cannot be
    /// dodged by encoding or dot segments.
    fn normalised_dir_into(&self, s: &mut String) {
        s.clear();
        s.push('/');
        for seg in &self.segments {
            s.push_str(seg);
            s.push('/');
        }
    }
}

fn bad_request(message: impl Into<String>) -> LocalReply {
    LocalReply::new(DecisionKind::BadRequest, ErrorCode::BadRequest, message)
}

/// Fail closed: a limit whose state the shared memory cannot hold is not
/// enforced for this request, so the request is refused rather than let
/// through unlimited (which is what a dropped write used to mean). The
/// filter counts these (`seckill_edge_decisions_store_full`) and logs them;
/// the bucket sweep makes room, so they stop once memory is freed.
fn store_full() -> LocalReply {
    LocalReply {
        retry_after_secs: Some(1),
        ..LocalReply::new(
            DecisionKind::StoreFull,
            ErrorCode::RateLimited,
            "the edge cannot keep track of this client right now (its shared memory is full); retry shortly",
        )
    }
}

/// Reads the facts the decision needs; malformed or oversized headers are refused.
pub fn parse_request<'a, N: AsRef<[u8]>, V: AsRef<[u8]>>(
    headers: &'a [(N, V)],
    max_header_bytes: usize,
) -> Result<RequestFacts<'a>, LocalReply> {
    let header_bytes: usize = headers.iter().map(|(n, v)| n.as_ref().len() + v.as_ref().len()).sum();
    if header_bytes > max_header_bytes {
        return Err(bad_request(format!(
            "request headers are too large: {header_bytes} bytes, at most {max_header_bytes}"
        )));
    }
    let mut method = None;
    let mut path = None;
    let mut authorization = Vec::new();
    let mut forwarded_for = Vec::new();
    for (name, value) in headers {
        let (name, value) = (name.as_ref(), value.as_ref());
        if name.is_empty() {
            return Err(bad_request("a request header has an empty name"));
        }
        if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            let name = String::from_utf8_lossy(name);
            return Err(bad_request(format!("the `{name}` header contains control characters")));
        }
        if name.eq_ignore_ascii_case(b":method") {
            method = Some(String::from_utf8_lossy(value));
        } else if name.eq_ignore_ascii_case(b":path") {
            path = Some(String::from_utf8_lossy(value));
        } else if name.eq_ignore_ascii_case(b"authorization") {
            authorization.push(value);
        } else if name.eq_ignore_ascii_case(b"x-forwarded-for") {
            forwarded_for.push(String::from_utf8_lossy(value));
        }
    }
    let method = method.filter(|m| !m.is_empty()).ok_or_else(|| bad_request("the request has no method"))?;
    let path = path.filter(|p| !p.is_empty()).ok_or_else(|| bad_request("the request has no path"))?;
    if !path.starts_with('/') && path != "*" {
        return Err(bad_request("the request path must start with `/`"));
    }
    let segments = match path {
        Cow::Borrowed(path) => path_segments(path),
        // Not UTF-8 (rare): the segments own their text.
        Cow::Owned(path) => path_segments(&path).into_iter().map(|s| Cow::Owned(s.into_owned())).collect(),
    };
    Ok(RequestFacts { method, segments, authorization, forwarded_for, header_bytes })
}

/// The activity id of `POST /api/activities/{id}/token|purchase`.
/// The two steps of buying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BuyStep {
    Token,
    Purchase,
}

fn buy_route_activity(req: &RequestFacts) -> Option<(u64, BuyStep)> {
    match req.segments.as_slice() {
        [api, activities, id, action] if req.method == "POST" && api == "api" && activities == "activities" => {
            let step = match action.as_ref() {
                "token" => BuyStep::Token,
                "purchase" => BuyStep::Purchase,
                _ => return None,
            };
            // Only plain decimal ids, as the backend's router parses them.
            if id.is_empty() || id.len() > 20 || !id.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some((id.parse().ok()?, step))
        }
        _ => None,
    }
}

/// `GET /api/activities/{id}/challenge`: the proof of work a token request
/// may need, so part of buying (degraded mode keeps it).
fn token_challenge_route(req: &RequestFacts) -> bool {
    matches!(req.segments.as_slice(), [api, activities, _, challenge]
        if req.method == "GET" && api == "api" && activities == "activities" && challenge == "challenge")
}

#[derive(Debug)]
struct BucketUse {
    /// The route rule it comes from (its index in the rules), if any, and
    /// which of its limits: only for the reply's message.
    route: Option<usize>,
    per: &'static str,
    /// Where its key is in [`Scratch::keys`].
    key: Range<usize>,
    limit: Limit,
}

impl BucketUse {
    fn name(&self, routes: &[crate::config::CompiledRoute]) -> String {
        match self.route.and_then(|i| routes.get(i)) {
            Some(route) => format!("`{}` {}", route.name, self.per),
            None => self.per.to_owned(),
        }
    }
}

/// Buffers every decision reuses, so that a request the buckets refuse
/// allocates nothing: its bucket keys are written one after another into
/// `keys`, the client's address into `client`.
#[derive(Debug, Default)]
struct Scratch {
    /// The request's normalised path as a directory (`/a/b/`).
    dir: String,
    client: String,
    keys: String,
    uses: Vec<BucketUse>,
    pending: Vec<usize>,
    reads: Vec<(usize, BucketState, Option<u32>)>,
    /// The last rate-limit message and what it was written from: a flood
    /// gets the same one request after request.
    message: Option<(MessageOf, String)>,
}

#[derive(Debug, Clone, PartialEq)]
struct MessageOf {
    route: Option<String>,
    per: &'static str,
    limit: Limit,
    retry: u64,
}

/// Appends the concatenation of `parts` to `keys`; where it went.
fn push_key(keys: &mut String, parts: &[&str]) -> Range<usize> {
    let start = keys.len();
    for p in parts {
        keys.push_str(p);
    }
    start..keys.len()
}

/// Gives an admitted request's in-flight slot back.
pub fn release<S: SharedStore + ?Sized>(store: &S, lease: Lease) -> bool {
    let a = store::decrement(store, &lease.ip_key).is_some();
    let b = store::decrement(store, state::INFLIGHT_TOTAL_KEY).is_some();
    a && b
}

/// The state a request is judged against.
#[derive(Debug, Clone, Copy)]
pub struct StateView<'a> {
    pub snapshot: &'a Snapshot,
    /// The backend has not sent or confirmed this state for
    /// `state_max_age_ms`: its activity lists may be wrong by now (a sale
    /// started, a restock), so they no longer answer for the backend. The
    /// rest of it still applies: being stale refuses nothing new and lifts
    /// no limit.
    pub stale: bool,
}

/// What one VM remembers of the buckets between decisions.
#[derive(Debug, Default)]
pub struct BucketMemory {
    /// The keys the last decision charged, with their limits (the engine
    /// tracks them, to empty them once idle).
    pub charged: Vec<(String, Limit)>,
    pub refusals: Refusals,
    scratch: Scratch,
}

/// Buckets that refused a request lately, and until when they refuse any.
/// A bucket's tokens come back only with time, which this VM computes; other
/// VMs can only take more of them (or, under memory pressure, drop a bucket
/// and so forgive its client). So a bucket that refuses until T refuses
/// until T whatever happens elsewhere, and a flood from one address is
/// refused without reading shared data: no host call, no copy into the VM.
#[derive(Debug, Default)]
pub struct Refusals {
    until: HashMap<String, Refused>,
}

#[derive(Debug, Clone, Copy)]
struct Refused {
    /// The limit it was computed with: a changed rule is read afresh.
    limit: Limit,
    /// When one request passes again, and when the bucket is full again.
    passes_at_us: u64,
    full_at_us: u64,
}

impl Refusals {
    /// At most this many are remembered (then all are forgotten at once,
    /// which costs each flooding client one shared-data read).
    pub const MAX: usize = 4096;

    /// `(retry_after_us, reset_us)` if `key` still refuses at `now_us`.
    fn check(&self, key: &str, limit: Limit, now_us: u64) -> Option<(u64, u64)> {
        let r = self.until.get(key)?;
        (r.limit == limit && now_us < r.passes_at_us)
            .then(|| (r.passes_at_us - now_us, r.full_at_us.saturating_sub(now_us)))
    }

    fn remember(&mut self, key: &str, limit: Limit, now_us: u64, retry_after_us: u64, reset_us: u64) {
        if self.until.len() >= Self::MAX && !self.until.contains_key(key) {
            self.until.clear();
        }
        let refused = Refused { limit, passes_at_us: now_us + retry_after_us, full_at_us: now_us + reset_us };
        match self.until.get_mut(key) {
            Some(known) => *known = refused,
            None => {
                self.until.insert(key.to_owned(), refused);
            }
        }
    }

    /// Buckets remembered as refusing (tests).
    pub fn len(&self) -> usize {
        self.until.len()
    }

    pub fn is_empty(&self) -> bool {
        self.until.is_empty()
    }
}

/// Decides one request. `view` is `None` when no state arrived yet and
/// the edge fails closed. Every bucket key charged is pushed to
/// `memory.charged` (with its limit) so that idle keys can later be emptied.
pub fn decide<S: SharedStore + ?Sized>(
    config: &Config,
    view: Option<StateView<'_>>,
    store: &S,
    req: &RequestFacts,
    peer: Option<IpAddr>,
    now_us: u64,
    memory: &mut BucketMemory,
) -> Verdict {
    req.normalised_dir_into(&mut memory.scratch.dir);
    let dir = memory.scratch.dir.as_str();
    if config.blocked_path_prefixes.iter().any(|p| dir.starts_with(p.as_str())) {
        return Verdict::Reject(LocalReply::new(DecisionKind::NotFound, ErrorCode::NotFound, "no such route"));
    }
    let Some(StateView { snapshot: snap, stale }) = view else {
        return Verdict::Reject(LocalReply {
            retry_after_secs: Some(config.sync_period_ms.div_ceil(1000)),
            ..LocalReply::new(
                DecisionKind::Unavailable,
                ErrorCode::Unavailable,
                "the edge has not received its state from the backend yet; try again shortly",
            )
        });
    };
    // Degraded mode keeps the sale alive and sheds the rest of the buyers' API;
    // the admin API and UI stay reachable, or nobody could switch it off.
    if snap.degraded && dir.starts_with("/api/") && buy_route_activity(req).is_none() && !token_challenge_route(req) {
        return Verdict::Reject(LocalReply {
            retry_after_secs: Some(DEGRADED_RETRY_AFTER_SECS),
            ..LocalReply::new(
                DecisionKind::Unavailable,
                ErrorCode::Unavailable,
                "the sale is in degraded mode: only token and purchase requests are served; try again later",
            )
        });
    }
    let ip = client_ip(peer, &req.forwarded_for, &config.trusted_proxies);
    if snap.blacklist_ips.contains(ip) {
        return Verdict::Reject(LocalReply::new(
            DecisionKind::Blacklisted,
            ErrorCode::Blacklisted,
            "this IP address is blacklisted",
        ));
    }

    let rules = &snap.rules;
    // Per-IP limits count a client's network (a /64 for IPv6 by default):
    // rotating through the addresses one holds is not a way around them.
    let network = limit_key(ip, config.client_prefixes);
    // The address as text is only needed as a String by an admitted request.
    let client = &mut memory.scratch.client;
    client.clear();
    match &network {
        Some(n) => client.push_str(n),
        None => ip_text_into(client, ip),
    }

    // Identity, only where the edge is told to check it.
    let mut identity = None;
    if !req.authorization.is_empty() && config.jwt_path_prefixes.iter().any(|p| dir.starts_with(p.as_str())) {
        if req.authorization.len() > 1 {
            return Verdict::Reject(bad_request("more than one Authorization header"));
        }
        let token = match bearer(req.authorization[0]) {
            Ok(t) => t,
            Err(why) => return Verdict::Reject(bad_request(why)),
        };
        match config.jwt.verify(token, (now_us / 1_000_000) as i64) {
            Ok(id) => identity = Some(id),
            Err(e) => {
                return Verdict::Reject(LocalReply::new(
                    DecisionKind::Unauthorized,
                    ErrorCode::Unauthorized,
                    e.to_string(),
                ));
            }
        }
    }
    let user = match &identity {
        Some(Identity::User(u)) => Some(u.as_str()),
        _ => None,
    };
    if let Some(u) = user
        && snap.blacklist_users.contains(u)
    {
        return Verdict::Reject(LocalReply::new(
            DecisionKind::Blacklisted,
            ErrorCode::Blacklisted,
            "this user is blacklisted",
        ));
    }

    // Token and purchase requests the edge can answer by itself.
    if !stale
        && let Some((id, step)) = buy_route_activity(req)
        && let Some(code) = snap.activity_block(id)
        && (step == BuyStep::Token || code == ErrorCode::NotStarted)
    {
        let (kind, message) = match code {
            ErrorCode::Ended => (DecisionKind::Ended, format!("activity {id} has ended")),
            ErrorCode::NotStarted => (DecisionKind::NotStarted, format!("activity {id} has not started yet")),
            _ => (DecisionKind::SoldOut, format!("activity {id} is sold out")),
        };
        return Verdict::Reject(LocalReply::new(kind, code, message));
    }

    // Buckets, their keys written into the reused buffers.
    let scratch = &mut memory.scratch;
    let client = scratch.client.as_str();
    scratch.keys.clear();
    scratch.uses.clear();
    let keys = &mut scratch.keys;
    let uses = &mut scratch.uses;
    uses.push(BucketUse {
        route: None,
        per: "per-IP",
        key: push_key(keys, &[state::BUCKET_IP_PREFIX, client]),
        limit: rules.per_ip,
    });
    let matching = || rules.routes.iter().enumerate().filter(|(_, r)| r.matches(&req.method, &req.segments));
    for (i, r) in matching() {
        if let Some(limit) = r.per_ip {
            uses.push(BucketUse {
                route: Some(i),
                per: "per-IP",
                key: push_key(keys, &[state::ROUTE_PREFIX, &r.name, ".ip.", client]),
                limit,
            });
        }
    }
    if let Some(u) = user {
        uses.push(BucketUse {
            route: None,
            per: "per-user",
            key: push_key(keys, &[state::BUCKET_USER_PREFIX, u]),
            limit: rules.per_user,
        });
        for (i, r) in matching() {
            if let Some(limit) = r.per_user {
                uses.push(BucketUse {
                    route: Some(i),
                    per: "per-user",
                    key: push_key(keys, &[state::ROUTE_PREFIX, &r.name, ".user.", u]),
                    limit,
                });
            }
        }
    }
    if let Err(reply) = charge(store, &rules.routes, now_us, memory) {
        return Verdict::Reject(reply);
    }
    let client = memory.scratch.client.as_str();
    let ip_text = match network {
        None => client.to_owned(),
        Some(_) => crate::client_ip::ip_text(ip),
    };

    // In flight last, as nginx runs limit_conn after limit_req: a request
    // the buckets refuse never touches the in-flight counters (a flood from
    // one address is refused with one shared-data read), and one refused
    // here has been charged like any other request that arrived.
    let in_flight_refusal = |message: String| LocalReply {
        retry_after_secs: Some(1),
        ..LocalReply::new(DecisionKind::InFlightLimited, ErrorCode::RateLimited, message)
    };
    let in_flight = match store::try_increment(store, state::INFLIGHT_TOTAL_KEY, rules.max_in_flight_total) {
        Ok(n) => n,
        Err(NotCounted::StoreFull) => return Verdict::Reject(store_full()),
        Err(NotCounted::AtMax(_)) => {
            return Verdict::Reject(in_flight_refusal(format!(
                "the service is at its limit of {} requests in flight; retry shortly",
                rules.max_in_flight_total
            )));
        }
    };
    let ip_key = state::inflight_ip_key(client);
    if let Err(why) = store::try_increment(store, &ip_key, rules.max_in_flight_per_ip) {
        store::decrement(store, state::INFLIGHT_TOTAL_KEY);
        return Verdict::Reject(match why {
            NotCounted::StoreFull => store_full(),
            NotCounted::AtMax(_) => in_flight_refusal(format!(
                "too many requests in flight from this IP address (at most {})",
                rules.max_in_flight_per_ip
            )),
        });
    }
    let rewrite_forwarded_for = !matches!(req.forwarded_for.as_slice(), [only] if *only == ip_text);
    Verdict::Allow(Admission {
        client_ip: ip_text,
        rewrite_forwarded_for,
        identity,
        lease: Lease { ip_key },
        in_flight,
    })
}

/// Checks every bucket (`memory.scratch.uses`), and charges them all only if
/// all allow; a bucket whose compare-and-swap lost a race is read and
/// checked again.
fn charge<S: SharedStore + ?Sized>(
    store: &S,
    routes: &[crate::config::CompiledRoute],
    now_us: u64,
    memory: &mut BucketMemory,
) -> Result<(), LocalReply> {
    let BucketMemory { charged, refusals, scratch } = memory;
    let Scratch { keys, uses, pending, reads, message, .. } = scratch;
    pending.clear();
    pending.extend(0..uses.len());
    for _ in 0..CAS_RETRIES {
        reads.clear();
        let mut worst: Option<(usize, u64, u64)> = None;
        for &i in pending.iter() {
            let b = &uses[i];
            let key = &keys[b.key.clone()];
            let refused = match refusals.check(key, b.limit, now_us) {
                Some(known) => Some(known),
                None => {
                    let (value, cas) = store.get(key);
                    let current = value.as_deref().and_then(BucketState::decode);
                    match bucket::check(b.limit, current, now_us) {
                        Check::Allow { next, .. } => {
                            reads.push((i, next, cas));
                            None
                        }
                        Check::Deny { retry_after_us, reset_us } => {
                            refusals.remember(key, b.limit, now_us, retry_after_us, reset_us);
                            Some((retry_after_us, reset_us))
                        }
                    }
                }
            };
            if let Some((retry_after_us, reset_us)) = refused
                && worst.is_none_or(|(_, r, _)| retry_after_us > r)
            {
                worst = Some((i, retry_after_us, reset_us));
            }
        }
        if let Some((i, retry_after_us, reset_us)) = worst {
            let b = &uses[i];
            let retry = bucket::secs_ceil(retry_after_us).max(1);
            let of = MessageOf { route: None, per: b.per, limit: b.limit, retry };
            let route_name = b.route.and_then(|r| routes.get(r)).map(|r| r.name.as_str());
            let text = match message {
                Some((last, text)) if *last == of && last.route.as_deref() == route_name => text.clone(),
                _ => {
                    let text = format!(
                        "too many requests: {} limit of {} per second with a burst of {}; retry in {retry} s",
                        b.name(routes),
                        b.limit.rate_per_sec(),
                        b.limit.burst()
                    );
                    *message = Some((MessageOf { route: route_name.map(str::to_owned), ..of }, text.clone()));
                    text
                }
            };
            return Err(LocalReply {
                retry_after_secs: Some(retry),
                rate: Some(RateHeaders {
                    limit: b.limit.capacity(),
                    remaining: 0,
                    reset_secs: bucket::secs_ceil(reset_us).max(retry),
                }),
                ..LocalReply::new(DecisionKind::RateLimited, ErrorCode::RateLimited, text)
            });
        }
        let mut lost = Vec::new();
        for &(i, next, cas) in reads.iter() {
            let b = &uses[i];
            let key = &keys[b.key.clone()];
            match store.set(key, &next.encode(), cas) {
                Ok(()) => charged.push((key.to_owned(), b.limit)),
                Err(SetError::CasMismatch) => lost.push(i),
                // Buckets already charged stay charged: the strict side.
                Err(SetError::Full) => return Err(store_full()),
            }
        }
        if lost.is_empty() {
            return Ok(());
        }
        *pending = lost;
    }
    Err(LocalReply {
        retry_after_secs: Some(1),
        ..LocalReply::new(
            DecisionKind::RateLimited,
            ErrorCode::RateLimited,
            "too many concurrent requests for one limit; retry in 1 s",
        )
    })
}
