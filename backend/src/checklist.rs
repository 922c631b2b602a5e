//! The seed's production checklist (秒杀系统性能优化检查清单): five groups,
//! twenty items. Whatever the system can see for itself it probes on every
//! request (Redis INFO, the edge's last sync, the reconciliation, the
//! settings); the rest operators tick with a note, kept in the order DB.

use std::collections::HashMap;

use seckill_api::{CheckStatus, ChecklistItem};

use crate::clock::{from_ms, now_ms};
use std::sync::Arc;

use crate::anti_bot::AntiBot;
use crate::breaker::BreakerState;
use std::sync::atomic::Ordering;

use crate::config::{LogFormat, Settings};
use crate::db::Dialect;
use crate::dependency::DependencyError;
use crate::edge;
use crate::orders::Orders;
use crate::store::{Failover, MasterReport, StoreError, keys};
use crate::telemetry::BuyerSchemes;

/// One item's definition: id, group, Chinese and English titles.
pub struct Item {
    pub id: &'static str,
    pub group: &'static str,
    pub zh: &'static str,
    pub en: &'static str,
}

const fn item(id: &'static str, group: &'static str, zh: &'static str, en: &'static str) -> Item {
    Item { id, group, zh, en }
}

/// The twenty items, in the seed's order, under the seed's names.
pub const ITEMS: [Item; 20] = [
    item(
        "infra.redis_cluster",
        "infrastructure",
        "Redis 集群部署（主从+哨兵）",
        "Redis with replicas and Sentinel (or Cluster)",
    ),
    item("infra.mysql_rw_split", "infrastructure", "MySQL 读写分离", "MySQL read/write split"),
    item("infra.cdn_static", "infrastructure", "CDN 静态资源加速", "CDN and static asset caching"),
    item("infra.load_balancing", "infrastructure", "负载均衡配置", "Load balancing"),
    item("code.hot_data_cache", "code", "热点数据缓存", "Hot data cached"),
    item("code.async_processing", "code", "异步非阻塞处理", "Asynchronous, non-blocking processing"),
    item("code.connection_pools", "code", "连接池配置优化", "Connection pools sized"),
    item("code.sql", "code", "SQL 语句优化", "SQL statements optimised"),
    item("security.ddos", "security", "DDoS 防护", "DDoS protection"),
    item("security.cc", "security", "CC 攻击防护", "CC (HTTP flood) protection"),
    item("security.anti_abuse", "security", "接口防刷", "Purchase API abuse protection"),
    item("security.encryption", "security", "数据加密", "Data encryption"),
    item("monitoring.key_metrics", "monitoring", "关键指标监控", "Key metrics monitored"),
    item("monitoring.logs", "monitoring", "日志收集分析", "Log collection and analysis"),
    item("monitoring.alerting", "monitoring", "实时告警系统", "Real-time alerting"),
    item("monitoring.profiling", "monitoring", "性能分析工具", "Performance analysis tools"),
    item("dr.backup", "disaster_recovery", "数据备份策略", "Data backup strategy"),
    item("dr.failover", "disaster_recovery", "故障转移方案", "Failover plan"),
    item("dr.degradation", "disaster_recovery", "降级策略", "Degradation strategy"),
    item("dr.rate_limit_breaker", "disaster_recovery", "限流熔断", "Rate limiting and circuit breaking"),
];

/// What the probes look at.
#[derive(Clone)]
pub struct Probes {
    pub settings: Arc<Settings>,
    pub orders: Orders,
    /// Whether the admin UI's built files are being served.
    pub ui_built: bool,
    pub schemes: Arc<BuyerSchemes>,
    pub anti_bot: AntiBot,
}

/// The masters whose report matches `bad`.
fn nodes_where(
    masters: &[MasterReport<HashMap<String, String>>],
    bad: impl Fn(&HashMap<String, String>) -> bool,
) -> Vec<String> {
    masters.iter().filter(|m| bad(&m.value)).map(|m| m.node.clone()).collect()
}

/// "the master", or "all N masters" in a Cluster.
fn every(masters: usize) -> String {
    if masters == 1 { "the master".into() } else { format!("all {masters} masters") }
}

/// A probe's finding.
type Finding = (CheckStatus, String);

