//! The functions a proxy-wasm module imports from module `env`: every
//! function of ABI v0.2.1 (and the few v0.1.0 names still in use), each
//! answering only with statuses the Rust SDK accepts from that call (but a
//! full shared-data store, see `proxy_set_shared_data`).
//!
//! Guest pointers that fall outside linear memory trap the VM: that is a
//! broken module, and the SDK has no status for it.

use super::{Fields, LogLevel, MetricKind, Status, stream_type};
use crate::host::{CallResponseState, HostState, HttpCallRequest, LocalResponse, Signal};
use crate::shared::{ABSENT_CAS, SetError};
use std::ops::Range;
use std::time::Duration;
use wasmtime::{Caller, IntoFunc, Linker, Memory, Result, format_err};

pub(crate) type C<'a> = Caller<'a, HostState>;

/// The `(module, name)` of every function this host defines.
pub fn provided_imports() -> &'static [(&'static str, &'static str)] {
    static NAMES: std::sync::OnceLock<Vec<(&'static str, &'static str)>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        let engine = wasmtime::Engine::default();
        let mut linker = Linker::new(&engine);
        add_to_linker(&mut linker).expect("the host's own imports link")
    })
}

pub(crate) struct Defs<'l> {
    linker: &'l mut Linker<HostState>,
    pub names: Vec<(&'static str, &'static str)>,
}

impl Defs<'_> {
    pub fn func<P, A>(
        &mut self,
        module: &'static str,
        name: &'static str,
        f: impl IntoFunc<HostState, P, A>,
    ) -> Result<()> {
        self.linker.func_wrap(module, name, f)?;
        self.names.push((module, name));
        Ok(())
    }
}

fn memory(c: &C<'_>) -> Result<Memory> {
    c.data().memory.ok_or_else(|| format_err!("the module exports no `memory`"))
}

fn range(len: usize, ptr: i32, size: i32) -> Result<Range<usize>> {
    let (p, n) = (ptr as u32 as usize, size as u32 as usize);
    match p.checked_add(n) {
        Some(end) if end <= len => Ok(p..end),
        _ => Err(format_err!("invalid memory access: {n} bytes at {p:#x} (memory is {len} bytes)")),
    }
}

/// Copies guest bytes out.
pub(crate) fn read(c: &mut C<'_>, ptr: i32, size: i32) -> Result<Vec<u8>> {
    let mem = memory(c)?;
    let data = mem.data(&*c);
    Ok(data[range(data.len(), ptr, size)?].to_vec())
}

/// Runs `f` on guest memory and the host state together (no copy).
fn with_mem<R>(c: &mut C<'_>, f: impl FnOnce(&mut [u8], &mut HostState) -> Result<R>) -> Result<R> {
    let mem = memory(c)?;
    let (data, state) = mem.data_and_store_mut(c);
    f(data, state)
}

fn slice(data: &[u8], ptr: i32, size: i32) -> Result<&[u8]> {
    Ok(&data[range(data.len(), ptr, size)?])
}

pub(crate) fn write(c: &mut C<'_>, ptr: i32, bytes: &[u8]) -> Result<()> {
    let mem = memory(c)?;
    let data = mem.data_mut(&mut *c);
    let r = range(data.len(), ptr, bytes.len() as i32)?;
    data[r].copy_from_slice(bytes);
    Ok(())
}

pub(crate) fn write_u32(c: &mut C<'_>, ptr: i32, v: u32) -> Result<()> {
    write(c, ptr, &v.to_le_bytes())
}

fn write_u64(c: &mut C<'_>, ptr: i32, v: u64) -> Result<()> {
    write(c, ptr, &v.to_le_bytes())
}

/// Allocates `bytes.len()` in the guest (`proxy_on_memory_allocate` or
/// `malloc`), copies `bytes` there and writes the pointer and size to the
/// return slots. With `null_if_empty`, an empty value is returned as a null
/// pointer without allocating (the SDK reads that as empty).
fn give(c: &mut C<'_>, bytes: &[u8], ptr_ptr: i32, size_ptr: i32, null_if_empty: bool) -> Result<()> {
    let ptr = if bytes.is_empty() && null_if_empty {
        0
    } else {
        let alloc = c.data().alloc.clone().ok_or_else(|| format_err!("the module exports no allocator"))?;
        let p = alloc.call(&mut *c, bytes.len() as i32)?;
        if p == 0 && !bytes.is_empty() {
            return Err(format_err!("the module's allocator returned null for {} bytes", bytes.len()));
        }
        p
    };
    let mem = memory(c)?;
    let data = mem.data_mut(&mut *c);
    if ptr != 0 {
        let r = range(data.len(), ptr, bytes.len() as i32)?;
        data[r].copy_from_slice(bytes);
    }
    let r = range(data.len(), ptr_ptr, 4)?;
    data[r].copy_from_slice(&(ptr as u32).to_le_bytes());
    let r = range(data.len(), size_ptr, 4)?;
    data[r].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
    Ok(())
}

