//! The proxy-wasm glue: a root context per worker VM (configuration, metrics,
//! the sync timer) and an HTTP context per request. Everything it decides is
//! decided by [`Engine`]; this module only moves bytes between it and the host.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MapType, MetricType};

use crate::config::Config;
use crate::decision::{DecisionKind, Lease, LocalReply, Verdict};
use crate::engine::{Engine, Refresh};
use crate::host_calls::{HostStore, now_us, request_header_bytes, send_local_response, source_address};
use crate::store::SharedStore;
use crate::sync::{self, Freshness, SyncOutcome, Turn};
use seckill_api::client_addr::parse_peer;
use seckill_api::header_map;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(EdgeRoot::default()) });
}}

/// Metric ids (`None` if the host refused to define one).
#[derive(Debug, Clone, Copy, Default)]
struct Metrics {
    decisions: [Option<u32>; DecisionKind::ALL.len()],
    sync: [Option<u32>; SyncOutcome::METRICS.len()],
    sync_age_ms: Option<u32>,
    state_loaded: Option<u32>,
    state_stale: Option<u32>,
    in_flight: Option<u32>,
    release_failures: Option<u32>,
}

impl Metrics {
    fn define() -> Self {
        let counter = |name: &str| hostcalls::define_metric(MetricType::Counter, name).ok();
        let gauge = |name: &str| hostcalls::define_metric(MetricType::Gauge, name).ok();
        let mut m = Self::default();
        for (slot, kind) in m.decisions.iter_mut().zip(DecisionKind::ALL) {
            *slot = counter(kind.metric_name());
        }
        for (slot, name) in m.sync.iter_mut().zip(SyncOutcome::METRICS) {
            *slot = counter(name);
        }
        m.sync_age_ms = gauge("seckill_edge_sync_age_ms");
        m.state_loaded = gauge("seckill_edge_state_loaded");
        m.state_stale = gauge("seckill_edge_state_stale");
        m.in_flight = gauge("seckill_edge_in_flight");
        m.release_failures = counter("seckill_edge_in_flight_release_failures");
        m
    }

    fn incr(id: Option<u32>) {
        if let Some(id) = id {
            let _ = hostcalls::increment_metric(id, 1);
        }
    }

    fn set(id: Option<u32>, value: u64) {
        if let Some(id) = id {
            let _ = hostcalls::record_metric(id, value);
        }
    }

    fn sync(&self, outcome: &SyncOutcome) {
        if let Some(i) = SyncOutcome::METRICS.iter().position(|n| *n == outcome.metric_name()) {
            Self::incr(self.sync[i]);
        }
    }
}

/// Decisions are counted inside the VM and added to the host's counters at
/// most this often (and on every tick): a host call less per request, for
/// counters at most this late.
const DECISIONS_FLUSH_US: u64 = 100_000;

/// The root context's state, which its HTTP contexts share (one per VM).
#[derive(Default)]
struct RootState {
    engine: Option<Engine>,
    metrics: Metrics,
    /// Decisions not yet added to the host's counters, and when they last were.
    unflushed: [u64; DecisionKind::ALL.len()],
    flushed_at_us: u64,
    /// Requests refused because shared data was full (for quieter logs).
    store_full: u64,
    /// The last local reply and its header map and body as sent: a flood
    /// is refused with the same reply request after request, and these are
    /// then sent again as they are instead of being written anew.
    last_reply: Option<SentReply>,
}

struct SentReply {
    reply: LocalReply,
    header_map: Vec<u8>,
    body: Vec<u8>,
}

impl RootState {
    fn count_decision(&mut self, kind: DecisionKind, now_us: u64) {
        self.unflushed[kind.index()] += 1;
        // The first decision goes out at once (flushed_at_us starts at 0), as
        // does any after the clock went back.
        if now_us < self.flushed_at_us || now_us - self.flushed_at_us >= DECISIONS_FLUSH_US {
            self.flush_decisions(now_us);
        }
    }

