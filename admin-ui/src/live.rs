//! The live stream's memory: each `snapshot` event of `GET /admin/api/events`
//! appended per activity, so the activity page can chart sales and rejections
//! over time (since the dashboard was opened) — after the recent past the
//! backend kept (`GET /admin/api/activities/{id}/series`), so that a page
//! opened now does not start empty.

use std::collections::{BTreeMap, HashMap, VecDeque};

use seckill_api::{ActivityLive, ActivitySeries, ErrorCode, LiveSnapshot, OrderStatus};

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
        self.series_after(activity, None, now_ms)
    }

    /// [`History::series`], the rates preceded by `past`'s buckets from
    /// before the first live sample (the stream's own points win where both are).
    pub fn series_after(&self, activity: u64, past: Option<&ActivitySeries>, now_ms: i64) -> Series {
        let mut s = Series::default();
        let first_live_ms = self.samples(activity).next().map_or(i64::MAX, |sample| sample.at_ms);
        for point in past.map(past_rates).unwrap_or_default() {
            if point.end_ms >= first_live_ms {
                break;
            }
            let x = (point.end_ms - now_ms) as f64 / 1000.0;
            s.purchases.push((x, point.purchases_per_sec));
            s.rejections.push((x, point.rejections_per_sec));
            if let Some(sold) = point.sold {
                s.sold.push((x, sold as f64));
            }
        }
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

/// The rates of one bucket of a past series.
#[derive(Debug, Clone, PartialEq)]
pub struct PastRate {
    /// The end of the bucket: the stream's rates, too, are stamped with the
    /// end of the second they measure.
    pub end_ms: i64,
    pub purchases_per_sec: f64,
    pub rejections_per_sec: f64,
    /// Units sold after the bucket's last sale, if it had one.
    pub sold: Option<i64>,
}

/// One point per bucket of `series.since..series.until`, zero where the
/// series has no bucket (nothing happened then).
pub fn past_rates(series: &ActivitySeries) -> Vec<PastRate> {
    let step_ms = i64::from(series.bucket_secs.max(1)) * 1000;
    let per_sec = |count: u64| count as f64 * 1000.0 / step_ms as f64;
    let by_start: HashMap<i64, (u64, u64, Option<i64>)> = series
        .buckets
        .iter()
        .map(|b| (to_ms(b.at), (b.purchases, b.rejections.iter().map(|r| r.count).sum(), b.sold)))
        .collect();
    let (since, until) = (to_ms(series.since), to_ms(series.until));
    (0..)
        .map(|i| since + i * step_ms)
        .take_while(|start| start + step_ms <= until)
        .map(|start| {
            let (purchases, rejections, sold) = by_start.get(&start).copied().unwrap_or((0, 0, None));
            PastRate {
                end_ms: start + step_ms,
                purchases_per_sec: per_sec(purchases),
                rejections_per_sec: per_sec(rejections),
                sold,
            }
        })
        .collect()
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
    use seckill_api::{ActivityStatus, CountByCode, RateByCode, SeriesBucket, StatusCount};
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

    /// A bucket as `(second, purchases, refusals by code)`.
    type Bucket<'a> = (i64, u64, &'a [(ErrorCode, u64)]);

    fn past(since_s: i64, until_s: i64, buckets: &[Bucket]) -> ActivitySeries {
        let at = |s: i64| OffsetDateTime::from_unix_timestamp(s).unwrap();
        ActivitySeries {
            activity_id: 1,
            bucket_secs: 1,
            since: at(since_s),
            until: at(until_s),
            buckets: buckets
                .iter()
                .map(|(s, purchases, refused)| SeriesBucket {
                    at: at(*s),
                    purchases: *purchases,
                    rejections: refused
                        .iter()
                        .map(|(code, count)| CountByCode { code: *code, count: *count })
                        .collect(),
                    // Each sale in these tests sells one unit, starting from 100.
                    sold: (*purchases > 0).then(|| 100 + *s),
                })
                .collect(),
        }
    }

    #[test]
    fn a_past_series_fills_the_seconds_without_buckets_with_zeros() {
        let p = past(100, 104, &[(101, 3, &[(ErrorCode::SoldOut, 2), (ErrorCode::RateLimited, 1)]), (103, 1, &[])]);
        let points: Vec<(i64, f64, f64)> =
            past_rates(&p).iter().map(|r| (r.end_ms, r.purchases_per_sec, r.rejections_per_sec)).collect();
        assert_eq!(
            points,
            [(101_000, 0.0, 0.0), (102_000, 3.0, 3.0), (103_000, 0.0, 0.0), (104_000, 1.0, 0.0)],
            "one point per second, at its end"
        );
        let coarse = ActivitySeries { bucket_secs: 2, ..past(100, 104, &[(102, 4, &[])]) };
        let rates: Vec<f64> = past_rates(&coarse).iter().map(|r| r.purchases_per_sec).collect();
        assert_eq!(rates, [0.0, 2.0]);
        assert!(past_rates(&past(100, 100, &[])).is_empty());
    }

    #[test]
    fn the_past_comes_before_the_live_points_without_overlapping_them() {
        let mut h = History::default();
        h.push(&snapshot(103, vec![live(1, 7, &[(ErrorCode::SoldOut, 4.0)])]));
        h.push(&snapshot(104, vec![live(1, 8, &[])]));
        let p = past(100, 104, &[(100, 5, &[]), (102, 1, &[(ErrorCode::SoldOut, 6)]), (103, 9, &[])]);
        let s = h.series_after(1, Some(&p), 104_000);
        // The past's seconds ending before the first live sample (103 s), then the stream's.
        assert_eq!(s.purchases, [(-3.0, 5.0), (-2.0, 0.0), (-1.0, 2.0), (0.0, 2.0)]);
        assert_eq!(s.rejections, [(-3.0, 0.0), (-2.0, 0.0), (-1.0, 4.0), (0.0, 0.0)]);
        assert_eq!(
            s.sold,
            [(-3.0, 200.0), (-1.0, 7.0), (0.0, 8.0)],
            "the past's sales where it had some, then the stream's"
        );

        // Nothing live yet: the whole past.
        let s = History::default().series_after(1, Some(&p), 104_000);
        assert_eq!(s.purchases.len(), 4);
        assert_eq!(s.purchases.last(), Some(&(0.0, 9.0)));
        assert_eq!(s.sold, [(-3.0, 200.0), (-1.0, 202.0), (0.0, 203.0)]);
        assert_eq!(h.series_after(1, None, 104_000), h.series(1, 104_000));
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
