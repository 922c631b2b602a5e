//! The seed's production checklist (秒杀系统性能优化检查清单): five groups,
//! twenty items. Whatever the system can see for itself it probes on every
//! request (Redis INFO, the edge's last sync, the reconciliation, the
//! settings); the rest operators tick with a note, kept in the order DB.

use std::collections::HashMap;

use seckill_api::{CheckStatus, ChecklistItem};

use crate::clock::{from_ms, now_ms};
use std::sync::Arc;

use crate::config::Settings;
use crate::db::Dialect;
use crate::dependency::DependencyError;
use crate::edge;
use crate::orders::Orders;
use crate::store::{Failover, MasterReport, StoreError};

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

/// The twenty items, in the seed's order.
pub const ITEMS: [Item; 20] = [
    item("infra.redis_persistence", "infrastructure", "Redis 持久化（AOF）已开启", "Redis persistence (AOF) is on"),
    item("infra.redis_replication", "infrastructure", "Redis 主从复制", "Redis replication"),
    item("infra.redis_ha", "infrastructure", "Redis 哨兵或集群高可用", "Redis Sentinel or Cluster for failover"),
    item("infra.db_pool", "infrastructure", "订单库连接池与生产数据库", "Order DB pool on a production database"),
    item(
        "code.atomic_scripts",
        "code",
        "库存扣减 Lua 脚本已加载（原子操作）",
        "Stock scripts loaded (atomic decrement)",
    ),
    item("code.stock_warm", "code", "库存已预热到 Redis", "Stock pre-warmed into Redis"),
    item("code.async_orders", "code", "异步下单：消费者在线且无积压", "Async orders: workers consuming, no backlog"),
    item("code.static_cache", "code", "静态资源带哈希并长期缓存", "Static assets hashed and cached immutably"),
    item("security.edge_limits", "security", "边缘限流已生效并已同步", "Edge rate limits active and synced"),
    item("security.blacklist", "security", "黑名单已同步到边缘", "Blacklist reached the edge"),
    item("security.secrets", "security", "密钥已配置（非开发模式）", "Secrets configured (not dev mode)"),
    item("security.captcha", "security", "验证码 / 答题防刷", "Captcha or quiz against bots"),
    item("monitoring.metrics", "monitoring", "指标接口 /metrics 可用", "Metrics endpoint /metrics served"),
    item("monitoring.reconciliation", "monitoring", "对账无差异", "Reconciliation shows no drift"),
    item("monitoring.alerts", "monitoring", "告警规则已配置", "Alert rules configured"),
    item(
        "monitoring.circuit_breaker",
        "monitoring",
        "熔断：依赖故障时快速失败",
        "Circuit breaker: fail fast when a dependency is down",
    ),
    item(
        "dr.fsync",
        "disaster_recovery",
        "AOF 刷盘策略（everysec 或 always）",
        "AOF fsync policy (everysec or always)",
    ),
    item("dr.read_replica", "disaster_recovery", "订单库读写分离（只读副本）", "Order DB read replica"),
    item("dr.backup", "disaster_recovery", "最近一次备份成功", "Last backup succeeded"),
    item("dr.drill", "disaster_recovery", "故障演练已完成", "Failover drill done"),
];