fn found(ok: bool, good: String, bad: CheckStatus, why: String) -> Finding {
    if ok { (CheckStatus::Ok, good) } else { (bad, why) }
}

/// Runs the probe of `id`; `None` means the item is manual.
async fn probe(probes: &Probes, id: &str) -> Option<Finding> {
    Some(match id {
        "infra.redis_cluster" => {
            worst([redis_failover(probes).await, redis_replicas(probes).await, redis_persistence(probes).await])
        }
        "infra.mysql_rw_split" => read_split(probes),
        "infra.cdn_static" => static_assets(probes),
        "infra.load_balancing" => load_balancing(probes).await,
        "code.hot_data_cache" => worst([stock_warm(probes).await, scripts_cached(probes).await]),
        "code.async_processing" => async_orders(probes).await,
        "code.connection_pools" => connection_pools(probes),
        "code.sql" => query_plans(probes).await,
        "security.ddos" => worst([edge_finding(probes).await, flood_limits(probes).await]),
        "security.cc" => worst([rate_limits(probes).await, blacklist_at_edge(probes).await]),
        "security.anti_abuse" => anti_abuse(&probes.anti_bot),
        "security.encryption" => worst([secrets(probes), buyers_over_tls(&probes.schemes)]),
        "monitoring.key_metrics" => {
            worst([(CheckStatus::Ok, "/metrics serves Prometheus text".into()), drift(probes).await])
        }
        "monitoring.logs" => log_lines(probes),
        "monitoring.alerting" => alerting(probes.settings.prometheus_url.as_deref()?).await,
        "monitoring.profiling" => profiling(probes),
        "dr.backup" => worst([last_backup(probes).await, redis_saves(probes).await]),
        "dr.degradation" => degradation(probes).await,
        "dr.rate_limit_breaker" => worst([rate_limits(probes).await, breakers(probes)]),
        _ => return None,
    })
}

/// The worst of several findings, with all their evidence.
fn worst<const N: usize>(findings: [Finding; N]) -> Finding {
    let rank = |s: CheckStatus| match s {
        CheckStatus::Ok => 0,
        CheckStatus::Manual => 1,
        CheckStatus::Warning => 2,
        CheckStatus::Failing => 3,
    };
    let status = findings.iter().map(|f| f.0).max_by_key(|s| rank(*s)).unwrap_or(CheckStatus::Ok);
    let evidence: Vec<String> = findings.into_iter().map(|f| f.1).collect();
    (status, evidence.join("; "))
}

fn redis_down() -> Finding {
    (CheckStatus::Failing, "redis did not answer".to_owned())
}

/// Who replaces a dead master: the sentinels, the cluster, or nobody.
async fn redis_failover(probes: &Probes) -> Finding {
    match probes.orders.store.failover(&probes.settings.redis_url).await {
        Ok(Failover::None) => (CheckStatus::Warning, "a single redis:// server: nobody replaces it if it dies".into()),
        Ok(Failover::Sentinel { quorum_ok, detail }) => {
            found(quorum_ok, format!("sentinel: {detail}"), CheckStatus::Failing, format!("sentinel: {detail}"))
        }
        Ok(Failover::Cluster { state_ok, masters, masters_without_replica }) => found(
            state_ok && masters_without_replica.is_empty(),
            format!("cluster_state:ok, {masters} masters, each with a live replica"),
            CheckStatus::Failing,
            format!(
                "cluster_state:{}, {masters} masters, without a live replica: {masters_without_replica:?}",
                if state_ok { "ok" } else { "fail" }
            ),
        ),
        Err(e) => (CheckStatus::Failing, format!("could not ask: {e}")),
    }
}

/// Each master's connected replicas, and whether a purchase waits for them.
async fn redis_replicas(probes: &Probes) -> Finding {
    let Ok(masters) = probes.orders.store.info("replication").await else { return redis_down() };
    let replicas = |info: &HashMap<String, String>| -> i64 {
        info.get("connected_slaves").and_then(|v| v.parse().ok()).unwrap_or(0)
    };
    let alone = nodes_where(&masters, |info| replicas(info) == 0);
    let counts: Vec<String> = masters.iter().map(|m| format!("{}: replicas {}", m.node, replicas(&m.value))).collect();
    let ack = match probes.settings.replicas_ack() {
        Ok(Some(ack)) => format!("; a purchase waits for {} of them", ack.replicas),
        _ => "; purchases do not wait for them".to_owned(),
    };
    found(
        alone.is_empty(),
        format!("{}{ack}", counts.join(", ")),
        CheckStatus::Warning,
        format!("no connected replica on {alone:?}: a lost master takes its sales with it"),
    )
}