const OK: i32 = Status::Ok as i32;
const NOT_FOUND: i32 = Status::NotFound as i32;
const BAD_ARGUMENT: i32 = Status::BadArgument as i32;

fn status(r: std::result::Result<(), Status>) -> i32 {
    match r {
        Ok(()) => OK,
        Err(s) => s.code(),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn parse_map(bytes: &[u8], what: &str) -> Result<Fields> {
    Fields::deserialize(bytes).map_err(|e| format_err!("{what}: {e}"))
}

fn signal(state: &mut HostState, signal: Signal) {
    if state.streams.contains_key(&state.effective) {
        state.signals.push((state.effective, signal));
    }
}

/// Defines every import on `linker`; returns their names.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> Result<Vec<(&'static str, &'static str)>> {
    let mut d = Defs { linker, names: Vec::new() };
    logging_and_time(&mut d)?;
    buffers(&mut d)?;
    header_maps(&mut d)?;
    properties(&mut d)?;
    shared(&mut d)?;
    streams(&mut d)?;
    calls(&mut d)?;
    metrics(&mut d)?;
    super::wasi::add(&mut d)?;
    Ok(d.names)
}

fn logging_and_time(d: &mut Defs<'_>) -> Result<()> {
    d.func("env", "proxy_log", |mut c: C<'_>, level: i32, ptr: i32, size: i32| -> Result<i32> {
        let msg = read(&mut c, ptr, size)?;
        c.data_mut().log(LogLevel::from_raw(level as u32), &String::from_utf8_lossy(&msg));
        Ok(OK)
    })?;
    d.func("env", "proxy_get_log_level", |mut c: C<'_>, ret: i32| -> Result<i32> {
        let level = c.data().env.config.log_level as u32;
        write_u32(&mut c, ret, level)?;
        Ok(OK)
    })?;
    d.func("env", "proxy_get_current_time_nanoseconds", |mut c: C<'_>, ret: i32| -> Result<i32> {
        let now = c.data().env.clock.now_nanos();
        write_u64(&mut c, ret, now)?;
        Ok(OK)
    })?;
    d.func("env", "proxy_set_tick_period_milliseconds", |mut c: C<'_>, period: i32| -> Result<i32> {
        let s = c.data_mut();
        let ms = period as u32;
        s.tick_period = (ms != 0).then(|| Duration::from_millis(ms as u64));
        s.tick_changed = true;
        Ok(OK)
    })?;
    Ok(())
}

fn buffers(d: &mut Defs<'_>) -> Result<()> {
    // ABI v0.1.0's way to read the plugin configuration.
    d.func("env", "proxy_get_configuration", |mut c: C<'_>, ptr_ptr: i32, size_ptr: i32| -> Result<i32> {
        let config = c.data().env.clone();
        give(&mut c, &config.config.plugin_config, ptr_ptr, size_ptr, true)?;
        Ok(OK)
    })?;
    d.func(
        "env",
        "proxy_get_buffer_bytes",
        |mut c: C<'_>, ty: i32, start: i32, max: i32, ptr_ptr: i32, size_ptr: i32| -> Result<i32> {
            let (start, max) = (start as u32 as usize, max as u32 as usize);
            // Out of range or empty: NOT_FOUND (the SDK reads None), as Envoy does.
            let bytes = c.data().buffer(ty as u32).and_then(|b| {
                (start < b.len() && max > 0).then(|| b[start..b.len().min(start.saturating_add(max))].to_vec())
            });
            match bytes {
                None => Ok(NOT_FOUND),
                Some(b) => {
                    give(&mut c, &b, ptr_ptr, size_ptr, false)?;
                    Ok(OK)
                }
            }
        },
    )?;
    d.func(
        "env",
        "proxy_set_buffer_bytes",
        |mut c: C<'_>, ty: i32, start: i32, size: i32, ptr: i32, len: i32| -> Result<i32> {
            let value = read(&mut c, ptr, len)?;
            if let Some(buf) = c.data_mut().buffer_mut(ty as u32) {
                let start = (start as u32 as usize).min(buf.len());
                let end = start.saturating_add(size as u32 as usize).min(buf.len());
                buf.splice(start..end, value);
            }
            Ok(OK)
        },
    )?;
    d.func("env", "proxy_get_buffer_status", |mut c: C<'_>, ty: i32, size_ptr: i32, flags_ptr: i32| -> Result<i32> {
        let Some(len) = c.data().buffer(ty as u32).map(<[u8]>::len) else { return Ok(NOT_FOUND) };
        write_u32(&mut c, size_ptr, len as u32)?;
        write_u32(&mut c, flags_ptr, 0)?;
        Ok(OK)
    })?;
    Ok(())
}