    fn flush_decisions(&mut self, now_us: u64) {
        self.flushed_at_us = now_us;
        for (count, id) in self.unflushed.iter_mut().zip(self.metrics.decisions) {
            if *count > 0 {
                if let Some(id) = id {
                    let _ = hostcalls::increment_metric(id, i64::try_from(*count).unwrap_or(i64::MAX));
                }
                *count = 0;
            }
        }
    }

    /// Sets the age and staleness gauges, and logs a turn this VM recorded.
    fn report_freshness(&self, now_us: u64) {
        let Some(engine) = self.engine.as_ref() else { return };
        let max_age_ms = engine.config().state_max_age_ms;
        let Freshness { record, age_us, stale, turned } =
            sync::check_freshness(&HostStore, now_us, max_age_ms.saturating_mul(1000));
        if let Some(age) = age_us {
            Metrics::set(self.metrics.sync_age_ms, age / 1000);
        }
        Metrics::set(self.metrics.state_stale, u64::from(stale));
        let version = record.version.as_deref().unwrap_or("?");
        match turned {
            Some(Turn::Stale) => log::warn!(
                "seckill-edge: state {version} is stale: the backend has not confirmed it for {} \
                 (state_max_age_ms {max_age_ms}; last error: {}); token and purchase requests of the activities \
                 it lists as sold out, not started or ended now go to the backend, its rules and blacklist \
                 still apply",
                age_us.map_or_else(|| "an unknown time".to_owned(), |a| format!("{} ms", a / 1000)),
                record.last_error.as_deref().unwrap_or("none"),
            ),
            Some(Turn::Fresh { stale_for_us }) => log::info!(
                "seckill-edge: state {version} is fresh again after {} ms stale; the edge answers for its \
                 activity lists again",
                stale_for_us / 1000
            ),
            None => {}
        }
    }

    fn refresh(&mut self) {
        if let Some(engine) = self.engine.as_mut() {
            if let Refresh::Loaded(version) = engine.refresh(&HostStore) {
                log::debug!("seckill-edge: state {version} loaded");
            }
            if let Some(why) = engine.take_problem() {
                log::error!("seckill-edge: cannot read the shared state, keeping the last one: {why}");
            }
        }
    }
}

#[derive(Default)]
struct EdgeRoot {
    root: Rc<RefCell<RootState>>,
    ticked: bool,
    /// The sync request in flight: its token and when it was sent.
    pending: Option<(u32, u64)>,
    /// Consecutive failures seen by this VM (for quieter logs).
    failures: u32,
}

impl Context for EdgeRoot {
    fn on_http_call_response(&mut self, token_id: u32, _num_headers: usize, body_size: usize, _num_trailers: usize) {
        if self.pending.is_some_and(|(t, _)| t == token_id) {
            self.pending = None;
        }
        let now = now_us();
        let status = hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten()
            .and_then(|s| std::str::from_utf8(&s).ok().and_then(|s| s.trim().parse::<u16>().ok()));
        let body = if status == Some(200) && body_size > 0 {
            self.get_http_call_response_body(0, body_size.min(sync::MAX_STATE_BYTES + 1))
        } else {
            None
        };
        let mut root = self.root.borrow_mut();
        root.refresh();
        let Some(engine) = root.engine.as_ref() else { return };
        let outcome = sync::handle_response(&HostStore, engine.current(), status, body.as_deref(), now);
        root.metrics.sync(&outcome);
        match &outcome {
            SyncOutcome::Updated { version, repairs } => {
                log::info!("seckill-edge: state {version} stored");
                if let Some(e) = &repairs.rules_refused {
                    log::error!("seckill-edge: the backend's rules were refused, the last good rules stay: {e}");
                }
                if !repairs.bad_ips.is_empty() {
                    log::warn!(
                        "seckill-edge: blacklist entries that are not IPs or ranges were dropped: {:?}",
                        repairs.bad_ips
                    );
                }
                self.failures = 0;
            }
            SyncOutcome::NotModified => self.failures = 0,
            SyncOutcome::Failed(why) | SyncOutcome::Invalid(why) => {
                self.failures += 1;
                if self.failures == 1 || self.failures.is_multiple_of(60) {
                    log::warn!(
                        "seckill-edge: state sync failed ({} in a row here), keeping the last state: {why}",
                        self.failures
                    );
                }
            }
        }
        root.refresh();
        root.report_freshness(now);
        let loaded = root.engine.as_ref().is_some_and(Engine::has_state);
        Metrics::set(root.metrics.state_loaded, u64::from(loaded));
    }
}

