//! The handful of `wasi_snapshot_preview1` functions the ABI lists, so that
//! filters built for `wasm32-wasip1` load too. Logging goes to the filter log,
//! time to the host clock, and there is no file system.

use super::guest::{C, Defs, read, write, write_u32};
use crate::abi::LogLevel;
use rand::RngCore;
use wasmtime::{Result, format_err};

const SUCCESS: i32 = 0;
const BADF: i32 = 8;
const INVAL: i32 = 28;
const NOTSUP: i32 = 58;
const W: &str = "wasi_snapshot_preview1";

pub(super) fn add(d: &mut Defs<'_>) -> Result<()> {
    d.func(W, "fd_write", |mut c: C<'_>, fd: i32, iovs: i32, n: i32, written: i32| -> Result<i32> {
        let level = match fd {
            1 => LogLevel::Info,
            2 => LogLevel::Error,
            _ => return Ok(BADF),
        };
        let table = read(&mut c, iovs, n.saturating_mul(8))?;
        let mut out = Vec::new();
        for iov in table.chunks_exact(8) {
            let ptr = i32::from_le_bytes([iov[0], iov[1], iov[2], iov[3]]);
            let len = i32::from_le_bytes([iov[4], iov[5], iov[6], iov[7]]);
            out.extend(read(&mut c, ptr, len)?);
        }
        let msg = String::from_utf8_lossy(&out);
        let msg = msg.trim_end_matches('\n');
        if !msg.is_empty() {
            c.data_mut().log(level, msg);
        }
        write_u32(&mut c, written, out.len() as u32)?;
        Ok(SUCCESS)
    })?;
    d.func(W, "fd_read", |_c: C<'_>, _: i32, _: i32, _: i32, _: i32| -> Result<i32> { Ok(BADF) })?;
    d.func(W, "fd_close", |_c: C<'_>, _: i32| -> Result<i32> { Ok(BADF) })?;
    d.func(W, "fd_seek", |_c: C<'_>, _: i32, _: i64, _: i32, _: i32| -> Result<i32> { Ok(BADF) })?;
    d.func(W, "fd_fdstat_get", |_c: C<'_>, _: i32, _: i32| -> Result<i32> { Ok(BADF) })?;
    d.func(W, "fd_prestat_get", |_c: C<'_>, _: i32, _: i32| -> Result<i32> { Ok(BADF) })?;
    d.func(W, "fd_prestat_dir_name", |_c: C<'_>, _: i32, _: i32, _: i32| -> Result<i32> { Ok(BADF) })?;
    d.func(W, "clock_time_get", |mut c: C<'_>, id: i32, _precision: i64, ret: i32| -> Result<i32> {
        if !matches!(id, 0 | 1) {
            return Ok(NOTSUP);
        }
        let now = c.data().env.clock.now_nanos();
        write(&mut c, ret, &now.to_le_bytes())?;
        Ok(SUCCESS)
    })?;
    d.func(W, "random_get", |mut c: C<'_>, ptr: i32, len: i32| -> Result<i32> {
        let len = len as u32 as usize;
        if len > 1 << 20 {
            return Ok(INVAL);
        }
        let mut buf = vec![0u8; len];
        rand::rng().fill_bytes(&mut buf);
        write(&mut c, ptr, &buf)?;
        Ok(SUCCESS)
    })?;
    for name in ["environ_sizes_get", "args_sizes_get"] {
        d.func(W, name, |mut c: C<'_>, count: i32, size: i32| -> Result<i32> {
            write_u32(&mut c, count, 0)?;
            write_u32(&mut c, size, 0)?;
            Ok(SUCCESS)
        })?;
    }
    for name in ["environ_get", "args_get"] {
        d.func(W, name, |_c: C<'_>, _: i32, _: i32| -> Result<i32> { Ok(SUCCESS) })?;
    }
    d.func(W, "sched_yield", |_c: C<'_>| -> Result<i32> { Ok(SUCCESS) })?;
    d.func(W, "poll_oneoff", |_c: C<'_>, _: i32, _: i32, _: i32, _: i32| -> Result<i32> { Ok(NOTSUP) })?;
    d.func(W, "proc_exit", |_c: C<'_>, code: i32| -> Result<()> {
        Err(format_err!("the filter called proc_exit({code})"))
    })?;
    Ok(())
}
