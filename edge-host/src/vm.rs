//! Loading a filter ([`Plugin`]) and driving one instance of it ([`Vm`]) the
//! way Envoy does.
//!
//! Longer than 500 lines on purpose: the `Vm` is one state machine (root
//! context, streams, their end callbacks, orphans of a failed VM, HTTP-call
//! delivery), and each step checks invariants the others set up; cutting it
//! across files would split those pairs apart. `Plugin` stays beside it
//! because `Plugin::new_vm`/`rebuild` and `Vm::new` call each other, which
//! two modules could only do through an import circle.

use crate::abi::{self, Fields, LogLevel, action};
use crate::clock::Clock;
use crate::host::{CallResponseState, Env, HostConfig, HostState, HttpCallRequest, HttpCallResponse, LocalResponse};
use crate::host::{Signal, StreamInfo, StreamState};
use crate::shared::QueueNotifier;
use anyhow::{Context as _, anyhow, bail};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::WasmResults;
use wasmtime::{Config, Engine, ExternType, Instance, Linker, Module, OptLevel, Store, TypedFunc, WasmParams};

const EPOCH_TICK: Duration = Duration::from_millis(10);

/// A compiled filter with its configuration and everything its VMs share
/// (shared data, queues, metrics, clock). Cheap to share between threads.
pub struct Plugin {
    engine: Engine,
    module: Module,
    linker: Linker<HostState>,
    env: Arc<Env>,
    ticker_alive: Arc<AtomicBool>,
}

impl Drop for Plugin {
    fn drop(&mut self) {
        self.ticker_alive.store(false, Ordering::Relaxed);
    }
}

impl Plugin {
    /// Reads and compiles the `.wasm` file (see [`Plugin::load`]).
    pub fn from_file(path: impl AsRef<Path>, config: HostConfig, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let path = path.as_ref();
        let wasm = std::fs::read(path).with_context(|| format!("reading the filter {}", path.display()))?;
        Self::load(&wasm, config, clock).with_context(|| format!("loading the filter {}", path.display()))
    }

    /// Compiles the module and checks, before anything runs, that the host
    /// provides every function it imports (a missing one is named in the
    /// error), that it speaks ABI 0.2.x, exports its memory and an allocator.
    pub fn load(wasm: &[u8], config: HostConfig, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let mut cfg = Config::new();
        cfg.epoch_interruption(!config.callback_timeout.is_zero());
        cfg.cranelift_opt_level(OptLevel::Speed);
        if std::env::var_os("SECKILL_EDGE_PERFMAP").is_some_and(|v| v == "1") {
            // `perf` then names the filter's functions (/tmp/perf-PID.map).
            cfg.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&cfg)?;
        let module = Module::new(&engine, wasm).map_err(anyhow::Error::from).context("compiling the module")?;
        let mut linker = Linker::new(&engine);
        let provided = crate::imports::add_to_linker(&mut linker)?;
        check_module(&module, &provided)?;
        let ticker_alive = Arc::new(AtomicBool::new(!config.callback_timeout.is_zero()));
        if !config.callback_timeout.is_zero() {
            let (engine, alive) = (engine.clone(), ticker_alive.clone());
            std::thread::Builder::new().name("wasm-epoch".into()).spawn(move || {
                while alive.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })?;
        }
        Ok(Self { engine, module, linker, env: Arc::new(Env::new(config, clock)), ticker_alive })
    }

    /// A new instance, started like Envoy starts one: `_initialize` (then
    /// `main`) or `_start`, the root context, `proxy_on_vm_start`,
    /// `proxy_on_configure`. Fails if either of those returns false.
    pub fn new_vm(&self, index: usize) -> anyhow::Result<Vm> {
        Vm::new(self, index)
    }

