//! Replicated Redis on loopback, for the failover tests of issue #15: a
//! Sentinel topology ([`SentinelRedis`]: a master, two replicas, three
//! sentinels) and a Redis Cluster ([`RedisCluster`]: three masters, three
//! replicas). Every node is a real `redis-server` running the shipped
//! `redis/*.conf` template, rendered into a directory of its own (its config
//! copy `redis.conf`, its log `server.log`, its AOF).
//!
//! Why a module of its own: a single [`crate::RedisServer`] cannot lose its
//! master and carry on. These can, for real (`kill -9`), and they tell the
//! test who the master is now, as Sentinel and the cluster see it.
//!
//! Every wait is a poll with a deadline whose error carries the tail of the
//! logs concerned; every process is killed, and its directory removed, when
//! its handle drops.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use redis::InfoDict;

use crate::{TempDir, free_port, root};

/// How many fresh ports a new node tries when another process takes its port before it binds it.
const PORT_ATTEMPTS: usize = 5;
/// How long a node may take to answer once started (it replays its AOF first).
const NODE_READY: Duration = Duration::from_secs(20);
/// How long a topology may take to settle once its processes answer.
const SETTLE: Duration = Duration::from_secs(30);

/// A master, two replicas and three sentinels (quorum 2) on loopback.
pub struct SentinelRedis {
    data: Vec<Node>,
    sentinels: Vec<Node>,
    /// Declared after the nodes, so it is removed once they are dead.
    _dir: TempDir,
}

impl SentinelRedis {
    /// The name the sentinels know the master by.
    pub const MASTER_NAME: &'static str = "seckill";

    /// Starts the master, then its replicas, waits until both have synced,
    /// then starts the sentinels and waits until each one sees the two
    /// replicas (healthy) and the two other sentinels: from then on, a dead
    /// master is failed over.
    pub fn start() -> anyhow::Result<Self> {
        let dir = TempDir::new("redis-sentinel");
        let master = Node::launch(&dir.0, &Spec::new("node.conf"))?;
        let replicaof = format!(
            "\n# Appended by the test support: this node starts as a replica.\nreplicaof 127.0.0.1 {}\n",
            master.port
        );
        let mut data = vec![master];
        for _ in 0..2 {
            data.push(Node::launch(&dir.0, &Spec { extra: replicaof.clone(), ..Spec::new("node.conf") })?);
        }
        poll(
            SETTLE,
            "both replicas to show master_link_status:up",
            || data[1..].iter().try_for_each(|replica| replication_up(replica.port)),
            || logs(&data),
        )?;

        let values = vec![("MASTER_NAME", Self::MASTER_NAME.to_owned()), ("MASTER_PORT", data[0].port.to_string())];
        let mut sentinels = Vec::new();
        for _ in 0..3 {
            sentinels.push(Node::launch(
                &dir.0,
                &Spec { values: values.clone(), sentinel: true, ..Spec::new("sentinel.conf") },
            )?);
        }
        poll(
            SETTLE,
            "every sentinel to see 2 healthy replicas and 2 other sentinels",
            || sentinels.iter().try_for_each(|s| sentinel_ready(s.port)),
            || logs(&sentinels),
        )?;
        Ok(Self { data, sentinels, _dir: dir })
    }

