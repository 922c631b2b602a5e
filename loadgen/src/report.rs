//! What a phase measured and how it is shown.
//!
//! The connection tasks only count (status, error code, latency); everything
//! that turns those counts into figures — percentiles, rates, the status
//! breakdown, the `--json` line and the end-of-run invariant check — lives
//! here, as pure functions that the unit tests can reach without a server.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use seckill_api::{ActivityStats, ErrorCode};
use serde::{Deserialize, Serialize};

/// Highest latency the histogram tracks, in microseconds (one hour); larger
/// values are clamped to it.
const MAX_MICROS: u64 = 3_600_000_000;

/// How many answers of one kind a phase got: an HTTP status and, for a
/// non-2xx answer, the contract's error `code` when the body carried one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCount {
    pub status: u16,
    pub code: Option<&'static str>,
    pub count: u64,
}

/// Everything one connection task (or, merged, a whole phase) observed.
#[derive(Debug, Clone)]
pub struct PhaseStats {
    /// Latency of every answered request, in microseconds.
    pub latency: Histogram<u64>,
    /// Answers by status and error code, in first-seen order.
    pub statuses: Vec<StatusCount>,
    /// Requests that never got an answer, even after retrying.
    pub transport_errors: u64,
    /// Attempts repeated on a fresh connection after a transport error.
    pub retries: u64,
    /// The last transport error seen, to show the operator.
    pub last_error: Option<String>,
}

impl Default for PhaseStats {
    fn default() -> Self {
        Self::new()
    }
}

impl PhaseStats {
    pub fn new() -> Self {
        Self {
            latency: Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("static histogram bounds are valid"),
            statuses: Vec::new(),
            transport_errors: 0,
            retries: 0,
            last_error: None,
        }
    }

    /// Counts one answer and its latency.
    pub fn record(&mut self, status: u16, code: Option<&'static str>, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency.saturating_record(micros.clamp(1, MAX_MICROS));
        self.add_status(status, code, 1);
    }

    fn add_status(&mut self, status: u16, code: Option<&'static str>, count: u64) {
        match self.statuses.iter_mut().find(|s| s.status == status && s.code == code) {
            Some(s) => s.count += count,
            None => self.statuses.push(StatusCount { status, code, count }),
        }
    }

    /// Counts a request that got no answer.
    pub fn record_transport_error(&mut self, error: String) {
        self.transport_errors += 1;
        self.last_error = Some(error);
    }

    /// Folds another task's observations into these.
    pub fn merge(&mut self, other: PhaseStats) {
        self.latency.add(&other.latency).expect("histograms share their bounds");
        for s in other.statuses {
            self.add_status(s.status, s.code, s.count);
        }
        self.transport_errors += other.transport_errors;
        self.retries += other.retries;
        if other.last_error.is_some() {
            self.last_error = other.last_error;
        }
    }

    /// Answers with this HTTP status, whatever their code.
    pub fn count(&self, status: u16) -> u64 {
        self.statuses.iter().filter(|s| s.status == status).map(|s| s.count).sum()
    }

    /// Requests that got an answer.
    pub fn answered(&self) -> u64 {
        self.statuses.iter().map(|s| s.count).sum()
    }

    /// Requests that were sent (answered or not).
    pub fn attempted(&self) -> u64 {
        self.answered() + self.transport_errors
    }
}

/// The `code` of a contract error body, if it is one this tool knows.
pub fn error_code(body: &[u8]) -> Option<&'static str> {
    #[derive(Deserialize)]
    struct CodeOnly {
        code: ErrorCode,
    }
    serde_json::from_slice::<CodeOnly>(body).ok().map(|b| b.code.as_str())
}

/// "202: 99990, 409 sold_out: 10, transport errors: 2", sorted by status then code.
pub fn format_statuses(stats: &PhaseStats) -> String {
    let mut sorted = stats.statuses.clone();
    sorted.sort_by(|a, b| (a.status, a.code).cmp(&(b.status, b.code)));
    let mut parts: Vec<String> = sorted
        .iter()
        .map(|s| match s.code {
            Some(code) => format!("{} {}: {}", s.status, code, s.count),
            None => format!("{}: {}", s.status, s.count),
        })
        .collect();
    if stats.transport_errors > 0 {
        parts.push(format!("transport errors: {}", stats.transport_errors));
    }
    if parts.is_empty() { "none".to_owned() } else { parts.join(", ") }
}

