//! The per-VM state the imports work on: contexts, header maps and buffers
//! of the streams in flight, callouts, signals for the embedder.
//!
//! Why one file of ~520 lines: this is the one struct every import family
//! mutates (`HostState`) and the types it holds; splitting it would scatter
//! the state that `imports/` must see whole.

use crate::abi::{Fields, LogLevel, buffer, map_type};
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::shared::{QueueNotifier, SharedData, SharedQueues};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wasmtime::{Memory, StoreLimits, StoreLimitsBuilder, TypedFunc};

/// Hashes host-assigned ids (context ids, tokens): no attacker chooses them.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ *b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

pub(crate) type IdMap<V> = HashMap<u32, V, std::hash::BuildHasherDefault<IdHasher>>;

/// How the host runs a filter. [`HostConfig::default`] suits tests.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// `plugin_name` property.
    pub plugin_name: String,
    /// `plugin_root_id` property.
    pub root_id: String,
    /// `plugin_vm_id` property, and the namespace of shared queues.
    pub vm_id: String,
    /// Buffer 7, handed to `proxy_on_configure`.
    pub plugin_config: Vec<u8>,
    /// Buffer 6, handed to `proxy_on_vm_start`.
    pub vm_config: Vec<u8>,
    /// Cluster name → `host:port` that `proxy_http_call` may reach.
    pub clusters: HashMap<String, String>,
    /// Least level of filter logs kept (also what `proxy_get_log_level` says).
    pub log_level: LogLevel,
    /// Linear-memory limit of each VM.
    pub max_memory_bytes: usize,
    /// Longest a single callback may run before the VM is interrupted
    /// (epoch interruption, ~7% of the filter's run time); zero: no limit.
    pub callback_timeout: Duration,
    /// Byte budget of the shared key-value store.
    pub shared_data_max_bytes: usize,
    /// Most HTTP calls one VM may have outstanding (more: `INTERNAL_FAILURE`).
    pub max_pending_http_calls: usize,
    /// Timeout of an HTTP call dispatched with timeout 0.
    pub default_http_call_timeout: Duration,
    /// Keep filter log lines in memory (the harness reads them).
    pub capture_logs: bool,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            plugin_name: "seckill_edge".into(),
            // As envoy/envoy.yaml names them.
            root_id: "seckill_edge".into(),
            vm_id: "seckill_edge".into(),
            plugin_config: Vec::new(),
            vm_config: Vec::new(),
            clusters: HashMap::new(),
            log_level: LogLevel::Info,
            max_memory_bytes: 256 << 20,
            callback_timeout: Duration::from_secs(1),
            shared_data_max_bytes: 256 << 20,
            max_pending_http_calls: 1024,
            default_http_call_timeout: Duration::from_secs(30),
            capture_logs: false,
        }
    }
}

/// One line the filter logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub level: LogLevel,
    pub message: String,
    pub vm: usize,
    pub context: u32,
}

/// Ids of the host's own metrics in [`Env::metrics`].
pub(crate) struct HostMetrics {
    pub vm_failures: u32,
    pub shared_data_rejected: u32,
    pub shared_data_keys: u32,
    pub shared_data_bytes: u32,
}

/// What all VMs of one plugin share.
pub struct Env {
    pub config: HostConfig,
    pub shared_data: SharedData,
    pub queues: SharedQueues,
    pub metrics: Metrics,
    pub clock: Arc<dyn Clock>,
    pub(crate) host_metrics: HostMetrics,
    pub(crate) logs: Mutex<Vec<LogRecord>>,
    next_token: AtomicU32,
}