    /// What a client is given: `redis+sentinel://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3/seckill`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self.sentinels.iter().map(|s| format!("127.0.0.1:{}", s.port)).collect();
        format!("redis+sentinel://{}/{}", hosts.join(","), Self::MASTER_NAME)
    }

    /// The master's port, as the first live sentinel that answers names it.
    pub fn master_port(&self) -> anyhow::Result<u16> {
        let mut errors = Vec::new();
        for sentinel in self.sentinels.iter().filter(|s| s.is_running()) {
            match master_addr(sentinel.port) {
                Ok(port) => return Ok(port),
                Err(e) => errors.push(format!("sentinel :{}: {e:#}", sentinel.port)),
            }
        }
        bail!("no sentinel named the master: {}", errors.join("; "))
    }

    /// `redis://127.0.0.1:port/`: a plain connection to one node.
    pub fn node_url(&self, port: u16) -> String {
        node_url(port)
    }

    /// `kill -9` of a data node or a sentinel; returns once it is gone.
    pub fn kill_node(&mut self, port: u16) {
        self.node_mut(port).kill();
    }

    /// Starts a killed node again on the same port, from its directory (its
    /// AOF, and its config as Sentinel last rewrote it), and waits until it
    /// answers. An old master comes back as a master: the sentinels turn it
    /// into a replica of the new one ([`SentinelRedis::wait_for_replica`]).
    pub fn restart_node(&mut self, port: u16) -> anyhow::Result<()> {
        self.node_mut(port).run().map_err(StartError::into_anyhow)
    }

    /// Polls until every live sentinel names the same master other than
    /// `old`, and that node answers `ROLE` as a master; returns its port.
    pub fn wait_for_new_master(&self, old: u16, deadline: Duration) -> anyhow::Result<u16> {
        let what = format!("the sentinels to elect a master other than :{old}");
        let check = || {
            let mut named = None;
            for sentinel in self.sentinels.iter().filter(|s| s.is_running()) {
                let port = master_addr(sentinel.port)?;
                ensure!(port != old, "sentinel :{} still names :{old}", sentinel.port);
                ensure!(named.is_none_or(|n| n == port), "the sentinels name :{} and :{port}", named.unwrap_or(0));
                named = Some(port);
            }
            let port = named.context("no sentinel is running")?;
            ensure!(role(port)? == "master", ":{port} does not answer ROLE as a master yet");
            Ok(port)
        };
        poll(deadline, &what, check, || logs(self.sentinels.iter().chain(&self.data)))
    }

    /// Polls until the node on `port` is a replica of `master` with its link up (synced).
    pub fn wait_for_replica(&self, port: u16, master: u16, deadline: Duration) -> anyhow::Result<()> {
        let check = || {
            let info: InfoDict = query(port, redis::cmd("INFO").arg("replication"))?;
            ensure!(info.get::<u16>("master_port") == Some(master), ":{port} is not a replica of :{master}");
            replication_up(port)
        };
        poll(deadline, &format!(":{port} to become a synced replica of :{master}"), check, || {
            logs(self.data.iter().chain(&self.sentinels))
        })
    }

    /// The sentinels' ports, as [`SentinelRedis::url`] lists them.
    pub fn sentinel_ports(&self) -> Vec<u16> {
        self.sentinels.iter().map(|s| s.port).collect()
    }

    /// The master's and the replicas' ports, in the order they were started.
    pub fn data_ports(&self) -> Vec<u16> {
        self.data.iter().map(|n| n.port).collect()
    }

    fn node_mut(&mut self, port: u16) -> &mut Node {
        let node = self.data.iter_mut().chain(&mut self.sentinels).find(|n| n.port == port);
        node.unwrap_or_else(|| panic!("no node of this topology listens on :{port}"))
    }
}

/// Three masters, each with one replica, on loopback.
pub struct RedisCluster {
    nodes: Vec<Node>,
    /// The slots each node killed by [`RedisCluster::kill_node`] served then.
    killed_slots: HashMap<u16, Vec<(u16, u16)>>,
    /// Declared after the nodes, so it is removed once they are dead.
    dir: TempDir,
}

impl RedisCluster {
    /// Starts six nodes, makes a cluster of them (`redis-cli --cluster
    /// create … --cluster-replicas 1`), and waits until every node reports
    /// `cluster_state:ok` with all 16384 slots served, and every master has
    /// its replica synced.
    pub fn start() -> anyhow::Result<Self> {
        let dir = TempDir::new("redis-cluster");
        let mut nodes = Vec::new();
        for _ in 0..6 {
            nodes.push(Node::launch(&dir.0, &Spec { cluster_bus: true, ..Spec::new("cluster-node.conf") })?);
        }
        let cluster = Self { nodes, killed_slots: HashMap::new(), dir };
        cluster.create()?;
        let ready = || {
            cluster.nodes.iter().try_for_each(|n| {
                cluster_ok(n.port, 6)?;
                replication_up(n.port)?;
                // Each node learns the others' roles by gossip, after the fact:
                // every view must show the three replicas as replicas.
                let replicas = cluster_nodes(n.port)?.iter().filter(|v| !v.is_master() && !v.is_failing()).count();
                ensure!(replicas == 3, ":{} sees {replicas} replicas of 3", n.port);
                Ok(())
            })
        };
        poll(SETTLE, "every node to report cluster_state:ok and its replication link up", ready, || {
            logs(&cluster.nodes)
        })?;
        Ok(cluster)
    }