/// What the probes look at.
#[derive(Clone)]
pub struct Probes {
    pub settings: Arc<Settings>,
    pub orders: Orders,
    /// Whether the admin UI's built files are being served.
    pub ui_built: bool,
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
    let store = &probes.orders.store;
    let settings = &probes.settings;
    let redis_down = || (CheckStatus::Failing, "redis did not answer".to_owned());
    Some(match id {
        "infra.redis_persistence" => match store.info("persistence").await {
            Ok(masters) => {
                let off = nodes_where(&masters, |info| info.get("aof_enabled").map(String::as_str) != Some("1"));
                found(
                    off.is_empty(),
                    format!("aof_enabled:1 on {}", every(masters.len())),
                    CheckStatus::Failing,
                    format!("aof_enabled:0 on {off:?}: a crash loses sales"),
                )
            }
            Err(_) => redis_down(),
        },
        "infra.redis_replication" => match store.info("replication").await {
            Ok(masters) => {
                let replicas = |info: &HashMap<String, String>| -> i64 {
                    info.get("connected_slaves").and_then(|v| v.parse().ok()).unwrap_or(0)
                };
                let alone = nodes_where(&masters, |info| replicas(info) == 0);
                let counts: Vec<String> =
                    masters.iter().map(|m| format!("{}: replicas {}", m.node, replicas(&m.value))).collect();
                let ack = match settings.replicas_ack() {
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
            Err(_) => redis_down(),
        },
        "infra.redis_ha" => match store.failover(&settings.redis_url).await {
            Ok(Failover::None) => {
                (CheckStatus::Warning, "a single redis:// server: nobody replaces it if it dies".into())
            }
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
        },
        "infra.db_pool" => {
            let pool = probes.orders.db.pool_use();
            let use_now = format!("pool of {} ({} open, {} idle)", pool.max, pool.open, pool.idle);
            found(
                probes.orders.db.dialect() == Dialect::MySql,
                format!("MySQL order DB, {use_now}"),
                CheckStatus::Warning,
                format!("SQLite order DB, {use_now}: fine for development, use MySQL in production"),
            )
        }
        "code.atomic_scripts" => match store.scripts_loaded().await {
            Ok(loaded) => found(
                loaded,
                "SCRIPT EXISTS: all loaded".into(),
                CheckStatus::Warning,
                "not cached yet; they load on first use".into(),
            ),
            Err(_) => redis_down(),
        },
        "code.stock_warm" => match warm_report(probes).await {
            Ok((n, cold)) => found(
                cold.is_empty(),
                format!("activities: {n}, all warmed"),
                CheckStatus::Failing,
                format!("inventory + sold != total for {cold:?}"),
            ),
            Err(_) => redis_down(),
        },
        "code.async_orders" => match backlog(probes).await {
            Ok((consumers, lag)) => found(
                consumers > 0 && lag < 10_000,
                format!("active consumers: {consumers}, orders waiting: {lag}"),
                CheckStatus::Warning,
                format!("active consumers: {consumers}, orders waiting: {lag}"),
            ),
            Err(_) => redis_down(),
        },
        "code.static_cache" => {
            let built = probes.ui_built;
            found(
                built,
                "admin UI assets content-hashed, cache-control immutable".into(),
                CheckStatus::Warning,
                "admin UI not built (cargo xtask start builds it)".into(),
            )
        }
        "security.edge_limits" | "security.blacklist" => edge_finding(probes, id).await,
        "security.secrets" => found(
            !settings.dev,
            "secrets set explicitly".into(),
            CheckStatus::Failing,
            "dev mode: secrets may be generated".into(),
        ),
        "monitoring.metrics" => (CheckStatus::Ok, "/metrics serves Prometheus text".into()),
        "monitoring.reconciliation" => match drift_report(probes).await {
            Ok(drifts) => found(
                drifts.is_empty(),
                "no drift in any activity".into(),
                CheckStatus::Failing,
                format!("drift in activities {drifts:?}"),
            ),
            Err(_) => redis_down(),
        },
        "monitoring.circuit_breaker" => match store.ping().await {
            Ok(()) => (
                CheckStatus::Ok,
                format!(
                    "closed: redis answers; calls time out after {} ms with `unavailable`",
                    settings.redis_timeout_ms
                ),
            ),
            Err(_) => (CheckStatus::Failing, "open: redis is not answering; requests fail fast with 503".into()),
        },
        "dr.fsync" => match store.info("persistence").await {
            Ok(masters) if masters.iter().any(|m| m.value.get("aof_enabled").map(String::as_str) != Some("1")) => {
                (CheckStatus::Failing, "AOF is off".into())
            }
            // `everysec` can lose the last second of acknowledged sales to a crash, and with
            // them the stock count of units whose order rows exist: the unit sells twice.
            Ok(_) => match store.config_get("appendfsync").await {
                Ok(policies) => {
                    let lax: Vec<String> = policies
                        .iter()
                        .filter(|p| p.value != "always")
                        .map(|p| format!("{}: {}", p.node, p.value))
                        .collect();
                    let status = if policies.iter().all(|p| p.value == "always" || p.value == "everysec") {
                        CheckStatus::Warning
                    } else {
                        CheckStatus::Failing
                    };
                    found(
                        lax.is_empty(),
                        format!(
                            "appendfsync always on {}: no acknowledged sale is lost to a crash",
                            every(policies.len())
                        ),
                        status,
                        format!("appendfsync {lax:?}: a crash can lose acknowledged sales; set appendfsync always"),
                    )
                }
                Err(_) => (CheckStatus::Warning, "CONFIG GET is not allowed; check appendfsync by hand".into()),
            },
            Err(_) => redis_down(),
        },
        "dr.backup" => match store.info("persistence").await {
            Ok(masters) => {
                let field = |info: &HashMap<String, String>, name: &str| info.get(name).cloned().unwrap_or_default();
                let failed = nodes_where(&masters, |info| {
                    field(info, "aof_last_bgrewrite_status") != "ok" || field(info, "rdb_last_bgsave_status") != "ok"
                });
                let oldest = masters
                    .iter()
                    .map(|m| field(&m.value, "rdb_last_save_time").parse::<i64>().unwrap_or(0))
                    .min()
                    .unwrap_or(0);
                found(
                    failed.is_empty(),
                    format!(
                        "oldest last redis save {} on {} (rdb and aof rewrite ok); back up the order DB separately",
                        from_ms(oldest * 1000),
                        every(masters.len())
                    ),
                    CheckStatus::Warning,
                    format!("a failed rdb save or aof rewrite on {failed:?}"),
                )
            }
            Err(_) => redis_down(),
        },
        _ => return None,
    })
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

async fn edge_finding(probes: &Probes, id: &str) -> Finding {
    match edge_synced(probes).await {
        Ok((true, detail)) => (CheckStatus::Ok, detail),
        Ok((false, detail)) if id == "security.blacklist" => (CheckStatus::Warning, detail),
        Ok((false, detail)) => (CheckStatus::Failing, detail),
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