    /// Replaces a VM that failed with a new instance (same index), and ends
    /// in the new one every stream the old one left open (see [`Orphan`]).
    /// Streams of the old VM are gone from then on; their later callbacks
    /// must not reach the new one (contexts are numbered afresh).
    pub fn rebuild(&self, vm: &mut Vm) -> anyhow::Result<()> {
        let mut fresh = self.new_vm(vm.index)?;
        let mut orphans = vm.take_orphans().into_iter();
        let ended = orphans.len();
        for orphan in orphans.by_ref() {
            if let Err(e) = fresh.end_orphan(orphan) {
                tracing::error!(vm = vm.index, "ending a stream of the failed VM failed too: {e}");
                break;
            }
        }
        // If the new VM failed while ending them, it will be replaced in
        // turn: the streams it did not end yet go with it to the next one.
        for orphan in orphans {
            fresh.keep_orphan(orphan);
        }
        if ended > 0 {
            tracing::warn!(vm = vm.index, "{ended} stream(s) of the failed VM ended in its replacement");
        }
        *vm = fresh;
        Ok(())
    }

    pub fn env(&self) -> &Arc<Env> {
        &self.env
    }

    pub fn config(&self) -> &HostConfig {
        &self.env.config
    }

    /// The filter's and the host's metrics, Prometheus text format.
    pub fn render_metrics(&self) -> String {
        let env = &self.env;
        let _ = env.metrics.record(env.host_metrics.shared_data_keys, env.shared_data.len() as u64);
        let _ = env.metrics.record(env.host_metrics.shared_data_bytes, env.shared_data.bytes() as u64);
        env.metrics.render()
    }

    /// Filter log lines kept so far (when [`HostConfig::capture_logs`]).
    pub fn logs(&self) -> Vec<crate::host::LogRecord> {
        self.env.logs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn check_module(module: &Module, provided: &[(&str, &str)]) -> anyhow::Result<()> {
    let missing: Vec<String> = module
        .imports()
        .filter(|i| !(matches!(i.ty(), ExternType::Func(_)) && provided.contains(&(i.module(), i.name()))))
        .map(|i| {
            let kind = match i.ty() {
                ExternType::Func(_) => "function",
                ExternType::Memory(_) => "memory",
                ExternType::Table(_) => "table",
                ExternType::Global(_) => "global",
                _ => "item",
            };
            format!("{}::{} ({kind})", i.module(), i.name())
        })
        .collect();
    if !missing.is_empty() {
        bail!(
            "the module imports {} this host does not provide: {}",
            if missing.len() == 1 { "an item" } else { "items" },
            missing.join(", ")
        );
    }
    let exported = |name: &str| module.exports().any(|e| e.name() == name);
    if !abi::ABI_VERSION_EXPORTS.iter().any(|v| exported(v)) {
        if exported("proxy_abi_version_0_1_0") {
            bail!("the module speaks proxy-wasm ABI 0.1.0; this host speaks 0.2.1");
        }
        bail!("not a proxy-wasm module: it exports no `proxy_abi_version_0_2_1`");
    }
    if !module.exports().any(|e| e.name() == "memory" && matches!(e.ty(), ExternType::Memory(_))) {
        bail!("the module exports no `memory`");
    }
    if !exported("proxy_on_memory_allocate") && !exported("malloc") {
        bail!("the module exports no allocator (`proxy_on_memory_allocate` or `malloc`)");
    }
    Ok(())
}

/// Why a call into the filter failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmError {
    /// It trapped (a panic, an invalid pointer, the callback deadline, memory
    /// limit): the instance is unusable from now on.
    Trap(String),
    /// It had trapped before.
    Failed(String),
}

impl fmt::Display for VmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Trap(m) => write!(f, "the filter trapped: {m}"),
            Self::Failed(m) => write!(f, "the filter VM failed earlier: {m}"),
        }
    }
}

impl std::error::Error for VmError {}

/// What the filter decided in a stream callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Go on with the (possibly modified) headers/body.
    Continue,
    /// Hold the stream until the filter continues it (see [`Signal`]).
    Pause,
    /// Answer with this instead.
    LocalResponse(LocalResponse),
    /// Reset the stream.
    Reset,
}

