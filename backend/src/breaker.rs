//! A circuit breaker for each dependency (Redis, the order database).
//!
//! When a dependency stops answering, every request would otherwise wait out
//! its full timeout and pile up behind it: thousands of buyers each holding a
//! connection for the Redis timeout. After `failures` calls in a row fail
//! for the dependency's sake (a timeout, a refused or broken connection) the
//! breaker opens and calls fail at once, without touching the dependency.
//! After `open_ms` one call is let through as a probe (half-open): if it
//! succeeds the breaker closes, otherwise it stays open for another period.
//!
//! The state is three atomics, read on every Redis call of the purchase path:
//! no lock, no allocation. A probe whose caller gives up (its future dropped)
//! leaves the breaker open until the next period lets another through, so the
//! breaker can never stay stuck half-open.

use std::sync::atomic::{AtomicI64, AtomicU32, Ordering::Relaxed};

use crate::clock::now_ms;

/// Metric: 1 while a dependency's breaker is open (or half-open), else 0.
pub const OPEN_GAUGE: &str = "seckill_breaker_open";
/// Metric: calls refused without trying because the breaker was open.
pub const REJECTED: &str = "seckill_breaker_rejected_total";

/// When a breaker opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Consecutive dependency failures that open the breaker.
    pub failures: u32,
    /// How long it stays open before a probe call is let through.
    pub open_ms: u64,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self { failures: 5, open_ms: 1000 }
    }
}

/// The breaker of one dependency.
#[derive(Debug)]
pub struct Breaker {
    dependency: &'static str,
    settings: BreakerSettings,
    consecutive_failures: AtomicU32,
    /// 0 while closed; otherwise when the next probe may go (ms since the epoch).
    open_until_ms: AtomicI64,
}

/// The breaker refused a call: the dependency failed too often just now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{dependency} circuit breaker is open (it failed {failures} times in a row); retry in {retry_after_ms} ms")]
pub struct BreakerOpen {
    pub dependency: &'static str,
    pub failures: u32,
    pub retry_after_ms: u64,
}

impl BreakerOpen {
    /// The refusal an order-database call failed with, if that is what it was.
    pub fn in_db_error(err: &sqlx::Error) -> Option<BreakerOpen> {
        match err {
            sqlx::Error::Io(e) => e.get_ref().and_then(|inner| inner.downcast_ref::<BreakerOpen>()).copied(),
            _ => None,
        }
    }
}

/// How a breaker stands, for the dashboard and the checklist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    /// Refusing calls until the next probe.
    Open {
        retry_after_ms: u64,
    },
    /// The open period is over: the next call is the probe.
    HalfOpen,
}

impl Breaker {
    pub fn new(dependency: &'static str, settings: BreakerSettings) -> Self {
        metrics::gauge!(OPEN_GAUGE, "dependency" => dependency).set(0.0);
        Self { dependency, settings, consecutive_failures: AtomicU32::new(0), open_until_ms: AtomicI64::new(0) }
    }

    /// Whether a call may go to the dependency now. While open, no; once the
    /// open period is over, exactly one caller wins the right to probe (and
    /// pushes the next probe one period on, in case it never reports back).
    pub fn admit(&self) -> Result<(), BreakerOpen> {
        let until = self.open_until_ms.load(Relaxed);
        if until == 0 {
            return Ok(());
        }
        let now = now_ms();
        if now >= until
            && self.open_until_ms.compare_exchange(until, now + self.settings.open_ms as i64, Relaxed, Relaxed).is_ok()
        {
            return Ok(());
        }
        metrics::counter!(REJECTED, "dependency" => self.dependency).increment(1);
        Err(BreakerOpen {
            dependency: self.dependency,
            failures: self.consecutive_failures.load(Relaxed),
            retry_after_ms: (self.open_until_ms.load(Relaxed) - now).max(0) as u64,
        })
    }

    /// The dependency answered: the breaker closes (if a probe just succeeded).
    pub fn succeeded(&self) {
        if self.consecutive_failures.load(Relaxed) != 0 {
            self.consecutive_failures.store(0, Relaxed);
        }
        if self.open_until_ms.load(Relaxed) != 0 && self.open_until_ms.swap(0, Relaxed) != 0 {
            metrics::gauge!(OPEN_GAUGE, "dependency" => self.dependency).set(0.0);
            tracing::info!(dependency = self.dependency, "circuit breaker closed: the dependency answers again");
        }
    }

    /// The dependency failed (timed out, refused or dropped the connection).
    pub fn failed(&self) {
        let failures = self.consecutive_failures.fetch_add(1, Relaxed).saturating_add(1);
        if failures >= self.settings.failures
            && self.open_until_ms.compare_exchange(0, now_ms() + self.settings.open_ms as i64, Relaxed, Relaxed).is_ok()
        {
            metrics::gauge!(OPEN_GAUGE, "dependency" => self.dependency).set(1.0);
            tracing::warn!(
                dependency = self.dependency,
                failures,
                open_ms = self.settings.open_ms,
                "circuit breaker open: failing calls fast"
            );
        }
    }

    pub fn state(&self) -> BreakerState {
        match self.open_until_ms.load(Relaxed) {
            0 => BreakerState::Closed,
            until => match until - now_ms() {
                left if left > 0 => BreakerState::Open { retry_after_ms: left as u64 },
                _ => BreakerState::HalfOpen,
            },
        }
    }

    pub fn settings(&self) -> BreakerSettings {
        self.settings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(failures: u32, open_ms: u64) -> Breaker {
        Breaker::new("test", BreakerSettings { failures, open_ms })
    }

    #[test]
    fn opens_after_the_failures_in_a_row_and_not_before() {
        let b = breaker(3, 60_000);
        b.failed();
        b.failed();
        b.succeeded();
        b.failed();
        b.failed();
        assert!(b.admit().is_ok(), "a success in between starts the count again");
        b.failed();
        let open = b.admit().unwrap_err();
        assert_eq!((open.dependency, open.failures), ("test", 3));
        assert!(open.retry_after_ms > 59_000 && open.retry_after_ms <= 60_000, "{open:?}");
        assert!(matches!(b.state(), BreakerState::Open { .. }));
    }

    #[test]
    fn after_the_open_period_one_probe_goes_and_its_success_closes() {
        let b = breaker(1, 0);
        b.failed();
        assert_eq!(b.state(), BreakerState::HalfOpen);
        // The period is 0 ms, so the next is due at once; push it out to see only one probe win.
        let b = Breaker { settings: BreakerSettings { failures: 1, open_ms: 60_000 }, ..b };
        b.open_until_ms.store(now_ms() - 1, Relaxed);
        assert!(b.admit().is_ok(), "the probe");
        assert!(b.admit().is_err(), "only one probe per period");
        b.succeeded();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.admit().is_ok());
    }

    #[test]
    fn a_failed_probe_keeps_it_open_for_another_period() {
        let b = breaker(1, 60_000);
        b.failed();
        b.open_until_ms.store(now_ms() - 1, Relaxed);
        assert!(b.admit().is_ok(), "the probe");
        b.failed();
        assert!(matches!(b.state(), BreakerState::Open { retry_after_ms } if retry_after_ms > 59_000));
    }
}
