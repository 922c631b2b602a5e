//! Live figures for the dashboard: per-activity counters of accepted and
//! refused requests in this process, and the `GET /admin/api/events` stream
//! of snapshots built from them and from Redis and the order DB.
//!
//! Rates are per backend process (each counts what it served); the stock
//! figures come from Redis and are exact.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use seckill_api::{ActivityLive, ActivityStatus, ErrorCode, LiveSnapshot, RateByCode, StatusCount};

use crate::app::{AppState, from_ms, now_ms};

/// How often a snapshot is sent.
pub const PERIOD: Duration = Duration::from_secs(1);

/// What happened to a purchase or token request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Purchased,
    Refused(ErrorCode),
}

/// Counters since start, by activity and outcome.
#[derive(Debug, Clone, Default)]
pub struct LiveStats {
    counts: Arc<Mutex<HashMap<(u64, Outcome), u64>>>,
}

impl LiveStats {
    pub fn record(&self, activity: u64, outcome: Outcome) {
        *self.counts.lock().expect("live stats lock").entry((activity, outcome)).or_default() += 1;
    }

    fn totals(&self) -> HashMap<(u64, Outcome), u64> {
        self.counts.lock().expect("live stats lock").clone()
    }
}

/// Per-second rates between two totals taken `elapsed` apart.
pub fn rates(
    before: &HashMap<(u64, Outcome), u64>,
    now: &HashMap<(u64, Outcome), u64>,
    elapsed: Duration,
    activity: u64,
) -> (f64, Vec<RateByCode>) {
    let secs = elapsed.as_secs_f64().max(0.001);
    let delta = |key: &(u64, Outcome)| {
        (now.get(key).copied().unwrap_or(0) - before.get(key).copied().unwrap_or(0)) as f64 / secs
    };
    let purchases = delta(&(activity, Outcome::Purchased));
    let mut refused: Vec<RateByCode> = now
        .keys()
        .filter_map(|(a, o)| match o {
            Outcome::Refused(code) if *a == activity => Some(*code),
            _ => None,
        })
        .map(|code| RateByCode { code, per_sec: delta(&(activity, Outcome::Refused(code))) })
        .collect();
    refused.sort_by_key(|r| r.code.as_str());
    (purchases, refused)
}

/// One snapshot of every activity.
async fn snapshot(
    state: &AppState,
    before: &HashMap<(u64, Outcome), u64>,
    now_totals: &HashMap<(u64, Outcome), u64>,
    elapsed: Duration,
) -> Option<LiveSnapshot> {
    let now = now_ms();
    let ids = state.store.activity_ids().await.ok()?;
    let by_status = state.orders.db.counts_by_activity_and_status().await.unwrap_or_default();
    let mut activities = Vec::with_capacity(ids.len());
    for id in ids {
        let Ok(Some(a)) = state.store.activity(id).await else { continue };
        let counters = state.store.counters(id, now).await.ok()?;
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

/// The server-sent event stream: a `snapshot` event every `PERIOD`.
pub fn events(state: AppState) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let start = (state.live.totals(), Instant::now());
    let stream = futures::stream::unfold((state, start, true), |(state, (before, at), first)| async move {
        if !first {
            tokio::time::sleep(PERIOD).await;
        }
        let totals = state.live.totals();
        let elapsed = at.elapsed();
        let event = match snapshot(&state, &before, &totals, elapsed).await {
            Some(snap) => Event::default().event("snapshot").json_data(&snap).unwrap_or_default(),
            None => Event::default().event("unavailable").data("redis or the order database is unavailable"),
        };
        Some((Ok(event), (state, (totals, Instant::now()), false)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_deltas_per_second_by_code() {
        let before = HashMap::from([((1, Outcome::Purchased), 10), ((1, Outcome::Refused(ErrorCode::SoldOut)), 4)]);
        let now = HashMap::from([
            ((1, Outcome::Purchased), 30),
            ((1, Outcome::Refused(ErrorCode::SoldOut)), 8),
            ((1, Outcome::Refused(ErrorCode::RateLimited)), 2),
            ((2, Outcome::Purchased), 99),
        ]);
        let (purchases, refused) = rates(&before, &now, Duration::from_secs(2), 1);
        assert_eq!(purchases, 10.0);
        let by_code: Vec<(&str, f64)> = refused.iter().map(|r| (r.code.as_str(), r.per_sec)).collect();
        assert_eq!(by_code, vec![("rate_limited", 1.0), ("sold_out", 2.0)]);
    }
}
