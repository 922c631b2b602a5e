//! The local edge proxy: a hyper HTTP/1 server in front of the backend that
//! runs every request through the filter, Envoy-style: N worker threads,
//! each with its own single-threaded runtime, its own VM and its own
//! keep-alive pool to the backend; a connection stays on one worker.
//!
//! Per request: `proxy_on_request_headers` (pseudo headers `:authority`,
//! `:path`, `:method`, `:scheme` first, then the client's headers) →
//! `proxy_on_request_body` when there is a body (buffered, at most
//! `max_body_bytes`) → the filter's local response, or the request forwarded
//! with the filter's headers → `proxy_on_response_headers` →
//! `proxy_on_response_body` per chunk while streaming → `proxy_on_done`,
//! `proxy_on_log`, `proxy_on_delete`, also when the client goes away.

mod body;
mod forward;

pub use forward::add_forwarded;

use crate::abi::LogLevel;
use crate::clock::SystemClock;
use crate::host::{HostConfig, HttpCallRequest, LocalResponse, Signal, StreamInfo};
use crate::vm::{Decision, Plugin, Vm, VmError};
use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc, watch};

pub use body::RespBody;

/// How the edge runs. [`ProxyConfig::new`] has the defaults of the binary.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The public listener.
    pub listen: SocketAddr,
    /// Admin listener (`/metrics`, `/healthz`); `None`: none.
    pub admin_listen: Option<SocketAddr>,
    /// `host:port` of the backend; also cluster `seckill_backend`.
    pub backend: String,
    /// The filter.
    pub wasm: PathBuf,
    /// Worker threads, one VM each.
    pub workers: usize,
    /// Requests whose request line and headers pass this get a JSON 400.
    pub max_header_bytes: usize,
    /// Request bodies beyond this get a JSON 400.
    pub max_body_bytes: usize,
    /// Time to the backend's response headers; then a JSON 503.
    pub upstream_timeout: Duration,
    /// Longest a filter may hold a request or response paused.
    pub pause_timeout: Duration,
    /// Paths starting with one of these are never forwarded (JSON 404), even
    /// if the filter lets them through.
    pub deny_prefixes: Vec<String>,
    /// When the filter VM fails: forward the request unfiltered (`true`) or
    /// answer 503 (`false`). The VM is rebuilt either way.
    pub fail_open: bool,
    /// Filter configuration, clusters (`seckill_backend` is added), log level.
    pub host: HostConfig,
}

impl ProxyConfig {
    pub fn new(wasm: impl Into<PathBuf>, backend: &str, plugin_config: Vec<u8>) -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().expect("literal address"),
            admin_listen: Some("127.0.0.1:9901".parse().expect("literal address")),
            backend: backend.to_string(),
            wasm: wasm.into(),
            workers: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            max_header_bytes: 16 * 1024,
            max_body_bytes: 1 << 20,
            upstream_timeout: Duration::from_secs(30),
            pause_timeout: Duration::from_secs(30),
            deny_prefixes: vec!["/internal/".into()],
            fail_open: false,
            host: HostConfig { plugin_config, ..HostConfig::default() },
        }
    }
}