type F<P, R> = Option<TypedFunc<P, R>>;

struct Exports {
    on_context_create: F<(i32, i32), ()>,
    on_vm_start: F<(i32, i32), i32>,
    on_configure: F<(i32, i32), i32>,
    on_tick: F<i32, ()>,
    on_queue_ready: F<(i32, i32), ()>,
    on_done: F<i32, i32>,
    on_log: F<i32, ()>,
    on_delete: F<i32, ()>,
    on_request_headers: F<(i32, i32, i32), i32>,
    on_request_body: F<(i32, i32, i32), i32>,
    on_response_headers: F<(i32, i32, i32), i32>,
    on_response_body: F<(i32, i32, i32), i32>,
    on_http_call_response: F<(i32, i32, i32, i32, i32), ()>,
}

fn typed<P: WasmParams, R: WasmResults>(
    instance: &Instance,
    store: &mut Store<HostState>,
    name: &str,
) -> anyhow::Result<Option<TypedFunc<P, R>>> {
    match instance.get_func(&mut *store, name) {
        None => Ok(None),
        Some(f) => {
            let ty = f.ty(&*store);
            f.typed::<P, R>(&*store)
                .map(Some)
                .map_err(|_| anyhow!("the module's export `{name}` has the wrong signature ({ty})"))
        }
    }
}

impl Exports {
    fn resolve(i: &Instance, s: &mut Store<HostState>) -> anyhow::Result<Self> {
        Ok(Self {
            on_context_create: typed(i, s, "proxy_on_context_create")?,
            on_vm_start: typed(i, s, "proxy_on_vm_start")?,
            on_configure: typed(i, s, "proxy_on_configure")?,
            on_tick: typed(i, s, "proxy_on_tick")?,
            on_queue_ready: typed(i, s, "proxy_on_queue_ready")?,
            on_done: typed(i, s, "proxy_on_done")?,
            on_log: typed(i, s, "proxy_on_log")?,
            on_delete: typed(i, s, "proxy_on_delete")?,
            on_request_headers: typed(i, s, "proxy_on_request_headers")?,
            on_request_body: typed(i, s, "proxy_on_request_body")?,
            on_response_headers: typed(i, s, "proxy_on_response_headers")?,
            on_response_body: typed(i, s, "proxy_on_response_body")?,
            on_http_call_response: typed(i, s, "proxy_on_http_call_response")?,
        })
    }
}

/// A stream whose VM failed before the stream ended: what the host holds of
/// it (connection facts, headers, and the properties the filter set on it).
///
/// Why the host ends these streams in the VM that replaces the failed one:
/// what a stream holds beyond its own life — an in-flight slot in shared
/// data, which outlives every VM — must be given back by the filter, and
/// the filter gives it back in the end every stream gets (`proxy_on_done`).
/// The failed VM can no longer run that end, and its memory, where the
/// filter kept which slot the stream took, is lost. The stream's host-side
/// state is not: so the filter also writes that down as a property of the
/// stream, and the new VM, given a context with those properties and then
/// `proxy_on_done`, `proxy_on_log`, `proxy_on_delete`, releases it there.
/// Reconciling from shared data alone would need a ledger per VM rewritten
/// on every request, and a way to find a dead VM's ledger, which the ABI
/// has not (no key listing, no VM identity).
pub struct Orphan {
    state: StreamState,
}

/// One instance of the filter with its contexts. Not thread-safe: one per
/// worker thread, as Envoy runs one VM per worker.
pub struct Vm {
    store: Store<HostState>,
    ex: Arc<Exports>,
    root: u32,
    next_ctx: u32,
    failed: Option<String>,
    deadline: u64,
    interrupt: bool,
    index: usize,
}

