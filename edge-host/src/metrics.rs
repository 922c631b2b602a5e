//! Metrics the filter defines (`proxy_define_metric`) plus the host's own,
//! process-wide (a name defined by several VMs is one metric), rendered in
//! the Prometheus text format.
//!
//! A metric name may carry Prometheus labels: `requests_total{decision="allowed"}`
//! is the `requests_total` family with that label. Characters Prometheus does
//! not allow in a name become `_`.

use crate::abi::{MetricKind, Status};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// Upper bounds of the histogram buckets (the unit is the filter's).
pub const HISTOGRAM_BOUNDS: &[u64] = &[
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 10_000_000,
];

struct Histogram {
    buckets: Vec<AtomicU64>,
    sum: AtomicU64,
    count: AtomicU64,
}

struct Metric {
    family: String,
    labels: String,
    kind: MetricKind,
    value: AtomicI64,
    histogram: Option<Histogram>,
}

/// The registry.
#[derive(Default)]
pub struct Metrics {
    inner: RwLock<Registry>,
}

#[derive(Default)]
struct Registry {
    metrics: Vec<Arc<Metric>>,
    by_name: HashMap<(MetricKind, String), u32>,
}

fn sanitize(name: &str) -> String {
    let mut out: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == ':' { c } else { '_' }).collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// Splits `family{labels}` when the labels look like Prometheus labels.