impl Env {
    pub(crate) fn new(config: HostConfig, clock: Arc<dyn Clock>) -> Self {
        use crate::abi::MetricKind::{Counter, Gauge};
        let metrics = Metrics::new();
        let host_metrics = HostMetrics {
            vm_failures: metrics.define(Counter, "seckill_edge_vm_failures_total"),
            shared_data_rejected: metrics.define(Counter, "seckill_edge_shared_data_rejected_total"),
            shared_data_keys: metrics.define(Gauge, "seckill_edge_shared_data_keys"),
            shared_data_bytes: metrics.define(Gauge, "seckill_edge_shared_data_bytes"),
        };
        Self {
            shared_data: SharedData::new(config.shared_data_max_bytes),
            queues: SharedQueues::default(),
            metrics,
            clock,
            host_metrics,
            logs: Mutex::new(Vec::new()),
            next_token: AtomicU32::new(1),
            config,
        }
    }

    /// A callout token, unique in the process (so tokens name calls across VMs).
    pub(crate) fn token(&self) -> u32 {
        loop {
            let t = self.next_token.fetch_add(1, Ordering::Relaxed);
            if t != 0 {
                return t;
            }
        }
    }
}

/// Connection facts of a stream, for its properties.
#[derive(Debug, Clone)]
pub struct StreamInfo {
    /// `source.address` / `source.port`: the TCP peer.
    pub peer: SocketAddr,
    /// `destination.address` / `destination.port`: the local listener.
    pub local: SocketAddr,
    /// `connection.id`.
    pub connection_id: u64,
    /// `request.protocol`, e.g. `HTTP/1.1`.
    pub protocol: &'static str,
    /// `request.time`, nanoseconds since the epoch (0: now).
    pub start_nanos: u64,
}

impl StreamInfo {
    pub fn new(peer: SocketAddr, local: SocketAddr) -> Self {
        Self { peer, local, connection_id: 0, protocol: "HTTP/1.1", start_nanos: 0 }
    }
}

/// A response the filter asked the host to send instead of proxying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalResponse {
    pub status: u16,
    pub headers: Fields,
    pub body: Vec<u8>,
    pub details: String,
}

/// Something the filter asked for a stream from *another* callback (an HTTP
/// call response, a tick): the embedder routes it to the paused stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    ContinueRequest,
    ContinueResponse,
    LocalResponse(LocalResponse),
    Reset,
}

/// An HTTP call the filter dispatched (`proxy_http_call`).
#[derive(Debug, Clone)]
pub struct HttpCallRequest {
    pub token: u32,
    /// Index of the VM that made it.
    pub vm: usize,
    /// The context that made it (the root context for state sync).
    pub context_id: u32,
    pub cluster: String,
    /// `host:port` the cluster resolves to.
    pub target: String,
    /// The request headers, pseudo headers (`:method`, `:path`, `:authority`) included.
    pub headers: Fields,
    pub body: Vec<u8>,
    pub trailers: Fields,
    pub timeout: Duration,
    /// Clock time of the dispatch (nanoseconds since the epoch).
    pub dispatched_at: u64,
}

impl HttpCallRequest {
    pub fn method(&self) -> &str {
        self.headers.get_str(":method").unwrap_or("GET")
    }

    pub fn path(&self) -> &str {
        self.headers.get_str(":path").unwrap_or("/")
    }

    pub fn authority(&self) -> &str {
        self.headers.get_str(":authority").unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get_str(name)
    }
}

/// What an HTTP call got back. A failed call (connect error, timeout) is
/// delivered without one, as Envoy does: zero headers, zero body.
#[derive(Debug, Clone, Default)]
pub struct HttpCallResponse {
    pub status: u16,
    /// Response headers without `:status` (the host adds it).
    pub headers: Fields,
    pub body: Vec<u8>,
    pub trailers: Fields,
}

pub(crate) struct StreamState {
    pub info: StreamInfo,
    pub request_headers: Fields,
    pub request_trailers: Fields,
    pub response_headers: Fields,
    pub response_trailers: Fields,
    pub request_body: Vec<u8>,
    pub response_body: Vec<u8>,
    pub response_code: Option<u16>,
    pub props: HashMap<Vec<u8>, Vec<u8>>,
    pub done_pending: bool,
    /// `proxy_on_done` was called (the stream's end began).
    pub ending: bool,
}

