//! What the Redis behind the sale looks like right now, for the checklist:
//! each master's `INFO` and settings, and whether a dead master would be
//! replaced (the sentinels' quorum, the cluster's state and replicas).
//!
//! One server and Sentinel's master answer as one node; in a Cluster every
//! master is asked, since each holds its own share of the activities and a
//! setting that is wrong on one of them loses that share's sales.

use std::collections::HashMap;
use std::time::Duration;

use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};
use redis::{Cmd, FromRedisValue, Value};

use super::client::{RedisConn, Store, StoreError};
use super::redis_url::RedisTarget;

/// One master's answer.
#[derive(Debug, Clone)]
pub struct MasterReport<T> {
    /// `host:port` in a Cluster; `master` otherwise.
    pub node: String,
    pub value: T,
}

/// How a dead master gets replaced, as the Redis side sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failover {
    /// One server: nobody replaces it.
    None,
    /// Sentinel: `SENTINEL CKQUORUM`'s verdict.
    Sentinel { quorum_ok: bool, detail: String },
    /// Cluster: `cluster_state`, and the masters without a live replica.
    Cluster { state_ok: bool, masters: usize, masters_without_replica: Vec<String> },
}

impl Store {
    /// `INFO <section>` of every master, as key/value pairs.
    pub async fn info(&self, section: &'static str) -> Result<Vec<MasterReport<HashMap<String, String>>>, StoreError> {
        let texts: Vec<MasterReport<String>> = self.on_every_master(redis::cmd("INFO").arg(section).clone()).await?;
        Ok(texts
            .into_iter()
            .map(|r| MasterReport {
                node: r.node,
                value: r
                    .value
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                    .collect(),
            })
            .collect())
    }

    /// One setting (`CONFIG GET`) on every master.
    pub async fn config_get(&self, name: &'static str) -> Result<Vec<MasterReport<String>>, StoreError> {
        let pairs: Vec<MasterReport<Vec<String>>> =
            self.on_every_master(redis::cmd("CONFIG").arg("GET").arg(name).clone()).await?;
        pairs
            .into_iter()
            .map(|r| match r.value.get(1) {
                Some(value) => Ok(MasterReport { node: r.node, value: value.clone() }),
                None => Err(StoreError::Reply(format!("CONFIG GET {name} on {}: {:?}", r.node, r.value))),
            })
            .collect()
    }

    async fn on_every_master<T: FromRedisValue + Send + 'static>(
        &self,
        cmd: Cmd,
    ) -> Result<Vec<MasterReport<T>>, StoreError> {
        self.bounded(|c| async move {
            match c {
                RedisConn::Cluster(cluster) => {
                    let routing = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
                    let reply = cluster.route_command(cmd, routing).await?;
                    let mut reports = Vec::new();
                    for (node, value) in node_map(reply)? {
                        reports.push(MasterReport { node, value: T::from_redis_value(value)? });
                    }
                    reports.sort_by(|a, b| a.node.cmp(&b.node));
                    Ok(reports)
                }
                mut one => Ok(vec![MasterReport { node: "master".into(), value: cmd.query_async(&mut one).await? }]),
            }
        })
        .await
    }

    /// Whether a dead master would be replaced, asked of the sentinels or
    /// the cluster; `url` is the one the store was connected with.
    pub async fn failover(&self, url: &str) -> Result<Failover, StoreError> {
        match RedisTarget::parse(url)? {
            RedisTarget::Single(_) => Ok(Failover::None),
            RedisTarget::Sentinel(target) => {
                let timeout = self.timeout();
                let mut last = None;
                for (host, port) in &target.sentinels {
                    match ckquorum(host, *port, &target.master_name, timeout).await {
                        Ok(verdict) => return Ok(verdict),
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.unwrap_or_else(|| StoreError::Reply("no sentinel configured".into())))
            }
            RedisTarget::Cluster(_) => {
                let info: String = self
                    .bounded(|mut c| async move { redis::cmd("CLUSTER").arg("INFO").query_async(&mut c).await })
                    .await?;
                let nodes: String = self
                    .bounded(|mut c| async move { redis::cmd("CLUSTER").arg("NODES").query_async(&mut c).await })
                    .await?;
                let (masters, masters_without_replica) = replicas_of_masters(&nodes);
                Ok(Failover::Cluster {
                    state_ok: info.lines().any(|l| l.trim() == "cluster_state:ok"),
                    masters,
                    masters_without_replica,
                })
            }
        }
    }
}

