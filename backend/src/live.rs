//! Live figures for the dashboard: per-activity counters of accepted and
//! refused requests in this process, the `GET /admin/api/events` stream of
//! snapshots built from them and from Redis and the order DB, and the last
//! minutes of those counts per second, so that an activity page opened now
//! charts the recent past at once (`GET /admin/api/activities/{id}/series`).
//!
//! Rates are per backend process (each counts what it served); the stock
//! figures come from Redis and are exact.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use seckill_api::{
    ActivityLive, ActivitySeries, ActivityStatus, CountByCode, ErrorCode, LiveSnapshot, RateByCode, SeriesBucket,
    StatusCount,
};

use crate::clock::{from_ms, now_ms};
use crate::orders::Orders;

/// How often a snapshot is sent.
pub const PERIOD: Duration = Duration::from_secs(1);

/// What happened to a purchase or token request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Answer {
    Purchased,
    Refused(ErrorCode),
}

/// How many seconds of per-second counts are kept for the series.
pub const SERIES_WINDOW_SECS: i64 = 600;

/// An activity and what its requests were answered.
pub type Key = (u64, Answer);

#[derive(Debug, Default)]
struct Counts {
    /// Since start.
    totals: HashMap<Key, u64>,
    /// The seconds of the last `SERIES_WINDOW_SECS` in which something was
    /// counted, oldest first.
    recent: VecDeque<Second>,
}

/// What one second of the series holds.
#[derive(Debug, Default)]
struct Second {
    /// Unix second.
    at: i64,
    counts: HashMap<Key, u64>,
    /// Each activity's `sold` after its last sale in this second.
    sold: HashMap<u64, i64>,
}

impl Counts {
    /// The bucket of `second`, made if need be; the window is trimmed then.
    fn second(&mut self, second: i64) -> &mut Second {
        // A clock that stepped back counts in the newest second.
        if self.recent.back().is_none_or(|newest| newest.at < second) {
            self.recent.push_back(Second { at: second, ..Second::default() });
            while self.recent.front().is_some_and(|s| s.at <= second - SERIES_WINDOW_SECS) {
                self.recent.pop_front();
            }
        }
        self.recent.back_mut().expect("a bucket was just ensured")
    }
}

/// Counters since start and per recent second, by activity and outcome.
#[derive(Debug, Clone)]
pub struct LiveStats {
    counts: Arc<Mutex<Counts>>,
    /// When counting began (Unix ms): a series claims no second before it.
    started_ms: i64,
}

impl Default for LiveStats {
    fn default() -> Self {
        Self::started_at(now_ms())
    }
}

impl LiveStats {
    fn started_at(started_ms: i64) -> Self {
        Self { counts: Arc::default(), started_ms }
    }

    pub fn record(&self, activity: u64, outcome: Answer) {
        self.record_at(activity, outcome, now_ms());
    }

    fn record_at(&self, activity: u64, outcome: Answer, at_ms: i64) {
        self.record_with_sold_at(activity, outcome, None, at_ms);
    }

    /// Counts an accepted purchase and, for a new sale (not a replay), notes
    /// the activity's `sold` after it, for the series' sales curve.
    pub fn record_purchase(&self, activity: u64, sold: Option<i64>) {
        self.record_with_sold_at(activity, Answer::Purchased, sold, now_ms());
    }

    fn record_with_sold_at(&self, activity: u64, outcome: Answer, sold: Option<i64>, at_ms: i64) {
        let key = (activity, outcome);
        let mut counts = self.counts.lock().expect("live stats lock");
        *counts.totals.entry(key).or_default() += 1;
        let second = counts.second(at_ms.div_euclid(1000));
        *second.counts.entry(key).or_default() += 1;
        if let Some(sold) = sold {
            second.sold.insert(activity, sold);
        }
    }

    /// Every count since start.
    pub fn totals(&self) -> HashMap<Key, u64> {
        self.counts.lock().expect("live stats lock").totals.clone()
    }

    /// Activity `activity`'s whole seconds of the window ending at `now_ms`.
    pub fn series(&self, activity: u64, now_ms: i64) -> ActivitySeries {
        let until = now_ms.div_euclid(1000);
        let since = (until - SERIES_WINDOW_SECS).max(self.started_ms.div_euclid(1000)).min(until);
        let counts = self.counts.lock().expect("live stats lock");
        let buckets = counts
            .recent
            .iter()
            .filter(|second| (since..until).contains(&second.at))
            .filter_map(|second| {
                let purchases = second.counts.get(&(activity, Answer::Purchased)).copied().unwrap_or(0);
                let sold = second.sold.get(&activity).copied();
                let mut rejections: Vec<CountByCode> = second
                    .counts
                    .iter()
                    .filter_map(|((a, outcome), count)| match outcome {
                        Answer::Refused(code) if *a == activity => Some(CountByCode { code: *code, count: *count }),
                        _ => None,
                    })
                    .collect();
                rejections.sort_by_key(|r| r.code.as_str());
                (purchases > 0 || !rejections.is_empty() || sold.is_some()).then(|| SeriesBucket {
                    at: from_ms(second.at * 1000),
                    purchases,
                    rejections,
                    sold,
                })
            })
            .collect();
        ActivitySeries {
            activity_id: activity,
            bucket_secs: 1,
            since: from_ms(since * 1000),
            until: from_ms(until * 1000),
            buckets,
        }
    }
}