impl Vm {
    fn new(plugin: &Plugin, index: usize) -> anyhow::Result<Self> {
        let env = plugin.env.clone();
        let deadline = match env.config.callback_timeout {
            t if t.is_zero() => 0,
            t => (t.as_millis() as u64 / EPOCH_TICK.as_millis() as u64).max(1) + 1,
        };
        let mut store = Store::new(&plugin.engine, HostState::new(env.clone(), index));
        store.limiter(|s| &mut s.limits);
        if deadline > 0 {
            store.set_epoch_deadline(deadline);
        }
        let instance = plugin
            .linker
            .instantiate(&mut store, &plugin.module)
            .map_err(anyhow::Error::from)
            .context("instantiating the module")?;
        let memory = instance.get_memory(&mut store, "memory").context("the module exports no `memory`")?;
        let alloc = match typed::<i32, i32>(&instance, &mut store, "proxy_on_memory_allocate")? {
            Some(f) => f,
            None => typed::<i32, i32>(&instance, &mut store, "malloc")?
                .context("the module exports no allocator (`proxy_on_memory_allocate` or `malloc`)")?,
        };
        store.data_mut().memory = Some(memory);
        store.data_mut().alloc = Some(Arc::new(alloc));
        let ex = Arc::new(Exports::resolve(&instance, &mut store)?);
        let mut vm = Self { store, ex, root: 1, next_ctx: 2, failed: None, deadline, interrupt: false, index };

        if let Some(init) = typed::<(), ()>(&instance, &mut vm.store, "_initialize")? {
            vm.call(0, "_initialize", &init, ()).map_err(|e| vm.startup_error(e))?;
            if let Some(main) = typed::<(i32, i32), i32>(&instance, &mut vm.store, "main")? {
                vm.call(0, "main", &main, (0, 0)).map_err(|e| vm.startup_error(e))?;
            }
        } else if let Some(start) = typed::<(), ()>(&instance, &mut vm.store, "_start")? {
            vm.call(0, "_start", &start, ()).map_err(|e| vm.startup_error(e))?;
        }
        let root = vm.root;
        vm.store.data_mut().root_id = root;
        if let Some(f) = vm.ex.clone().on_context_create.as_ref() {
            vm.call(root, "proxy_on_context_create", f, (root as i32, 0)).map_err(|e| vm.startup_error(e))?;
        }
        if let Some(f) = vm.ex.clone().on_vm_start.as_ref() {
            let size = env.config.vm_config.len() as i32;
            if vm.call(root, "proxy_on_vm_start", f, (root as i32, size)).map_err(|e| vm.startup_error(e))? == 0 {
                return Err(vm.startup_error("proxy_on_vm_start returned false"));
            }
        }
        if let Some(f) = vm.ex.clone().on_configure.as_ref() {
            let size = env.config.plugin_config.len() as i32;
            if vm.call(root, "proxy_on_configure", f, (root as i32, size)).map_err(|e| vm.startup_error(e))? == 0 {
                return Err(
                    vm.startup_error("the filter rejected its configuration (proxy_on_configure returned false)")
                );
            }
        }
        vm.flush_done().map_err(|e| vm.startup_error(e))?;
        Ok(vm)
    }

    fn startup_error(&self, e: impl fmt::Display) -> anyhow::Error {
        let logs = &self.store.data().recent_errors;
        if logs.is_empty() {
            anyhow!("{e}")
        } else {
            anyhow!("{e}; the filter logged: {}", logs.iter().cloned().collect::<Vec<_>>().join(" | "))
        }
    }

