//! The private Redis of `cargo xtask start`, in the shape asked for: one
//! server, a master with two replicas and three sentinels, or a Cluster of
//! three masters with a replica each. Every node runs the shipped
//! `redis/*.conf`, filled for loopback ports, in a directory of its own under
//! `./var/`; a second start finds the rendered files and the data and reuses
//! them (Sentinel and the Cluster rewrite their files as they fail over), so
//! nothing sold is lost and `rm -rf var` starts over.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::deps::root;

/// Which Redis `cargo xtask start` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Topology {
    /// One redis-server (AOF, fsync always).
    Single,
    /// A master, two replicas and three sentinels: `redis+sentinel://`.
    Sentinel,
    /// Three masters and three replicas: a Redis Cluster.
    Cluster,
}

/// The master name the sentinels watch.
pub const MASTER_NAME: &str = "seckill";

/// Started Redis processes, and the `SECKILL_REDIS_URL` that reaches them.
pub struct Started<'a> {
    pub url: String,
    pub children: Vec<(&'static str, Child)>,
    /// Set by Ctrl-C: stop waiting.
    stop: &'a AtomicBool,
}

/// Starts `topology` on `base_port` and up (sentinels on `base_port + 20000`
/// and up; cluster buses on each port + 10000), under `var`.
pub fn start<'a>(topology: Topology, base_port: u16, var: &Path, stop: &'a AtomicBool) -> anyhow::Result<Started<'a>> {
    let mut started = Started { url: String::new(), children: Vec::new(), stop };
    let result = match topology {
        Topology::Single => single(&mut started, base_port, var),
        Topology::Sentinel => sentinel(&mut started, base_port, var),
        Topology::Cluster => cluster(&mut started, base_port, var),
    };
    if let Err(e) = result {
        for (_, child) in &mut started.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        return Err(e);
    }
    Ok(started)
}

fn single(started: &mut Started<'_>, port: u16, var: &Path) -> anyhow::Result<()> {
    let dir = var.join("redis");
    std::fs::create_dir_all(&dir)?;
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        // Every acknowledged sale on disk before its answer: a crash must not resell a unit.
        .args(["--appendonly", "yes", "--appendfsync", "always", "--save", ""])
        .arg("--dir")
        .arg(&dir)
        .arg("--logfile")
        .arg(var.join("redis.log"))
        .stdout(Stdio::null())
        .spawn()
        .context("starting redis-server")?;
    started.children.push(("redis-server", child));
    wait_for(started, &format!("redis-server on {port} to answer PING"), || {
        cli(port, &["PING"]).is_ok_and(|r| r == "PONG")
    })?;
    started.url = format!("redis://127.0.0.1:{port}/");
    Ok(())
}

fn sentinel(started: &mut Started<'_>, base: u16, var: &Path) -> anyhow::Result<()> {
    let nodes = [base, base + 1, base + 2];
    let sentinels = [base + 20000, base + 20001, base + 20002];
    for (i, port) in nodes.into_iter().enumerate() {
        let dir = var.join(format!("redis-sentinel/node-{port}"));
        let replicaof = if i == 0 { String::new() } else { format!("\nreplicaof 127.0.0.1 {base}\n") };
        let conf = render_once(&dir, "redis.conf", "redis/node.conf", port, &[], &replicaof)?;
        spawn(started, if i == 0 { "redis master" } else { "redis replica" }, &dir, &[conf.as_os_str()])?;
    }
    for port in sentinels {
        let dir = var.join(format!("redis-sentinel/sentinel-{port}"));
        let fill = [("MASTER_NAME", MASTER_NAME.to_owned()), ("MASTER_PORT", base.to_string())];
        let conf = render_once(&dir, "sentinel.conf", "redis/sentinel.conf", port, &fill, "")?;
        spawn(started, "redis sentinel", &dir, &[conf.as_os_str(), "--sentinel".as_ref()])?;
    }
    // Whichever node is master now (a previous run may have failed over), it
    // has both replicas, and the sentinels can agree to replace it.
    wait_for(started, "the sentinels to reach their quorum and see two replicas", || {
        let quorum = cli(sentinels[0], &["SENTINEL", "CKQUORUM", MASTER_NAME]).is_ok_and(|r| r.starts_with("OK"));
        let master = cli(sentinels[0], &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME]).unwrap_or_default();
        let replicas = master.lines().nth(1).and_then(|p| p.trim().parse::<u16>().ok()).is_some_and(|port| {
            cli(port, &["INFO", "replication"]).is_ok_and(|r| r.lines().any(|l| l.trim() == "connected_slaves:2"))
        });
        quorum && replicas
    })?;
    let hosts: Vec<String> = sentinels.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    started.url = format!("redis+sentinel://{}/{MASTER_NAME}", hosts.join(","));
    Ok(())
}