impl StreamState {
    pub fn new(info: StreamInfo) -> Self {
        Self {
            info,
            request_headers: Fields::new(),
            request_trailers: Fields::new(),
            response_headers: Fields::new(),
            response_trailers: Fields::new(),
            request_body: Vec::new(),
            response_body: Vec::new(),
            response_code: None,
            props: HashMap::new(),
            done_pending: false,
            ending: false,
        }
    }
}

pub(crate) struct CallResponseState {
    pub status: u16,
    pub headers: Fields,
    pub body: Vec<u8>,
    pub trailers: Fields,
}

/// The `T` of the wasmtime `Store`.
pub struct HostState {
    pub(crate) env: Arc<Env>,
    pub(crate) vm_index: usize,
    pub(crate) memory: Option<Memory>,
    pub(crate) alloc: Option<Arc<TypedFunc<i32, i32>>>,
    pub(crate) root_id: u32,
    pub(crate) effective: u32,
    pub(crate) streams: IdMap<StreamState>,
    pub(crate) root_props: HashMap<Vec<u8>, Vec<u8>>,
    /// Outstanding callouts: token → the context that dispatched it.
    pub(crate) callouts: IdMap<u32>,
    pub(crate) outgoing: Vec<HttpCallRequest>,
    pub(crate) call_response: Option<CallResponseState>,
    pub(crate) tick_period: Option<Duration>,
    pub(crate) tick_changed: bool,
    pub(crate) signals: Vec<(u32, Signal)>,
    pub(crate) done_requests: Vec<u32>,
    pub(crate) queue_notifier: Arc<QueueNotifier>,
    pub(crate) limits: StoreLimits,
    /// The last warnings/errors the filter logged (for error messages).
    pub(crate) recent_errors: VecDeque<String>,
    pub(crate) shared_rejections: u64,
}

impl HostState {
    pub(crate) fn new(env: Arc<Env>, vm_index: usize) -> Self {
        let limits = StoreLimitsBuilder::new()
            .memory_size(env.config.max_memory_bytes)
            .instances(1)
            .memories(1)
            .tables(4)
            .table_elements(100_000)
            .build();
        Self {
            env,
            vm_index,
            memory: None,
            alloc: None,
            root_id: 0,
            effective: 0,
            streams: IdMap::default(),
            root_props: HashMap::new(),
            callouts: IdMap::default(),
            outgoing: Vec::new(),
            call_response: None,
            tick_period: None,
            tick_changed: false,
            signals: Vec::new(),
            done_requests: Vec::new(),
            queue_notifier: Arc::new(QueueNotifier::default()),
            limits,
            recent_errors: VecDeque::new(),
            shared_rejections: 0,
        }
    }

    pub(crate) fn log(&mut self, level: LogLevel, message: &str) {
        let config = &self.env.config;
        if level < config.log_level {
            return;
        }
        let (vm, ctx) = (self.vm_index, self.effective);
        match level {
            LogLevel::Trace => tracing::trace!(target: "seckill_edge::filter", vm, ctx, "{message}"),
            LogLevel::Debug => tracing::debug!(target: "seckill_edge::filter", vm, ctx, "{message}"),
            LogLevel::Info => tracing::info!(target: "seckill_edge::filter", vm, ctx, "{message}"),
            LogLevel::Warn => tracing::warn!(target: "seckill_edge::filter", vm, ctx, "{message}"),
            LogLevel::Error | LogLevel::Critical => {
                tracing::error!(target: "seckill_edge::filter", vm, ctx, "{message}")
            }
        }
        if level >= LogLevel::Warn {
            if self.recent_errors.len() == 8 {
                self.recent_errors.pop_front();
            }
            self.recent_errors.push_back(message.to_string());
        }
        if config.capture_logs {
            let rec = LogRecord { level, message: message.to_string(), vm, context: ctx };
            let mut logs = self.env.logs.lock().unwrap_or_else(|e| e.into_inner());
            if logs.len() < 100_000 {
                logs.push(rec);
            }
        }
    }

