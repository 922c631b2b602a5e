//! Times as the operator reads them: the browser's clock and time zone
//! (which `crate::format` cannot know, being plain Rust tested natively).

use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

use crate::format;

/// Now, in Unix milliseconds, by the browser's clock.
pub fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}

/// The browser's UTC offset at the instant `ms`.
pub fn offset_at(ms: i64) -> UtcOffset {
    let minutes = -(js_sys::Date::new(&(ms as f64).into()).get_timezone_offset() as i32);
    UtcOffset::from_whole_seconds(minutes * 60).unwrap_or(UtcOffset::UTC)
}

/// `2026-11-11 20:00:00`, local time.
pub fn local(at: OffsetDateTime) -> String {
    format::datetime(at, offset_at(format::to_ms(at)))
}

/// `2026-11-11 20:00:00`, local time, of Unix milliseconds.
pub fn local_ms(ms: i64) -> String {
    format::datetime_ms(ms, offset_at(ms))
}

/// `20:00:05`, local time, of Unix milliseconds.
pub fn clock(ms: i64) -> String {
    format::clock_ms(ms, offset_at(ms))
}

/// `20:00:05` today, `2026-11-10 20:00:05` on another day; local time.
pub fn moment(at: OffsetDateTime) -> String {
    let ms = format::to_ms(at);
    format::moment_ms(ms, now_ms(), offset_at(ms))
}

/// A wall-clock time of the browser's zone as an instant (the browser knows
/// the zone's rules at that date).
pub fn local_to_utc(p: PrimitiveDateTime) -> OffsetDateTime {
    let d = js_sys::Date::new_with_year_month_day_hr_min_sec(
        p.year() as u32,
        u8::from(p.month()) as i32 - 1,
        p.day() as i32,
        p.hour() as i32,
        p.minute() as i32,
        p.second() as i32,
    );
    format::from_ms(d.get_time() as i64).unwrap_or_else(|| p.assume_utc())
}
