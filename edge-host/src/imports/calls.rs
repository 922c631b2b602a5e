//! HTTP calls out of the filter (queued for the embedder to perform, the
//! answer delivered to the calling context), and the gRPC and foreign
//! functions this host does not offer.

use super::guest::{BAD_ARGUMENT, C, Defs, NOT_FOUND, OK, parse_map, read, text, write_u32};
use crate::abi::{LogLevel, Status};
use crate::host::{CallResponseState, HttpCallRequest};
use std::time::Duration;
use wasmtime::Result;

pub(super) fn add(d: &mut Defs<'_>) -> Result<()> {
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
