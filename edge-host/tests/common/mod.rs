//! Shared test helpers: a tiny proxy-wasm filter built instruction by
//! instruction with `wasm-encoder` (no SDK, no WAT), a toy backend, and the
//! path of the real filter.
//!
//! Longer than 500 lines because the minimal filter is spelled out one wasm
//! instruction at a time (most of the file, and read only when a test needs
//! a new behaviour from it); the backend is in `backend.rs` already.

#![allow(dead_code)]

use seckill_edge_host::Fields;
use std::path::PathBuf;
use wasm_encoder::{
    CodeSection, ConstExpr, DataSection, EntityType, ExportKind, ExportSection, Function, FunctionSection,
    GlobalSection, GlobalType, ImportSection, Instruction as I, MemArg, MemArgTarget, MemorySection, MemoryType,
    Module, TypeSection, ValType,
};

pub mod backend;

/// Fixed memory slots of the mini filter.
const RET_PTR: i32 = 16;
const RET_SIZE: i32 = 20;
const RET_TOKEN: i32 = 24;
const METRICS: u64 = 64; // metric ids, 4 bytes each
const HEAP_START: i32 = 65536;
const HEAP_LIMIT: i32 = 15 * 65536;

/// The mini filter's metrics, in slot order.
pub const MINI_METRICS: &[&str] = &[
    "mini_created",
    "mini_done",
    "mini_logged",
    "mini_deleted",
    "mini_call_responses",
    "mini_ticks",
    "mini_response_headers",
    "mini_call_headers",
];

/// What to build.
#[derive(Clone)]
pub struct Mini {
    /// Exported allocator name: `malloc`, `proxy_on_memory_allocate`, or "" for none.
    pub allocator: &'static str,
    /// Extra function imports `() -> i32` (to provoke missing-import errors).
    pub extra_imports: Vec<(&'static str, &'static str)>,
    pub abi_marker: bool,
    /// Tick period set in `proxy_on_configure` (0: none).
    pub tick_ms: i32,
    /// Status of the local response to a request with an `x-deny` header.
    pub deny_status: i32,
}

impl Default for Mini {
    fn default() -> Self {
        Self {
            allocator: "proxy_on_memory_allocate",
            extra_imports: Vec::new(),
            abi_marker: true,
            tick_ms: 1000,
            deny_status: 403,
        }
    }
}

struct B {
    types: TypeSection,
    sigs: Vec<(Vec<ValType>, Vec<ValType>)>,
    imports: ImportSection,
    import_names: Vec<String>,
    funcs: FunctionSection,
    code: CodeSection,
    exports: ExportSection,
    defined: u32,
    data: Vec<(u32, Vec<u8>)>,
    data_end: u32,
}

fn mem(offset: u64) -> MemArg {
    MemArg { offset, align: 2, target: MemArgTarget::Memory(0), ordering: None }
}

impl B {
    fn ty(&mut self, p: &[ValType], r: &[ValType]) -> u32 {
        if let Some(i) = self.sigs.iter().position(|(a, b)| a == p && b == r) {
            return i as u32;
        }
        self.types.ty().function(p.iter().copied(), r.iter().copied());
        self.sigs.push((p.to_vec(), r.to_vec()));
        (self.sigs.len() - 1) as u32
    }

    fn import(&mut self, module: &str, name: &str, p: &[ValType], r: &[ValType]) {
        let t = self.ty(p, r);
        self.imports.import(module, name, EntityType::Function(t));
        self.import_names.push(name.to_string());
    }