/// The headline figures of one phase.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub phase: &'static str,
    pub requests: u64,
    pub duration: Duration,
    pub rps: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Summary {
    pub fn new(phase: &'static str, stats: &PhaseStats, duration: Duration) -> Self {
        let requests = stats.attempted();
        let secs = duration.as_secs_f64();
        let rps = if secs > 0.0 { requests as f64 / secs } else { 0.0 };
        let h = &stats.latency;
        let ms = |micros: u64| micros as f64 / 1000.0;
        let q = |quantile: f64| {
            if h.is_empty() { 0.0 } else { ms(h.value_at_quantile(quantile)) }
        };
        Self {
            phase,
            requests,
            duration,
            rps,
            p50_ms: q(0.50),
            p90_ms: q(0.90),
            p99_ms: q(0.99),
            p999_ms: q(0.999),
            max_ms: if h.is_empty() { 0.0 } else { ms(h.max()) },
        }
    }

    /// The human-readable block printed after a phase.
    pub fn render(&self, stats: &PhaseStats, connections: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "phase {}: {} requests in {:.3} s over {} connections = {:.0} req/s",
            self.phase,
            self.requests,
            self.duration.as_secs_f64(),
            connections,
            self.rps
        );
        let _ = writeln!(out, "  status:  {}", format_statuses(stats));
        let _ = writeln!(
            out,
            "  latency: p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  p999 {:.2} ms  max {:.2} ms",
            self.p50_ms, self.p90_ms, self.p99_ms, self.p999_ms, self.max_ms
        );
        if stats.retries > 0 {
            let _ = writeln!(out, "  retries: {} (on a fresh connection after a transport error)", stats.retries);
        }
        if let Some(e) = &stats.last_error {
            let _ = writeln!(out, "  last transport error: {e}");
        }
        out
    }

    /// One JSON line with the figures, for scripts (`--json`); fields keep
    /// this order, `phase` first.
    pub fn json_line(&self, stats: &PhaseStats) -> String {
        #[derive(Serialize)]
        struct Line<'a> {
            phase: &'a str,
            requests: u64,
            duration_s: f64,
            rps: f64,
            p50_ms: f64,
            p90_ms: f64,
            p99_ms: f64,
            p999_ms: f64,
            max_ms: f64,
            statuses: BTreeMap<String, u64>,
            transport_errors: u64,
        }
        let round = |v: f64| (v * 1000.0).round() / 1000.0;
        let line = Line {
            phase: self.phase,
            requests: self.requests,
            duration_s: round(self.duration.as_secs_f64()),
            rps: round(self.rps),
            p50_ms: round(self.p50_ms),
            p90_ms: round(self.p90_ms),
            p99_ms: round(self.p99_ms),
            p999_ms: round(self.p999_ms),
            max_ms: round(self.max_ms),
            statuses: stats
                .statuses
                .iter()
                .map(|s| {
                    let key = match s.code {
                        Some(code) => format!("{} {}", s.status, code),
                        None => s.status.to_string(),
                    };
                    (key, s.count)
                })
                .collect(),
            transport_errors: stats.transport_errors,
        };
        serde_json::to_string(&line).expect("plain figures always serialise")
    }
}

/// What `sold` must be after the purchase phase, when this run created the
/// activity: `quantity` per accepted purchase, plus up to `quantity` for each
/// purchase whose answer was lost (the server may or may not have taken it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectedSold {
    pub min: i64,
    pub max: i64,
}

impl ExpectedSold {
    pub fn new(quantity: u64, accepted: u64, unanswered: u64) -> Self {
        let q = quantity as i64;
        Self { min: q * accepted as i64, max: q * (accepted + unanswered) as i64 }
    }
}

/// Checks the stock invariant (and the sold count, when known); the error
/// names every violation.
/// Several activities' stats as one: the counts summed, the invariant held
/// only if it held in each.
pub fn sum_stats(each: &[ActivityStats]) -> ActivityStats {
    let mut sum = each.first().cloned().expect("a run has at least one activity");
    for s in &each[1..] {
        sum.total_stock += s.total_stock;
        sum.remaining += s.remaining;
        sum.sold += s.sold;
        sum.live_tokens += s.live_tokens;
        sum.stream_length += s.stream_length;
        sum.invariant_ok &= s.invariant_ok;
    }
    sum
}

