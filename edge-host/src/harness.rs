//! A synchronous test harness around the real `.wasm`: requests in,
//! decisions out; the test plays the backend for the filter's HTTP calls and
//! moves the clock.
//!
//! Longer than 500 lines (a few) on purpose: every test of the filter drives
//! it, and its request, HTTP-call and clock steps share one `Vm` borrow.
//!
//! ```no_run
//! use seckill_edge_host::{Harness, ManualClock, RequestFate, RequestSpec};
//! let clock = ManualClock::at_unix_secs(1_800_000_000);
//! let mut h = Harness::load("filter.wasm", r#"{"backend_cluster":"seckill_backend"}"#, clock).unwrap();
//! match h.request(RequestSpec::get("/api/activities").peer("203.0.113.7:5000")).unwrap() {
//!     RequestFate::Continue { stream, .. } => h.end_stream(stream).unwrap(),
//!     other => panic!("{other:?}"),
//! }
//! ```

use crate::abi::Fields;
use crate::clock::Clock;
use crate::host::{HostConfig, HttpCallRequest, HttpCallResponse, LocalResponse, LogRecord, Signal, StreamInfo};
use crate::vm::{Decision, Plugin, Vm};
use anyhow::{Context as _, anyhow, bail};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A stream in the harness: which VM, which context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamId {
    pub vm: usize,
    pub context: u32,
}

/// A request as a client sends it.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    pub method: String,
    /// Path with query.
    pub path: String,
    /// `:authority` (the Host header).
    pub authority: String,
    pub headers: Vec<(String, String)>,
    /// The TCP peer (`source.address`).
    pub peer: SocketAddr,
    pub body: Vec<u8>,
    /// Which VM (worker) handles it.
    pub vm: usize,
}

impl RequestSpec {
    pub fn new(method: &str, path: &str) -> Self {
        Self {
            method: method.into(),
            path: path.into(),
            authority: "127.0.0.1:8080".into(),
            headers: Vec::new(),
            peer: "203.0.113.10:40000".parse().expect("literal address"),
            body: Vec::new(),
            vm: 0,
        }
    }

    pub fn get(path: &str) -> Self {
        Self::new("GET", path)
    }

    pub fn post(path: &str, body: impl Into<Vec<u8>>) -> Self {
        Self::new("POST", path).body(body).header("content-type", "application/json")
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// `ip:port`; panics on a malformed address.
    pub fn peer(mut self, addr: &str) -> Self {
        self.peer = addr.parse().unwrap_or_else(|_| panic!("bad peer address {addr}"));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    pub fn on_vm(mut self, vm: usize) -> Self {
        self.vm = vm;
        self
    }

    /// The request header map as the proxy builds it: pseudo headers first,
    /// the peer appended to `x-forwarded-for`, `x-forwarded-proto` set.
    pub fn fields(&self) -> Fields {
        let mut f = Fields::with_capacity(self.headers.len() + 4);
        f.add(":authority", self.authority.as_bytes());
        f.add(":path", self.path.as_bytes());
        f.add(":method", self.method.as_bytes());
        f.add(":scheme", b"http");
        for (k, v) in &self.headers {
            f.add(k, v.as_bytes());
        }
        crate::proxy::add_forwarded(&mut f, self.peer);
        f
    }
}

/// What became of a request after the filter's request phase.
#[derive(Debug, Clone)]
pub enum RequestFate {
    /// To be forwarded, with these (possibly modified) headers. The stream
    /// stays open: finish it with [`Harness::respond`] or [`Harness::end_stream`].
    Continue { stream: StreamId, headers: Fields },
    /// Answered by the filter (after its own response phase ran on it); the
    /// stream is finished.
    LocalResponse { stream: StreamId, status: u16, headers: Fields, body: Vec<u8> },
    /// Held by the filter; see [`Harness::resumed`].
    Paused { stream: StreamId },
    /// Reset by the filter; the stream is finished.
    Reset { stream: StreamId },
}

impl RequestFate {
    pub fn stream(&self) -> StreamId {
        match self {
            Self::Continue { stream, .. }
            | Self::LocalResponse { stream, .. }
            | Self::Paused { stream }
            | Self::Reset { stream } => *stream,
        }
    }

    /// The local response's status; `None` otherwise.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::LocalResponse { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn is_continue(&self) -> bool {
        matches!(self, Self::Continue { .. })
    }

    /// A header of the forwarded request or of the local response.
    pub fn header(&self, name: &str) -> Option<&str> {
        match self {
            Self::Continue { headers, .. } | Self::LocalResponse { headers, .. } => headers.get_str(name),
            _ => None,
        }
    }

    /// The local response body as JSON (`Null` when there is none or it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        match self {
            Self::LocalResponse { body, .. } => serde_json::from_slice(body).unwrap_or(serde_json::Value::Null),
            _ => serde_json::Value::Null,
        }
    }
}