/// AOF on every master, flushed on every write.
async fn redis_persistence(probes: &Probes) -> Finding {
    let store = &probes.orders.store;
    let Ok(masters) = store.info("persistence").await else { return redis_down() };
    let off = nodes_where(&masters, |info| info.get("aof_enabled").map(String::as_str) != Some("1"));
    if !off.is_empty() {
        return (CheckStatus::Failing, format!("aof_enabled:0 on {off:?}: a crash loses sales"));
    }
    // `everysec` can lose the last second of acknowledged sales to a crash, and with
    // them the stock count of units whose order rows exist: the unit sells twice.
    match store.config_get("appendfsync").await {
        Ok(policies) => {
            let lax: Vec<String> =
                policies.iter().filter(|p| p.value != "always").map(|p| format!("{}: {}", p.node, p.value)).collect();
            let status = if policies.iter().all(|p| p.value == "always" || p.value == "everysec") {
                CheckStatus::Warning
            } else {
                CheckStatus::Failing
            };
            found(
                lax.is_empty(),
                format!("aof_enabled:1 and appendfsync always on {}", every(masters.len())),
                status,
                format!(
                    "aof_enabled:1, but appendfsync {lax:?}: a crash can lose acknowledged sales; set appendfsync always"
                ),
            )
        }
        Err(_) => (
            CheckStatus::Warning,
            format!("aof_enabled:1 on {}; CONFIG GET is not allowed, check appendfsync by hand", every(masters.len())),
        ),
    }
}

/// Where order reads go, and how far behind the replica is.
fn read_split(probes: &Probes) -> Finding {
    let db = &probes.orders.db;
    match (db.dialect(), db.replica_lag()) {
        (Dialect::Sqlite, _) => (
            CheckStatus::Warning,
            "SQLite order DB: one file, no replica to read from; production runs MySQL/MariaDB".into(),
        ),
        (Dialect::MySql, None) => (
            CheckStatus::Warning,
            "no read replica (SECKILL_DATABASE_REPLICA_URL): every read goes to the primary".into(),
        ),
        (Dialect::MySql, Some(replica)) => match replica.lag_ms {
            Some(lag) if replica.serving() => (
                CheckStatus::Ok,
                format!(
                    "order lists and counts read from the replica, {lag} ms behind (at most {} ms); writes and \
                     read-your-writes on the primary",
                    replica.max_lag_ms
                ),
            ),
            Some(lag) => (
                CheckStatus::Warning,
                format!(
                    "replica {lag} ms behind (more than {} ms): reads fall back to the primary",
                    replica.max_lag_ms
                ),
            ),
            None => (CheckStatus::Warning, "replica not answering: reads fall back to the primary".into()),
        },
    }
}

fn static_assets(probes: &Probes) -> Finding {
    let page = format!(
        "activity pages cache-control: {} (Envoy's cache keeps them a second; a CDN in front may too)",
        crate::activities::PAGE_CACHE_CONTROL
    );
    found(
        probes.ui_built,
        format!("admin UI assets content-hashed, cache-control immutable; {page}"),
        CheckStatus::Warning,
        format!("admin UI not built (cargo xtask start builds it); {page}"),
    )
}

/// Backends and edges alive now: more than one backend behind the edge spreads the load.
async fn load_balancing(probes: &Probes) -> Finding {
    let store = &probes.orders.store;
    let (Ok(backends), Ok(syncs)) = (crate::instances::alive(store).await, edge::syncs(store).await) else {
        return redis_down();
    };
    let edges = syncs.iter().filter(|s| now_ms() - s.at_ms < crate::instances::ALIVE_MS).count();
    let seen = format!("backends alive: {} {backends:?}, edges synced: {edges}", backends.len());
    if edges == 0 {
        (CheckStatus::Failing, format!("{seen}: buyers are not behind an edge"))
    } else if backends.len() < 2 {
        (CheckStatus::Warning, format!("{seen}: one backend, nothing to balance or fail over to"))
    } else {
        (CheckStatus::Ok, seen)
    }
}

