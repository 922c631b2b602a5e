//! The wall clock, in the unit the scripts and the wire use: milliseconds
//! since the Unix epoch. One home, so that every layer reads time the same
//! way and none has to reach into another for it.

use time::OffsetDateTime;

/// Now, in milliseconds since the epoch (the clock every script gets).
pub fn now_ms() -> i64 {
    to_ms(OffsetDateTime::now_utc())
}

/// Milliseconds since the epoch as a UTC time.
pub fn from_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// A UTC time in milliseconds since the epoch.
pub fn to_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_round_trip() {
        let ms = 1_764_000_000_123;
        assert_eq!(to_ms(from_ms(ms)), ms);
        assert!(now_ms() > ms);
    }
}
