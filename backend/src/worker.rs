//! The order worker: turns order events into rows, exactly once.
//!
//! It reads every activity's stream through one consumer group, writes a
//! batch of rows in one transaction (idempotent on the order id), and only
//! then acknowledges and deletes the entries. A worker that dies leaves its
//! entries pending; it re-reads them when it comes back under the same name,
//! and any other worker claims them (XAUTOCLAIM) once they have been idle long
//! enough, so several workers at once are safe. The database being down is
//! waited out; an entry that can never become a row goes to the dead-letter
//! stream with its reason and is never silently dropped.

use std::collections::HashMap;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::app::now_ms;
use crate::db::{Db, NewOrder, is_transient};
use crate::orders::Orders;
use crate::store::Store;
use crate::stream::{Entry, parse_event};

/// Attempts before an entry the database keeps refusing is dead-lettered.
pub const MAX_ATTEMPTS: u32 = 5;

/// How the worker paces itself.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Entries read per stream per round.
    pub batch: usize,
    /// Pending entries idle this long are taken over from their consumer.
    pub claim_idle_ms: u64,
    /// Sleep between rounds that found nothing to do.
    pub idle_poll: Duration,
    /// Backoff after the database or Redis failed.
    pub failure_backoff: Duration,
    /// How often the sweeper expires overdue orders.
    pub sweep_every: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            batch: 256,
            claim_idle_ms: 30_000,
            idle_poll: Duration::from_millis(20),
            failure_backoff: Duration::from_millis(250),
            sweep_every: Duration::from_secs(1),
        }
    }
}

/// One consumer of the order streams.
pub struct Worker {
    store: Store,
    db: Db,
    consumer: String,
    config: WorkerConfig,
    /// Database refusals per entry id (not counting the database being down).
    failures: HashMap<String, u32>,
}

impl Worker {
    pub fn new(store: Store, db: Db, consumer: impl Into<String>, config: WorkerConfig) -> Self {
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
        loop {
            let claim = last_claim.elapsed() >= Duration::from_millis(self.config.claim_idle_ms / 2);
            if claim {
                last_claim = tokio::time::Instant::now();
            }
            match self.round(claim).await {
                Ok(0) => tokio::time::sleep(self.config.idle_poll).await,
                Ok(_) => {}
                Err(e) => {
                    metrics::counter!("seckill_worker_errors_total", "kind" => "round").increment(1);
                    tracing::warn!(error = %e, "order worker round failed; retrying");
                    tokio::time::sleep(self.config.failure_backoff).await;
                }
            }
        }
    }

    /// One pass over every activity's stream; returns the entries handled.
    pub async fn round(&mut self, claim: bool) -> anyhow::Result<usize> {
        let mut handled = 0;
        for a in self.store.activity_ids().await? {
            // Own pending entries first (left by a failed write or a restart).
            let mut entries = self.store.read_group(a, &self.consumer, true, self.config.batch).await?;
            if claim {
                entries.extend(
                    self.store.autoclaim(a, &self.consumer, self.config.claim_idle_ms, self.config.batch).await?,
                );
            }
            if entries.is_empty() {
                entries = match self.store.read_group(a, &self.consumer, false, self.config.batch).await {
                    Ok(e) => e,
                    Err(e) if e.to_string().contains("NOGROUP") => {
                        self.store.ensure_group(a).await?;
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                };
            }
            entries.dedup_by(|x, y| x.id == y.id);
            handled += entries.len();
            if !entries.is_empty() {
                self.process(a, entries).await?;
            }
        }
        Ok(handled)
    }

    /// Writes the entries' rows, then acknowledges them; dead-letters poison.
    async fn process(&mut self, a: u64, entries: Vec<Entry>) -> anyhow::Result<()> {
        let mut orders: Vec<(NewOrder, Entry)> = Vec::with_capacity(entries.len());
        for entry in entries {
            match parse_event(a, &entry) {
                Ok(order) => orders.push((order, entry)),
                Err(reason) => self.bury(a, &entry, &reason).await?,
            }
        }
        if orders.is_empty() {
            return Ok(());
        }
        let batch: Vec<NewOrder> = orders.iter().map(|(o, _)| o.clone()).collect();
        match self.db.insert_orders(&batch, now_ms()).await {
            Ok(()) => return self.committed(a, &orders).await,
            Err(e) if is_transient(&e) => {
                metrics::counter!("seckill_worker_errors_total", "kind" => "db_unavailable").increment(1);
                anyhow::bail!("order database unavailable: {e}");
            }
            Err(e) => tracing::warn!(error = %e, "batch insert refused; writing entries one by one"),
        }
        // Some entry is refused: isolate it so the others are not held back.
        for (order, entry) in &orders {
            match self.db.insert_orders(std::slice::from_ref(order), now_ms()).await {
                Ok(()) => self.committed(a, std::slice::from_ref(&(order.clone(), entry.clone()))).await?,
                Err(e) if is_transient(&e) => anyhow::bail!("order database unavailable: {e}"),
                Err(e) => {
                    let attempts = self.failures.entry(entry.id.clone()).or_default();
                    *attempts += 1;
                    metrics::counter!("seckill_worker_errors_total", "kind" => "row_refused").increment(1);
                    if *attempts >= MAX_ATTEMPTS {
                        let reason = format!("database refused the row {MAX_ATTEMPTS} times: {e}");
                        self.bury(a, entry, &reason).await?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn committed(&mut self, a: u64, orders: &[(NewOrder, Entry)]) -> anyhow::Result<()> {
        let ids: Vec<String> = orders.iter().map(|(_, e)| e.id.clone()).collect();
        self.store.ack_delete(a, &ids).await?;
        for id in &ids {
            self.failures.remove(id);
        }
        metrics::counter!("seckill_orders_written_total").increment(ids.len() as u64);
        Ok(())
    }

    async fn bury(&mut self, a: u64, entry: &Entry, reason: &str) -> anyhow::Result<()> {
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
