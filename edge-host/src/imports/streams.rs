//! Stream control: continuing, closing or answering a stream, switching the
//! effective context, `proxy_done`. These only queue a signal for the
//! embedder, which acts on it after the callback returns.

use super::guest::{BAD_ARGUMENT, C, Defs, OK, parse_map, read, text};
use crate::abi::{LogLevel, stream_type};
use crate::host::{HostState, LocalResponse, Signal};
use wasmtime::Result;

pub(super) fn add(d: &mut Defs<'_>) -> Result<()> {
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

fn signal(state: &mut HostState, signal: Signal) {
    if state.streams.contains_key(&state.effective) {
        state.signals.push((state.effective, signal));
    }
}
