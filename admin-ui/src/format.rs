//! How numbers, money, rates and times look on screen, and the text of the
//! form inputs that hold them. Times are shown in the browser's local time:
//! the caller passes the offset, so this stays pure and testable.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use crate::i18n::Lang;

/// `1234567` → `1,234,567`.
pub fn count(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `123456` cents → `¥1,234.56`.
pub fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}¥{}.{:02}", count((abs / 100) as i64), abs % 100)
}

/// A rate per second, with as many decimals as it deserves: `0.25/s`, `12.5/s`, `1,234/s`.
pub fn rate(per_sec: f64) -> String {
    if !per_sec.is_finite() || per_sec <= 0.0 {
        return "0/s".into();
    }
    if per_sec >= 100.0 {
        format!("{}/s", count(per_sec.round() as i64))
    } else if per_sec >= 10.0 {
        format!("{per_sec:.1}/s")
    } else {
        let s = format!("{per_sec:.2}");
        format!("{}/s", s.trim_end_matches('0').trim_end_matches('.'))
    }
}

/// `part` as a percentage of `whole`, clamped to 0–100 (0 when `whole` is not positive).
pub fn percent(part: i64, whole: i64) -> f64 {
    if whole <= 0 {
        return 0.0;
    }
    (part as f64 * 100.0 / whole as f64).clamp(0.0, 100.0)
}

/// `2026-11-11 20:00:00` in the given offset.
pub fn datetime(at: OffsetDateTime, offset: UtcOffset) -> String {
    let t = at.to_offset(offset);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `2026-11-11 20:00:00` for a Unix time in milliseconds.
pub fn datetime_ms(ms: i64, offset: UtcOffset) -> String {
    from_ms(ms).map(|t| datetime(t, offset)).unwrap_or_else(|| "—".into())
}

/// `20:00:05` for a Unix time in milliseconds.
pub fn clock_ms(ms: i64, offset: UtcOffset) -> String {
    match from_ms(ms) {
        Some(t) => {
            let t = t.to_offset(offset);
            format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second())
        }
        None => "—".into(),
    }
}

/// `20:00:05` when `ms` falls on the same local date as `now_ms`, else the
/// whole `2026-11-10 20:00:05`.
pub fn moment_ms(ms: i64, now_ms: i64, offset: UtcOffset) -> String {
    let date = |ms| from_ms(ms).map(|t| t.to_offset(offset).date());
    if date(ms).is_some() && date(ms) == date(now_ms) { clock_ms(ms, offset) } else { datetime_ms(ms, offset) }
}

/// Unix milliseconds of `at`.
pub fn to_ms(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

/// The instant `ms` Unix milliseconds name, if it is a representable date.
pub fn from_ms(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).ok()
}

/// How long ago `then_ms` was at `now_ms`: `3s ago` / `3 秒前`.
pub fn ago(now_ms: i64, then_ms: i64, lang: Lang) -> String {
    let secs = ((now_ms - then_ms) / 1000).max(0);
    let (n, zh, en) = if secs < 60 {
        (secs, "秒", "s")
    } else if secs < 3600 {
        (secs / 60, "分钟", "min")
    } else if secs < 86_400 {
        (secs / 3600, "小时", "h")
    } else {
        (secs / 86_400, "天", "d")
    };
    match lang {
        Lang::Zh => format!("{n} {zh}前"),
        Lang::En => format!("{n}{en} ago"),
    }
}

/// The value of an `<input type="datetime-local">` for `at`: `2026-11-11T20:00`.
pub fn to_input(at: OffsetDateTime, offset: UtcOffset) -> String {
    let t = at.to_offset(offset);
    format!("{:04}-{:02}-{:02}T{:02}:{:02}", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute())
}

/// Parses a `datetime-local` value (`2026-11-11T20:00`, seconds optional; a
/// space may stand for the `T`) into a wall-clock time.
pub fn parse_input(s: &str) -> Option<PrimitiveDateTime> {
    let s = s.trim();
    let (date, clock) = s.split_once('T').or_else(|| s.split_once(' '))?;
    let mut d = date.split('-');
    let year: i32 = d.next()?.parse().ok()?;
    let month: u8 = d.next()?.parse().ok()?;
    let day: u8 = d.next()?.parse().ok()?;
    if d.next().is_some() {
        return None;
    }
    let mut c = clock.split(':');
    let hour: u8 = c.next()?.parse().ok()?;
    let minute: u8 = c.next()?.parse().ok()?;
    let second: u8 = match c.next() {
        Some(sec) => sec.split('.').next()?.parse().ok()?,
        None => 0,
    };
    if c.next().is_some() {
        return None;
    }
    let date = Date::from_calendar_date(year, Month::try_from(month).ok()?, day).ok()?;
    let time = Time::from_hms(hour, minute, second).ok()?;
    Some(PrimitiveDateTime::new(date, time))
}