    fn call(&self, name: &str) -> I<'static> {
        I::Call(self.import_names.iter().position(|n| n == name).unwrap_or_else(|| panic!("no import {name}")) as u32)
    }

    /// Places bytes in a data segment; returns (ptr, len) as constants.
    fn bytes(&mut self, b: &[u8]) -> (I<'static>, I<'static>) {
        let off = self.data_end;
        self.data.push((off, b.to_vec()));
        self.data_end += (b.len() as u32).div_ceil(8) * 8 + 8;
        (I::I32Const(off as i32), I::I32Const(b.len() as i32))
    }

    fn func(&mut self, export: &str, p: &[ValType], r: &[ValType], locals: &[ValType], body: Vec<I<'static>>) {
        let t = self.ty(p, r);
        self.funcs.function(t);
        let idx = self.import_names.len() as u32 + self.defined;
        self.defined += 1;
        self.exports.export(export, ExportKind::Func, idx);
        let mut f = Function::new_with_locals_types(locals.iter().copied());
        for i in &body {
            f.instruction(i);
        }
        f.instruction(&I::End);
        self.code.function(&f);
    }

    fn inc(&self, slot: usize) -> Vec<I<'static>> {
        vec![
            I::I32Const(0),
            I::I32Load(mem(METRICS + 4 * slot as u64)),
            I::I64Const(1),
            self.call("proxy_increment_metric"),
            I::Drop,
        ]
    }
}