fn split_labels(name: &str) -> (String, String) {
    if let Some(open) = name.find('{')
        && name.ends_with('}')
    {
        let labels = &name[open..];
        let inner = &labels[1..labels.len() - 1];
        let valid = !inner.is_empty()
            && inner.split(',').all(|kv| {
                kv.split_once('=').is_some_and(|(k, v)| {
                    !k.is_empty()
                        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        && v.len() >= 2
                        && v.starts_with('"')
                        && v.ends_with('"')
                        && !v[1..v.len() - 1].contains(['"', '\\', '\n'])
                })
            });
        if valid {
            return (sanitize(&name[..open]), labels.to_string());
        }
    }
    (sanitize(name), String::new())
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `f` on metric `id` under the read lock.
    fn with<R>(&self, id: u32, f: impl FnOnce(&Metric) -> Result<R, Status>) -> Result<R, Status> {
        let reg = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let m = id.checked_sub(1).and_then(|i| reg.metrics.get(i as usize)).ok_or(Status::NotFound)?;
        f(m)
    }

    /// The id of `name` (defined on first use). Ids start at 1.
    pub fn define(&self, kind: MetricKind, name: &str) -> u32 {
        let key = (kind, name.to_string());
        if let Some(id) = self.inner.read().unwrap_or_else(|e| e.into_inner()).by_name.get(&key) {
            return *id;
        }
        let mut reg = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if let Some(id) = reg.by_name.get(&key) {
            return *id;
        }
        let (family, labels) = split_labels(name);
        let histogram = (kind == MetricKind::Histogram).then(|| Histogram {
            buckets: HISTOGRAM_BOUNDS.iter().map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            count: AtomicU64::new(0),
        });
        reg.metrics.push(Arc::new(Metric { family, labels, kind, value: AtomicI64::new(0), histogram }));
        let id = reg.metrics.len() as u32;
        reg.by_name.insert(key, id);
        id
    }

    /// `proxy_increment_metric`: counters only go up.
    pub fn increment(&self, id: u32, delta: i64) -> Result<(), Status> {
        self.with(id, |m| match m.kind {
            MetricKind::Counter if delta < 0 => Err(Status::BadArgument),
            MetricKind::Counter | MetricKind::Gauge => {
                m.value.fetch_add(delta, Ordering::Relaxed);
                Ok(())
            }
            MetricKind::Histogram => Err(Status::BadArgument),
        })
    }

    /// `proxy_record_metric`: adds to a counter, sets a gauge, observes a
    /// histogram value.
    pub fn record(&self, id: u32, value: u64) -> Result<(), Status> {
        self.with(id, |m| {
            match m.kind {
                MetricKind::Counter => {
                    m.value.fetch_add(value as i64, Ordering::Relaxed);
                }
                MetricKind::Gauge => m.value.store(value as i64, Ordering::Relaxed),
                MetricKind::Histogram => {
                    let h = m.histogram.as_ref().ok_or(Status::BadArgument)?;
                    if let Some(i) = HISTOGRAM_BOUNDS.iter().position(|b| value <= *b) {
                        h.buckets[i].fetch_add(1, Ordering::Relaxed);
                    }
                    h.sum.fetch_add(value, Ordering::Relaxed);
                    h.count.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(())
        })
    }

    /// `proxy_get_metric`: histograms have no single value.
    pub fn get(&self, id: u32) -> Result<u64, Status> {
        self.with(id, |m| match m.kind {
            MetricKind::Histogram => Err(Status::BadArgument),
            _ => Ok(m.value.load(Ordering::Relaxed) as u64),
        })
    }

    /// The value of a counter or gauge by its full name (labels included),
    /// as the filter spelled it.
    pub fn value(&self, name: &str) -> Option<i64> {
        let reg = self.inner.read().unwrap_or_else(|e| e.into_inner());
        [MetricKind::Counter, MetricKind::Gauge]
            .iter()
            .find_map(|k| reg.by_name.get(&(*k, name.to_string())))
            .and_then(|id| reg.metrics.get(*id as usize - 1))
            .map(|m| m.value.load(Ordering::Relaxed))
    }

    /// Every metric in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let reg = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let mut families: BTreeMap<&str, Vec<&Metric>> = BTreeMap::new();
        for m in &reg.metrics {
            families.entry(m.family.as_str()).or_default().push(m);
        }
        let mut out = String::new();
        for (family, members) in families {
            let kind = match members[0].kind {
                MetricKind::Counter => "counter",
                MetricKind::Gauge => "gauge",
                MetricKind::Histogram => "histogram",
            };
            let _ = writeln!(out, "# TYPE {family} {kind}");
            let mut members = members;
            members.sort_by(|a, b| a.labels.cmp(&b.labels));
            for m in members {
                match &m.histogram {
                    None => {
                        let _ = writeln!(out, "{family}{} {}", m.labels, m.value.load(Ordering::Relaxed));
                    }
                    Some(h) => {
                        let inner = m.labels.trim_start_matches('{').trim_end_matches('}');
                        let sep = if inner.is_empty() { "" } else { "," };
                        let mut cumulative = 0;
                        for (bound, n) in HISTOGRAM_BOUNDS.iter().zip(&h.buckets) {
                            cumulative += n.load(Ordering::Relaxed);
                            let _ = writeln!(out, "{family}_bucket{{{inner}{sep}le=\"{bound}\"}} {cumulative}");
                        }
                        let count = h.count.load(Ordering::Relaxed);
                        let _ = writeln!(out, "{family}_bucket{{{inner}{sep}le=\"+Inf\"}} {count}");
                        let _ = writeln!(out, "{family}_sum{} {}", m.labels, h.sum.load(Ordering::Relaxed));
                        let _ = writeln!(out, "{family}_count{} {count}", m.labels);
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_gauges_histograms() {
        let m = Metrics::new();
        let c = m.define(MetricKind::Counter, "edge_requests_total{decision=\"allowed\"}");
        let c2 = m.define(MetricKind::Counter, "edge_requests_total{decision=\"rate_limited\"}");
        assert_eq!(m.define(MetricKind::Counter, "edge_requests_total{decision=\"allowed\"}"), c);
        let g = m.define(MetricKind::Gauge, "edge.in-flight");
        let h = m.define(MetricKind::Histogram, "edge_latency_us");
        m.increment(c, 3).unwrap();
        m.record(c2, 2).unwrap();
        assert_eq!(m.increment(c, -1), Err(Status::BadArgument));
        m.increment(g, 5).unwrap();
        m.increment(g, -7).unwrap();
        m.record(h, 3).unwrap();
        m.record(h, 700).unwrap();
        assert_eq!(m.get(c), Ok(3));
        assert_eq!(m.get(g), Ok(-2i64 as u64));
        assert_eq!(m.get(h), Err(Status::BadArgument));
        assert_eq!(m.get(999), Err(Status::NotFound));
        assert_eq!(m.increment(0, 1), Err(Status::NotFound));
        assert_eq!(m.value("edge_requests_total{decision=\"allowed\"}"), Some(3));
        let text = m.render();
        assert!(text.contains("# TYPE edge_requests_total counter\n"), "{text}");
        assert!(text.contains("edge_requests_total{decision=\"allowed\"} 3\n"), "{text}");
        assert!(text.contains("edge_requests_total{decision=\"rate_limited\"} 2\n"), "{text}");
        assert!(text.contains("# TYPE edge_in_flight gauge\nedge_in_flight -2\n"), "{text}");
        assert!(text.contains("edge_latency_us_bucket{le=\"5\"} 1\n"), "{text}");
        assert!(text.contains("edge_latency_us_bucket{le=\"1000\"} 2\n"), "{text}");
        assert!(text.contains("edge_latency_us_sum 703\nedge_latency_us_count 2\n"), "{text}");
    }

    #[test]
    fn odd_names_are_sanitised() {
        assert_eq!(split_labels("a.b-c"), ("a_b_c".into(), String::new()));
        assert_eq!(split_labels("9lives"), ("_9lives".into(), String::new()));
        assert_eq!(split_labels("x{bad}"), ("x_bad_".into(), String::new()));
        assert_eq!(split_labels("x{k=\"v\",j=\"w\"}"), ("x".into(), "{k=\"v\",j=\"w\"}".into()));
    }
}