async fn stock_warm(probes: &Probes) -> Finding {
    match warm_report(probes).await {
        Ok((n, cold)) => found(
            cold.is_empty(),
            format!("stock of all {n} activities in Redis"),
            CheckStatus::Failing,
            format!("inventory + sold != total for {cold:?}"),
        ),
        Err(_) => redis_down(),
    }
}

async fn scripts_cached(probes: &Probes) -> Finding {
    match probes.orders.store.scripts_loaded().await {
        Ok(loaded) => found(
            loaded,
            "stock scripts cached (SCRIPT EXISTS)".into(),
            CheckStatus::Warning,
            "stock scripts not cached yet; they load on first use".into(),
        ),
        Err(_) => redis_down(),
    }
}

async fn async_orders(probes: &Probes) -> Finding {
    match backlog(probes).await {
        Ok((consumers, lag)) => found(
            consumers > 0 && lag < 10_000,
            format!("purchases answered from Redis, orders written by {consumers} workers, {lag} waiting"),
            CheckStatus::Warning,
            format!("active order workers: {consumers}, orders waiting: {lag}"),
        ),
        Err(_) => redis_down(),
    }
}

fn connection_pools(probes: &Probes) -> Finding {
    let pool = probes.orders.db.pool_use();
    let use_now = format!(
        "order DB pool of {} ({} open, {} idle); Redis: one multiplexed connection, calls time out after {} ms",
        pool.max, pool.open, pool.idle, probes.settings.redis_timeout_ms
    );
    found(
        pool.open < pool.max || pool.idle > 0,
        use_now.clone(),
        CheckStatus::Warning,
        format!("{use_now}: every connection busy, raise SECKILL_DATABASE_POOL_SIZE"),
    )
}

/// The hot queries' plans, asked of the order DB now.
async fn query_plans(probes: &Probes) -> Finding {
    match probes.orders.db.query_plans().await {
        Ok(plans) => {
            let scanning: Vec<String> =
                plans.iter().filter(|p| !p.indexed).map(|p| format!("{} ({})", p.name, p.plan)).collect();
            found(
                scanning.is_empty(),
                format!("all {} hot queries answered from an index (EXPLAIN)", plans.len()),
                CheckStatus::Failing,
                format!("scanning the orders table: {}", scanning.join("; ")),
            )
        }
        Err(e) => (CheckStatus::Failing, format!("order DB did not answer EXPLAIN: {e}")),
    }
}

/// In-flight limits at the edge: what a flood from many addresses meets.
async fn flood_limits(probes: &Probes) -> Finding {
    match edge::rules_in_force(&probes.orders.store, &probes.orders.db).await {
        Ok(stored) => (
            CheckStatus::Ok,
            format!(
                "at most {} requests in flight per IP and {} in all",
                stored.rules.max_in_flight_per_ip, stored.rules.max_in_flight_total
            ),
        ),
        Err(_) => (CheckStatus::Failing, "edge rules unavailable".into()),
    }
}

/// Rate limits per IP, per user and per route.
async fn rate_limits(probes: &Probes) -> Finding {
    match edge::rules_in_force(&probes.orders.store, &probes.orders.db).await {
        Ok(stored) => (
            CheckStatus::Ok,
            format!(
                "rules v{}: {}/s per IP, {}/s per user, {} route limits",
                stored.version,
                stored.rules.per_ip.rate_per_sec,
                stored.rules.per_user.rate_per_sec,
                stored.rules.routes.len()
            ),
        ),
        Err(_) => (CheckStatus::Failing, "edge rules unavailable".into()),
    }
}

async fn blacklist_at_edge(probes: &Probes) -> Finding {
    match edge_synced(probes).await {
        Ok((true, _)) => (CheckStatus::Ok, "the blacklist reaches the edge with each sync".into()),
        Ok((false, detail)) => (CheckStatus::Warning, format!("blacklist not at an edge: {detail}")),
        Err(_) => (CheckStatus::Failing, "state unavailable".into()),
    }
}