fn header_maps(d: &mut Defs<'_>) -> Result<()> {
    d.func("env", "proxy_get_header_map_size", |mut c: C<'_>, ty: i32, ret: i32| -> Result<i32> {
        let size = match c.data().map(ty as u32) {
            Err(()) => return Ok(BAD_ARGUMENT),
            Ok(m) => m.map_or(0, Fields::serialized_len),
        };
        write_u32(&mut c, ret, size as u32)?;
        Ok(OK)
    })?;
    d.func("env", "proxy_get_header_map_pairs", |mut c: C<'_>, ty: i32, ptr_ptr: i32, size_ptr: i32| -> Result<i32> {
        // The SDK panics on anything but OK here: an unavailable map is empty.
        let bytes = match c.data().map(ty as u32) {
            Err(()) => return Ok(BAD_ARGUMENT),
            Ok(Some(m)) if !m.is_empty() => m.serialize(),
            Ok(_) => Vec::new(),
        };
        give(&mut c, &bytes, ptr_ptr, size_ptr, true)?;
        Ok(OK)
    })?;
    d.func("env", "proxy_set_header_map_pairs", |mut c: C<'_>, ty: i32, ptr: i32, size: i32| -> Result<i32> {
        let fields = parse_map(&read(&mut c, ptr, size)?, "proxy_set_header_map_pairs")?;
        match c.data_mut().map_mut(ty as u32) {
            Err(()) => Ok(BAD_ARGUMENT),
            Ok(Some(m)) => {
                *m = fields;
                Ok(OK)
            }
            Ok(None) => Ok(OK),
        }
    })?;
    d.func(
        "env",
        "proxy_get_header_map_value",
        |mut c: C<'_>, ty: i32, kptr: i32, klen: i32, ptr_ptr: i32, size_ptr: i32| -> Result<i32> {
            let value = with_mem(&mut c, |data, s| {
                let key = slice(data, kptr, klen)?;
                Ok(match s.map(ty as u32) {
                    Err(()) => Err(BAD_ARGUMENT),
                    Ok(m) => {
                        let key = std::str::from_utf8(key).unwrap_or("");
                        m.and_then(|m| m.get(key)).map(<[u8]>::to_vec).ok_or(NOT_FOUND)
                    }
                })
            })?;
            match value {
                Err(code) => Ok(code),
                Ok(v) => {
                    give(&mut c, &v, ptr_ptr, size_ptr, true)?;
                    Ok(OK)
                }
            }
        },
    )?;
    for (name, replace) in [("proxy_add_header_map_value", false), ("proxy_replace_header_map_value", true)] {
        d.func("env", name, move |mut c: C<'_>, ty: i32, kptr: i32, klen: i32, vptr: i32, vlen: i32| -> Result<i32> {
            with_mem(&mut c, |data, s| {
                let key = text(slice(data, kptr, klen)?);
                let value = slice(data, vptr, vlen)?;
                Ok(match s.map_mut(ty as u32) {
                    Err(()) => BAD_ARGUMENT,
                    Ok(Some(m)) if replace => {
                        m.replace(&key, value);
                        OK
                    }
                    Ok(Some(m)) => {
                        m.add(&key, value);
                        OK
                    }
                    Ok(None) => OK,
                })
            })
        })?;
    }
    d.func("env", "proxy_remove_header_map_value", |mut c: C<'_>, ty: i32, kptr: i32, klen: i32| -> Result<i32> {
        with_mem(&mut c, |data, s| {
            let key = text(slice(data, kptr, klen)?);
            Ok(match s.map_mut(ty as u32) {
                Err(()) => BAD_ARGUMENT,
                Ok(Some(m)) => {
                    m.remove(&key);
                    OK
                }
                Ok(None) => OK,
            })
        })
    })?;
    Ok(())
}