/// A proxy-wasm filter written directly in wasm instructions. It counts its
/// lifecycle in metrics (`mini_created`, `mini_done`, `mini_logged`,
/// `mini_deleted`), answers 403 to requests with an `x-deny` header (and
/// pauses), traps on `x-crash`, loops forever on `x-loop`, adds `x-mini: seen` to forwarded requests and
/// `x-mini-response: 1` to responses, records `source.address` in shared data
/// `mini:last_peer`, dispatches `GET /internal/edge/state` to
/// `seckill_backend` on every tick, and stores what comes back in shared data
/// (`mini:last_call_status`, `mini:last_call_body`, or
/// `mini:last_call_failed`).
pub fn mini_filter(opts: &Mini) -> Vec<u8> {
    use ValType::{I32, I64};
    let mut b = B {
        types: TypeSection::new(),
        sigs: Vec::new(),
        imports: ImportSection::new(),
        import_names: Vec::new(),
        funcs: FunctionSection::new(),
        code: CodeSection::new(),
        exports: ExportSection::new(),
        defined: 0,
        data: Vec::new(),
        data_end: 1024,
    };
    b.import("env", "proxy_get_header_map_value", &[I32; 5], &[I32]);
    b.import("env", "proxy_add_header_map_value", &[I32; 5], &[I32]);
    b.import("env", "proxy_send_local_response", &[I32; 8], &[I32]);
    b.import("env", "proxy_define_metric", &[I32; 4], &[I32]);
    b.import("env", "proxy_increment_metric", &[I32, I64], &[I32]);
    b.import("env", "proxy_record_metric", &[I32, I64], &[I32]);
    b.import("env", "proxy_set_tick_period_milliseconds", &[I32], &[I32]);
    b.import("env", "proxy_http_call", &[I32; 10], &[I32]);
    b.import("env", "proxy_get_buffer_bytes", &[I32; 5], &[I32]);
    b.import("env", "proxy_set_shared_data", &[I32; 5], &[I32]);
    b.import("env", "proxy_get_property", &[I32; 4], &[I32]);
    for (m, n) in &opts.extra_imports {
        b.import(m, n, &[], &[I32]);
    }

    if opts.abi_marker {
        b.func("proxy_abi_version_0_2_1", &[], &[], &[], vec![]);
    }
    if !opts.allocator.is_empty() {
        let align = |v: Vec<I<'static>>| {
            let mut v = v;
            v.extend([I::I32Const(7), I::I32Add, I::I32Const(-8), I::I32And]);
            v
        };
        let mut body = vec![I::GlobalGet(0), I::LocalSet(1)];
        body.extend(align(vec![I::GlobalGet(0), I::LocalGet(0), I::I32Add]));
        body.push(I::GlobalSet(0));
        // Wrap around when the heap is used up (tests consume what they get at once).
        body.extend([I::GlobalGet(0), I::I32Const(HEAP_LIMIT), I::I32GtU, I::If(wasm_encoder::BlockType::Empty)]);
        body.extend([I::I32Const(HEAP_START), I::LocalSet(1)]);
        body.extend(align(vec![I::I32Const(HEAP_START), I::LocalGet(0), I::I32Add]));
        body.extend([I::GlobalSet(0), I::End, I::LocalGet(1)]);
        b.func(opts.allocator, &[I32], &[I32], &[I32], body);
    }
    b.func("proxy_on_vm_start", &[I32, I32], &[I32], &[], vec![I::I32Const(1)]);

    // proxy_on_configure: define the metrics, set the tick period; an empty
    // configuration is rejected.
    let mut body = Vec::new();
    for (slot, name) in MINI_METRICS.iter().enumerate() {
        let kind = if *name == "mini_call_headers" { 1 } else { 0 };
        let (p, l) = b.bytes(name.as_bytes());
        body.extend([
            I::I32Const(kind),
            p,
            l,
            I::I32Const((METRICS + 4 * slot as u64) as i32),
            b.call("proxy_define_metric"),
            I::Drop,
        ]);
    }
    if opts.tick_ms > 0 {
        body.extend([I::I32Const(opts.tick_ms), b.call("proxy_set_tick_period_milliseconds"), I::Drop]);
    }
    body.extend([I::LocalGet(1), I::I32Const(0), I::I32Ne]);
    b.func("proxy_on_configure", &[I32, I32], &[I32], &[], body);

    // proxy_on_context_create: count stream contexts.
    let mut body = vec![I::LocalGet(1), I::If(wasm_encoder::BlockType::Empty)];
    body.extend(b.inc(0));
    body.push(I::End);
    b.func("proxy_on_context_create", &[I32, I32], &[], &[], body);

    let mut body = b.inc(1);
    body.push(I::I32Const(1));
    b.func("proxy_on_done", &[I32], &[I32], &[], body);
    let body = b.inc(2);
    b.func("proxy_on_log", &[I32], &[], &[], body);
    let body = b.inc(3);
    b.func("proxy_on_delete", &[I32], &[], &[], body);

    // proxy_on_request_headers.
    let (deny_p, deny_l) = b.bytes(b"x-deny");
    let (crash_p, crash_l) = b.bytes(b"x-crash");
    let (loop_p, loop_l) = b.bytes(b"x-loop");
    let (body_p, body_l) = b.bytes(br#"{"code":"forbidden","message":"denied by mini"}"#);
    let (hdr_p, hdr_l) = b.bytes(&Fields::from_pairs([("content-type", "application/json")]).serialize());
    let (xm_p, xm_l) = b.bytes(b"x-mini");
    let (seen_p, seen_l) = b.bytes(b"seen");
    let (peer_path_p, peer_path_l) = b.bytes(b"source\0address");
    let (peer_key_p, peer_key_l) = b.bytes(b"mini:last_peer");
    let mut body = vec![
        I::I32Const(0),
        deny_p,
        deny_l,
        I::I32Const(RET_PTR),
        I::I32Const(RET_SIZE),
        b.call("proxy_get_header_map_value"),
        I::I32Eqz,
        I::If(wasm_encoder::BlockType::Empty),
        I::I32Const(opts.deny_status),
        I::I32Const(0),
        I::I32Const(0),
        body_p,
        body_l,
        hdr_p,
        hdr_l,
        I::I32Const(-1),
        b.call("proxy_send_local_response"),
        I::Drop,
        I::I32Const(1),
        I::Return,
        I::End,
        I::I32Const(0),
        crash_p,
        crash_l,
        I::I32Const(RET_PTR),
        I::I32Const(RET_SIZE),
        b.call("proxy_get_header_map_value"),
        I::I32Eqz,
        I::If(wasm_encoder::BlockType::Empty),
        I::Unreachable,
        I::End,
        I::I32Const(0),
        loop_p,
        loop_l,
        I::I32Const(RET_PTR),
        I::I32Const(RET_SIZE),
        b.call("proxy_get_header_map_value"),
        I::I32Eqz,
        I::If(wasm_encoder::BlockType::Empty),
        I::Loop(wasm_encoder::BlockType::Empty),
        I::Br(0),
        I::End,
        I::End,
        peer_path_p,
        peer_path_l,
        I::I32Const(RET_PTR),
        I::I32Const(RET_SIZE),
        b.call("proxy_get_property"),
        I::I32Eqz,
        I::If(wasm_encoder::BlockType::Empty),
        peer_key_p,
        peer_key_l,
        I::I32Const(0),
        I::I32Load(mem(RET_PTR as u64)),
        I::I32Const(0),
        I::I32Load(mem(RET_SIZE as u64)),
        I::I32Const(0),
        b.call("proxy_set_shared_data"),
        I::Drop,
        I::End,
        I::I32Const(0),
        xm_p,
        xm_l,
        seen_p,
        seen_l,
        b.call("proxy_add_header_map_value"),
        I::Drop,
        I::I32Const(0),
    ];
    b.func("proxy_on_request_headers", &[I32; 3], &[I32], &[], std::mem::take(&mut body));

    // proxy_on_response_headers: tag the response.
    let (xr_p, xr_l) = b.bytes(b"x-mini-response");
    let (one_p, one_l) = b.bytes(b"1");
    let mut body = b.inc(6);
    body.extend([
        I::I32Const(2),
        xr_p,
        xr_l,
        one_p.clone(),
        one_l.clone(),
        b.call("proxy_add_header_map_value"),
        I::Drop,
        I::I32Const(0),
    ]);
    b.func("proxy_on_response_headers", &[I32; 3], &[I32], &[], body);

    // proxy_on_tick: fetch the edge state.
    let (cl_p, cl_l) = b.bytes(b"seckill_backend");
    let call_headers = Fields::from_pairs([
        (":method", "GET"),
        (":path", "/internal/edge/state"),
        (":authority", "backend"),
        ("x-seckill-edge-secret", "mini-secret"),
    ]);
    let (ch_p, ch_l) = b.bytes(&call_headers.serialize());
    let mut body = vec![
        cl_p,
        cl_l,
        ch_p,
        ch_l,
        I::I32Const(0),
        I::I32Const(0),
        I::I32Const(0),
        I::I32Const(0),
        I::I32Const(2000),
        I::I32Const(RET_TOKEN),
        b.call("proxy_http_call"),
        I::Drop,
    ];
    body.extend(b.inc(5));
    b.func("proxy_on_tick", &[I32], &[], &[], body);

    // proxy_on_http_call_response(ctx, token, headers, body, trailers).
    let (failed_p, failed_l) = b.bytes(b"mini:last_call_failed");
    let (bodykey_p, bodykey_l) = b.bytes(b"mini:last_call_body");
    let (status_p, status_l) = b.bytes(b":status");
    let (statuskey_p, statuskey_l) = b.bytes(b"mini:last_call_status");
    let mut body = b.inc(4);
    body.extend([
        I::I32Const(0),
        I::I32Load(mem(METRICS + 4 * 7)),
        I::LocalGet(2),
        I::I64ExtendI32U,
        b.call("proxy_record_metric"),
        I::Drop,
        I::LocalGet(2),
        I::I32Eqz,
        I::If(wasm_encoder::BlockType::Empty),
        failed_p,
        failed_l,
        one_p.clone(),
        one_l.clone(),
        I::I32Const(0),
        b.call("proxy_set_shared_data"),
        I::Drop,
        I::Else,
        I::I32Const(6),
        status_p,
        status_l,
        I::I32Const(RET_PTR),
        I::I32Const(RET_SIZE),
        b.call("proxy_get_header_map_value"),
        I::I32Eqz,
        I::If(wasm_encoder::BlockType::Empty),
        statuskey_p,
        statuskey_l,
        I::I32Const(0),
        I::I32Load(mem(RET_PTR as u64)),
        I::I32Const(0),
        I::I32Load(mem(RET_SIZE as u64)),
        I::I32Const(0),
        b.call("proxy_set_shared_data"),
        I::Drop,
        I::End,
        I::I32Const(4),
        I::I32Const(0),
        I::LocalGet(3),
        I::I32Const(RET_PTR),
        I::I32Const(RET_SIZE),
        b.call("proxy_get_buffer_bytes"),
        I::I32Eqz,
        I::If(wasm_encoder::BlockType::Empty),
        bodykey_p,
        bodykey_l,
        I::I32Const(0),
        I::I32Load(mem(RET_PTR as u64)),
        I::I32Const(0),
        I::I32Load(mem(RET_SIZE as u64)),
        I::I32Const(0),
        b.call("proxy_set_shared_data"),
        I::Drop,
        I::End,
        I::End,
    ]);
    b.func("proxy_on_http_call_response", &[I32; 5], &[], &[], body);

    let mut module = Module::new();
    module.section(&b.types);
    module.section(&b.imports);
    module.section(&b.funcs);
    let mut memories = MemorySection::new();
    memories.memory(MemoryType { minimum: 16, maximum: None, memory64: false, shared: false, page_size_log2: None });
    module.section(&memories);
    let mut globals = GlobalSection::new();
    globals
        .global(GlobalType { val_type: ValType::I32, mutable: true, shared: false }, &ConstExpr::i32_const(HEAP_START));
    module.section(&globals);
    b.exports.export("memory", ExportKind::Memory, 0);
    module.section(&b.exports);
    module.section(&b.code);
    let mut data = DataSection::new();
    for (off, bytes) in &b.data {
        data.active(0, &ConstExpr::i32_const(*off as i32), bytes.iter().copied());
    }
    module.section(&data);
    module.finish()
}

