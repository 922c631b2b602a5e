//! Buffers: request and response bodies, HTTP-call bodies and the plugin
//! configuration, read and written by type.

use super::guest::{C, Defs, NOT_FOUND, OK, give, read, write_u32};
use wasmtime::Result;

pub(super) fn add(d: &mut Defs<'_>) -> Result<()> {
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
