//! The live stream's memory: each `snapshot` event of `GET /admin/api/events`
//! appended per activity, so the activity page can chart sales and rejections
//! over time (since the dashboard was opened).

use std::collections::{BTreeMap, VecDeque};

use seckill_api::{ActivityLive, ErrorCode, LiveSnapshot, OrderStatus};

use crate::format::to_ms;

/// Samples kept per activity: 15 minutes at one snapshot a second.
pub const KEEP: usize = 900;

/// One activity at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub at_ms: i64,
    pub sold: i64,
    pub remaining: i64,
    pub purchases_per_sec: f64,
    /// All refusals per second.
    pub rejections_per_sec: f64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    by_activity: BTreeMap<u64, VecDeque<Sample>>,
}

impl History {
    /// Appends a snapshot (ignoring one not newer than the last of an activity).
    pub fn push(&mut self, snapshot: &LiveSnapshot) {
        let at_ms = to_ms(snapshot.at);
        for a in &snapshot.activities {
            let samples = self.by_activity.entry(a.id).or_default();
            if samples.back().is_some_and(|last| last.at_ms >= at_ms) {
                continue;
            }
            samples.push_back(Sample {
                at_ms,
                sold: a.sold,
                remaining: a.remaining,
                purchases_per_sec: a.purchases_per_sec,
                rejections_per_sec: rejections_total(a),
            });
            while samples.len() > KEEP {
                samples.pop_front();
            }
        }
    }

    pub fn samples(&self, activity: u64) -> impl Iterator<Item = &Sample> {
        self.by_activity.get(&activity).into_iter().flatten()
    }

    pub fn len(&self, activity: u64) -> usize {
        self.by_activity.get(&activity).map_or(0, VecDeque::len)
    }

    /// The chart's series, x in seconds relative to `now_ms` (≤ 0).
    pub fn series(&self, activity: u64, now_ms: i64) -> Series {
        let mut s = Series::default();
        for sample in self.samples(activity) {
            let x = (sample.at_ms - now_ms) as f64 / 1000.0;
            s.sold.push((x, sample.sold as f64));
            s.purchases.push((x, sample.purchases_per_sec));
            s.rejections.push((x, sample.rejections_per_sec));
        }
        s
    }
}

/// Points of the activity page's charts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    /// Units sold (cumulative).
    pub sold: Vec<(f64, f64)>,
    pub purchases: Vec<(f64, f64)>,
    pub rejections: Vec<(f64, f64)>,
}

/// Refusals per second, all codes together.
pub fn rejections_total(a: &ActivityLive) -> f64 {
    // A fold from +0.0: `sum()` of no floats is -0.0, which would print as "-0".
    a.rejections_per_sec.iter().map(|r| r.per_sec).filter(|v| v.is_finite()).fold(0.0, |acc, v| acc + v)
}

/// The refusal rates worth showing (non-zero), largest first.
pub fn rejections_by_code(a: &ActivityLive) -> Vec<(ErrorCode, f64)> {
    let mut out: Vec<(ErrorCode, f64)> =
        a.rejections_per_sec.iter().filter(|r| r.per_sec > 0.0).map(|r| (r.code, r.per_sec)).collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}

/// The number of orders with `status` (0 when the snapshot lists none).
pub fn orders_with(a: &ActivityLive, status: OrderStatus) -> i64 {
    a.orders_by_status.iter().filter(|c| c.status == status).map(|c| c.count).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use seckill_api::{ActivityStatus, RateByCode, StatusCount};
    use time::OffsetDateTime;

    fn live(id: u64, sold: i64, rejections: &[(ErrorCode, f64)]) -> ActivityLive {
        ActivityLive {
            id,
            name: format!("a{id}"),
            status: ActivityStatus::Live,
            total_stock: 100,
            remaining: 100 - sold,
            sold,
            live_tokens: 3,
            orders_by_status: vec![StatusCount { status: OrderStatus::Paid, count: 4 }],
            purchases_per_sec: 2.0,
            rejections_per_sec: rejections
                .iter()
                .map(|(code, per_sec)| RateByCode { code: *code, per_sec: *per_sec })
                .collect(),
        }
    }

    fn snapshot(at_s: i64, activities: Vec<ActivityLive>) -> LiveSnapshot {
        LiveSnapshot { at: OffsetDateTime::from_unix_timestamp(at_s).unwrap(), activities }
    }

    #[test]
    fn snapshots_become_series() {
        let mut h = History::default();
        h.push(&snapshot(100, vec![live(1, 0, &[]), live(2, 5, &[])]));
        h.push(&snapshot(101, vec![live(1, 3, &[(ErrorCode::SoldOut, 1.5), (ErrorCode::RateLimited, 2.0)])]));
        h.push(&snapshot(101, vec![live(1, 9, &[])])); // not newer: ignored
        assert_eq!(h.len(1), 2);
        assert_eq!(h.len(2), 1);
        assert_eq!(h.len(3), 0);
        let s = h.series(1, 101_000);
        assert_eq!(s.sold, vec![(-1.0, 0.0), (0.0, 3.0)]);
        assert_eq!(s.rejections, vec![(-1.0, 0.0), (0.0, 3.5)]);
        assert_eq!(s.purchases[1], (0.0, 2.0));
    }

    #[test]
    fn history_is_bounded() {
        let mut h = History::default();
        for t in 0..(KEEP as i64 + 10) {
            h.push(&snapshot(t, vec![live(1, t, &[])]));
        }
        assert_eq!(h.len(1), KEEP);
        assert_eq!(h.samples(1).next().map(|s| s.sold), Some(10));
    }

    #[test]
    fn rejection_breakdown() {
        let a = live(1, 0, &[(ErrorCode::SoldOut, 1.0), (ErrorCode::RateLimited, 4.0), (ErrorCode::Blacklisted, 0.0)]);
        assert_eq!(rejections_by_code(&a), vec![(ErrorCode::RateLimited, 4.0), (ErrorCode::SoldOut, 1.0)]);
        assert_eq!(rejections_total(&a), 5.0);
        assert_eq!(orders_with(&a, OrderStatus::Paid), 4);
        assert_eq!(orders_with(&a, OrderStatus::Queued), 0);
    }
}