    /// Calls an export with `ctx` as the effective context.
    fn call<P: WasmParams, R: WasmResults>(
        &mut self,
        ctx: u32,
        what: &str,
        f: &TypedFunc<P, R>,
        params: P,
    ) -> Result<R, VmError> {
        if let Some(msg) = &self.failed {
            return Err(VmError::Failed(msg.clone()));
        }
        self.store.data_mut().effective = ctx;
        if self.deadline > 0 {
            let ticks = if std::mem::take(&mut self.interrupt) { 0 } else { self.deadline };
            self.store.set_epoch_deadline(ticks);
        }
        match f.call(&mut self.store, params) {
            Ok(r) => Ok(r),
            Err(e) => {
                let state = self.store.data();
                let mut msg = format!("{what}(context {ctx}): {e:?}");
                if let Some(last) = state.recent_errors.back() {
                    msg.push_str(&format!(" (last filter error log: {last})"));
                }
                let _ = state.env.metrics.increment(state.env.host_metrics.vm_failures, 1);
                tracing::error!(vm = self.index, "filter VM failed: {msg}");
                self.failed = Some(msg.clone());
                Err(VmError::Trap(msg))
            }
        }
    }

    /// Makes the next callback trap at its first instruction, as the
    /// callback deadline does when it passes: for tests of what follows a
    /// trap. `false` (and nothing armed) when the host runs without a
    /// callback timeout, which is what arms the interruption.
    pub fn interrupt_next_callback(&mut self) -> bool {
        self.interrupt = self.deadline > 0;
        self.interrupt
    }

    /// Index of this VM (the worker it belongs to).
    pub fn index(&self) -> usize {
        self.index
    }

    pub fn root_context(&self) -> u32 {
        self.root
    }

    /// Why the VM is unusable, if it is.
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// The tick period the filter asked for.
    pub fn tick_period(&self) -> Option<Duration> {
        self.store.data().tick_period
    }

    /// `Some(period)` once after the filter changed its tick period.
    pub fn take_tick_change(&mut self) -> Option<Option<Duration>> {
        let s = self.store.data_mut();
        std::mem::take(&mut s.tick_changed).then_some(s.tick_period)
    }

    /// HTTP calls dispatched since the last take.
    pub fn take_http_calls(&mut self) -> Vec<HttpCallRequest> {
        std::mem::take(&mut self.store.data_mut().outgoing)
    }

    /// Stream signals raised outside the stream's own callbacks.
    pub fn take_signals(&mut self) -> Vec<(u32, Signal)> {
        std::mem::take(&mut self.store.data_mut().signals)
    }

    pub fn queue_notifier(&self) -> Arc<QueueNotifier> {
        self.store.data().queue_notifier.clone()
    }

    pub fn has_stream(&self, ctx: u32) -> bool {
        self.store.data().streams.contains_key(&ctx)
    }

    /// The request headers as the filter left them.
    pub fn request_headers(&self, ctx: u32) -> Option<&Fields> {
        self.store.data().streams.get(&ctx).map(|s| &s.request_headers)
    }

    /// The response headers (`:status` first) as the filter left them.
    pub fn response_headers(&self, ctx: u32) -> Option<&Fields> {
        self.store.data().streams.get(&ctx).map(|s| &s.response_headers)
    }

    /// Takes the buffered request body (as the filter left it).
    pub fn take_request_body(&mut self, ctx: u32) -> Vec<u8> {
        self.store.data_mut().streams.get_mut(&ctx).map(|s| std::mem::take(&mut s.request_body)).unwrap_or_default()
    }

    /// Takes the buffered response body (as the filter left it).
    pub fn take_response_body(&mut self, ctx: u32) -> Vec<u8> {
        self.store.data_mut().streams.get_mut(&ctx).map(|s| std::mem::take(&mut s.response_body)).unwrap_or_default()
    }

    fn next_context(&mut self) -> u32 {
        loop {
            let c = self.next_ctx;
            self.next_ctx = self.next_ctx.checked_add(1).unwrap_or(2);
            if c != self.root && !self.has_stream(c) {
                return c;
            }
        }
    }

    /// A new stream context (`proxy_on_context_create(ctx, root)`).
    pub fn create_stream(&mut self, mut info: StreamInfo) -> Result<u32, VmError> {
        if info.start_nanos == 0 {
            info.start_nanos = self.store.data().env.clock.now_nanos();
        }
        self.open_context(StreamState::new(info))
    }