    /// `redis-cli --cluster create`, given 60 s.
    fn create(&self) -> anyhow::Result<()> {
        let log_path = self.dir.0.join("cluster-create.log");
        let log = std::fs::File::create(&log_path)?;
        let mut child = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)))
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting redis-cli (is it installed?)")?;
        let output = || std::fs::read_to_string(&log_path).unwrap_or_default();
        let exited = poll(
            Duration::from_secs(60),
            "redis-cli --cluster create to finish",
            || child.try_wait()?.context("still running"),
            || format!("\n--- redis-cli ---\n{}{}", output(), logs(&self.nodes)),
        );
        if exited.is_err() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let status = exited?;
        ensure!(status.success(), "redis-cli --cluster create failed ({status}):\n{}", output());
        Ok(())
    }

    /// Every node, comma-separated: `redis://127.0.0.1:p1/,redis://127.0.0.1:p2/,…`.
    pub fn url(&self) -> String {
        self.nodes.iter().map(|n| node_url(n.port)).collect::<Vec<_>>().join(",")
    }

    /// The ports of the masters that serve slots and are not failing, as a live node sees them.
    pub fn masters(&self) -> anyhow::Result<Vec<u16>> {
        let mut masters: Vec<u16> = cluster_nodes(self.live_port()?)?
            .into_iter()
            .filter(|n| n.is_master() && !n.is_failing() && !n.slots.is_empty())
            .map(|n| n.port)
            .collect();
        masters.sort_unstable();
        Ok(masters)
    }

    /// The port of the master that serves `key`'s slot, as a live node sees it.
    pub fn master_of_key(&self, key: &str) -> anyhow::Result<u16> {
        let port = self.live_port()?;
        let slot: u16 = query(port, redis::cmd("CLUSTER").arg("KEYSLOT").arg(key))?;
        let owner = cluster_nodes(port)?.into_iter().find(|n| n.is_master() && n.serves(slot));
        Ok(owner.with_context(|| format!("no master serves slot {slot} (of {key:?}) as :{port} sees it"))?.port)
    }

    /// `kill -9` of a node; returns once it is gone. A master's slots are
    /// noted first, for [`RedisCluster::wait_for_failover`].
    pub fn kill_node(&mut self, port: u16) {
        let mine = cluster_nodes(port).ok().and_then(|nodes| nodes.into_iter().find(|n| n.flags.contains("myself")));
        if let Some(me) = mine.filter(|me| me.is_master() && !me.slots.is_empty()) {
            self.killed_slots.insert(port, me.slots);
        }
        let node = self.nodes.iter_mut().find(|n| n.port == port);
        node.unwrap_or_else(|| panic!("no node of this cluster listens on :{port}")).kill();
    }

    /// Starts a killed node again on the same port, from its directory (its
    /// AOF and nodes.conf), and waits until it answers. An old master whose
    /// slots were taken over rejoins as a replica of the node that took them
    /// ([`RedisCluster::wait_for_replica`]).
    pub fn restart_node(&mut self, port: u16) -> anyhow::Result<()> {
        let node = self.nodes.iter_mut().find(|n| n.port == port);
        node.unwrap_or_else(|| panic!("no node of this cluster listens on :{port}"))
            .run()
            .map_err(StartError::into_anyhow)
    }

    /// Polls until the node on `port` is a replica of `master` with its link up (synced).
    pub fn wait_for_replica(&self, port: u16, master: u16, deadline: Duration) -> anyhow::Result<()> {
        let check = || {
            let info: InfoDict = query(port, redis::cmd("INFO").arg("replication"))?;
            ensure!(info.get::<u16>("master_port") == Some(master), ":{port} is not a replica of :{master}");
            replication_up(port)
        };
        poll(deadline, &format!(":{port} to become a synced replica of :{master}"), check, || logs(&self.nodes))
    }

    /// Polls until the slots `old_master` served when it was killed are served
    /// by one live master (its promoted replica) in every live node's view,
    /// and every live node reports `cluster_state:ok` with all 16384 slots
    /// served; returns the new master's port.
    pub fn wait_for_failover(&self, old_master: u16, deadline: Duration) -> anyhow::Result<u16> {
        let slots = self
            .killed_slots
            .get(&old_master)
            .with_context(|| format!(":{old_master} served no slots when kill_node killed it"))?;
        let live: Vec<&Node> = self.nodes.iter().filter(|n| n.is_running()).collect();
        let check = || {
            let mut new_master = None;
            for node in &live {
                cluster_ok(node.port, 6)?;
                let view = cluster_nodes(node.port)?;
                for &(first, last) in slots {
                    let owner = view.iter().find(|n| n.is_master() && n.serves(first) && n.serves(last));
                    let owner = owner.with_context(|| format!("no master serves slots {first}-{last}"))?;
                    ensure!(owner.port != old_master, ":{} still sees :{old_master} serve its slots", node.port);
                    ensure!(new_master.is_none_or(|p| p == owner.port), "the nodes disagree on the new master");
                    new_master = Some(owner.port);
                }
            }
            let port = new_master.context("no live node")?;
            ensure!(role(port)? == "master", ":{port} does not answer ROLE as a master yet");
            Ok(port)
        };
        poll(deadline, &format!("a replica to take over the slots of :{old_master}"), check, || logs(&self.nodes))
    }

    fn live_port(&self) -> anyhow::Result<u16> {
        Ok(self.nodes.iter().find(|n| n.is_running()).context("every node of the cluster is down")?.port)
    }
}