fn properties(d: &mut Defs<'_>) -> Result<()> {
    d.func(
        "env",
        "proxy_get_property",
        |mut c: C<'_>, pptr: i32, plen: i32, ptr_ptr: i32, size_ptr: i32| -> Result<i32> {
            let value = with_mem(&mut c, |data, s| Ok(s.property(slice(data, pptr, plen)?)))?;
            match value {
                None => Ok(NOT_FOUND),
                Some(v) => {
                    give(&mut c, &v, ptr_ptr, size_ptr, false)?;
                    Ok(OK)
                }
            }
        },
    )?;
    d.func("env", "proxy_set_property", |mut c: C<'_>, pptr: i32, plen: i32, vptr: i32, vlen: i32| -> Result<i32> {
        with_mem(&mut c, |data, s| {
            s.set_property(slice(data, pptr, plen)?, slice(data, vptr, vlen)?);
            Ok(OK)
        })
    })?;
    Ok(())
}

fn shared(d: &mut Defs<'_>) -> Result<()> {
    d.func(
        "env",
        "proxy_get_shared_data",
        |mut c: C<'_>, kptr: i32, klen: i32, ptr_ptr: i32, size_ptr: i32, cas_ptr: i32| -> Result<i32> {
            let found = with_mem(&mut c, |data, s| Ok(s.env.shared_data.get(slice(data, kptr, klen)?)))?;
            // A missing key answers OK with no value and the absent cas (the
            // SDK reads `(None, Some(cas))`), so that writing it back with
            // that cas creates the key only if nobody else did meanwhile.
            let (value, cas) = found.unwrap_or_else(|| (std::sync::Arc::from(&[][..]), ABSENT_CAS));
            give(&mut c, &value, ptr_ptr, size_ptr, value.is_empty())?;
            write_u32(&mut c, cas_ptr, cas)?;
            Ok(OK)
        },
    )?;
    d.func(
        "env",
        "proxy_set_shared_data",
        |mut c: C<'_>, kptr: i32, klen: i32, vptr: i32, vlen: i32, cas: i32| -> Result<i32> {
            with_mem(&mut c, |data, s| {
                let key = slice(data, kptr, klen)?;
                let value = if vlen == 0 { &[][..] } else { slice(data, vptr, vlen)? };
                Ok(match s.env.shared_data.set(key, value, cas as u32) {
                    Ok(()) => OK,
                    Err(SetError::CasMismatch) => Status::CasMismatch.code(),
                    Err(SetError::Full) => {
                        // Not stored, so not OK: a filter told OK would go on as
                        // if its limit's state were kept (and enforce nothing).
                        // The spec names no status for a full store (Envoy's has
                        // no budget; Kong's traps the module), so the generic
                        // failure it is. The Rust SDK panics on it, which traps
                        // that VM: loud rather than silently unlimited. The
                        // edge filter reads the status itself and refuses.
                        let _ = s.env.metrics.increment(s.env.host_metrics.shared_data_rejected, 1);
                        s.shared_rejections += 1;
                        if s.shared_rejections.is_power_of_two() {
                            tracing::warn!(
                                bytes = s.env.shared_data.bytes(),
                                "shared data is full ({} writes refused on this VM)",
                                s.shared_rejections
                            );
                        }
                        Status::InternalFailure.code()
                    }
                })
            })
        },
    )?;
    d.func("env", "proxy_register_shared_queue", |mut c: C<'_>, nptr: i32, nlen: i32, ret: i32| -> Result<i32> {
        let name = read(&mut c, nptr, nlen)?;
        let s = c.data();
        let id = s.env.queues.register(s.env.config.vm_id.as_bytes(), &name, s.queue_notifier.clone(), s.root_id);
        write_u32(&mut c, ret, id)?;
        Ok(OK)
    })?;
    d.func(
        "env",
        "proxy_resolve_shared_queue",
        |mut c: C<'_>, vptr: i32, vlen: i32, nptr: i32, nlen: i32, ret: i32| -> Result<i32> {
            let vm_id = read(&mut c, vptr, vlen)?;
            let name = read(&mut c, nptr, nlen)?;
            match c.data().env.queues.resolve(&vm_id, &name) {
                None => Ok(NOT_FOUND),
                Some(id) => {
                    write_u32(&mut c, ret, id)?;
                    Ok(OK)
                }
            }
        },
    )?;
    d.func("env", "proxy_enqueue_shared_queue", |mut c: C<'_>, id: i32, vptr: i32, vlen: i32| -> Result<i32> {
        let value = read(&mut c, vptr, vlen)?;
        Ok(if c.data().env.queues.enqueue(id as u32, value) { OK } else { NOT_FOUND })
    })?;
    d.func("env", "proxy_dequeue_shared_queue", |mut c: C<'_>, id: i32, ptr_ptr: i32, size_ptr: i32| -> Result<i32> {
        match c.data().env.queues.dequeue(id as u32) {
            Err(()) => Ok(NOT_FOUND),
            Ok(None) => Ok(Status::Empty.code()),
            Ok(Some(v)) => {
                give(&mut c, &v, ptr_ptr, size_ptr, false)?;
                Ok(OK)
            }
        }
    })?;
    Ok(())
}