/// A running edge proxy.
pub struct EdgeProxy {
    listen_addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    plugin: Arc<Plugin>,
    shutdown: watch::Sender<bool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

struct ProxyMetrics {
    forwarded: u32,
    local: u32,
    rejected: u32,
    upstream_errors: u32,
    filter_failures: u32,
    resets: u32,
    calls_ok: u32,
    calls_failed: u32,
    vm_rebuilds: u32,
}

impl ProxyMetrics {
    fn define(plugin: &Plugin) -> Self {
        use crate::abi::MetricKind::Counter;
        let m = &plugin.env().metrics;
        let req = |o: &str| m.define(Counter, &format!("seckill_edge_requests_total{{outcome=\"{o}\"}}"));
        let call = |r: &str| m.define(Counter, &format!("seckill_edge_http_calls_total{{result=\"{r}\"}}"));
        Self {
            forwarded: req("forwarded"),
            local: req("local_response"),
            rejected: req("rejected_by_host"),
            upstream_errors: req("upstream_error"),
            filter_failures: req("filter_failure"),
            resets: req("reset"),
            calls_ok: call("ok"),
            calls_failed: call("failed"),
            vm_rebuilds: m.define(Counter, "seckill_edge_vm_rebuilds_total"),
        }
    }
}

struct Shared {
    cfg: ProxyConfig,
    plugin: Arc<Plugin>,
    metrics: ProxyMetrics,
    healthy: Vec<AtomicBool>,
    connection_ids: AtomicU64,
}

impl Shared {
    fn count(&self, id: u32) {
        let _ = self.plugin.env().metrics.increment(id, 1);
    }
}

impl EdgeProxy {
    /// Loads the filter, starts every worker's VM (any failure — a missing
    /// import, a rejected configuration — is returned here, before anything
    /// listens), then serves.
    pub fn start(mut cfg: ProxyConfig) -> anyhow::Result<Self> {
        if cfg.workers == 0 {
            bail!("--workers must be at least 1");
        }
        cfg.host.clusters.entry("seckill_backend".into()).or_insert_with(|| cfg.backend.clone());
        let plugin = Arc::new(Plugin::from_file(&cfg.wasm, cfg.host.clone(), SystemClock::shared())?);
        let listener = std::net::TcpListener::bind(cfg.listen).with_context(|| format!("binding {}", cfg.listen))?;
        listener.set_nonblocking(true)?;
        let listen_addr = listener.local_addr()?;
        let admin = match cfg.admin_listen {
            Some(a) => {
                let l = std::net::TcpListener::bind(a).with_context(|| format!("binding the admin listener {a}"))?;
                l.set_nonblocking(true)?;
                Some(l)
            }
            None => None,
        };
        let admin_addr = admin.as_ref().map(|l| l.local_addr()).transpose()?;
        let shared = Arc::new(Shared {
            metrics: ProxyMetrics::define(&plugin),
            healthy: (0..cfg.workers).map(|_| AtomicBool::new(true)).collect(),
            connection_ids: AtomicU64::new(1),
            plugin: plugin.clone(),
            cfg,
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut threads = Vec::new();
        let mut senders = Vec::new();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<anyhow::Result<()>>();
        for index in 0..shared.cfg.workers {
            let (tx, rx) = mpsc::unbounded_channel::<(std::net::TcpStream, SocketAddr)>();
            senders.push(tx);
            let (shared, shutdown_rx, ready) = (shared.clone(), shutdown_rx.clone(), ready_tx.clone());
            threads.push(
                std::thread::Builder::new()
                    .name(format!("edge-worker-{index}"))
                    .spawn(move || worker_main(index, shared, rx, shutdown_rx, ready))?,
            );
        }
        drop(ready_tx);
        let mut failure = None;
        for _ in 0..shared.cfg.workers {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failure = failure.or(Some(e)),
                Err(_) => failure = failure.or(Some(anyhow::anyhow!("a worker thread died while starting"))),
            }
        }
        if let Some(e) = failure {
            let _ = shutdown.send(true);
            drop(senders);
            for t in threads {
                let _ = t.join();
            }
            return Err(e);
        }
        let accept_shared = shared.clone();
        let accept_shutdown = shutdown_rx.clone();
        threads.push(std::thread::Builder::new().name("edge-accept".into()).spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
            rt.block_on(accept_main(listener, admin, senders, accept_shared, accept_shutdown));
        })?);
        tracing::info!(%listen_addr, ?admin_addr, workers = shared.cfg.workers, backend = %shared.cfg.backend, "edge proxy listening");
        Ok(Self { listen_addr, admin_addr, plugin, shutdown, threads })
    }