/// What a new node runs: a template from `redis/`, its placeholders beyond
/// `PORT` and `DIR`, and lines appended to its copy.
#[derive(Clone)]
struct Spec {
    template: &'static str,
    values: Vec<(&'static str, String)>,
    extra: String,
    /// Runs with `--sentinel`.
    sentinel: bool,
    /// Needs port + 10000 free too.
    cluster_bus: bool,
}

impl Spec {
    fn new(template: &'static str) -> Self {
        Self { template, values: Vec::new(), extra: String::new(), sentinel: false, cluster_bus: false }
    }
}

/// One `redis-server` (data node, cluster node or sentinel) and its
/// directory; killed, and its directory removed, on drop.
struct Node {
    port: u16,
    dir: PathBuf,
    sentinel: bool,
    child: Option<Child>,
}

/// Why a start failed: a port race (worth a fresh port) or anything else.
enum StartError {
    PortTaken(String),
    Other(anyhow::Error),
}

impl StartError {
    fn into_anyhow(self) -> anyhow::Error {
        match self {
            Self::PortTaken(log) => anyhow!("the port was taken by another process:\n{log}"),
            Self::Other(e) => e,
        }
    }
}

impl<E: Into<anyhow::Error>> From<E> for StartError {
    fn from(e: E) -> Self {
        Self::Other(e.into())
    }
}

impl Node {
    /// Renders `spec` into a new directory under `parent` and starts it; when
    /// another process takes its port before it binds it ([`free_port`] is
    /// only a port that was free a moment ago), starts over on a fresh port.
    fn launch(parent: &Path, spec: &Spec) -> anyhow::Result<Self> {
        let template_path = root().join("redis").join(spec.template);
        let template =
            std::fs::read_to_string(&template_path).with_context(|| format!("reading {}", template_path.display()))?;
        for attempt in 1.. {
            let port = if spec.cluster_bus { free_cluster_port() } else { free_port() };
            let dir = parent.join(format!("{}-{port}", spec.template.trim_end_matches(".conf")));
            std::fs::create_dir_all(&dir)?;
            let mut config = seckill_api::placeholders::fill(&template, |name| match name {
                "PORT" => Some(port.to_string()),
                "DIR" => Some(dir.display().to_string()),
                _ => spec.values.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone()),
            })
            .map_err(|e| anyhow!("redis/{}: {e}", spec.template))?;
            config.push_str(&spec.extra);
            std::fs::write(dir.join("redis.conf"), config)?;
            let mut node = Self { port, dir, sentinel: spec.sentinel, child: None };
            match node.run() {
                Ok(()) => return Ok(node),
                Err(StartError::PortTaken(log)) if attempt < PORT_ATTEMPTS => {
                    eprintln!(
                        "redis-server: port {port} was taken before it bound it (attempt {attempt}), retrying:\n{log}"
                    );
                }
                Err(e) => return Err(e.into_anyhow().context(format!("starting redis/{}", spec.template))),
            }
        }
        unreachable!("the loop returns")
    }

