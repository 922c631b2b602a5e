//! The order worker: turns order events into rows, exactly once.
//!
//! It reads every activity's stream through one consumer group, writes a
//! batch of rows in one transaction (idempotent on the order id), and only
//! then acknowledges and deletes the entries. A worker that dies leaves its
//! entries pending; it re-reads them when it comes back under the same name,
//! and any other worker claims them (XAUTOCLAIM) once they have been idle long
//! enough, so several workers at once are safe.
//!
//! Failures are of three kinds, and each has its own answer:
//! - **The order database is unavailable** (down, read-only during a failover,
//!   out of connections, locked — see `db::classify`): the round stops and the
//!   worker backs off, exponentially up to `max_backoff`, and tries the same
//!   entries again. While it waits it reads no new entries: they stay in the
//!   stream, unclaimed, where the lag metric shows them and another worker
//!   with a working database may take them. Nothing is ever buried for it.
//! - **One activity's stream is broken** (its consumer group gone, a wrong
//!   type at its key): that activity is skipped for this round — a missing
//!   group is recreated — and every other activity goes on.
//! - **The database refuses one row's data**: the row is isolated from its
//!   batch so the others are written, and after `MAX_ATTEMPTS` refusals in
//!   separate rounds the entry goes to the dead-letter stream with the reason,
//!   where an operator can replay or refund it.

use std::collections::HashMap;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::clock::now_ms;
use crate::db::{Db, Failure, NewOrder, classify};
use crate::order_event::parse_event;
use crate::orders::Orders;
use crate::store::stream::Entry;
use crate::store::{Store, StoreError};

/// Refusals of an entry's data, each in its own round, before it is dead-lettered.
pub const MAX_ATTEMPTS: u32 = 5;

/// The tracing target of the line the worker writes per order row: its
/// `order_id` is the one the purchase's access line names (`routes::request_id`),
/// which is how a row is joined to the request that sold it.
/// `RUST_LOG=info,seckill::orders=off` turns it off.
pub const ORDERS_TARGET: &str = "seckill::orders";

/// How the worker paces itself.
#[derive(Debug, Clone)]
pub struct OrderWorkerConfig {
    /// Entries read per stream per round.
    pub batch: usize,
    /// Pending entries idle this long are taken over from their consumer.
    pub claim_idle_ms: u64,
    /// Sleep between rounds that found nothing to do.
    pub idle_poll: Duration,
    /// First wait after the database or Redis failed; it doubles with each
    /// failure in a row, up to `max_backoff`.
    pub failure_backoff: Duration,
    /// The longest wait between two attempts while a dependency is down.
    pub max_backoff: Duration,
    /// How often the sweeper expires overdue orders.
    pub sweep_every: Duration,
}

impl Default for OrderWorkerConfig {
    fn default() -> Self {
        Self {
            batch: 256,
            claim_idle_ms: 30_000,
            idle_poll: Duration::from_millis(20),
            failure_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(3),
            sweep_every: Duration::from_secs(1),
        }
    }
}

/// Why a round stopped early: a dependency every activity needs is down.
#[derive(Debug, thiserror::Error)]
pub enum RoundError {
    #[error("order database unavailable: {0}")]
    Database(#[source] sqlx::Error),
    #[error("redis unavailable: {0}")]
    Redis(#[source] StoreError),
}

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoundReport {
    /// Entries written, dead-lettered or refused.
    pub handled: usize,
    /// Rows the database refused this round (they are tried again next round).
    pub refused: usize,
    /// Activities skipped because their stream could not be read.
    pub broken_streams: usize,
}

/// The failures of one activity's part of a round.
#[derive(Debug, thiserror::Error)]
enum ActivityError {
    #[error(transparent)]
    Round(#[from] RoundError),
    /// Redis answered, with an error about this activity's keys (NOGROUP, WRONGTYPE, …).
    #[error("stream error: {0}")]
    Stream(#[source] StoreError),
}

impl From<StoreError> for ActivityError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::Redis(r) if r.code().is_some() && !e.is_failover() => Self::Stream(e),
            _ => Self::Round(RoundError::Redis(e)),
        }
    }
}

/// Exponential backoff with a cap, and a little jitter so that several
/// workers do not come back at the same instant.
#[derive(Debug, Clone)]
struct Backoff {
    first: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let base = self.first.saturating_mul(1 << self.failures.min(16)).min(self.max);
        self.failures = self.failures.saturating_add(1);
        base.mul_f64(0.8 + 0.4 * rand::random::<f64>()).min(self.max)
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}

/// One consumer of the order streams.
pub struct OrderWorker {
    store: Store,
    db: Db,
    consumer: String,
    config: OrderWorkerConfig,
    /// Database refusals per entry id (not counting the database being down).
    failures: HashMap<String, u32>,
}

impl OrderWorker {
    pub fn new(store: Store, db: Db, consumer: impl Into<String>, config: OrderWorkerConfig) -> Self {
        Self { store, db, consumer: consumer.into(), config, failures: HashMap::new() }
    }