fn anti_abuse(anti_bot: &AntiBot) -> Finding {
    let token = "a purchase needs a one-time token bound to the buyer and the activity, issued only while it is live";
    match anti_bot.bits() {
        0 => (
            CheckStatus::Warning,
            format!("{token}; no proof of work on the token step (switch it on from the Edge page against bots)"),
        ),
        bits => (CheckStatus::Ok, format!("{token}; a proof of work of {bits} zero bits on the token step")),
    }
}

/// Seckill's alert rules in the Prometheus named by `SECKILL_PROMETHEUS_URL`
/// (without it the item is manual: the backend cannot see your alerting).
async fn alerting(prometheus: &str) -> Finding {
    match crate::alerting::alert_rules(prometheus).await {
        Ok(rules) if rules.loaded.is_empty() => (
            CheckStatus::Failing,
            format!(
                "prometheus at {prometheus} has no seckill alert rules: add deploy/prometheus/rules/ to its rule_files"
            ),
        ),
        Ok(rules) if !rules.firing.is_empty() => (
            CheckStatus::Failing,
            format!("{} seckill alert rules loaded; firing: {}", rules.loaded.len(), rules.firing.join(", ")),
        ),
        Ok(rules) if !rules.pending.is_empty() => (
            CheckStatus::Warning,
            format!(
                "{} seckill alert rules loaded; condition true, pending: {}",
                rules.loaded.len(),
                rules.pending.join(", ")
            ),
        ),
        Ok(rules) => (
            CheckStatus::Ok,
            format!("{} seckill alert rules loaded in prometheus, none pending or firing", rules.loaded.len()),
        ),
        Err(e) => (CheckStatus::Failing, e.to_string()),
    }
}

fn profiling(probes: &Probes) -> Finding {
    let results = crate::benchmarks::latest(&probes.settings.bench_dir);
    let last = if results.is_empty() {
        "no benchmark results kept yet".to_owned()
    } else {
        let each: Vec<String> = results
            .iter()
            .map(|r| {
                let failed = r.verdicts.iter().filter(|v| v.starts_with("FAIL")).count();
                let hours = (now_ms() - crate::clock::to_ms(r.ran_at)) / 3_600_000;
                format!("{} {hours} h ago ({} goals, {failed} failed)", r.name, r.verdicts.len())
            })
            .collect();
        format!("last results: {}", each.join(", "))
    };
    (
        CheckStatus::Ok,
        format!(
            "CPU profile of a live backend: GET /admin/api/profile?seconds=10 (pprof format); benchmarks one command \
             away: bash bench/compare.sh, bench/edge.sh, bench/cluster.sh; {last}"
        ),
    )
}

fn log_lines(probes: &Probes) -> Finding {
    found(
        probes.settings.log_format == LogFormat::Json,
        "JSON log lines (SECKILL_LOG_FORMAT=json), one object per line, ready for Loki or Elasticsearch".into(),
        CheckStatus::Warning,
        "text log lines: set SECKILL_LOG_FORMAT=json for a log collector".into(),
    )
}

/// Whether buyers reach the edge over HTTPS, going by the scheme the edge
/// tells (`x-forwarded-proto`) on their requests since start.
fn buyers_over_tls(schemes: &BuyerSchemes) -> Finding {
    let https = schemes.https.load(Ordering::Relaxed);
    let plain = schemes.plain.load(Ordering::Relaxed);
    match (https, plain) {
        (0, 0) => (CheckStatus::Warning, "no buyer request yet to tell whether the edge serves HTTPS".into()),
        (0, _) => (
            CheckStatus::Warning,
            format!("all {plain} buyer requests since start came over plain HTTP: terminate TLS at the edge"),
        ),
        (_, 0) => {
            (CheckStatus::Ok, format!("all {https} buyer requests since start came over HTTPS (TLS at the edge)"))
        }
        _ => (
            CheckStatus::Warning,
            format!(
                "{https} buyer requests came over HTTPS, {plain} over plain HTTP: the edge still serves plain HTTP"
            ),
        ),
    }
}

