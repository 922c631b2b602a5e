//! Metrics: defined by name process-wide, so that a name every VM defines is
//! one metric.

use super::guest::{BAD_ARGUMENT, C, Defs, OK, read, text, write_u32, write_u64};
use crate::abi::{MetricKind, Status};
use wasmtime::Result;

pub(super) fn add(d: &mut Defs<'_>) -> Result<()> {
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

fn status(r: std::result::Result<(), Status>) -> i32 {
    match r {
        Ok(()) => OK,
        Err(s) => s.code(),
    }
}