    fn open_context(&mut self, state: StreamState) -> Result<u32, VmError> {
        let ctx = self.next_context();
        self.store.data_mut().streams.insert(ctx, state);
        if let Some(f) = self.ex.clone().on_context_create.as_ref() {
            let root = self.root as i32;
            if let Err(e) = self.call(ctx, "proxy_on_context_create", f, (ctx as i32, root)) {
                self.store.data_mut().streams.remove(&ctx);
                return Err(e);
            }
        }
        Ok(ctx)
    }

    /// Takes out the streams whose end never began (no `proxy_on_done`):
    /// those of a VM that failed, to be ended by [`Vm::end_orphan`] in the
    /// VM that replaces it. A stream whose `proxy_on_done` ran is not one:
    /// what it held was given back then (or, if the VM failed inside it,
    /// might have been, and a second release would free a slot another
    /// stream holds).
    pub fn take_orphans(&mut self) -> Vec<Orphan> {
        let s = self.store.data_mut();
        let ctxs: Vec<u32> = s.streams.iter().filter(|(_, st)| !st.ending).map(|(c, _)| *c).collect();
        ctxs.into_iter().filter_map(|c| s.streams.remove(&c)).map(|state| Orphan { state }).collect()
    }

    /// Ends a stream of a failed VM here: a new context carrying its
    /// connection facts, request headers and properties, then the end it
    /// never got (`proxy_on_done`, `proxy_on_log`, `proxy_on_delete`).
    pub fn end_orphan(&mut self, orphan: Orphan) -> Result<(), VmError> {
        let mut state = orphan.state;
        state.done_pending = false;
        let ctx = self.open_context(state)?;
        self.finish_stream(ctx)
    }

    /// Holds an orphan this (failed) VM could not end, for its own replacement.
    fn keep_orphan(&mut self, orphan: Orphan) {
        let ctx = self.next_context();
        self.store.data_mut().streams.insert(ctx, orphan.state);
    }

    /// Turns a stream callback's result and the signals it raised for its
    /// own stream into a decision.
    fn decide(&mut self, ctx: u32, action: i32) -> Decision {
        let mut local = None;
        let mut reset = false;
        if self.store.data().signals.is_empty() {
            return if action == action::CONTINUE { Decision::Continue } else { Decision::Pause };
        }
        // Taken out by value: a local reply is moved on, not copied.
        let mut signals = std::mem::take(&mut self.store.data_mut().signals);
        let mut others = Vec::new();
        for (c, s) in signals.drain(..) {
            if c != ctx {
                others.push((c, s));
                continue;
            }
            match s {
                Signal::LocalResponse(r) if local.is_none() => local = Some(r),
                Signal::Reset => reset = true,
                _ => {}
            }
        }
        // The emptied buffer goes back when nothing else was waiting.
        self.store.data_mut().signals = if others.is_empty() { signals } else { others };
        match (local, reset) {
            (Some(r), _) => Decision::LocalResponse(r),
            (None, true) => Decision::Reset,
            _ if action == action::CONTINUE => Decision::Continue,
            _ => Decision::Pause,
        }
    }

    fn stream_call(
        &mut self,
        ctx: u32,
        what: &str,
        f: Option<&TypedFunc<(i32, i32, i32), i32>>,
        size: usize,
        end_of_stream: bool,
    ) -> Result<Decision, VmError> {
        let action = match f {
            Some(f) => self.call(ctx, what, f, (ctx as i32, size as i32, end_of_stream as i32))?,
            None => action::CONTINUE,
        };
        let d = self.decide(ctx, action);
        self.flush_done()?;
        Ok(d)
    }

