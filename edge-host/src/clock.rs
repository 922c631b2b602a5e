//! Wall-clock time as the filter sees it (`proxy_get_current_time_nanoseconds`,
//! WASI `clock_time_get`), injectable so that tests can drive token buckets
//! and tick periods deterministically.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of "now".
pub trait Clock: Send + Sync + 'static {
    /// Nanoseconds since the Unix epoch.
    fn now_nanos(&self) -> u64;

    /// Some when this clock is a [`ManualClock`] (the harness advances it).
    fn as_manual(&self) -> Option<&ManualClock> {
        None
    }

    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.now_nanos())
    }
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl SystemClock {
    pub fn shared() -> Arc<dyn Clock> {
        Arc::new(SystemClock)
    }
}

impl Clock for SystemClock {
    fn now_nanos(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
    }
}

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct ManualClock {
    nanos: AtomicU64,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: SystemTime) -> Arc<Self> {
        let nanos = start.duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
        Arc::new(Self { nanos: AtomicU64::new(nanos) })
    }

    /// A clock standing at `secs` seconds after the Unix epoch.
    pub fn at_unix_secs(secs: u64) -> Arc<Self> {
        Arc::new(Self { nanos: AtomicU64::new(secs.saturating_mul(1_000_000_000)) })
    }

    pub fn advance(&self, by: Duration) {
        self.nanos.fetch_add(by.as_nanos() as u64, Ordering::SeqCst);
    }

    pub fn set_nanos(&self, nanos: u64) {
        self.nanos.store(nanos, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_nanos(&self) -> u64 {
        self.nanos.load(Ordering::SeqCst)
    }

    fn as_manual(&self) -> Option<&ManualClock> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::at_unix_secs(1_700_000_000);
        assert_eq!(c.now_nanos(), 1_700_000_000_000_000_000);
        c.advance(Duration::from_millis(1500));
        assert_eq!(c.now_nanos(), 1_700_000_001_500_000_000);
        assert_eq!(c.now(), UNIX_EPOCH + Duration::from_millis(1_700_000_001_500));
        let dynamic: Arc<dyn Clock> = c.clone();
        assert!(dynamic.as_manual().is_some());
        assert!(SystemClock.as_manual().is_none());
    }
}