    pub fn listen_addr(&self) -> SocketAddr {
        self.listen_addr
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    /// Stops accepting, lets requests in flight finish (up to 5 s), ends the
    /// VMs' root contexts.
    pub fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    /// Serves until the process ends.
    pub fn wait(mut self) {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for EdgeProxy {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

async fn accept_main(
    listener: std::net::TcpListener,
    admin: Option<std::net::TcpListener>,
    workers: Vec<mpsc::UnboundedSender<(std::net::TcpStream, SocketAddr)>>,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("edge listener");
    if let Some(admin) = admin {
        let admin = tokio::net::TcpListener::from_std(admin).expect("admin listener");
        tokio::spawn(admin_main(admin, shared.clone(), shutdown.clone()));
    }
    let mut next = 0usize;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let Ok(stream) = stream.into_std() else { continue };
                    // Round robin over the workers; a connection stays where it lands.
                    let _ = workers[next % workers.len()].send((stream, peer));
                    next = next.wrapping_add(1);
                }
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.changed() => return,
        }
    }
}

async fn admin_main(listener: tokio::net::TcpListener, shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let (stream, _) = tokio::select! {
            a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
            _ = shutdown.changed() => return,
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let shared = shared.clone();
                async move { Ok::<_, std::convert::Infallible>(admin_response(&shared, req.uri().path())) }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

fn admin_response(shared: &Shared, path: &str) -> Response<Full<Bytes>> {
    let text = |status: u16, ctype: &str, body: String| {
        Response::builder()
            .status(status)
            .header("content-type", ctype)
            .body(Full::new(Bytes::from(body)))
            .expect("valid response")
    };
    match path {
        "/metrics" => text(200, "text/plain; version=0.0.4", shared.plugin.render_metrics()),
        "/healthz" => {
            let down: Vec<String> = shared
                .healthy
                .iter()
                .enumerate()
                .filter(|(_, h)| !h.load(Ordering::Relaxed))
                .map(|(i, _)| i.to_string())
                .collect();
            if down.is_empty() {
                text(200, "text/plain", "ok\n".into())
            } else {
                text(503, "text/plain", format!("filter VM down on worker(s) {}\n", down.join(", ")))
            }
        }
        _ => text(404, "text/plain", "not found\n".into()),
    }
}

fn worker_main(
    index: usize,
    shared: Arc<Shared>,
    mut conns: mpsc::UnboundedReceiver<(std::net::TcpStream, SocketAddr)>,
    mut shutdown: watch::Receiver<bool>,
    ready: std::sync::mpsc::Sender<anyhow::Result<()>>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(e.into()));
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let vm = match shared.plugin.new_vm(index) {
            Ok(vm) => vm,
            Err(e) => {
                let _ = ready.send(Err(e.context(format!("starting the filter on worker {index}"))));
                return;
            }
        };
        let _ = ready.send(Ok(()));
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(1024)
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .build(connector);
        let worker = Rc::new(Worker {
            index,
            shared: shared.clone(),
            vm: RefCell::new(vm),
            generation: Cell::new(0),
            client,
            waiters: RefCell::new(HashMap::new()),
            tick_notify: Notify::new(),
            rebuilt: Notify::new(),
            deferred_finish: RefCell::new(Vec::new()),
            last_rebuild: Cell::new(None),
            active: Cell::new(0),
        });
        worker.after_vm();
        tokio::task::spawn_local(worker.clone().tick_loop(shutdown.clone()));
        tokio::task::spawn_local(worker.clone().queue_loop(shutdown.clone()));
        loop {
            tokio::select! {
                c = conns.recv() => match c {
                    Some((stream, peer)) => {
                        let Ok(stream) = tokio::net::TcpStream::from_std(stream) else { continue };
                        tokio::task::spawn_local(worker.clone().serve(stream, peer, shutdown.clone()));
                    }
                    None => break,
                },
                _ = shutdown.changed() => break,
            }
        }
        // Drain: connections close gracefully (they watch the same signal).
        let deadline = Instant::now() + Duration::from_secs(5);
        while worker.active.get() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        worker.vm.borrow_mut().shutdown();
    });
}

