//! What the crowd saw, class by class: every answer's status, code,
//! latency and whether the edge gave it by itself (the filter's
//! `x-seckill-edge` header), each buyer's accepted units, and the moments
//! that matter (first and last sale, sold out). The progress line, the
//! report and the JSON line are rendered from it here, as pure functions.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use super::plan::Class;
use crate::report::{PhaseStats, StatusCount};

/// One class's answers.
#[derive(Debug, Clone, Default)]
pub struct ClassStats {
    /// Every answer (and transport error) of the class.
    pub all: PhaseStats,
    /// The answers the edge gave by itself.
    pub by_edge: PhaseStats,
    /// Accepted purchases (202) and their units.
    pub accepted: u64,
    pub units: u64,
}

/// One answer, as the tally needs it.
#[derive(Debug, Clone, Copy)]
pub struct Seen {
    pub status: u16,
    pub code: Option<&'static str>,
    pub latency: Duration,
    pub from_edge: bool,
    /// Since the start of the run.
    pub at: Duration,
}

/// Everything the crowd saw.
#[derive(Debug, Clone)]
pub struct Tally {
    classes: Vec<ClassStats>,
    /// Units accepted per client number.
    bought: HashMap<u32, u64>,
    /// Every order id answered: a 202 with one already seen is the replay
    /// of a purchase (the same token sent twice), not a second sale.
    orders: HashSet<String>,
    replays: u64,
    stock: u64,
    first_sale: Option<Duration>,
    last_sale: Option<Duration>,
    sold_out: Option<Duration>,
    last_answer: Duration,
    /// Purchases that got no answer: each may or may not have sold.
    lost_purchases: u64,
}

impl Tally {
    /// `stock`: the activity's, to note when the accepted units reach it.
    pub fn new(stock: u64) -> Self {
        Self {
            classes: vec![ClassStats::default(); Class::ALL.len()],
            bought: HashMap::new(),
            orders: HashSet::new(),
            replays: 0,
            stock,
            first_sale: None,
            last_sale: None,
            sold_out: None,
            last_answer: Duration::ZERO,
            lost_purchases: 0,
        }
    }

    /// Counts one answer to client `n` of `class`.
    pub fn record(&mut self, class: Class, seen: Seen) {
        let stats = &mut self.classes[class.index()];
        stats.all.record(seen.status, seen.code, seen.latency);
        if seen.from_edge {
            stats.by_edge.record(seen.status, seen.code, seen.latency);
        }
        self.last_answer = self.last_answer.max(seen.at);
    }

    /// Counts an accepted purchase of `units` by client `n` of `class`
    /// (after [`Tally::record`] of its answer), once per order id.
    pub fn sale(&mut self, class: Class, n: u32, order_id: &str, units: u64, at: Duration) {
        if !self.orders.insert(order_id.to_owned()) {
            self.replays += 1;
            return;
        }
        let stats = &mut self.classes[class.index()];
        stats.accepted += 1;
        stats.units += units;
        *self.bought.entry(n).or_default() += units;
        self.first_sale.get_or_insert(at);
        self.last_sale = Some(self.last_sale.map_or(at, |l| l.max(at)));
        if self.sold_out.is_none() && self.units() >= self.stock {
            self.sold_out = Some(at);
        }
    }

    /// A request that got no answer, even after retrying.
    pub fn lost(&mut self, class: Class, purchase: bool, error: String) {
        self.classes[class.index()].all.record_transport_error(error);
        self.lost_purchases += u64::from(purchase);
    }

    /// Purchases that got no answer (each may have sold or not).
    pub fn lost_purchases(&self) -> u64 {
        self.lost_purchases
    }

    pub fn class(&self, class: Class) -> &ClassStats {
        &self.classes[class.index()]
    }

    /// Units accepted, over every class.
    pub fn units(&self) -> u64 {
        self.classes.iter().map(|c| c.units).sum()
    }

    pub fn accepted(&self) -> u64 {
        self.classes.iter().map(|c| c.accepted).sum()
    }

    /// Requests sent (answered or not).
    pub fn requests(&self) -> u64 {
        self.classes.iter().map(|c| c.all.attempted()).sum()
    }

    pub fn answered(&self) -> u64 {
        self.classes.iter().map(|c| c.all.answered()).sum()
    }

    pub fn unanswered(&self) -> u64 {
        self.classes.iter().map(|c| c.all.transport_errors).sum()
    }

    /// Answers the edge gave by itself.
    pub fn by_edge(&self) -> u64 {
        self.classes.iter().map(|c| c.by_edge.answered()).sum()
    }