pub fn check_invariant(stats: &ActivityStats, expected: Option<ExpectedSold>) -> Result<(), String> {
    let mut violations = Vec::new();
    if stats.remaining + stats.sold != stats.total_stock {
        violations
            .push(format!("remaining {} + sold {} != total_stock {}", stats.remaining, stats.sold, stats.total_stock));
    }
    if !stats.invariant_ok {
        violations.push("the backend reports invariant_ok = false".to_owned());
    }
    if let Some(e) = expected {
        if e.min == e.max && stats.sold != e.min {
            violations.push(format!("sold {} != quantity x accepted purchases = {}", stats.sold, e.min));
        } else if !(e.min..=e.max).contains(&stats.sold) {
            violations.push(format!(
                "sold {} outside {}..={} (accepted purchases, plus those whose answer was lost)",
                stats.sold, e.min, e.max
            ));
        }
    }
    if violations.is_empty() { Ok(()) } else { Err(violations.join("; ")) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use seckill_api::ActivityStatus;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn several_activities_add_up_and_one_broken_breaks_the_sum() {
        let sum = sum_stats(&[stats(10, 4, 6), stats(10, 10, 0), stats(5, 0, 5)]);
        assert_eq!((sum.total_stock, sum.remaining, sum.sold, sum.invariant_ok), (25, 14, 11, true));
        assert!(!sum_stats(&[stats(10, 4, 6), stats(10, 4, 7)]).invariant_ok);
    }

    #[test]
    fn statuses_aggregate_and_sort() {
        let mut a = PhaseStats::new();
        a.record(409, Some("sold_out"), ms(1));
        a.record(202, None, ms(1));
        a.record(202, None, ms(2));
        let mut b = PhaseStats::new();
        b.record(202, None, ms(3));
        b.record(409, Some("limit_exceeded"), ms(1));
        b.record(409, Some("sold_out"), ms(1));
        b.record_transport_error("connection reset".into());
        a.merge(b);
        assert_eq!(a.count(202), 3);
        assert_eq!(a.count(409), 3);
        assert_eq!(a.answered(), 6);
        assert_eq!(a.attempted(), 7);
        assert_eq!(format_statuses(&a), "202: 3, 409 limit_exceeded: 1, 409 sold_out: 2, transport errors: 1");
        assert_eq!(a.last_error.as_deref(), Some("connection reset"));
        assert_eq!(format_statuses(&PhaseStats::new()), "none");
    }

    #[test]
    fn error_codes_come_from_contract_bodies_only() {
        assert_eq!(error_code(br#"{"code":"sold_out","message":"gone"}"#), Some("sold_out"));
        assert_eq!(error_code(br#"{"code":"rate_limited","message":"slow down"}"#), Some("rate_limited"));
        assert_eq!(error_code(br#"{"code":"something_new"}"#), None);
        assert_eq!(error_code(b"upstream connect error"), None);
        assert_eq!(error_code(b""), None);
    }

    #[test]
    fn summary_figures() {
        let mut s = PhaseStats::new();
        for i in 1..=1000 {
            s.record(200, None, Duration::from_micros(i * 10));
        }
        let sum = Summary::new("token", &s, Duration::from_millis(500));
        assert_eq!(sum.requests, 1000);
        assert!((sum.rps - 2000.0).abs() < 1e-9);
        // 3 significant digits: within 0.1 %.
        assert!((sum.p50_ms - 5.0).abs() < 0.01, "{}", sum.p50_ms);
        assert!((sum.p99_ms - 9.9).abs() < 0.01, "{}", sum.p99_ms);
        assert!((sum.max_ms - 10.0).abs() < 0.01, "{}", sum.max_ms);
        let text = sum.render(&s, 64);
        assert!(text.starts_with("phase token: 1000 requests in 0.500 s over 64 connections = 2000 req/s\n"));
        assert!(text.contains("  status:  200: 1000\n"));
        let json: serde_json::Value = serde_json::from_str(&sum.json_line(&s)).unwrap();
        assert_eq!(json["phase"], "token");
        assert_eq!(json["rps"], 2000.0);
        assert_eq!(json["statuses"]["200"], 1000);
        assert!(json["p999_ms"].as_f64().unwrap() > 0.0);
        assert!(sum.json_line(&s).starts_with(r#"{"phase":"token","requests":1000,"#));
    }

    #[test]
    fn an_empty_phase_reports_zeroes() {
        let s = PhaseStats::new();
        let sum = Summary::new("purchase", &s, Duration::ZERO);
        assert_eq!(sum.requests, 0);
        assert_eq!(sum.rps, 0.0);
        assert_eq!(sum.p99_ms, 0.0);
        assert_eq!(sum.max_ms, 0.0);
    }

    fn stats(total: i64, remaining: i64, sold: i64) -> ActivityStats {
        ActivityStats {
            activity_id: 1,
            status: ActivityStatus::Live,
            total_stock: total,
            remaining,
            sold,
            invariant_ok: remaining + sold == total,
            live_tokens: 0,
            stream_length: 0,
        }
    }

    #[test]
    fn invariant_checks() {
        let exact = Some(ExpectedSold::new(1, 90, 0));
        assert_eq!(check_invariant(&stats(100, 10, 90), exact), Ok(()));
        assert_eq!(check_invariant(&stats(100, 10, 90), None), Ok(()));
        let err = check_invariant(&stats(100, 11, 90), exact).unwrap_err();
        assert!(err.contains("remaining 11 + sold 90 != total_stock 100"), "{err}");
        let err = check_invariant(&stats(100, 12, 88), exact).unwrap_err();
        assert_eq!(err, "sold 88 != quantity x accepted purchases = 90");
        // Two lost answers with quantity 2: sold may be 180..=184.
        let loose = Some(ExpectedSold::new(2, 90, 2));
        assert_eq!(check_invariant(&stats(200, 18, 182), loose), Ok(()));
        assert!(check_invariant(&stats(200, 14, 186), loose).is_err());
    }
}