type Waiter = mpsc::UnboundedSender<Signal>;

pub(crate) struct Worker {
    index: usize,
    shared: Arc<Shared>,
    vm: RefCell<Vm>,
    generation: Cell<u64>,
    client: Client<HttpConnector, Full<Bytes>>,
    waiters: RefCell<HashMap<u32, Waiter>>,
    tick_notify: Notify,
    rebuilt: Notify,
    deferred_finish: RefCell<Vec<(u32, u64)>>,
    last_rebuild: Cell<Option<Instant>>,
    active: Cell<usize>,
}

impl Worker {
    /// Runs `f` on the VM, rebuilds a VM that failed, then routes what the
    /// callbacks produced (HTTP calls, signals, tick changes).
    fn with_vm<R>(self: &Rc<Self>, f: impl FnOnce(&mut Vm) -> Result<R, VmError>) -> Result<R, VmError> {
        let r = f(&mut self.vm.borrow_mut());
        if r.is_err() {
            self.recover();
        }
        self.after_vm();
        r
    }

    /// [`Worker::with_vm`] for a stream of generation `generation`: a stream
    /// of a VM since rebuilt is gone.
    fn stream_op<R>(
        self: &Rc<Self>,
        generation: u64,
        f: impl FnOnce(&mut Vm) -> Result<R, VmError>,
    ) -> Result<R, VmError> {
        if generation != self.generation.get() {
            return Err(VmError::Failed("the VM was rebuilt since the stream began".into()));
        }
        self.with_vm(f)
    }

    fn recover(self: &Rc<Self>) {
        if self.vm.borrow().failure().is_none() {
            return;
        }
        if self.last_rebuild.get().is_some_and(|t| t.elapsed() < Duration::from_millis(500)) {
            return;
        }
        self.last_rebuild.set(Some(Instant::now()));
        self.shared.count(self.shared.metrics.vm_rebuilds);
        // The streams the failed VM left open are ended in the new one, so
        // that what they held (in-flight slots) is given back: see `Orphan`.
        let rebuilt = self.shared.plugin.rebuild(&mut self.vm.borrow_mut());
        match rebuilt {
            Ok(()) => {
                self.generation.set(self.generation.get() + 1);
                self.shared.healthy[self.index].store(true, Ordering::Relaxed);
                // Paused streams of the old VM end.
                for (_, w) in self.waiters.borrow_mut().drain() {
                    let _ = w.send(Signal::Reset);
                }
                self.deferred_finish.borrow_mut().clear();
                self.tick_notify.notify_one();
                self.rebuilt.notify_waiters();
                tracing::warn!(worker = self.index, "filter VM rebuilt after a failure");
            }
            Err(e) => {
                self.shared.healthy[self.index].store(false, Ordering::Relaxed);
                tracing::error!(worker = self.index, "rebuilding the filter VM failed: {e:#}");
            }
        }
    }

    fn after_vm(self: &Rc<Self>) {
        loop {
            let Ok(mut vm) = self.vm.try_borrow_mut() else { return };
            let deferred = std::mem::take(&mut *self.deferred_finish.borrow_mut());
            for (ctx, generation) in deferred {
                if generation == self.generation.get() {
                    let _ = vm.finish_stream(ctx);
                }
            }
            let calls = vm.take_http_calls();
            let signals = vm.take_signals();
            let tick = vm.take_tick_change();
            drop(vm);
            if tick.is_some() {
                self.tick_notify.notify_one();
            }
            for (ctx, signal) in signals {
                if let Some(w) = self.waiters.borrow().get(&ctx) {
                    let _ = w.send(signal);
                }
            }
            let generation = self.generation.get();
            let empty = calls.is_empty();
            for call in calls {
                tokio::task::spawn_local(self.clone().http_call(call, generation));
            }
            if empty && self.deferred_finish.borrow().is_empty() {
                return;
            }
        }
    }