impl RootContext for EdgeRoot {
    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        self.root.borrow_mut().metrics = Metrics::define();
        true
    }

    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        let config = match Config::from_json(&bytes) {
            Ok(c) => c,
            Err(e) => {
                log::error!("seckill-edge: bad plugin configuration: {e}");
                return false;
            }
        };
        let period = config.sync_period_ms;
        let fail_open = config.fail_open;
        let mut root = self.root.borrow_mut();
        if root.metrics.decisions.iter().all(Option::is_none) {
            root.metrics = Metrics::define();
        }
        Engine::prepare(&HostStore);
        root.engine = Some(Engine::new(config));
        root.refresh();
        drop(root);
        // The first sync comes soon; then one per period.
        self.ticked = false;
        if hostcalls::set_tick_period(Duration::from_millis(period.min(100))).is_err() {
            log::error!("seckill-edge: the host refused a tick period; the state will never sync");
        }
        log::info!("seckill-edge: configured (sync every {period} ms, fail_open={fail_open})");
        true
    }

    fn on_tick(&mut self) {
        let now = now_us();
        let mut root = self.root.borrow_mut();
        let Some(period_ms) = root.engine.as_ref().map(|e| e.config().sync_period_ms) else { return };
        if !self.ticked {
            self.ticked = true;
            let _ = hostcalls::set_tick_period(Duration::from_millis(period_ms));
        }
        root.refresh();
        root.report_freshness(now);
        root.flush_decisions(now);
        let metrics = root.metrics;
        let Some(engine) = root.engine.as_mut() else { return };
        engine.sweep(&HostStore, now, 2_000);
        Metrics::set(metrics.state_loaded, u64::from(engine.has_state()));
        // Sampled here rather than at every admission: one host call less per request.
        let (in_flight, _) = HostStore.get(crate::state::INFLIGHT_TOTAL_KEY);
        Metrics::set(metrics.in_flight, u64::from(crate::store::decode_count(in_flight.as_deref())));

        let config = engine.config();
        let period_us = period_ms * 1000;
        // A request whose answer never came (a host bug) does not block syncing for good.
        if let Some((_, sent)) = self.pending
            && now.saturating_sub(sent) > period_us + config.sync_timeout_ms * 1000
        {
            self.pending = None;
        }
        if self.pending.is_some() || !sync::try_claim(&HostStore, now, period_us) {
            return;
        }
        let headers = sync::request_headers(config, engine.current().version.as_deref());
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        match hostcalls::dispatch_http_call(
            &config.backend_cluster,
            headers,
            None,
            vec![],
            Duration::from_millis(config.sync_timeout_ms),
        ) {
            Ok(token) => self.pending = Some((token, now)),
            Err(status) => {
                let outcome = sync::record_failure(
                    &HostStore,
                    now,
                    &format!("dispatch_http_call to cluster `{}` failed: {status:?}", config.backend_cluster),
                );
                metrics.sync(&outcome);
                self.failures += 1;
                if self.failures == 1 || self.failures.is_multiple_of(60) {
                    log::warn!(
                        "seckill-edge: state sync could not be sent ({} in a row here): {status:?}",
                        self.failures
                    );
                }
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(EdgeHttp {
            root: Rc::clone(&self.root),
            lease: None,
            decided: false,
            metrics: self.root.borrow().metrics,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// The stream property an admitted request's lease is also written to: the
/// host keeps a stream's properties when the VM that admitted it fails, and
/// ends the stream in the VM that replaces it (a context whose first
/// callback is `on_done`), which gives the slot back from there.
const LEASE_PROPERTY: &str = "seckill_edge_lease";

struct EdgeHttp {
    root: Rc<RefCell<RootState>>,
    /// Held from admission until the stream ends, whichever way it ends.
    lease: Option<Lease>,
    /// This VM judged the request (saw its headers).
    decided: bool,
    metrics: Metrics,
}

impl EdgeHttp {
    /// A stream this VM never judged that ends here was admitted by a VM
    /// since lost: its lease is in the stream's properties.
    fn adopt_lease(&mut self) {
        if self.decided || self.lease.is_some() {
            return;
        }
        self.lease = hostcalls::get_property(vec![LEASE_PROPERTY])
            .ok()
            .flatten()
            .and_then(|key| String::from_utf8(key).ok())
            .and_then(|key| Lease::adopt(&key));
    }

    /// Gives the in-flight slot back, once: from `on_done`, `on_log`, or at
    /// the latest when the host deletes the context (a reset stream).
    fn release(&mut self) {
        if let Some(lease) = self.lease.take()
            && !Engine::release(&HostStore, lease)
        {
            Metrics::incr(self.metrics.release_failures);
            log::error!("seckill-edge: an in-flight slot could not be given back (shared-data contention)");
        }
    }
}

impl Drop for EdgeHttp {
    fn drop(&mut self) {
        self.release();
    }
}

impl Context for EdgeHttp {
    fn on_done(&mut self) -> bool {
        self.adopt_lease();
        self.release();
        true
    }
}

impl HttpContext for EdgeHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.decided = true;
        let now = now_us();
        let buffer = request_header_bytes();
        // A buffer the host garbled, or a header name that is not text,
        // judges as no headers at all: a 400. The pairs are read in place.
        let headers = header_map::pairs(&buffer)
            .ok()
            .filter(|pairs| pairs.iter().all(|(k, _)| std::str::from_utf8(k).is_ok()))
            .unwrap_or_default();
        let peer = source_address();
        let peer = peer.as_deref().and_then(|b| std::str::from_utf8(b).ok()).and_then(parse_peer);
        let mut root = self.root.borrow_mut();
        let verdict = match root.engine.as_mut() {
            Some(engine) => engine.decide(&HostStore, &headers, peer, now),
            None => {
                // Not configured: on_configure refused, so the host should not route here.
                drop(root);
                self.send_http_response(
                    503,
                    vec![("content-type", "application/json")],
                    Some(br#"{"code":"unavailable","message":"the edge filter is not configured"}"#),
                );
                return Action::Pause;
            }
        };
        root.count_decision(verdict.kind(), now);
        if verdict.kind() == DecisionKind::StoreFull {
            root.store_full += 1;
            if root.store_full == 1 || root.store_full.is_multiple_of(1000) {
                log::error!(
                    "seckill-edge: shared data is full: a request was refused because its limits could not be \
                     stored ({} so far on this VM)",
                    root.store_full
                );
            }
        }
        drop(root);
        match verdict {
            Verdict::Allow(admission) => {
                let _ = hostcalls::set_property(vec![LEASE_PROPERTY], Some(admission.lease.ip_key().as_bytes()));
                self.lease = Some(admission.lease);
                // The backend trusts the edge's x-forwarded-for: only the client
                // address the edge vouches for goes on.
                if admission.rewrite_forwarded_for {
                    let _ = hostcalls::set_map_value(
                        MapType::HttpRequestHeaders,
                        "x-forwarded-for",
                        Some(&admission.client_ip),
                    );
                }
                Action::Continue
            }
            Verdict::Reject(reply) => {
                // Taken out while the host has it: no borrow of the root
                // state is held across the host call.
                let last = self.root.borrow_mut().last_reply.take();
                let sent = match last {
                    Some(sent) if sent.reply == reply => sent,
                    _ => SentReply { header_map: reply.header_map(), body: reply.body(), reply },
                };
                let _ = send_local_response(sent.reply.status(), &sent.header_map, &sent.body);
                self.root.borrow_mut().last_reply = Some(sent);
                Action::Pause
            }
        }
    }

    fn on_log(&mut self) {
        self.release();
    }
}