/// The backend's answer as the client gets it after the response phase.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Fields,
    pub body: Vec<u8>,
    /// The filter replaced the backend's response with a local one.
    pub local: bool,
}

/// See the module docs.
pub struct Harness {
    plugin: Plugin,
    vms: Vec<Vm>,
    clock: Arc<dyn Clock>,
    calls: BTreeMap<u32, HttpCallRequest>,
    /// Per VM: (next due time in clock nanos, period).
    ticks: Vec<Option<(u64, Duration)>>,
    paused: HashSet<StreamId>,
    resumed: HashMap<StreamId, RequestFate>,
}

impl Harness {
    /// Loads the filter with `plugin_config_json` as its plugin configuration,
    /// one VM, cluster `seckill_backend` → `127.0.0.1:8081`, logs captured.
    pub fn load(wasm_path: impl AsRef<Path>, plugin_config_json: &str, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let mut config = HostConfig {
            plugin_config: plugin_config_json.as_bytes().to_vec(),
            capture_logs: true,
            ..HostConfig::default()
        };
        config.clusters.insert("seckill_backend".into(), "127.0.0.1:8081".into());
        Self::load_with(wasm_path, config, clock, 1)
    }

    /// Loads with a full configuration and `vms` VMs (as many workers).
    pub fn load_with(
        wasm_path: impl AsRef<Path>,
        config: HostConfig,
        clock: Arc<dyn Clock>,
        vms: usize,
    ) -> anyhow::Result<Self> {
        let plugin = Plugin::from_file(wasm_path, config, clock.clone())?;
        let vms = (0..vms.max(1)).map(|i| plugin.new_vm(i)).collect::<anyhow::Result<Vec<_>>>()?;
        let mut h = Self {
            ticks: vec![None; vms.len()],
            plugin,
            vms,
            clock,
            calls: BTreeMap::new(),
            paused: HashSet::new(),
            resumed: HashMap::new(),
        };
        for i in 0..h.vms.len() {
            h.pump(i)?;
        }
        Ok(h)
    }