fn streams(d: &mut Defs<'_>) -> Result<()> {
    d.func("env", "proxy_continue_stream", |mut c: C<'_>, ty: i32| -> Result<i32> {
        match ty as u32 {
            stream_type::HTTP_REQUEST => signal(c.data_mut(), Signal::ContinueRequest),
            stream_type::HTTP_RESPONSE => signal(c.data_mut(), Signal::ContinueResponse),
            _ => {}
        }
        Ok(OK)
    })?;
    d.func("env", "proxy_close_stream", |mut c: C<'_>, ty: i32| -> Result<i32> {
        if matches!(ty as u32, stream_type::HTTP_REQUEST | stream_type::HTTP_RESPONSE) {
            signal(c.data_mut(), Signal::Reset);
        }
        Ok(OK)
    })?;
    // ABI v0.1.0 spellings.
    d.func("env", "proxy_continue_request", |mut c: C<'_>| -> Result<i32> {
        signal(c.data_mut(), Signal::ContinueRequest);
        Ok(OK)
    })?;
    d.func("env", "proxy_continue_response", |mut c: C<'_>| -> Result<i32> {
        signal(c.data_mut(), Signal::ContinueResponse);
        Ok(OK)
    })?;
    d.func("env", "proxy_clear_route_cache", |_c: C<'_>| -> Result<i32> { Ok(OK) })?;
    d.func(
        "env",
        "proxy_send_local_response",
        |mut c: C<'_>,
         code: i32,
         dptr: i32,
         dlen: i32,
         bptr: i32,
         blen: i32,
         hptr: i32,
         hlen: i32,
         _grpc: i32|
         -> Result<i32> {
            let details = text(&read(&mut c, dptr, dlen)?);
            let body = read(&mut c, bptr, blen)?;
            let headers = parse_map(&read(&mut c, hptr, hlen)?, "proxy_send_local_response headers")?;
            let status = match code as u32 {
                s @ 200..=599 => s as u16,
                other => {
                    c.data_mut()
                        .log(LogLevel::Warn, &format!("local response with invalid status {other}: sent as 500"));
                    500
                }
            };
            let s = c.data_mut();
            if !s.streams.contains_key(&s.effective) {
                s.log(LogLevel::Warn, "proxy_send_local_response outside a stream: ignored");
                return Ok(OK);
            }
            signal(s, Signal::LocalResponse(LocalResponse { status, headers, body, details }));
            Ok(OK)
        },
    )?;
    d.func("env", "proxy_set_effective_context", |mut c: C<'_>, ctx: i32| -> Result<i32> {
        let s = c.data_mut();
        if !s.is_context(ctx as u32) {
            return Ok(BAD_ARGUMENT);
        }
        s.effective = ctx as u32;
        Ok(OK)
    })?;
    d.func("env", "proxy_done", |mut c: C<'_>| -> Result<i32> {
        let s = c.data_mut();
        let ctx = s.effective;
        if s.streams.get(&ctx).is_some_and(|st| st.done_pending) {
            s.done_requests.push(ctx);
        }
        Ok(OK)
    })?;
    Ok(())
}

