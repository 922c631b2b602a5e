//! A master's snapshot (`redis-cli --rdb`), read back through a private
//! `redis-server` that loaded it: its keys as `DUMP` payloads, and each
//! activity's counts.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine as _;
use serde_json::{Value, json};

use super::common::now_ms;
use super::resp::{Conn, Endpoint, Reply, scan_all};

/// The sorted set of activity ids (`backend/src/store/keys.rs`).
const ACTIVITIES_KEY: &str = "seckill:activities";

/// Writes every key of the connection's database as a JSON line (`DUMP`
/// payload, absolute expiry); returns how many.
pub(super) fn dump_keys(conn: &mut Conn, out: &mut impl Write) -> anyhow::Result<u64> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut written = 0;
    for chunk in scan_all(conn)?.chunks(500) {
        let commands: Vec<Vec<&[u8]>> = chunk
            .iter()
            .flat_map(|k| [vec![b"DUMP".as_slice(), k.as_slice()], vec![b"PTTL".as_slice(), k.as_slice()]])
            .collect();
        let replies = conn.pipeline(&commands)?;
        let now = now_ms();
        for (key, pair) in chunk.iter().zip(replies.chunks(2)) {
            // A key gone meanwhile (expired) is no longer part of the data.
            let Reply::Bulk(payload) = &pair[0] else { continue };
            let expire_at_ms = match pair[1].int() {
                Some(-2) | None => continue,
                Some(ttl) if ttl >= 0 => Some(now + ttl),
                Some(_) => None,
            };
            let mut line = serde_json::Map::new();
            match std::str::from_utf8(key) {
                Ok(key) => line.insert("key".into(), json!(key)),
                Err(_) => line.insert("key_b64".into(), json!(b64.encode(key))),
            };
            line.insert("dump".into(), json!(b64.encode(payload)));
            if let Some(at) = expire_at_ms {
                line.insert("expire_at_ms".into(), json!(at));
            }
            serde_json::to_writer(&mut *out, &Value::Object(line))?;
            out.write_all(b"\n")?;
            written += 1;
        }
    }
    Ok(written)
}

/// An activity's counts in Redis.
#[derive(Debug)]
pub(super) struct ActivityCounts {
    pub(super) id: u64,
    pub(super) name: Option<String>,
    pub(super) total_stock: Option<i64>,
    pub(super) remaining: Option<i64>,
    pub(super) sold: Option<i64>,
    pub(super) stream_orders: i64,
    pub(super) dead_letters: i64,
}

impl ActivityCounts {
    pub(super) fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "total_stock": self.total_stock,
            "remaining": self.remaining,
            "sold": self.sold,
            "stream_orders": self.stream_orders,
            "dead_letters": self.dead_letters,
        })
    }
}

/// Every activity in the index, read from `conns` (one per master: each key
/// is on one of them).
pub(super) fn read_activities(conns: &mut [&mut Conn]) -> anyhow::Result<Vec<ActivityCounts>> {
    let mut ids = std::collections::BTreeSet::new();
    for conn in conns.iter_mut() {
        if let Reply::Array(items) = conn.request(&[b"ZRANGE", ACTIVITIES_KEY.as_bytes(), b"0", b"-1"])? {
            ids.extend(items.iter().filter_map(|i| i.text()?.parse::<u64>().ok()));
        }
    }
    let mut activities = Vec::new();
    for id in ids {
        let (activity, inventory, sold, stream, dead) = (
            format!("seckill:activity:{{{id}}}"),
            format!("seckill:inventory:{{{id}}}"),
            format!("seckill:sold:{{{id}}}"),
            format!("queue:seckill_order:{{{id}}}"),
            format!("queue:seckill_order_dead:{{{id}}}"),
        );
        let commands: Vec<Vec<&[u8]>> = vec![
            vec![b"HGET", activity.as_bytes(), b"name"],
            vec![b"HGET", activity.as_bytes(), b"total_stock"],
            vec![b"GET", inventory.as_bytes()],
            vec![b"GET", sold.as_bytes()],
            vec![b"XLEN", stream.as_bytes()],
            vec![b"XLEN", dead.as_bytes()],
        ];
        let mut a = ActivityCounts {
            id,
            name: None,
            total_stock: None,
            remaining: None,
            sold: None,
            stream_orders: 0,
            dead_letters: 0,
        };
        for conn in conns.iter_mut() {
            let r = conn.pipeline(&commands)?;
            a.name = a.name.or_else(|| r[0].text());
            a.total_stock = a.total_stock.or_else(|| r[1].int());
            a.remaining = a.remaining.or_else(|| r[2].int());
            a.sold = a.sold.or_else(|| r[3].int());
            a.stream_orders += r[4].int().unwrap_or(0);
            a.dead_letters += r[5].int().unwrap_or(0);
        }
        activities.push(a);
    }
    Ok(activities)
}