/// `SENTINEL CKQUORUM <name>` on one sentinel: OK when enough sentinels
/// are reachable to agree that the master is down and to elect a leader.
async fn ckquorum(host: &str, port: u16, name: &str, timeout: Duration) -> Result<Failover, StoreError> {
    let client = redis::Client::open((host, port))?;
    let ask = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("SENTINEL").arg("CKQUORUM").arg(name).query_async::<String>(&mut conn).await
    };
    match tokio::time::timeout(timeout, ask).await {
        Ok(Ok(detail)) => Ok(Failover::Sentinel { quorum_ok: true, detail }),
        // A sentinel that answers NOQUORUM (or names no such master) has spoken.
        Ok(Err(e)) if e.code().is_some() => Ok(Failover::Sentinel { quorum_ok: false, detail: e.to_string() }),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(StoreError::Timeout(timeout)),
    }
}

/// The masters of `CLUSTER NODES`, and those of them without a connected replica.
fn replicas_of_masters(nodes: &str) -> (usize, Vec<String>) {
    let rows: Vec<Vec<&str>> =
        nodes.lines().map(|l| l.split_whitespace().collect()).filter(|f: &Vec<&str>| f.len() >= 8).collect();
    let healthy =
        |flags: &str| !flags.split(',').any(|f| f == "fail" || f == "fail?" || f == "handshake" || f == "noaddr");
    let masters: Vec<&Vec<&str>> =
        rows.iter().filter(|r| r[2].split(',').any(|f| f == "master") && healthy(r[2]) && r.len() > 8).collect();
    let without: Vec<String> = masters
        .iter()
        .filter(|m| !rows.iter().any(|r| r[3] == m[0] && healthy(r[2]) && r[7] == "connected"))
        .map(|m| m[1].split('@').next().unwrap_or(m[1]).to_owned())
        .collect();
    (masters.len(), without)
}

/// A multi-node reply: `node → value`, as a map or a list of pairs.
fn node_map(reply: Value) -> redis::RedisResult<Vec<(String, Value)>> {
    let pairs = match reply {
        Value::Map(pairs) => pairs,
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::Array(mut pair) if pair.len() == 2 => {
                    let value = pair.pop().unwrap_or(Value::Nil);
                    Ok((pair.pop().unwrap_or(Value::Nil), value))
                }
                other => Err(redis::RedisError::from((
                    redis::ErrorKind::UnexpectedReturnType,
                    "expected node/value pairs",
                    format!("{other:?}"),
                ))),
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "expected a reply per node",
                format!("{other:?}"),
            )));
        }
    };
    pairs.into_iter().map(|(node, value)| Ok((String::from_redis_value(node)?, value))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masters_without_a_live_replica_are_named() {
        let nodes = "\
a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460
a2 127.0.0.1:7002@17002 master - 0 0 2 connected 5461-10922
a3 127.0.0.1:7003@17003 master - 0 0 3 connected 10923-16383
b1 127.0.0.1:7004@17004 slave a1 0 0 1 connected
b2 127.0.0.1:7005@17005 slave,fail a2 0 0 2 disconnected
x 127.0.0.1:7006@17006 master,fail - 0 0 4 disconnected 
";
        assert_eq!(replicas_of_masters(nodes), (3, vec!["127.0.0.1:7002".into(), "127.0.0.1:7003".into()]));
    }
}