    /// `proxy_on_request_headers`. `headers` carries the pseudo headers
    /// (`:authority`, `:path`, `:method`, `:scheme`) first.
    pub fn on_request_headers(&mut self, ctx: u32, headers: Fields, end_of_stream: bool) -> Result<Decision, VmError> {
        let n = headers.len();
        match self.store.data_mut().streams.get_mut(&ctx) {
            Some(s) => s.request_headers = headers,
            None => return Ok(Decision::Reset),
        }
        self.stream_call(ctx, "proxy_on_request_headers", self.ex.clone().on_request_headers.as_ref(), n, end_of_stream)
    }

    /// `proxy_on_request_body` with the body buffered so far plus `chunk`.
    pub fn on_request_body(&mut self, ctx: u32, chunk: &[u8], end_of_stream: bool) -> Result<Decision, VmError> {
        let size = match self.store.data_mut().streams.get_mut(&ctx) {
            Some(s) => {
                s.request_body.extend_from_slice(chunk);
                s.request_body.len()
            }
            None => return Ok(Decision::Reset),
        };
        self.stream_call(ctx, "proxy_on_request_body", self.ex.clone().on_request_body.as_ref(), size, end_of_stream)
    }

    /// `proxy_on_response_headers`; the map gets `:status` first.
    pub fn on_response_headers(
        &mut self,
        ctx: u32,
        status: u16,
        headers: &Fields,
        end_of_stream: bool,
    ) -> Result<Decision, VmError> {
        let n = match self.store.data_mut().streams.get_mut(&ctx) {
            Some(s) => {
                let mut map = Fields::with_capacity(headers.len() + 1);
                map.add(":status", status.to_string().as_bytes());
                for (k, v) in headers.regular() {
                    map.add(k, v);
                }
                s.response_code = Some(status);
                s.response_headers = map;
                s.response_headers.len()
            }
            None => return Ok(Decision::Reset),
        };
        self.stream_call(
            ctx,
            "proxy_on_response_headers",
            self.ex.clone().on_response_headers.as_ref(),
            n,
            end_of_stream,
        )
    }

    /// `proxy_on_response_body` with the body buffered so far plus `chunk`
    /// (the filter may hold it with `Pause`; take it on `Continue`).
    pub fn on_response_body(&mut self, ctx: u32, chunk: &[u8], end_of_stream: bool) -> Result<Decision, VmError> {
        let size = match self.store.data_mut().streams.get_mut(&ctx) {
            Some(s) => {
                s.response_body.extend_from_slice(chunk);
                s.response_body.len()
            }
            None => return Ok(Decision::Reset),
        };
        self.stream_call(ctx, "proxy_on_response_body", self.ex.clone().on_response_body.as_ref(), size, end_of_stream)
    }

    /// The end of a stream (completed or reset): `proxy_on_done`, then —
    /// at once, or when the filter calls `proxy_done` — `proxy_on_log` and
    /// `proxy_on_delete`. Outstanding HTTP calls of the stream are dropped
    /// (never delivered). A stream already finished is left alone.
    pub fn finish_stream(&mut self, ctx: u32) -> Result<(), VmError> {
        match self.store.data_mut().streams.get_mut(&ctx) {
            None => return Ok(()),
            Some(s) if s.done_pending => return Ok(()),
            Some(s) => s.ending = true,
        }
        let done = match self.ex.clone().on_done.as_ref() {
            Some(f) => self.call(ctx, "proxy_on_done", f, ctx as i32)? != 0,
            None => true,
        };
        if done {
            self.log_and_delete(ctx)?;
        } else if let Some(s) = self.store.data_mut().streams.get_mut(&ctx) {
            s.done_pending = true;
        }
        self.flush_done()
    }

    fn log_and_delete(&mut self, ctx: u32) -> Result<(), VmError> {
        let mut r = Ok(());
        if let Some(f) = self.ex.clone().on_log.as_ref() {
            r = self.call(ctx, "proxy_on_log", f, ctx as i32);
        }
        if r.is_ok()
            && let Some(f) = self.ex.clone().on_delete.as_ref()
        {
            r = self.call(ctx, "proxy_on_delete", f, ctx as i32);
        }
        let s = self.store.data_mut();
        s.streams.remove(&ctx);
        s.callouts.retain(|_, c| *c != ctx);
        s.signals.retain(|(c, _)| *c != ctx);
        r
    }

