//! Logging, the clock and ticks: what even a filter that touches no request
//! calls.

use super::guest::{C, Defs, OK, read, write_u32, write_u64};
use crate::abi::LogLevel;
use std::time::Duration;
use wasmtime::Result;

pub(super) fn add(d: &mut Defs<'_>) -> Result<()> {
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