/// Writes a module under the test target dir and returns its path.
pub fn write_wasm(name: &str, bytes: &[u8]) -> PathBuf {
    // Examples have no CARGO_TARGET_TMPDIR (tests and benches do).
    let tmp = option_env!("CARGO_TARGET_TMPDIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let dir = tmp.join("edge-host-wasm");
    std::fs::create_dir_all(&dir).unwrap();
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!("{name}-{}-{n}.wasm", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The command that builds the real filter (also in every failure message).
pub const BUILD_FILTER: &str = "cargo build --release --target wasm32-unknown-unknown -p seckill-edge-filter";

/// The real filter: `SECKILL_EDGE_FILTER_WASM`, else the workspace's release
/// build. Its absence fails the test, as does a workspace build older than
/// the filter's sources: a test that passes without running the filter, or
/// against last week's filter, says nothing about this one.
pub fn real_filter() -> PathBuf {
    let (path, sources) = match std::env::var_os("SECKILL_EDGE_FILTER_WASM") {
        // A module chosen by hand (e.g. a deployment build) is taken as it is.
        Some(p) => (PathBuf::from(p), Vec::new()),
        None => {
            let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace").to_path_buf();
            let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
            let sources = ["edge-filter/src", "edge-filter/Cargo.toml", "api-types/src", "api-types/Cargo.toml"];
            (
                target.join("wasm32-unknown-unknown/release/seckill_edge_filter.wasm"),
                sources.iter().map(|s| root.join(s)).collect(),
            )
        }
    };
    if let Err(why) = check_filter(&path, &sources) {
        panic!("{why}");
    }
    path
}

/// `Err` with what to run when `wasm` is missing or older than a file under
/// `sources` (files or directories, walked).
pub fn check_filter(wasm: &std::path::Path, sources: &[PathBuf]) -> Result<(), String> {
    let built = match std::fs::metadata(wasm).and_then(|m| m.modified()) {
        Ok(t) => t,
        Err(_) => return Err(format!("the edge filter is not built at {}: run `{BUILD_FILTER}`", wasm.display())),
    };
    let mut dirs: Vec<PathBuf> = sources.to_vec();
    while let Some(p) = dirs.pop() {
        let Ok(meta) = std::fs::metadata(&p) else { continue };
        if meta.is_dir() {
            dirs.extend(std::fs::read_dir(&p).into_iter().flatten().flatten().map(|e| e.path()));
        } else if meta.modified().is_ok_and(|t| t > built) {
            return Err(format!(
                "the edge filter at {} is older than {}: run `{BUILD_FILTER}`",
                wasm.display(),
                p.display()
            ));
        }
    }
    Ok(())
}

/// A response read off the wire.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Sends one HTTP/1.1 request (`Connection: close` added) and reads the reply.
pub fn http(addr: std::net::SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: edge.test\r\nconnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        req.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    parse_reply(&raw)
}

pub fn parse_reply(raw: &[u8]) -> Reply {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut rest = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    if headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked")) {
        let mut body = Vec::new();
        loop {
            let eol = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..eol]).trim(), 16).unwrap();
            if size == 0 {
                break;
            }
            body.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
            rest = rest[eol + 2 + size + 2..].to_vec();
        }
        rest = body;
    }
    Reply { status, headers, body: rest }
}