    /// The most any one client bought.
    pub fn most_bought(&self) -> u64 {
        self.bought.values().copied().max().unwrap_or(0)
    }

    /// Refusals of every class by status and code, most frequent first.
    fn refusals(&self) -> Vec<StatusCount> {
        let mut all: Vec<StatusCount> = Vec::new();
        for s in self.classes.iter().flat_map(|c| &c.all.statuses).filter(|s| s.status >= 300) {
            match all.iter_mut().find(|a| a.status == s.status && a.code == s.code) {
                Some(a) => a.count += s.count,
                None => all.push(s.clone()),
            }
        }
        all.sort_by(|a, b| b.count.cmp(&a.count).then((a.status, a.code).cmp(&(b.status, b.code))));
        all
    }

    /// The live line: `elapsed`, requests/s over the last `window` (`sent_in_window` of them).
    pub fn progress_line(&self, elapsed: Duration, sent_in_window: u64, window: Duration) -> String {
        let rate = sent_in_window as f64 / window.as_secs_f64().max(1e-3);
        let mut line = format!(
            "crowd {:>5.1} s: {:>7.0} req/s, {} sent, sold {}/{}",
            elapsed.as_secs_f64(),
            rate,
            self.requests(),
            self.units(),
            self.stock
        );
        let refusals = self.refusals();
        if !refusals.is_empty() {
            line.push_str("; refused:");
            for r in refusals.iter().take(5) {
                let _ = write!(line, " {} {}", r.count, r.code.unwrap_or("(no code)"));
            }
        }
        line
    }

    /// The report block, class by class.
    pub fn render(&self, plan_counts: &[(Class, u64)]) -> String {
        let mut out = String::new();
        let secs = self.last_answer.as_secs_f64();
        let _ = writeln!(
            out,
            "crowd: {} requests ({} answered) in {:.3} s = {:.0} req/s; the edge answered {} by itself ({:.1} %)",
            self.requests(),
            self.answered(),
            secs,
            if secs > 0.0 { self.requests() as f64 / secs } else { 0.0 },
            self.by_edge(),
            100.0 * self.by_edge() as f64 / self.answered().max(1) as f64,
        );
        let at = |d: Option<Duration>| d.map_or("never".to_owned(), |d| format!("{:.3} s", d.as_secs_f64()));
        let _ = writeln!(
            out,
            "  sold {} of {} units in {} purchases{}; first sale at {}, sold out at {}, last sale at {}",
            self.units(),
            self.stock,
            self.accepted(),
            match self.replays {
                0 => String::new(),
                r => format!(" ({r} more 202s replayed an order already counted)"),
            },
            at(self.first_sale),
            at(self.sold_out),
            at(self.last_sale),
        );
        for &(class, clients) in plan_counts {
            let c = self.class(class);
            let h = &c.all.latency;
            let q = |quantile| if h.is_empty() { 0.0 } else { h.value_at_quantile(quantile) as f64 / 1000.0 };
            let _ = writeln!(
                out,
                "  {:<11} {:>7} clients {:>8} requests  bought {:>6}  p50 {:.2} ms  p99 {:.2} ms  p999 {:.2} ms",
                class.name(),
                clients,
                c.all.attempted(),
                c.units,
                q(0.5),
                q(0.99),
                q(0.999),
            );
            let _ = writeln!(out, "      {}", outcomes(c));
        }
        out
    }

    /// The figures as one JSON object, for scripts (`--json`).
    pub fn json(&self, plan_counts: &[(Class, u64)]) -> serde_json::Value {
        #[derive(Serialize)]
        struct ClassJson<'a> {
            class: &'a str,
            clients: u64,
            requests: u64,
            bought: u64,
            by_edge: u64,
            p50_ms: f64,
            p99_ms: f64,
            statuses: serde_json::Map<String, serde_json::Value>,
        }
        let secs = |d: Option<Duration>| d.map(|d| d.as_secs_f64());
        let classes: Vec<_> = plan_counts
            .iter()
            .map(|&(class, clients)| {
                let c = self.class(class);
                let h = &c.all.latency;
                let q = |quantile| if h.is_empty() { 0.0 } else { h.value_at_quantile(quantile) as f64 / 1000.0 };
                let statuses = c
                    .all
                    .statuses
                    .iter()
                    .map(|s| (status_key(s), serde_json::Value::from(s.count)))
                    .collect::<serde_json::Map<_, _>>();
                ClassJson {
                    class: class.name(),
                    clients,
                    requests: c.all.attempted(),
                    bought: c.units,
                    by_edge: c.by_edge.answered(),
                    p50_ms: q(0.5),
                    p99_ms: q(0.99),
                    statuses,
                }
            })
            .collect();
        serde_json::json!({
            "requests": self.requests(),
            "answered": self.answered(),
            "unanswered": self.unanswered(),
            "duration_s": self.last_answer.as_secs_f64(),
            "by_edge": self.by_edge(),
            "edge_share": self.by_edge() as f64 / self.answered().max(1) as f64,
            "sold": self.units(),
            "replays": self.replays,
            "stock": self.stock,
            "first_sale_s": secs(self.first_sale),
            "sold_out_s": secs(self.sold_out),
            "last_sale_s": secs(self.last_sale),
            "classes": classes,
        })
    }
}