fn secrets(probes: &Probes) -> Finding {
    found(
        !probes.settings.dev,
        "secrets set explicitly (or from SECKILL_*_FILE)".into(),
        CheckStatus::Failing,
        "dev mode: secrets may be generated".into(),
    )
}

async fn drift(probes: &Probes) -> Finding {
    match drift_report(probes).await {
        Ok(drifts) => found(
            drifts.is_empty(),
            "reconciliation: no drift in any activity".into(),
            CheckStatus::Failing,
            format!("reconciliation: drift in activities {drifts:?}"),
        ),
        Err(_) => redis_down(),
    }
}

/// A backup older than this is stale for a sale.
const BACKUP_MAX_AGE_MS: i64 = 24 * 3_600_000;

/// The last `cargo xtask backup`, as it recorded itself in Redis.
async fn last_backup(probes: &Probes) -> Finding {
    let Ok(last) = probes.orders.store.hgetall(keys::BACKUP_LAST).await else { return redis_down() };
    let at_ms = last.get("at_ms").and_then(|v| v.parse::<i64>().ok());
    match (at_ms, last.get("ok").map(String::as_str)) {
        (Some(at_ms), Some("1")) => {
            let age_min = (now_ms() - at_ms) / 60_000;
            let dir = last.get("dir").cloned().unwrap_or_default();
            found(
                now_ms() - at_ms <= BACKUP_MAX_AGE_MS,
                format!("last backup {age_min} min ago: {dir} (Redis snapshot, order DB, manifest)"),
                CheckStatus::Warning,
                format!("last backup {} h ago: {dir}; run cargo xtask backup before the sale", age_min / 60),
            )
        }
        _ => (CheckStatus::Warning, "no backup recorded: run cargo xtask backup".into()),
    }
}

async fn redis_saves(probes: &Probes) -> Finding {
    let Ok(masters) = probes.orders.store.info("persistence").await else { return redis_down() };
    let field = |info: &HashMap<String, String>, name: &str| info.get(name).cloned().unwrap_or_default();
    let failed = nodes_where(&masters, |info| {
        field(info, "aof_last_bgrewrite_status") != "ok" || field(info, "rdb_last_bgsave_status") != "ok"
    });
    let oldest =
        masters.iter().map(|m| field(&m.value, "rdb_last_save_time").parse::<i64>().unwrap_or(0)).min().unwrap_or(0);
    found(
        failed.is_empty(),
        format!(
            "oldest last redis save {} on {} (rdb and aof rewrite ok)",
            from_ms(oldest * 1000),
            every(masters.len())
        ),
        CheckStatus::Warning,
        format!("a failed rdb save or aof rewrite on {failed:?}"),
    )
}

/// The circuit breakers of Redis and the order DB.
fn breakers(probes: &Probes) -> Finding {
    let settings = probes.settings.breaker();
    let open: Vec<String> = [("redis", probes.orders.store.breaker()), ("order DB", probes.orders.db.breaker())]
        .into_iter()
        .filter_map(|(name, breaker)| match breaker.state() {
            BreakerState::Closed => None,
            BreakerState::Open { retry_after_ms } => Some(format!("{name}: open, next probe in {retry_after_ms} ms")),
            BreakerState::HalfOpen => Some(format!("{name}: half-open, probing")),
        })
        .collect();
    found(
        open.is_empty(),
        format!(
            "circuit breakers of redis and the order DB closed; each opens after {} failures in a row for {} ms",
            settings.failures, settings.open_ms
        ),
        CheckStatus::Failing,
        format!("circuit breaker {}: requests fail fast with 503", open.join(", ")),
    )
}

/// Degraded mode: off, or on and why.
async fn degradation(probes: &Probes) -> Finding {
    match edge::degraded_mode(&probes.orders.store).await {
        Ok(mode) if mode.degraded => (
            CheckStatus::Warning,
            format!(
                "degraded since {}: {}; the edge serves only token and purchase",
                mode.since.map(|t| t.to_string()).unwrap_or_default(),
                mode.reason
            ),
        ),
        Ok(_) => (
            CheckStatus::Ok,
            "degraded mode off; ready to switch on from the Edge page (the edge then serves only token and purchase)"
                .into(),
        ),
        Err(_) => redis_down(),
    }
}