    /// Starts the process on the node's port from its config copy, and waits
    /// until it answers as itself (not another process on the port) with its
    /// AOF loaded.
    fn run(&mut self) -> Result<(), StartError> {
        if self.is_running() {
            return Err(anyhow!("redis-server on :{} is already running", self.port).into());
        }
        let log = OpenOptions::new().create(true).append(true).open(self.dir.join("server.log"))?;
        let mut command = Command::new("redis-server");
        command.arg(self.dir.join("redis.conf"));
        if self.sentinel {
            command.arg("--sentinel");
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting redis-server (is it installed? `cargo xtask test` installs it)")?;
        let pid = child.id();
        let child = self.child.insert(child);
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                self.child = None;
                let log = self.log_tail();
                if log.contains("Address already in use") {
                    return Err(StartError::PortTaken(log));
                }
                return Err(anyhow!("redis-server on :{} exited at start ({status}):\n{log}", self.port).into());
            }
            if let Ok(info) = query::<InfoDict>(self.port, &redis::cmd("INFO"))
                && info.get::<u32>("process_id") == Some(pid)
                && info.get::<u8>("loading").unwrap_or(0) == 0
            {
                return Ok(());
            }
            if start.elapsed() > NODE_READY {
                let log = self.log_tail();
                return Err(
                    anyhow!("redis-server on :{} did not answer within {NODE_READY:?}:\n{log}", self.port).into()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL, and waits until the process is gone.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The last lines of the node's log.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(25)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The tails of the nodes' logs, for an error message.
fn logs<'a>(nodes: impl IntoIterator<Item = &'a Node>) -> String {
    nodes.into_iter().map(|n| format!("\n--- {} ---\n{}", n.dir.display(), n.log_tail())).collect()
}

/// Runs `check` every 50 ms until it succeeds; after `deadline`, fails with
/// `what`, the reason `check` last gave and `logs()`.
fn poll<T>(
    deadline: Duration,
    what: &str,
    mut check: impl FnMut() -> anyhow::Result<T>,
    logs: impl FnOnce() -> String,
) -> anyhow::Result<T> {
    let start = Instant::now();
    loop {
        match check() {
            Ok(value) => return Ok(value),
            Err(e) if start.elapsed() > deadline => {
                bail!("timed out after {deadline:?} waiting for {what}: {e:#}{}", logs())
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn node_url(port: u16) -> String {
    format!("redis://127.0.0.1:{port}/")
}

/// A port that was free a moment ago, with port + 10000 (a cluster node's bus) free too.
fn free_cluster_port() -> u16 {
    for _ in 0..1000 {
        let port = free_port();
        if port <= 55535 && TcpListener::bind(("127.0.0.1", port + 10000)).is_ok() {
            return port;
        }
    }
    panic!("found no free port p with p + 10000 free in 1000 tries")
}

/// `cmd` on a fresh connection to `127.0.0.1:port`, with short timeouts.
fn query<T: redis::FromRedisValue>(port: u16, cmd: &redis::Cmd) -> anyhow::Result<T> {
    let mut conn = redis::Client::open(node_url(port))?.get_connection_with_timeout(Duration::from_secs(1))?;
    conn.set_read_timeout(Some(Duration::from_secs(2)))?;
    conn.set_write_timeout(Some(Duration::from_secs(2)))?;
    cmd.query(&mut conn).with_context(|| format!("on :{port}"))
}

/// The first element of `ROLE`: `master`, `slave` or `sentinel`.
fn role(port: u16) -> anyhow::Result<String> {
    let reply: Vec<redis::Value> = query(port, &redis::cmd("ROLE"))?;
    let first = reply.into_iter().next().context("an empty ROLE reply")?;
    Ok(redis::from_redis_value(first)?)
}

/// Ok if the node on `port` is a master with a replica online, or a replica
/// with its link to its master up.
fn replication_up(port: u16) -> anyhow::Result<()> {
    let info: InfoDict = query(port, redis::cmd("INFO").arg("replication"))?;
    match info.get::<String>("role").as_deref() {
        Some("master") => {
            let replica = info.get::<String>("slave0").unwrap_or_default();
            ensure!(replica.contains("state=online"), "master :{port} has no replica online");
        }
        Some("slave") => {
            let link = info.get::<String>("master_link_status");
            ensure!(link.as_deref() == Some("up"), "replica :{port} has master_link_status {link:?}");
        }
        other => bail!(":{port} has role {other:?}"),
    }
    Ok(())
}

/// The master's port as the sentinel on `port` names it.
fn master_addr(port: u16) -> anyhow::Result<u16> {
    let cmd = redis::cmd("SENTINEL").arg("GET-MASTER-ADDR-BY-NAME").arg(SentinelRedis::MASTER_NAME).clone();
    let addr: Option<(String, u16)> = query(port, &cmd)?;
    Ok(addr.with_context(|| format!("sentinel :{port} knows no master {}", SentinelRedis::MASTER_NAME))?.1)
}

/// Ok once the sentinel on `port` sees two replicas it has heard from
/// (`master-link-status ok`, no down flags) and the two other sentinels.
fn sentinel_ready(port: u16) -> anyhow::Result<()> {
    let sentinel = |sub: &str| redis::cmd("SENTINEL").arg(sub).arg(SentinelRedis::MASTER_NAME).clone();
    let replicas: Vec<HashMap<String, String>> = query(port, &sentinel("REPLICAS"))?;
    let healthy = replicas
        .iter()
        .filter(|r| r.get("flags").is_some_and(|f| f == "slave"))
        .filter(|r| r.get("master-link-status").is_some_and(|s| s == "ok"))
        .count();
    ensure!(healthy == 2, "sentinel :{port} sees {healthy} healthy replicas of 2");
    let others: Vec<HashMap<String, String>> = query(port, &sentinel("SENTINELS"))?;
    ensure!(others.len() == 2, "sentinel :{port} sees {} other sentinels of 2", others.len());
    Ok(())
}

/// Ok once the cluster node on `port` knows `nodes` nodes, reports
/// `cluster_state:ok` and sees all 16384 slots served by healthy masters.
fn cluster_ok(port: u16, nodes: u32) -> anyhow::Result<()> {
    let info: InfoDict = query(port, redis::cmd("CLUSTER").arg("INFO"))?;
    let state = info.get::<String>("cluster_state");
    ensure!(state.as_deref() == Some("ok"), ":{port} reports cluster_state {state:?}");
    let slots_ok = info.get::<u32>("cluster_slots_ok");
    ensure!(slots_ok == Some(16384), ":{port} reports cluster_slots_ok {slots_ok:?}");
    let known = info.get::<u32>("cluster_known_nodes");
    ensure!(known == Some(nodes), ":{port} knows {known:?} nodes of {nodes}");
    Ok(())
}

/// One line of `CLUSTER NODES`: a node as the node asked sees it.
struct ClusterNode {
    port: u16,
    flags: String,
    /// Inclusive ranges of the slots it serves.
    slots: Vec<(u16, u16)>,
}

impl ClusterNode {
    fn is_master(&self) -> bool {
        self.flags.split(',').any(|f| f == "master")
    }

    /// Marked `fail` or `fail?`.
    fn is_failing(&self) -> bool {
        self.flags.split(',').any(|f| f.starts_with("fail"))
    }

    fn serves(&self, slot: u16) -> bool {
        self.slots.iter().any(|&(first, last)| (first..=last).contains(&slot))
    }
}

/// `CLUSTER NODES` of the node on `port`: `<id> <ip:port@bus[,hostname]> <flags>
/// <master> <ping> <pong> <epoch> <link> <slot or first-last>…`, with slots in
/// migration (`[…]`) left out.
fn cluster_nodes(port: u16) -> anyhow::Result<Vec<ClusterNode>> {
    let text: String = query(port, redis::cmd("CLUSTER").arg("NODES"))?;
    let parse = |line: &str| -> Option<ClusterNode> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let addr = fields.get(1)?.split(['@', ',']).next()?;
        let port = addr.rsplit_once(':')?.1.parse().ok()?;
        let mut slots = Vec::new();
        for slot in fields.get(8..).unwrap_or_default().iter().filter(|s| !s.starts_with('[')) {
            let (first, last) = slot.split_once('-').unwrap_or((slot, slot));
            slots.push((first.parse().ok()?, last.parse().ok()?));
        }
        Some(ClusterNode { port, flags: fields.get(2)?.to_string(), slots })
    };
    text.lines().map(|line| parse(line).with_context(|| format!("unexpected CLUSTER NODES line {line:?}"))).collect()
}