    fn stream(&self) -> Option<&StreamState> {
        self.streams.get(&self.effective)
    }

    fn stream_mut(&mut self) -> Option<&mut StreamState> {
        self.streams.get_mut(&self.effective)
    }

    /// The effective context is a live stream or the root context.
    pub(crate) fn is_context(&self, ctx: u32) -> bool {
        ctx == self.root_id || self.streams.contains_key(&ctx)
    }

    /// A readable buffer; `None` when unknown or not available now.
    pub(crate) fn buffer(&self, ty: u32) -> Option<&[u8]> {
        match ty {
            buffer::HTTP_REQUEST_BODY => self.stream().map(|s| s.request_body.as_slice()),
            buffer::HTTP_RESPONSE_BODY => self.stream().map(|s| s.response_body.as_slice()),
            buffer::HTTP_CALL_RESPONSE_BODY => self.call_response.as_ref().map(|c| c.body.as_slice()),
            buffer::VM_CONFIGURATION => Some(&self.env.config.vm_config),
            buffer::PLUGIN_CONFIGURATION => Some(&self.env.config.plugin_config),
            _ => None,
        }
    }

    pub(crate) fn buffer_mut(&mut self, ty: u32) -> Option<&mut Vec<u8>> {
        match ty {
            buffer::HTTP_REQUEST_BODY => self.stream_mut().map(|s| &mut s.request_body),
            buffer::HTTP_RESPONSE_BODY => self.stream_mut().map(|s| &mut s.response_body),
            _ => None,
        }
    }

    /// `Err(())` for an unknown map type, `Ok(None)` for one not available now.
    #[allow(clippy::result_unit_err)]
    pub(crate) fn map(&self, ty: u32) -> Result<Option<&Fields>, ()> {
        Ok(match ty {
            map_type::HTTP_REQUEST_HEADERS => self.stream().map(|s| &s.request_headers),
            map_type::HTTP_REQUEST_TRAILERS => self.stream().map(|s| &s.request_trailers),
            map_type::HTTP_RESPONSE_HEADERS => self.stream().map(|s| &s.response_headers),
            map_type::HTTP_RESPONSE_TRAILERS => self.stream().map(|s| &s.response_trailers),
            map_type::GRPC_CALL_INITIAL_METADATA | map_type::GRPC_CALL_TRAILING_METADATA => None,
            map_type::HTTP_CALL_RESPONSE_HEADERS => self.call_response.as_ref().map(|c| &c.headers),
            map_type::HTTP_CALL_RESPONSE_TRAILERS => self.call_response.as_ref().map(|c| &c.trailers),
            _ => return Err(()),
        })
    }

    #[allow(clippy::result_unit_err)]
    pub(crate) fn map_mut(&mut self, ty: u32) -> Result<Option<&mut Fields>, ()> {
        Ok(match ty {
            map_type::HTTP_REQUEST_HEADERS => self.stream_mut().map(|s| &mut s.request_headers),
            map_type::HTTP_REQUEST_TRAILERS => self.stream_mut().map(|s| &mut s.request_trailers),
            map_type::HTTP_RESPONSE_HEADERS => self.stream_mut().map(|s| &mut s.response_headers),
            map_type::HTTP_RESPONSE_TRAILERS => self.stream_mut().map(|s| &mut s.response_trailers),
            // Read-only or unavailable: writes are accepted and dropped.
            map_type::GRPC_CALL_INITIAL_METADATA
            | map_type::GRPC_CALL_TRAILING_METADATA
            | map_type::HTTP_CALL_RESPONSE_HEADERS
            | map_type::HTTP_CALL_RESPONSE_TRAILERS => None,
            _ => return Err(()),
        })
    }