/// Per-second rates between two totals taken `elapsed` apart.
pub fn rates(
    before: &HashMap<Key, u64>,
    now: &HashMap<Key, u64>,
    elapsed: Duration,
    activity: u64,
) -> (f64, Vec<RateByCode>) {
    let secs = elapsed.as_secs_f64().max(0.001);
    let delta = |key: &(u64, Answer)| {
        (now.get(key).copied().unwrap_or(0) - before.get(key).copied().unwrap_or(0)) as f64 / secs
    };
    let purchases = delta(&(activity, Answer::Purchased));
    let mut refused: Vec<RateByCode> = now
        .keys()
        .filter_map(|(a, o)| match o {
            Answer::Refused(code) if *a == activity => Some(*code),
            _ => None,
        })
        .map(|code| RateByCode { code, per_sec: delta(&(activity, Answer::Refused(code))) })
        .collect();
    refused.sort_by_key(|r| r.code.as_str());
    (purchases, refused)
}

/// One snapshot of every activity; `None` while Redis is unavailable.
pub async fn snapshot(
    orders: &Orders,
    before: &HashMap<Key, u64>,
    now_totals: &HashMap<Key, u64>,
    elapsed: Duration,
) -> Option<LiveSnapshot> {
    let now = now_ms();
    let ids = orders.store.activity_ids().await.ok()?;
    let by_status = orders.db.counts_by_activity_and_status().await.unwrap_or_default();
    let mut activities = Vec::with_capacity(ids.len());
    for id in ids {
        let Ok(Some(a)) = orders.store.activity(id).await else { continue };
        let counters = orders.store.counters(id, now).await.ok()?;
        let (purchases_per_sec, rejections_per_sec) = rates(before, now_totals, elapsed, id);
        activities.push(ActivityLive {
            id,
            status: ActivityStatus::at(
                from_ms(now),
                from_ms(a.starts_at_ms),
                from_ms(a.ends_at_ms),
                counters.remaining,
            ),
            name: a.name,
            total_stock: a.total_stock,
            remaining: counters.remaining,
            sold: counters.sold,
            live_tokens: counters.live_tokens,
            orders_by_status: by_status
                .iter()
                .filter(|(a, _, _)| *a == id)
                .map(|(_, status, count)| StatusCount { status: *status, count: *count })
                .collect(),
            purchases_per_sec,
            rejections_per_sec,
        });
    }
    Some(LiveSnapshot { at: from_ms(now), activities })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_deltas_per_second_by_code() {
        let before = HashMap::from([((1, Answer::Purchased), 10), ((1, Answer::Refused(ErrorCode::SoldOut)), 4)]);
        let now = HashMap::from([
            ((1, Answer::Purchased), 30),
            ((1, Answer::Refused(ErrorCode::SoldOut)), 8),
            ((1, Answer::Refused(ErrorCode::RateLimited)), 2),
            ((2, Answer::Purchased), 99),
        ]);
        let (purchases, refused) = rates(&before, &now, Duration::from_secs(2), 1);
        assert_eq!(purchases, 10.0);
        let by_code: Vec<(&str, f64)> = refused.iter().map(|r| (r.code.as_str(), r.per_sec)).collect();
        assert_eq!(by_code, vec![("rate_limited", 1.0), ("sold_out", 2.0)]);
    }

    #[test]
    fn series_counts_whole_seconds_of_the_window_by_code() {
        let stats = LiveStats::started_at(1_000_000);
        let sold_out = Answer::Refused(ErrorCode::SoldOut);
        stats.record_with_sold_at(1, Answer::Purchased, Some(5), 1_000_100);
        stats.record_with_sold_at(1, Answer::Purchased, Some(6), 1_000_900);
        stats.record_with_sold_at(2, Answer::Purchased, Some(40), 1_001_000);
        stats.record_at(1, sold_out, 1_002_000);
        stats.record_at(1, Answer::Purchased, 1_002_500);
        stats.record_at(1, Answer::Refused(ErrorCode::RateLimited), 1_002_999);
        stats.record_at(1, Answer::Purchased, 1_003_000); // the second in progress at 1_003_400

        let s = stats.series(1, 1_003_400);
        assert_eq!((s.since, s.until), (from_ms(1_000_000), from_ms(1_003_000)));
        let seen: Vec<String> = s
            .buckets
            .iter()
            .map(|b| {
                let codes: Vec<String> =
                    b.rejections.iter().map(|r| format!("{}={}", r.code.as_str(), r.count)).collect();
                let sold = b.sold.map_or("-".to_owned(), |n| n.to_string());
                format!(
                    "{} bought {} refused [{}] sold {sold}",
                    crate::clock::to_ms(b.at),
                    b.purchases,
                    codes.join(" ")
                )
            })
            .collect();
        assert_eq!(
            seen,
            ["1000000 bought 2 refused [] sold 6", "1002000 bought 1 refused [rate_limited=1 sold_out=1] sold -"],
            "second 1001 only had activity 2; the last sale of a second gives its sold"
        );
        assert_eq!(stats.series(3, 1_003_400).buckets, vec![]);
        assert_eq!(stats.totals()[&(1, Answer::Purchased)], 4);
    }

    #[test]
    fn series_keep_only_the_window() {
        let stats = LiveStats::started_at(0);
        for second in 0..(SERIES_WINDOW_SECS + 100) {
            stats.record_at(7, Answer::Purchased, second * 1000);
        }
        let now = (SERIES_WINDOW_SECS + 100) * 1000;
        let s = stats.series(7, now);
        assert_eq!(s.buckets.len(), SERIES_WINDOW_SECS as usize);
        assert_eq!(s.since, from_ms(100_000));
        assert!(stats.counts.lock().unwrap().recent.len() <= SERIES_WINDOW_SECS as usize);
    }
}