async fn warm_report(probes: &Probes) -> Result<(usize, Vec<u64>), StoreError> {
    let ids = probes.orders.store.activity_ids().await?;
    let mut cold = Vec::new();
    for id in &ids {
        match probes.orders.store.activity(*id).await? {
            Some(a) if a.remaining + a.sold == a.total_stock => {}
            _ => cold.push(*id),
        }
    }
    Ok((ids.len(), cold))
}

/// Order-group consumers active in the last 10 s (the most of any activity), and orders waiting.
pub async fn backlog(probes: &Probes) -> Result<(i64, i64), StoreError> {
    let mut consumers = 0;
    let mut lag = 0;
    for id in probes.orders.store.activity_ids().await? {
        let (len, _) = probes.orders.store.stream_lag(id).await?;
        lag += len;
        consumers = consumers.max(probes.orders.store.live_consumers(id, 10_000).await?);
    }
    Ok((consumers, lag))
}

async fn drift_report(probes: &Probes) -> Result<Vec<u64>, DependencyError> {
    let mut drifts = Vec::new();
    for a in probes.orders.store.activities().await? {
        let r = crate::reconcile::reconcile(&probes.orders, a.id, a.total_stock).await?;
        if r.drift != 0 || !r.invariant_ok {
            drifts.push(a.id);
        }
    }
    Ok(drifts)
}

/// Whether an edge runs the current state, and since when.
pub async fn edge_synced(probes: &Probes) -> Result<(bool, String), DependencyError> {
    let current = edge::state(&probes.orders.store, &probes.orders.db).await?;
    let syncs = edge::syncs(&probes.orders.store).await?;
    let fresh: Vec<_> = syncs.iter().filter(|s| now_ms() - s.at_ms < 10_000).collect();
    if fresh.is_empty() {
        return Ok((false, "no edge synced in the last 10 s".into()));
    }
    let current_ones: Vec<_> = fresh.iter().filter(|s| s.version == current.version).collect();
    if current_ones.is_empty() {
        return Ok((false, format!("{} edges alive, none on the current state {}", fresh.len(), current.version)));
    }
    let names: Vec<&str> = current_ones.iter().map(|s| s.edge_id.as_str()).collect();
    Ok((true, format!("{names:?} on state {} (rules v{})", current.version, current.rules_version)))
}

async fn edge_finding(probes: &Probes) -> Finding {
    match edge_synced(probes).await {
        Ok((synced, detail)) => found(synced, detail.clone(), CheckStatus::Failing, detail),
        Err(_) => (CheckStatus::Failing, "state unavailable".into()),
    }
}

/// The whole checklist as it stands now.
pub async fn checklist(probes: &Probes) -> Result<Vec<ChecklistItem>, DependencyError> {
    let ticks = probes.orders.db.checklist_ticks().await?;
    let mut out = Vec::with_capacity(ITEMS.len());
    for item in &ITEMS {
        let tick = ticks.iter().find(|t| t.0 == item.id);
        let (status, evidence, ticked, ticked_at) = match probe(probes, item.id).await {
            Some((status, evidence)) => (status, evidence, false, None),
            None => match tick {
                Some((_, true, note, at)) => (CheckStatus::Ok, note.clone(), true, Some(from_ms(*at))),
                _ => (CheckStatus::Manual, "not probeable: an operator ticks it with a note".to_owned(), false, None),
            },
        };
        out.push(ChecklistItem {
            id: item.id.into(),
            group: item.group.into(),
            title_zh: item.zh.into(),
            title_en: item.en.into(),
            status,
            evidence,
            ticked,
            ticked_at,
        });
    }
    Ok(out)
}

/// Whether `id` names a manual item (the only ones operators tick).
pub async fn is_manual(probes: &Probes, id: &str) -> bool {
    ITEMS.iter().any(|i| i.id == id) && probe(probes, id).await.is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_groups_of_four_with_unique_ids() {
        let mut ids: Vec<&str> = ITEMS.iter().map(|i| i.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 20);
        for group in ["infrastructure", "code", "security", "monitoring", "disaster_recovery"] {
            assert_eq!(ITEMS.iter().filter(|i| i.group == group).count(), 4, "{group}");
        }
    }
}