/// `202` or `409 sold_out`.
fn status_key(s: &StatusCount) -> String {
    match s.code {
        Some(code) => format!("{} {code}", s.status),
        None => s.status.to_string(),
    }
}

/// "202: 9000, 409 sold_out: 70000 (edge 65000), transport errors: 2".
fn outcomes(c: &ClassStats) -> String {
    let mut sorted = c.all.statuses.clone();
    sorted.sort_by(|a, b| (a.status, a.code).cmp(&(b.status, b.code)));
    let mut parts: Vec<String> = sorted
        .iter()
        .map(|s| {
            let edge =
                c.by_edge.statuses.iter().find(|e| e.status == s.status && e.code == s.code).map_or(0, |e| e.count);
            let by = match edge {
                0 => String::new(),
                e if e == s.count => " (all by the edge)".to_owned(),
                e => format!(" (edge {e})"),
            };
            format!("{}: {}{by}", status_key(s), s.count)
        })
        .collect();
    if c.all.transport_errors > 0 {
        parts.push(format!("no answer: {}", c.all.transport_errors));
    }
    if parts.is_empty() { "nothing sent".to_owned() } else { parts.join(", ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(status: u16, code: Option<&'static str>, from_edge: bool, at_ms: u64) -> Seen {
        Seen { status, code, latency: Duration::from_millis(2), from_edge, at: Duration::from_millis(at_ms) }
    }

    #[test]
    fn sales_move_the_moments_and_sold_out_is_when_the_stock_is_reached() {
        let mut t = Tally::new(3);
        t.record(Class::Honest, seen(202, None, false, 10));
        t.sale(Class::Honest, 1, "1-1", 1, Duration::from_millis(10));
        t.record(Class::Eager, seen(202, None, false, 30));
        t.sale(Class::Eager, 2, "1-2", 2, Duration::from_millis(30));
        // The same token twice: the second 202 names the same order.
        t.record(Class::Eager, seen(202, None, false, 35));
        t.sale(Class::Eager, 2, "1-2", 2, Duration::from_millis(35));
        assert_eq!(t.json(&[])["replays"], 1);
        t.record(Class::Bot, seen(409, Some("sold_out"), true, 40));
        assert_eq!((t.units(), t.accepted(), t.most_bought()), (3, 2, 2));
        let json = t.json(&[]);
        assert_eq!((json["sold_out_s"].as_f64(), json["duration_s"].as_f64()), (Some(0.03), Some(0.04)));
        assert_eq!((t.requests(), t.by_edge()), (4, 1));
    }

    #[test]
    fn the_report_says_who_refused() {
        let mut t = Tally::new(10);
        for _ in 0..3 {
            t.record(Class::Bot, seen(429, Some("rate_limited"), true, 5));
        }
        t.record(Class::Bot, seen(429, Some("rate_limited"), false, 6));
        t.record(Class::Forged, seen(401, Some("unauthorized"), true, 7));
        t.lost(Class::Honest, true, "reset".into());
        assert_eq!(t.lost_purchases(), 1);
        let report = t.render(&[(Class::Honest, 1), (Class::Bot, 1), (Class::Forged, 1)]);
        assert!(report.contains("429 rate_limited: 4 (edge 3)"), "{report}");
        assert!(report.contains("401 unauthorized: 1 (all by the edge)"), "{report}");
        assert!(report.contains("no answer: 1"), "{report}");
        assert!(report.contains("sold out at never"), "{report}");
        let line = t.progress_line(Duration::from_secs(2), 500, Duration::from_secs(1));
        assert!(line.contains("500 req/s") && line.contains("refused: 4 rate_limited 1 unauthorized"), "{line}");
        let json = t.json(&[(Class::Bot, 1)]);
        assert_eq!(json["by_edge"], 4);
        assert_eq!(json["classes"][0]["statuses"]["429 rate_limited"], 4);
        assert_eq!(json["sold_out_s"], serde_json::Value::Null);
    }
}
