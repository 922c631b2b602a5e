//! Header maps: the request's and response's headers and trailers, and an
//! HTTP call's answer. A map not available now reads as empty and takes
//! writes silently, since the SDK panics on any status but OK here.

use super::guest::{BAD_ARGUMENT, C, Defs, NOT_FOUND, OK, give, parse_map, read, slice, text, with_mem, write_u32};
use crate::abi::Fields;
use wasmtime::Result;

pub(super) fn add(d: &mut Defs<'_>) -> Result<()> {
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
                        m.set_as_envoy(&key, value);
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