fn calls(d: &mut Defs<'_>) -> Result<()> {
    d.func(
        "env",
        "proxy_http_call",
        |mut c: C<'_>,
         uptr: i32,
         ulen: i32,
         hptr: i32,
         hlen: i32,
         bptr: i32,
         blen: i32,
         tptr: i32,
         tlen: i32,
         timeout_ms: i32,
         ret: i32|
         -> Result<i32> {
            let cluster = text(&read(&mut c, uptr, ulen)?);
            let headers = parse_map(&read(&mut c, hptr, hlen)?, "proxy_http_call headers")?;
            let body = read(&mut c, bptr, blen)?;
            let trailers = parse_map(&read(&mut c, tptr, tlen)?, "proxy_http_call trailers")?;
            let env = c.data().env.clone();
            let Some(target) = env.config.clusters.get(&cluster).cloned() else {
                c.data_mut().log(LogLevel::Warn, &format!("proxy_http_call to unknown cluster `{cluster}`"));
                return Ok(BAD_ARGUMENT);
            };
            if [":method", ":path", ":authority"].iter().any(|h| headers.get(h).is_none()) {
                c.data_mut().log(LogLevel::Warn, "proxy_http_call without :method, :path or :authority");
                return Ok(BAD_ARGUMENT);
            }
            if c.data().callouts.len() >= env.config.max_pending_http_calls {
                c.data_mut().log(LogLevel::Warn, "too many HTTP calls outstanding");
                return Ok(Status::InternalFailure.code());
            }
            let token = env.token();
            write_u32(&mut c, ret, token)?;
            let timeout = match timeout_ms as u32 {
                0 => env.config.default_http_call_timeout,
                ms => Duration::from_millis(ms as u64),
            };
            let s = c.data_mut();
            let context_id = s.effective;
            s.callouts.insert(token, context_id);
            s.outgoing.push(HttpCallRequest {
                token,
                vm: s.vm_index,
                context_id,
                cluster,
                target,
                headers,
                body,
                trailers,
                timeout,
                dispatched_at: env.clock.now_nanos(),
            });
            Ok(OK)
        },
    )?;
    d.func("env", "proxy_get_status", |mut c: C<'_>, code_ptr: i32, ptr_ptr: i32, size_ptr: i32| -> Result<i32> {
        let code = c.data().call_response.as_ref().map_or(0, |r: &CallResponseState| r.status as u32);
        write_u32(&mut c, code_ptr, code)?;
        write_u32(&mut c, ptr_ptr, 0)?;
        write_u32(&mut c, size_ptr, 0)?;
        Ok(OK)
    })?;
    // gRPC is not offered: the SDK maps these statuses to errors.
    d.func(
        "env",
        "proxy_grpc_call",
        |_c: C<'_>,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32|
         -> Result<i32> { Ok(Status::InternalFailure.code()) },
    )?;
    d.func(
        "env",
        "proxy_grpc_stream",
        |_c: C<'_>, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32| -> Result<i32> {
            Ok(Status::InternalFailure.code())
        },
    )?;
    d.func("env", "proxy_grpc_send", |_c: C<'_>, _: i32, _: i32, _: i32, _: i32| -> Result<i32> { Ok(NOT_FOUND) })?;
    d.func("env", "proxy_grpc_cancel", |_c: C<'_>, _: i32| -> Result<i32> { Ok(NOT_FOUND) })?;
    d.func("env", "proxy_grpc_close", |_c: C<'_>, _: i32| -> Result<i32> { Ok(NOT_FOUND) })?;
    d.func(
        "env",
        "proxy_call_foreign_function",
        |_c: C<'_>, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32| -> Result<i32> { Ok(NOT_FOUND) },
    )?;
    Ok(())
}

fn metrics(d: &mut Defs<'_>) -> Result<()> {
    d.func("env", "proxy_define_metric", |mut c: C<'_>, ty: i32, nptr: i32, nlen: i32, ret: i32| -> Result<i32> {
        let Some(kind) = MetricKind::from_raw(ty as u32) else { return Ok(BAD_ARGUMENT) };
        let name = text(&read(&mut c, nptr, nlen)?);
        let id = c.data().env.metrics.define(kind, &name);
        write_u32(&mut c, ret, id)?;
        Ok(OK)
    })?;
    d.func("env", "proxy_increment_metric", |c: C<'_>, id: i32, delta: i64| -> Result<i32> {
        Ok(status(c.data().env.metrics.increment(id as u32, delta)))
    })?;
    d.func("env", "proxy_record_metric", |c: C<'_>, id: i32, value: i64| -> Result<i32> {
        Ok(status(c.data().env.metrics.record(id as u32, value as u64)))
    })?;
    d.func("env", "proxy_get_metric", |mut c: C<'_>, id: i32, ret: i32| -> Result<i32> {
        match c.data().env.metrics.get(id as u32) {
            Ok(v) => {
                write_u64(&mut c, ret, v)?;
                Ok(OK)
            }
            Err(s) => Ok(s.code()),
        }
    })?;
    Ok(())
}