fn cluster(started: &mut Started<'_>, base: u16, var: &Path) -> anyhow::Result<()> {
    if base > 55535 - 5 {
        bail!("--redis-port {base}: a cluster needs six ports from it and each + 10000 (the cluster bus)");
    }
    let nodes: Vec<u16> = (base..base + 6).collect();
    for port in &nodes {
        let dir = var.join(format!("redis-cluster/node-{port}"));
        let conf = render_once(&dir, "redis.conf", "redis/cluster-node.conf", *port, &[], "")?;
        spawn(started, "redis cluster node", &dir, &[conf.as_os_str()])?;
    }
    wait_for(started, "the cluster nodes to answer PING", || {
        nodes.iter().all(|p| cli(*p, &["PING"]).is_ok_and(|r| r == "PONG"))
    })?;
    let state = |port: u16| cli(port, &["CLUSTER", "INFO"]).unwrap_or_default();
    let field = |port: u16, line: &str| state(port).lines().any(|l| l.trim() == line);
    // A first start: the nodes know only themselves. Later starts find the cluster in nodes.conf.
    if field(base, "cluster_known_nodes:1") {
        eprintln!("xtask: creating the Redis Cluster (3 masters, a replica each)…");
        let addrs: Vec<String> = nodes.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let status = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdout(Stdio::null())
            .status()
            .context("running redis-cli --cluster create")?;
        if !status.success() {
            bail!("redis-cli --cluster create failed ({status}); logs under {}", var.join("redis-cluster").display());
        }
    }
    wait_for(started, "every cluster node to report cluster_state:ok", || {
        nodes.iter().all(|p| field(*p, "cluster_state:ok"))
    })?;
    started.url = nodes.iter().map(|p| format!("redis://127.0.0.1:{p}/")).collect::<Vec<_>>().join(",");
    Ok(())
}

/// `dir/name`: `template` filled for `port` the first time, as the node
/// left it afterwards.
fn render_once(
    dir: &Path,
    name: &str,
    template: &str,
    port: u16,
    fill: &[(&str, String)],
    append: &str,
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(name);
    if path.is_file() {
        return Ok(path);
    }
    let text = std::fs::read_to_string(root().join(template)).with_context(|| format!("reading {template}"))?;
    let rendered = seckill_api::placeholders::fill(&text, |placeholder| match placeholder {
        "PORT" => Some(port.to_string()),
        "DIR" => Some(dir.display().to_string()),
        other => fill.iter().find(|(n, _)| *n == other).map(|(_, v)| v.clone()),
    })
    .map_err(|e| anyhow::anyhow!("{template}: {e}"))?;
    std::fs::write(&path, rendered + append).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

fn spawn(started: &mut Started<'_>, name: &'static str, dir: &Path, args: &[&std::ffi::OsStr]) -> anyhow::Result<()> {
    let log = std::fs::File::create(dir.join("redis.log"))?;
    let child = Command::new("redis-server")
        .args(args)
        .stdout(log)
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {name} in {}", dir.display()))?;
    started.children.push((name, child));
    Ok(())
}

/// One `redis-cli` call on loopback, its output.
fn cli(port: u16, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("redis-cli").args(["-p", &port.to_string()]).args(args).stderr(Stdio::null()).output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Polls `ready` for up to 60 s, failing early if a started node exited.
fn wait_for(started: &mut Started<'_>, what: &str, mut ready: impl FnMut() -> bool) -> anyhow::Result<()> {
    let start = Instant::now();
    while !ready() {
        for (name, child) in &mut started.children {
            if let Some(status) = child.try_wait()? {
                bail!("{name} exited ({status}) while waiting for {what}; its log is in ./var");
            }
        }
        if started.stop.load(Ordering::SeqCst) {
            bail!("stopped while waiting for {what}");
        }
        if start.elapsed() > Duration::from_secs(60) {
            bail!("timed out after 60 s waiting for {what}; logs under ./var");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}