    async fn http_call(self: Rc<Self>, call: HttpCallRequest, generation: u64) {
        let response = forward::perform_call(&self.client, &call).await;
        let m = &self.shared.metrics;
        self.shared.count(if response.is_some() { m.calls_ok } else { m.calls_failed });
        if generation != self.generation.get() {
            return; // the token belonged to a VM since rebuilt
        }
        let _ = self.with_vm(|vm| vm.deliver_http_call(call.token, response));
    }

    async fn tick_loop(self: Rc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            let period = self.vm.borrow().tick_period();
            match period {
                None => tokio::select! {
                    _ = self.tick_notify.notified() => {}
                    _ = shutdown.changed() => return,
                },
                Some(p) => tokio::select! {
                    _ = tokio::time::sleep(p) => { let _ = self.with_vm(|vm| vm.tick()); }
                    _ = self.tick_notify.notified() => {}
                    _ = shutdown.changed() => return,
                },
            }
        }
    }

    async fn queue_loop(self: Rc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            let notifier = self.vm.borrow().queue_notifier();
            tokio::select! {
                _ = notifier.notify.notified() => { let _ = self.with_vm(|vm| vm.deliver_queue_ready()); }
                _ = self.rebuilt.notified() => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    fn finish_stream(self: &Rc<Self>, ctx: u32, generation: u64) {
        if generation != self.generation.get() {
            return;
        }
        self.waiters.borrow_mut().remove(&ctx);
        match self.vm.try_borrow_mut() {
            Ok(mut vm) => {
                let r = vm.finish_stream(ctx);
                drop(vm);
                if r.is_err() {
                    self.recover();
                }
                self.after_vm();
            }
            // Inside a VM call (cannot happen from hyper's polls, but be safe).
            Err(_) => self.deferred_finish.borrow_mut().push((ctx, generation)),
        }
    }

    async fn serve(
        self: Rc<Self>,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let local = stream.local_addr().unwrap_or_else(|_| self.shared.cfg.listen);
        let connection_id = self.shared.connection_ids.fetch_add(1, Ordering::Relaxed);
        self.active.set(self.active.get() + 1);
        let worker = self.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let worker = worker.clone();
            async move { worker.handle(req, peer, local, connection_id).await }
        });
        let max_headers = self.shared.cfg.max_header_bytes;
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .keep_alive(true)
            .max_headers(256)
            .max_buf_size((max_headers * 4).max(64 * 1024));
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        tokio::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => { if let Err(e) = r { tracing::debug!("connection from {peer}: {e}"); } }
            _ = shutdown.changed() => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
        }
        self.active.set(self.active.get() - 1);
    }

    fn json_error(status: u16, code: seckill_api::ErrorCode, message: &str) -> LocalResponse {
        let body = serde_json::to_vec(&seckill_api::ErrorBody { code, message: message.into() }).unwrap_or_default();
        let mut headers = crate::abi::Fields::new();
        headers.add("content-type", b"application/json");
        LocalResponse { status, headers, body, details: String::new() }
    }

    /// Waits for a paused stream to be continued, answered or reset.
    async fn resume(&self, rx: &mut mpsc::UnboundedReceiver<Signal>, response_phase: bool) -> Decision {
        let wait = async {
            while let Some(s) = rx.recv().await {
                match s {
                    Signal::ContinueRequest if !response_phase => return Decision::Continue,
                    Signal::ContinueResponse if response_phase => return Decision::Continue,
                    Signal::LocalResponse(r) => return Decision::LocalResponse(r),
                    Signal::Reset => return Decision::Reset,
                    _ => {}
                }
            }
            Decision::Reset
        };
        match tokio::time::timeout(self.shared.cfg.pause_timeout, wait).await {
            Ok(d) => d,
            Err(_) => Decision::LocalResponse(Self::json_error(
                503,
                seckill_api::ErrorCode::Unavailable,
                "the edge filter did not resume the request in time",
            )),
        }
    }

    async fn handle(
        self: Rc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
        local: SocketAddr,
        connection_id: u64,
    ) -> Result<Response<RespBody>, forward::ResetError> {
        use seckill_api::ErrorCode;
        let shared = self.shared.clone();
        let cfg = &shared.cfg;
        let m = &shared.metrics;
        let (parts, body) = req.into_parts();
        if let Err(msg) = forward::check_head(&parts, cfg.max_header_bytes) {
            shared.count(m.rejected);
            return Ok(body::full(Self::json_error(400, ErrorCode::BadRequest, msg)));
        }
        let fields = forward::request_fields(&parts, peer);
        let generation = self.generation.get();
        let info =
            StreamInfo { peer, local, connection_id, protocol: forward::protocol(parts.version), start_nanos: 0 };
        let ctx = match self.with_vm(|vm| vm.create_stream(info)) {
            Ok(ctx) => ctx,
            Err(e) => return self.filter_failed(e, parts, body, peer).await,
        };
        let (tx, mut rx) = mpsc::unbounded_channel();
        self.waiters.borrow_mut().insert(ctx, tx);
        let mut guard = StreamGuard { worker: self.clone(), ctx, generation, done: false };

        // Request phase.
        let end_of_stream = hyper::body::Body::is_end_stream(&body);
        let mut d = match self.stream_op(generation, |vm| vm.on_request_headers(ctx, fields, end_of_stream)) {
            Ok(d) => d,
            Err(e) => {
                guard.done = true;
                self.waiters.borrow_mut().remove(&ctx);
                return self.filter_failed(e, parts, body, peer).await;
            }
        };
        if d == Decision::Pause {
            d = self.resume(&mut rx, false).await;
        }
        let mut request_body = Bytes::new();
        if d == Decision::Continue && !end_of_stream {
            match Limited::new(body, cfg.max_body_bytes).collect().await {
                Ok(collected) => {
                    let bytes = collected.to_bytes();
                    d = match self.stream_op(generation, |vm| vm.on_request_body(ctx, &bytes, true)) {
                        Ok(Decision::Pause) => self.resume(&mut rx, false).await,
                        Ok(d) => d,
                        Err(_) if cfg.fail_open => Decision::Continue,
                        Err(_) => {
                            shared.count(m.filter_failures);
                            return Ok(body::full(Self::json_error(
                                503,
                                ErrorCode::Unavailable,
                                "edge filter failure",
                            )));
                        }
                    };
                    request_body = match self.stream_op(generation, |vm| Ok(vm.take_request_body(ctx))) {
                        Ok(b) if d == Decision::Continue => Bytes::from(b),
                        _ => bytes,
                    };
                }
                Err(e) => {
                    let too_big = e.downcast_ref::<http_body_util::LengthLimitError>().is_some();
                    if !too_big {
                        shared.count(m.resets);
                        return Err(forward::ResetError("the client's request body failed"));
                    }
                    d = Decision::LocalResponse(Self::json_error(400, ErrorCode::BadRequest, "request body too large"));
                }
            }
        }
        match d {
            Decision::Continue => {}
            Decision::LocalResponse(r) => {
                shared.count(m.local);
                return Ok(self.local_reply(guard, r));
            }
            Decision::Reset | Decision::Pause => {
                shared.count(m.resets);
                return Err(forward::ResetError("reset by the edge filter"));
            }
        }

        // Forward with the filter's headers.
        let headers = match self.stream_op(generation, |vm| Ok(vm.request_headers(ctx).cloned())) {
            Ok(Some(h)) => h,
            _ => return Ok(body::full(Self::json_error(503, ErrorCode::Unavailable, "edge filter failure"))),
        };
        let path = headers.get_str(":path").unwrap_or("/");
        if cfg.deny_prefixes.iter().any(|p| !p.is_empty() && path.starts_with(p.as_str())) {
            shared.count(m.rejected);
            return Ok(self.local_reply(guard, Self::json_error(404, ErrorCode::NotFound, "not found")));
        }
        let upstream = match forward::upstream_request(&cfg.backend, &headers, request_body) {
            Ok(r) => r,
            Err(msg) => {
                shared.count(m.rejected);
                return Ok(self.local_reply(guard, Self::json_error(400, ErrorCode::BadRequest, &msg)));
            }
        };
        let response = match tokio::time::timeout(cfg.upstream_timeout, self.client.request(upstream)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::warn!("backend {}: {e}", cfg.backend);
                shared.count(m.upstream_errors);
                let r = Self::json_error(503, ErrorCode::Unavailable, "the backend is unavailable");
                return Ok(self.local_reply(guard, r));
            }
            Err(_) => {
                shared.count(m.upstream_errors);
                let r = Self::json_error(503, ErrorCode::Unavailable, "the backend did not answer in time");
                return Ok(self.local_reply(guard, r));
            }
        };

        // Response phase.
        let (rparts, rbody) = response.into_parts();
        let rfields = forward::response_fields(&rparts.headers);
        let status = rparts.status.as_u16();
        let end_of_stream = hyper::body::Body::is_end_stream(&rbody);
        let mut d = match self.stream_op(generation, |vm| vm.on_response_headers(ctx, status, &rfields, end_of_stream))
        {
            Ok(d) => d,
            // The backend already acted: pass its answer through.
            Err(_) => {
                shared.count(m.filter_failures);
                guard.done = true;
                self.waiters.borrow_mut().remove(&ctx);
                return Ok(body::passthrough(rparts, rbody));
            }
        };
        if d == Decision::Pause {
            d = self.resume(&mut rx, true).await;
        }
        self.waiters.borrow_mut().remove(&ctx);
        match d {
            Decision::Continue => {}
            Decision::LocalResponse(r) => {
                shared.count(m.local);
                guard.finish();
                return Ok(body::full(r));
            }
            Decision::Reset | Decision::Pause => {
                shared.count(m.resets);
                return Err(forward::ResetError("reset by the edge filter"));
            }
        }
        let map = self.stream_op(generation, |vm| Ok(vm.response_headers(ctx).cloned())).ok().flatten();
        shared.count(m.forwarded);
        let map = map.unwrap_or_else(|| {
            let mut f = crate::abi::Fields::new();
            f.add(":status", status.to_string().as_bytes());
            for (k, v) in rfields.iter() {
                f.add(k, v);
            }
            f
        });
        Ok(body::filtered(map, rbody, guard))
    }

    /// Runs the response phase on a local reply (Envoy does), then finishes
    /// the stream.
    fn local_reply(self: &Rc<Self>, mut guard: StreamGuard, r: LocalResponse) -> Response<RespBody> {
        let (ctx, generation) = (guard.ctx, guard.generation);
        let mut out = r.clone();
        if let Ok(Decision::Continue | Decision::Pause) =
            self.stream_op(generation, |vm| vm.on_response_headers(ctx, r.status, &r.headers, r.body.is_empty()))
            && let Ok(Some(map)) = self.stream_op(generation, |vm| Ok(vm.response_headers(ctx).cloned()))
        {
            out.status = map.get_str(":status").and_then(|s| s.parse().ok()).unwrap_or(r.status);
            out.headers = crate::abi::Fields::from_pairs(map.regular());
        }
        if !r.body.is_empty()
            && let Ok(Decision::Continue | Decision::Pause) =
                self.stream_op(generation, |vm| vm.on_response_body(ctx, &r.body, true))
            && let Ok(b) = self.stream_op(generation, |vm| Ok(vm.take_response_body(ctx)))
        {
            out.body = b;
        }
        guard.finish();
        body::full(out)
    }

    /// The VM failed before the request was decided.
    async fn filter_failed(
        self: &Rc<Self>,
        e: VmError,
        parts: http::request::Parts,
        body: Incoming,
        peer: SocketAddr,
    ) -> Result<Response<RespBody>, forward::ResetError> {
        let shared = &self.shared;
        shared.count(shared.metrics.filter_failures);
        tracing::warn!(worker = self.index, "request not filtered: {e}");
        if !shared.cfg.fail_open {
            return Ok(body::full(Self::json_error(503, seckill_api::ErrorCode::Unavailable, "edge filter failure")));
        }
        let fields = forward::request_fields(&parts, peer);
        let body = match Limited::new(body, shared.cfg.max_body_bytes).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return Ok(body::full(Self::json_error(
                    400,
                    seckill_api::ErrorCode::BadRequest,
                    "request body too large",
                )));
            }
        };
        let upstream = match forward::upstream_request(&shared.cfg.backend, &fields, body) {
            Ok(r) => r,
            Err(msg) => return Ok(body::full(Self::json_error(400, seckill_api::ErrorCode::BadRequest, &msg))),
        };
        match tokio::time::timeout(shared.cfg.upstream_timeout, self.client.request(upstream)).await {
            Ok(Ok(r)) => {
                let (p, b) = r.into_parts();
                Ok(body::passthrough(p, b))
            }
            _ => {
                Ok(body::full(Self::json_error(503, seckill_api::ErrorCode::Unavailable, "the backend is unavailable")))
            }
        }
    }
}