    fn flush_done(&mut self) -> Result<(), VmError> {
        loop {
            let ctxs = std::mem::take(&mut self.store.data_mut().done_requests);
            if ctxs.is_empty() {
                return Ok(());
            }
            for ctx in ctxs {
                if self.store.data().streams.get(&ctx).is_some_and(|s| s.done_pending) {
                    self.log_and_delete(ctx)?;
                }
            }
        }
    }

    /// `proxy_on_tick` on the root context.
    pub fn tick(&mut self) -> Result<(), VmError> {
        if let Some(f) = self.ex.clone().on_tick.as_ref() {
            let root = self.root;
            self.call(root, "proxy_on_tick", f, root as i32)?;
        }
        self.flush_done()
    }

    /// Delivers `proxy_on_queue_ready` for queues that got items.
    pub fn deliver_queue_ready(&mut self) -> Result<(), VmError> {
        let ready = self.store.data().queue_notifier.take();
        if let Some(f) = self.ex.clone().on_queue_ready.as_ref() {
            for (root, queue) in ready {
                self.call(root, "proxy_on_queue_ready", f, (root as i32, queue as i32))?;
            }
        }
        self.flush_done()
    }

    /// Delivers the outcome of HTTP call `token` (`None`: it failed) to the
    /// context that dispatched it. Returns `false`, without calling the
    /// filter, for a token it has no outstanding call for (unknown, already
    /// delivered, or its stream is gone): the SDK panics on those.
    pub fn deliver_http_call(&mut self, token: u32, response: Option<HttpCallResponse>) -> Result<bool, VmError> {
        let s = self.store.data_mut();
        let Some(ctx) = s.callouts.remove(&token) else { return Ok(false) };
        if !s.is_context(ctx) {
            return Ok(false);
        }
        let (state, n_headers, n_trailers) = match response {
            Some(r) => {
                let mut headers = Fields::with_capacity(r.headers.len() + 1);
                headers.add(":status", r.status.to_string().as_bytes());
                for (k, v) in r.headers.regular() {
                    headers.add(k, v);
                }
                let (nh, nt) = (headers.len(), r.trailers.len());
                (CallResponseState { status: r.status, headers, body: r.body, trailers: r.trailers }, nh, nt)
            }
            None => (
                CallResponseState { status: 0, headers: Fields::new(), body: Vec::new(), trailers: Fields::new() },
                0,
                0,
            ),
        };
        let body = state.body.len();
        s.call_response = Some(state);
        let r = match self.ex.clone().on_http_call_response.as_ref() {
            Some(f) => self
                .call(
                    ctx,
                    "proxy_on_http_call_response",
                    f,
                    (ctx as i32, token as i32, n_headers as i32, body as i32, n_trailers as i32),
                )
                .map(|_| true),
            None => Ok(true),
        };
        self.store.data_mut().call_response = None;
        let delivered = r?;
        self.flush_done()?;
        Ok(delivered)
    }

    /// Ends the root context (`proxy_on_done`, `proxy_on_delete`) at shutdown.
    pub fn shutdown(&mut self) {
        let root = self.root;
        if let Some(f) = self.ex.clone().on_done.as_ref() {
            let _ = self.call(root, "proxy_on_done", f, root as i32);
        }
        if let Some(f) = self.ex.clone().on_delete.as_ref() {
            let _ = self.call(root, "proxy_on_delete", f, root as i32);
        }
    }

    /// Logs through the host as the filter would (used for host messages).
    pub fn log(&mut self, level: LogLevel, message: &str) {
        self.store.data_mut().log(level, message);
    }
}