    /// A consumer name unique to this process.
    pub fn default_consumer_name() -> String {
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        format!("{}-{}-{:04x}", host.trim(), std::process::id(), rand::random::<u16>())
    }

    /// Runs the consume loop and the sweeper until the task is aborted.
    pub fn spawn(self) -> JoinHandle<()> {
        tokio::spawn(self.run())
    }

    async fn run(mut self) {
        tracing::info!(consumer = %self.consumer, "order worker started");
        let mut last_claim = tokio::time::Instant::now();
        let mut backoff = Backoff { first: self.config.failure_backoff, max: self.config.max_backoff, failures: 0 };
        loop {
            let claim = last_claim.elapsed() >= Duration::from_millis(self.config.claim_idle_ms / 2);
            if claim {
                last_claim = tokio::time::Instant::now();
            }
            match self.round(claim).await {
                Ok(report) => {
                    backoff.reset();
                    if report.refused > 0 || report.broken_streams > 0 {
                        // Give a refused row (or a broken stream) a pause before it is tried again.
                        tokio::time::sleep(self.config.failure_backoff).await;
                    } else if report.handled == 0 {
                        tokio::time::sleep(self.config.idle_poll).await;
                    }
                }
                Err(e) => {
                    let kind = match e {
                        RoundError::Database(_) => "db_unavailable",
                        RoundError::Redis(_) => "redis_unavailable",
                    };
                    metrics::counter!("seckill_worker_errors_total", "kind" => kind).increment(1);
                    let wait = backoff.next();
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "order worker waits for its dependency");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// One pass over every activity's stream. Each activity is handled on its
    /// own: a broken stream is skipped (and reported), and only a dependency
    /// that every activity needs being down stops the round.
    pub async fn round(&mut self, claim: bool) -> Result<RoundReport, RoundError> {
        let mut report = RoundReport::default();
        for a in self.store.activity_ids().await.map_err(RoundError::Redis)? {
            match self.activity_round(a, claim, &mut report).await {
                Ok(()) => {}
                Err(ActivityError::Round(e)) => return Err(e),
                Err(ActivityError::Stream(e)) => {
                    report.broken_streams += 1;
                    metrics::counter!("seckill_worker_errors_total", "kind" => "stream").increment(1);
                    if e.is_nogroup() {
                        if self.store.activity_exists(a).await.map_err(RoundError::Redis)? {
                            tracing::warn!(activity = a, "order group missing; recreating it");
                            self.store.ensure_group(a).await.map_err(RoundError::Redis)?;
                        } else {
                            // A deleted activity still listed (its delete stopped between its two steps).
                            self.store.unlist(a).await.map_err(RoundError::Redis)?;
                        }
                    } else {
                        tracing::error!(activity = a, error = %e, "order stream unreadable; skipping it this round");
                    }
                }
            }
        }
        Ok(report)
    }

    async fn activity_round(&mut self, a: u64, claim: bool, report: &mut RoundReport) -> Result<(), ActivityError> {
        // Own pending entries first (left by a failed write or a restart).
        let mut entries = self.store.read_group(a, &self.consumer, true, self.config.batch).await?;
        if claim {
            entries
                .extend(self.store.autoclaim(a, &self.consumer, self.config.claim_idle_ms, self.config.batch).await?);
        }
        if entries.is_empty() {
            entries = self.store.read_group(a, &self.consumer, false, self.config.batch).await?;
        }
        entries.dedup_by(|x, y| x.id == y.id);
        report.handled += entries.len();
        if !entries.is_empty() {
            report.refused += self.process(a, entries).await?;
        }
        Ok(())
    }

    /// Writes the entries' rows, then acknowledges them; dead-letters poison.
    /// Returns how many rows the database refused.
    async fn process(&mut self, a: u64, entries: Vec<Entry>) -> Result<usize, ActivityError> {
        let mut orders: Vec<(NewOrder, Entry)> = Vec::with_capacity(entries.len());
        for entry in entries {
            match parse_event(a, &entry) {
                Ok(order) => orders.push((order, entry)),
                Err(reason) => self.bury(a, &entry, &reason.to_string()).await?,
            }
        }
        if orders.is_empty() {
            return Ok(0);
        }
        let batch: Vec<NewOrder> = orders.iter().map(|(o, _)| o.clone()).collect();
        match self.db.insert_orders(&batch, now_ms()).await {
            Ok(()) => {
                self.committed(a, &orders).await?;
                return Ok(0);
            }
            Err(e) if classify(&e) == Failure::Transient => return Err(RoundError::Database(e).into()),
            Err(e) => tracing::warn!(error = %e, "batch insert refused; writing entries one by one"),
        }
        // Some entry is refused: isolate it so the others are not held back.
        let mut refused = 0;
        for (order, entry) in &orders {
            match self.db.insert_orders(std::slice::from_ref(order), now_ms()).await {
                Ok(()) => self.committed(a, std::slice::from_ref(&(order.clone(), entry.clone()))).await?,
                Err(e) if classify(&e) == Failure::Transient => return Err(RoundError::Database(e).into()),
                Err(e) => {
                    refused += 1;
                    let attempts = self.failures.entry(entry.id.clone()).or_default();
                    *attempts += 1;
                    metrics::counter!("seckill_worker_errors_total", "kind" => "row_refused").increment(1);
                    tracing::warn!(activity = a, entry = %entry.id, attempt = *attempts, error = %e, "order row refused");
                    if *attempts >= MAX_ATTEMPTS {
                        let reason = format!("database refused the row {MAX_ATTEMPTS} times: {e}");
                        self.bury(a, entry, &reason).await?;
                    }
                }
            }
        }
        Ok(refused)
    }

    async fn committed(&mut self, a: u64, orders: &[(NewOrder, Entry)]) -> Result<(), ActivityError> {
        let ids: Vec<String> = orders.iter().map(|(_, e)| e.id.clone()).collect();
        self.store.ack_delete(a, &ids).await?;
        for id in &ids {
            self.failures.remove(id);
        }
        metrics::counter!("seckill_orders_written_total").increment(ids.len() as u64);
        for (order, _) in orders {
            tracing::info!(
                target: ORDERS_TARGET,
                order_id = %order.order_id,
                activity = a,
                user = %order.user_id,
                quantity = order.quantity,
                "order written"
            );
        }
        Ok(())
    }

    async fn bury(&mut self, a: u64, entry: &Entry, reason: &str) -> Result<(), ActivityError> {
        tracing::error!(activity = a, entry = %entry.id, %reason, "order event dead-lettered");
        self.store.dead_letter(a, entry, reason).await?;
        self.failures.remove(&entry.id);
        metrics::counter!("seckill_dead_letters_total").increment(1);
        Ok(())
    }
}

/// Expires overdue orders and finishes interrupted releases, forever.
pub fn spawn_sweeper(orders: Orders, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match orders.sweep(500).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(orders = n, "sweeper expired or released orders"),
                Err(e) => {
                    metrics::counter!("seckill_worker_errors_total", "kind" => "sweep").increment(1);
                    tracing::warn!(error = %e, "sweeper pass failed; retrying");
                }
            }
        }
    })
}