/// `redis-cli --rdb` running: a master's snapshot streamed over the protocol
/// (the master forks, as for a replica; nothing waits for it).
pub(super) struct Snapshot {
    pub(super) child: Child,
    pub(super) addr: String,
    pub(super) file: PathBuf,
}

impl Snapshot {
    pub(super) fn start(ep: &Endpoint, file: &Path) -> anyhow::Result<Self> {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-h", &ep.host, "-p", &ep.port.to_string(), "--no-auth-warning"]);
        if let Some(user) = &ep.user {
            cmd.args(["--user", user]);
        }
        if let Some(password) = &ep.password {
            // In the environment, never in argv (visible in ps).
            cmd.env("REDISCLI_AUTH", password);
        }
        // Its few lines of output go to a file: a pipe nobody reads could fill up.
        let log = std::fs::File::create(file.with_extension("log"))?;
        cmd.arg("--rdb").arg(file).stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        let child = cmd.spawn().context("running redis-cli --rdb")?;
        Ok(Self { child, addr: ep.addr(), file: file.to_owned() })
    }

    pub(super) fn wait(mut self, started: Instant, deadline: Duration) -> anyhow::Result<()> {
        let log = self.file.with_extension("log");
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if started.elapsed() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let _ = std::fs::remove_file(&log);
                bail!("the snapshot of {} took longer than {deadline:?} (--snapshot-timeout-secs)", self.addr);
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let output = std::fs::read_to_string(&log).unwrap_or_default();
        let _ = std::fs::remove_file(&log);
        if !status.success() || !self.file.is_file() {
            bail!("redis-cli --rdb from {} failed ({status}): {}", self.addr, output.trim());
        }
        Ok(())
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A private `redis-server` on loopback that loaded one snapshot, for reading it.
pub(super) struct LocalRedis {
    pub(super) child: Child,
    pub(super) dir: PathBuf,
    pub(super) conn: Conn,
}

impl LocalRedis {
    pub(super) fn load(rdb: &Path) -> anyhow::Result<Self> {
        let rdb = rdb.canonicalize()?;
        let mut last = None;
        // A port taken between choosing it and the server binding it is tried again.
        for _ in 0..3 {
            match Self::load_once(&rdb) {
                Ok(local) => return Ok(local),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("tried"))
    }

    pub(super) fn load_once(rdb: &Path) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = std::env::temp_dir().join(format!("seckill-backup-load-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        // A link, so the server never writes the backup's file.
        let _ = std::fs::remove_file(dir.join("dump.rdb"));
        std::os::unix::fs::symlink(rdb, dir.join("dump.rdb"))?;
        let log = dir.join("redis.log");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--protected-mode", "yes"])
            .args(["--save", "", "--appendonly", "no", "--dbfilename", "dump.rdb"])
            .arg("--dir")
            .arg(&dir)
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server to read the snapshot")?;
        let mut local = PartialLocal { child: Some(child), dir: dir.clone() };
        let ep = Endpoint { host: "127.0.0.1".into(), port, user: None, password: None, db: 0 };
        let start = Instant::now();
        let conn = loop {
            if let Some(status) = local.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(3).collect();
                bail!("redis-server exited ({status}): {}", tail.into_iter().rev().collect::<Vec<_>>().join(" / "));
            }
            // PING answers LOADING until the snapshot is in.
            if let Ok(mut conn) = Conn::connect(&ep)
                && conn.request(&[b"PING"]).is_ok_and(|r| r == Reply::Status("PONG".into()))
            {
                break conn;
            }
            if start.elapsed() > Duration::from_secs(300) {
                bail!("redis-server did not load {} within 300 s", rdb.display());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let child = local.child.take().expect("running");
        Ok(Self { child, dir, conn })
    }
}

/// Stops a server that did not come up.
pub(super) struct PartialLocal {
    pub(super) child: Option<Child>,
    pub(super) dir: PathBuf,
}

impl Drop for PartialLocal {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Drop for LocalRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