    pub fn plugin(&self) -> &Plugin {
        &self.plugin
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn vm(&mut self, index: usize) -> &mut Vm {
        &mut self.vms[index]
    }

    /// Replaces VM `index` (after it failed) as the edge does: a new
    /// instance, in which the streams the old one left open are ended (see
    /// [`crate::vm::Orphan`]). Streams of the old VM are gone: their
    /// [`StreamId`]s must not be used again.
    pub fn rebuild_vm(&mut self, index: usize) -> anyhow::Result<()> {
        let n = self.vms.len();
        let vm = self.vms.get_mut(index).ok_or_else(|| anyhow!("no VM {index} (the harness has {n})"))?;
        self.plugin.rebuild(vm)?;
        self.paused.retain(|s| s.vm != index);
        self.resumed.retain(|s, _| s.vm != index);
        self.calls.retain(|_, c| c.vm != index);
        self.ticks[index] = None;
        self.pump(index)
    }

    fn vm_checked(&mut self, index: usize) -> anyhow::Result<&mut Vm> {
        let n = self.vms.len();
        self.vms.get_mut(index).ok_or_else(|| anyhow!("no VM {index} (the harness has {n})"))
    }

    /// Collects what the last callbacks produced: HTTP calls, tick period
    /// changes, and signals for paused streams.
    fn pump(&mut self, vm: usize) -> anyhow::Result<()> {
        let now = self.clock.now_nanos();
        let v = &mut self.vms[vm];
        for call in v.take_http_calls() {
            self.calls.insert(call.token, call);
        }
        if let Some(period) = v.take_tick_change() {
            self.ticks[vm] = period.map(|p| (now + p.as_nanos() as u64, p));
        }
        for (ctx, signal) in self.vms[vm].take_signals() {
            let stream = StreamId { vm, context: ctx };
            if !self.paused.contains(&stream) {
                continue;
            }
            let fate = match signal {
                Signal::ContinueRequest | Signal::ContinueResponse => {
                    let headers = self.vms[vm].request_headers(ctx).cloned().unwrap_or_default();
                    RequestFate::Continue { stream, headers }
                }
                Signal::LocalResponse(r) => self.local_reply(stream, r)?,
                Signal::Reset => {
                    self.vms[vm].finish_stream(ctx)?;
                    RequestFate::Reset { stream }
                }
            };
            self.paused.remove(&stream);
            self.resumed.insert(stream, fate);
        }
        Ok(())
    }

    /// Runs the response phase on a local response and finishes the stream.
    fn local_reply(&mut self, stream: StreamId, r: LocalResponse) -> anyhow::Result<RequestFate> {
        let vm = &mut self.vms[stream.vm];
        let ctx = stream.context;
        let (mut status, mut headers, mut body) = (r.status, r.headers, r.body);
        // Like Envoy, the filter sees its own local reply in the response
        // phase (a second local reply from there is ignored).
        if let Decision::Continue = vm.on_response_headers(ctx, status, &headers, body.is_empty())? {
            let map = vm.response_headers(ctx);
            status = map.and_then(|m| m.get_str(":status")).and_then(|s| s.parse().ok()).unwrap_or(status);
            headers = map.map(|m| Fields::from_pairs(m.regular())).unwrap_or_default();
        }
        if !body.is_empty() {
            let _ = vm.on_response_body(ctx, &body, true)?;
            body = vm.take_response_body(ctx);
        }
        vm.finish_stream(ctx)?;
        Ok(RequestFate::LocalResponse { stream, status, headers, body })
    }

    /// Runs the request phase: a stream context, `proxy_on_request_headers`
    /// (with `end_of_stream` when there is no body), then, when it
    /// continues and there is a body, `proxy_on_request_body` with all of it.
    pub fn request(&mut self, spec: impl std::borrow::Borrow<RequestSpec>) -> anyhow::Result<RequestFate> {
        let spec = spec.borrow();
        let vm_index = spec.vm;
        let local = SocketAddr::from(([127, 0, 0, 1], 8080));
        let vm = self.vm_checked(vm_index)?;
        let ctx = vm.create_stream(StreamInfo::new(spec.peer, local))?;
        let stream = StreamId { vm: vm_index, context: ctx };
        let mut d = vm.on_request_headers(ctx, spec.fields(), spec.body.is_empty())?;
        if d == Decision::Continue && !spec.body.is_empty() {
            d = vm.on_request_body(ctx, &spec.body, true)?;
        }
        let fate = match d {
            Decision::Continue => {
                let headers = vm.request_headers(ctx).cloned().unwrap_or_default();
                RequestFate::Continue { stream, headers }
            }
            Decision::Pause => {
                self.paused.insert(stream);
                RequestFate::Paused { stream }
            }
            Decision::LocalResponse(r) => self.local_reply(stream, r)?,
            Decision::Reset => {
                vm.finish_stream(ctx)?;
                RequestFate::Reset { stream }
            }
        };
        self.pump(vm_index)?;
        Ok(fate)
    }

    /// What became of a stream that was [`RequestFate::Paused`] and has since
    /// been continued, answered or reset by the filter.
    pub fn resumed(&mut self, stream: StreamId) -> Option<RequestFate> {
        self.resumed.remove(&stream)
    }

    /// Plays the backend's answer through the response phase, then finishes
    /// the stream (`on_done`, `on_log`, `on_delete`).
    pub fn respond(
        &mut self,
        stream: StreamId,
        status: u16,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> anyhow::Result<Response> {
        let vm = self.vm_checked(stream.vm)?;
        let ctx = stream.context;
        if !vm.has_stream(ctx) {
            bail!("stream {stream:?} is not open");
        }
        let headers = Fields::from_pairs(headers.iter().copied());
        let mut response = Response { status, headers: headers.clone(), body: body.to_vec(), local: false };
        match vm.on_response_headers(ctx, status, &headers, body.is_empty())? {
            Decision::LocalResponse(r) => {
                response = Response { status: r.status, headers: r.headers, body: r.body, local: true };
            }
            Decision::Reset => {
                vm.finish_stream(ctx)?;
                self.pump(stream.vm)?;
                bail!("the filter reset the stream in its response phase");
            }
            Decision::Continue | Decision::Pause => {
                let map = vm.response_headers(ctx).cloned().unwrap_or_default();
                response.status = map.get_str(":status").and_then(|s| s.parse().ok()).unwrap_or(status);
                response.headers = Fields::from_pairs(map.regular());
                if !body.is_empty() {
                    let _ = vm.on_response_body(ctx, body, true)?;
                    response.body = vm.take_response_body(ctx);
                }
            }
        }
        vm.finish_stream(ctx)?;
        self.pump(stream.vm)?;
        Ok(response)
    }

    /// Finishes a stream without a response phase (`on_done`, `on_log`,
    /// `on_delete`); a finished stream is left alone.
    pub fn end_stream(&mut self, stream: StreamId) -> anyhow::Result<()> {
        self.paused.remove(&stream);
        self.vm_checked(stream.vm)?.finish_stream(stream.context)?;
        self.pump(stream.vm)
    }

    /// The client went away: the stream ends as [`Harness::end_stream`] does
    /// (Envoy also runs `on_done`/`on_log`/`on_delete` on a reset).
    pub fn reset_stream(&mut self, stream: StreamId) -> anyhow::Result<()> {
        self.end_stream(stream)
    }

    /// `proxy_on_tick` on every VM now (whatever the period).
    pub fn tick(&mut self) -> anyhow::Result<()> {
        for i in 0..self.vms.len() {
            self.vms[i].tick()?;
            if let Some((_, period)) = self.ticks[i] {
                self.ticks[i] = Some((self.clock.now_nanos() + period.as_nanos() as u64, period));
            }
            self.pump(i)?;
        }
        Ok(())
    }

    /// Moves the (manual) clock forward by `by`, firing every tick that falls
    /// due on the way and failing HTTP calls whose timeout passes, in time
    /// order. At most 100 000 events per call.
    pub fn advance(&mut self, by: Duration) -> anyhow::Result<()> {
        let manual = self.clock.clone();
        let manual = manual.as_manual().context("Harness::advance needs a ManualClock")?;
        let target = self.clock.now_nanos() + by.as_nanos() as u64;
        for _ in 0..100_000 {
            let next_tick = self
                .ticks
                .iter()
                .enumerate()
                .filter_map(|(i, t)| t.map(|(due, _)| (due, i)))
                .filter(|(due, _)| *due <= target)
                .min();
            let next_timeout = self
                .calls
                .values()
                .map(|c| (c.dispatched_at + c.timeout.as_nanos() as u64, c.token))
                .filter(|(due, _)| *due <= target)
                .min();
            match (next_tick, next_timeout) {
                (None, None) => break,
                (Some((due, vm)), t) if t.is_none_or(|(tdue, _)| due <= tdue) => {
                    manual.set_nanos(due.max(self.clock.now_nanos()));
                    let period = self.ticks[vm].map(|(_, p)| p).unwrap_or_default();
                    self.ticks[vm] = Some((due + period.as_nanos().max(1) as u64, period));
                    self.vms[vm].tick()?;
                    self.pump(vm)?;
                }
                (_, Some((due, token))) => {
                    manual.set_nanos(due.max(self.clock.now_nanos()));
                    self.fail_http_call(token)?;
                }
                (Some(_), None) => unreachable!("guard above takes ticks when there is no timeout"),
            }
        }
        manual.set_nanos(target.max(self.clock.now_nanos()));
        Ok(())
    }

    /// HTTP calls dispatched and not answered yet, oldest first.
    pub fn pending_http_calls(&self) -> Vec<HttpCallRequest> {
        self.calls.values().cloned().collect()
    }

    /// Answers HTTP call `token` as the backend would; the response reaches
    /// the filter's `proxy_on_http_call_response`.
    pub fn respond_http_call(
        &mut self,
        token: u32,
        status: u16,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> anyhow::Result<()> {
        let call = self.calls.remove(&token).ok_or_else(|| anyhow!("no pending HTTP call with token {token}"))?;
        let response = HttpCallResponse {
            status,
            headers: Fields::from_pairs(headers.iter().copied()),
            body: body.to_vec(),
            trailers: Fields::new(),
        };
        self.vms[call.vm].deliver_http_call(token, Some(response))?;
        self.pump(call.vm)
    }

    /// Fails HTTP call `token` (connect error or timeout): delivered with
    /// zero headers and an empty body, as Envoy does.
    pub fn fail_http_call(&mut self, token: u32) -> anyhow::Result<()> {
        let call = self.calls.remove(&token).ok_or_else(|| anyhow!("no pending HTTP call with token {token}"))?;
        self.vms[call.vm].deliver_http_call(token, None)?;
        self.pump(call.vm)
    }

    /// A value in the shared key-value store.
    pub fn shared_data(&self, key: &str) -> Option<Vec<u8>> {
        self.plugin.env().shared_data.get(key.as_bytes()).map(|(v, _)| v.to_vec())
    }

    /// Sets a shared value (unconditionally) as test setup.
    pub fn set_shared_data(&self, key: &str, value: &[u8]) {
        let _ = self.plugin.env().shared_data.set(key.as_bytes(), value, 0);
    }

    /// All metrics, Prometheus text format.
    pub fn metrics(&self) -> String {
        self.plugin.render_metrics()
    }

    /// A counter or gauge by the name the filter defined it with.
    pub fn metric(&self, name: &str) -> Option<i64> {
        self.plugin.env().metrics.value(name)
    }

    /// The filter's log lines so far.
    pub fn logs(&self) -> Vec<LogRecord> {
        self.plugin.logs()
    }
}