/// Finishes its stream (`on_done`, `on_log`, `on_delete`) exactly once: when
/// the response body ends, or when it is dropped (the client went away).
pub(crate) struct StreamGuard {
    worker: Rc<Worker>,
    ctx: u32,
    generation: u64,
    done: bool,
}

impl StreamGuard {
    pub(crate) fn finish(&mut self) {
        if !std::mem::replace(&mut self.done, true) {
            self.worker.finish_stream(self.ctx, self.generation);
        }
    }

    /// Runs `proxy_on_response_body` for a chunk; `None` when the VM failed
    /// (the body then passes through).
    pub(crate) fn response_body(&self, chunk: &[u8], end_of_stream: bool) -> Option<(Decision, Vec<u8>)> {
        let ctx = self.ctx;
        let d = self.worker.stream_op(self.generation, |vm| vm.on_response_body(ctx, chunk, end_of_stream)).ok()?;
        let body = match d {
            Decision::Continue => self.worker.stream_op(self.generation, |vm| Ok(vm.take_response_body(ctx))).ok()?,
            _ => Vec::new(),
        };
        Some((d, body))
    }

    /// Takes what the filter held back (at the end of the body).
    pub(crate) fn take_held_body(&self) -> Vec<u8> {
        let ctx = self.ctx;
        self.worker.stream_op(self.generation, |vm| Ok(vm.take_response_body(ctx))).unwrap_or_default()
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The plugin configuration the binary hands the filter: the JSON file (or
/// `{}`), with `edge_secret` / `jwt_secret` taken from `SECKILL_EDGE_SECRET` /
/// `SECKILL_JWT_SECRET` when those are set (environment wins), and
/// `backend_cluster`, `backend_authority`, `state_path` defaulted when absent.
pub fn plugin_config_json(
    file: Option<&std::path::Path>,
    backend: &str,
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Vec<u8>> {
    let mut value: serde_json::Value = match file {
        Some(p) => {
            let text = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            serde_json::from_slice(&text).with_context(|| format!("{} is not JSON", p.display()))?
        }
        None => serde_json::json!({}),
    };
    let Some(obj) = value.as_object_mut() else { bail!("the plugin configuration must be a JSON object") };
    for (key, var) in [("edge_secret", "SECKILL_EDGE_SECRET"), ("jwt_secret", "SECKILL_JWT_SECRET")] {
        if let Some(v) = env(var).filter(|v| !v.is_empty()) {
            obj.insert(key.into(), v.into());
        }
    }
    obj.entry("backend_cluster").or_insert_with(|| "seckill_backend".into());
    obj.entry("backend_authority").or_insert_with(|| backend.into());
    obj.entry("state_path").or_insert_with(|| "/internal/edge/state".into());
    Ok(serde_json::to_vec(&value)?)
}

/// Parses a `--log-level`.
pub fn parse_log_level(s: &str) -> Result<LogLevel, String> {
    s.parse()
}