/// Cents as a form value: `1234` → `12.34`, `1200` → `12`.
pub fn price_input(cents: i64) -> String {
    if cents % 100 == 0 { format!("{}", cents / 100) } else { format!("{}.{:02}", cents / 100, (cents % 100).abs()) }
}

/// A price in yuan (`12`, `12.5`, `12.34`, `¥1,234.00`) as cents; at most two decimals, not negative.
pub fn parse_price(s: &str) -> Option<i64> {
    let s: String = s.trim().trim_start_matches(['¥', '￥']).chars().filter(|c| *c != ',').collect();
    if s.is_empty() || s.starts_with('-') || s.starts_with('+') {
        return None;
    }
    let (whole, frac) = s.split_once('.').unwrap_or((&s, ""));
    if whole.is_empty() && frac.is_empty() {
        return None;
    }
    if !whole.chars().all(|c| c.is_ascii_digit()) || !frac.chars().all(|c| c.is_ascii_digit()) || frac.len() > 2 {
        return None;
    }
    let yuan: i64 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let cents: i64 = match frac.len() {
        0 => 0,
        1 => frac.parse::<i64>().ok()? * 10,
        _ => frac.parse().ok()?,
    };
    yuan.checked_mul(100)?.checked_add(cents)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{datetime, offset};

    #[test]
    fn counts_and_money() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(-1234567), "-1,234,567");
        assert_eq!(money(123456), "¥1,234.56");
        assert_eq!(money(5), "¥0.05");
        assert_eq!(money(-250), "-¥2.50");
    }

    #[test]
    fn rates_keep_the_digits_that_matter() {
        assert_eq!(rate(0.0), "0/s");
        assert_eq!(rate(f64::NAN), "0/s");
        assert_eq!(rate(0.25), "0.25/s");
        assert_eq!(rate(2.0), "2/s");
        assert_eq!(rate(12.34), "12.3/s");
        assert_eq!(rate(1234.4), "1,234/s");
    }

    #[test]
    fn percent_is_clamped() {
        assert_eq!(percent(5, 10), 50.0);
        assert_eq!(percent(5, 0), 0.0);
        assert_eq!(percent(20, 10), 100.0);
        assert_eq!(percent(-1, 10), 0.0);
    }

    #[test]
    fn times_in_local_offset() {
        let at = datetime!(2026-11-11 12:00:05 UTC);
        assert_eq!(datetime(at, offset!(+8)), "2026-11-11 20:00:05");
        assert_eq!(clock_ms(to_ms(at), offset!(+8)), "20:00:05");
        assert_eq!(to_input(at, offset!(+8)), "2026-11-11T20:00");
        assert_eq!(from_ms(to_ms(at)), Some(at));
    }

    #[test]
    fn moments_name_the_date_unless_it_is_today() {
        let at = to_ms(datetime!(2026-11-11 15:30:05 UTC));
        let later_that_day = to_ms(datetime!(2026-11-11 15:59 UTC));
        assert_eq!(moment_ms(at, later_that_day, offset!(+8)), "23:30:05");
        // Past midnight in +8, the same moment is yesterday's.
        assert_eq!(moment_ms(at, to_ms(datetime!(2026-11-11 16:01 UTC)), offset!(+8)), "2026-11-11 23:30:05");
        assert_eq!(moment_ms(at, to_ms(datetime!(2026-11-11 16:01 UTC)), offset!(UTC)), "15:30:05");
    }

    #[test]
    fn ago_in_both_languages() {
        assert_eq!(ago(10_000, 7_000, Lang::En), "3s ago");
        assert_eq!(ago(10_000, 7_000, Lang::Zh), "3 秒前");
        assert_eq!(ago(200_000, 0, Lang::En), "3min ago");
        assert_eq!(ago(0, 5_000, Lang::En), "0s ago");
    }

    #[test]
    fn datetime_inputs_round_trip() {
        let p = parse_input("2026-11-11T20:00").unwrap();
        assert_eq!(p.assume_offset(offset!(+8)), datetime!(2026-11-11 12:00 UTC));
        assert_eq!(parse_input("2026-11-11 20:00:30").unwrap().second(), 30);
        assert_eq!(parse_input("2026-11-11T20:00:30.000").unwrap().second(), 30);
        for bad in ["", "2026-11-11", "2026-13-01T00:00", "2026-02-30T00:00", "2026-11-11T25:00", "x-y-zT1:2"] {
            assert!(parse_input(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn prices() {
        assert_eq!(parse_price("12"), Some(1200));
        assert_eq!(parse_price("12.5"), Some(1250));
        assert_eq!(parse_price(" ¥1,234.56 "), Some(123456));
        assert_eq!(parse_price(".5"), Some(50));
        assert_eq!(parse_price("0"), Some(0));
        for bad in ["", "-1", "1.234", "abc", "1.2.3", ".", "+1"] {
            assert_eq!(parse_price(bad), None, "{bad}");
        }
        assert_eq!(price_input(1234), "12.34");
        assert_eq!(price_input(1200), "12");
        assert_eq!(parse_price(&price_input(99_999)), Some(99_999));
    }
}
