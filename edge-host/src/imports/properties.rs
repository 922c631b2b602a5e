//! Properties: the connection and request facts a filter reads by path, and
//! the values it stores on its context.

use super::guest::{C, Defs, NOT_FOUND, OK, give, slice, with_mem};
use wasmtime::Result;

pub(super) fn add(d: &mut Defs<'_>) -> Result<()> {
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