    pub(crate) fn set_property(&mut self, path: &[u8], value: &[u8]) {
        let props =
            if let Some(s) = self.streams.get_mut(&self.effective) { &mut s.props } else { &mut self.root_props };
        if value.is_empty() {
            props.remove(path);
        } else {
            props.insert(path.to_vec(), value.to_vec());
        }
    }

    /// `proxy_get_property`: Envoy's attribute names and encodings (strings
    /// raw, integers and timestamps as 8-byte little-endian, maps serialised).
    pub(crate) fn property(&self, path: &[u8]) -> Option<Vec<u8>> {
        let stream = self.stream();
        let user = stream.map(|s| &s.props).unwrap_or(&self.root_props);
        if let Some(v) = user.get(path).or_else(|| self.root_props.get(path)) {
            return Some(v.clone());
        }
        let config = &self.env.config;
        let int = |v: i64| Some(v.to_le_bytes().to_vec());
        let text = |s: &str| Some(s.as_bytes().to_vec());
        // `request.headers.<name>` / `response.headers.<name>`.
        for (prefix, response) in [(&b"request\0headers\0"[..], false), (&b"response\0headers\0"[..], true)] {
            if let Some(name) = path.strip_prefix(prefix) {
                let s = stream?;
                let name = std::str::from_utf8(name).ok()?;
                let map = if response { &s.response_headers } else { &s.request_headers };
                return map.get(name).map(<[u8]>::to_vec);
            }
        }
        // `["source", "address"]` arrives as `source\0address`; `source.address` works too.
        let is = |name: &str| {
            path.len() == name.len() && path.iter().zip(name.bytes()).all(|(a, b)| *a == b || (*a == 0 && b == b'.'))
        };
        if is("plugin_name") {
            return text(&config.plugin_name);
        }
        if is("plugin_root_id") {
            return text(&config.root_id);
        }
        if is("plugin_vm_id") {
            return text(&config.vm_id);
        }
        let s = stream?;
        let header = |name: &str| s.request_headers.get(name).map(<[u8]>::to_vec);
        let path_q = s.request_headers.get_str(":path").unwrap_or("/");
        const NAMES: &[&str] = &[
            "source.address",
            "source.port",
            "destination.address",
            "destination.port",
            "connection.id",
            "request.path",
            "request.url_path",
            "request.query",
            "request.host",
            "request.scheme",
            "request.method",
            "request.protocol",
            "request.id",
            "request.useragent",
            "request.referer",
            "request.time",
            "request.duration",
            "request.headers",
            "response.code",
            "response.headers",
        ];
        match *NAMES.iter().find(|n| is(n))? {
            "source.address" => text(&s.info.peer.to_string()),
            "source.port" => int(s.info.peer.port() as i64),
            "destination.address" => text(&s.info.local.to_string()),
            "destination.port" => int(s.info.local.port() as i64),
            "connection.id" => int(s.info.connection_id as i64),
            "request.path" => header(":path"),
            "request.url_path" => text(path_q.split('?').next().unwrap_or("/")),
            "request.query" => path_q.split_once('?').map(|(_, q)| q.as_bytes().to_vec()),
            "request.host" => header(":authority"),
            "request.scheme" => header(":scheme"),
            "request.method" => header(":method"),
            "request.protocol" => text(s.info.protocol),
            "request.id" => header("x-request-id"),
            "request.useragent" => header("user-agent"),
            "request.referer" => header("referer"),
            "request.time" => int(s.info.start_nanos as i64),
            "request.duration" => int(self.env.clock.now_nanos().saturating_sub(s.info.start_nanos) as i64),
            "request.headers" => Some(Fields::from_pairs(s.request_headers.regular()).serialize()),
            "response.code" => s.response_code.map(|c| c as i64).and_then(int),
            "response.headers" => Some(Fields::from_pairs(s.response_headers.regular()).serialize()),
            _ => None,
        }
    }
}
