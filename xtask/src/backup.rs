//! `cargo xtask backup` and `cargo xtask restore`: the sale's two stores,
//! saved together in one directory and put back together.
//!
//! A backup is `var/backups/<UTC time>/` (or under `--out`):
//!
//! - `redis-<n>.rdb`: each master's snapshot, streamed over the protocol by
//!   `redis-cli --rdb` (the server forks; nothing is blocked);
//! - `redis-keys.jsonl`: every key of the application's database in those
//!   snapshots as a `DUMP` payload (base64) with its absolute expiry, read
//!   from a private `redis-server` that loaded the snapshot, so that it is the
//!   snapshot's instant too; restore replays it with `RESTORE … REPLACE
//!   ABSTTL` into any running server, one server or a Cluster;
//! - `orders.db` (SQLite, `VACUUM INTO`: an online, consistent copy) or
//!   `orders.sql` (MySQL/MariaDB, `mariadb-dump --single-transaction`);
//! - `manifest.json`: when, from where (passwords left out), each activity's
//!   stock and sold counts in the snapshot, the order rows per status in the
//!   copy, the tools' versions and each file's sha256.
//!
//! Redis is saved first, then the order DB: every sale in the snapshot is
//! then either still in its order stream (in the snapshot) or already a row
//! (in the later DB copy), so the pair loses no order. A success is recorded
//! in the backed-up Redis as the hash `seckill:backup:last` (`at_ms`, `dir`,
//! `ok`). The directory is written as `.<name>.partial` and renamed when
//! complete, so a directory without that prefix is a whole backup.
//!
//! Restore refuses a target that holds keys or order rows unless `--yes`,
//! and an SQLite file another process has open in any case; it then empties
//! the target's Redis database, replays the keys, puts the order DB in place
//! and checks every activity's counts and the rows per status against the
//! manifest.

mod common;
mod order_db;
mod resp;
mod snapshot;

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::deps::{self, root};
use crate::redis::{MASTER_NAME, Topology};
use common::{human_bytes, now_ms, redact, say, tool_version};
use order_db::{OrderDb, OrderDbKind, counts_from_json, counts_json, describe_counts, first_on_path, holders_of};
use resp::{Conn, Redis};
use snapshot::{ActivityCounts, LocalRedis, Snapshot, dump_keys, read_activities};

/// The hash a successful backup leaves in the Redis it saved: `at_ms`, `dir`, `ok`.
pub const LAST_BACKUP_KEY: &str = "seckill:backup:last";
const MANIFEST: &str = "manifest.json";
const KEYS_FILE: &str = "redis-keys.jsonl";
const MANIFEST_FORMAT: i64 = 1;

/// Where the stores are; by default the ones `cargo xtask start` runs.
#[derive(clap::Args)]
pub struct Stores {
    /// The sale's Redis: redis://…, redis+sentinel://…/<master> or a comma-separated
    /// list of cluster nodes [default: the private Redis of `cargo xtask start`]
    #[arg(long, env = "SECKILL_REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    /// The order DB: sqlite://<file> (a relative path is taken from the workspace root,
    /// where `cargo xtask start` runs the backend) or mysql://user:pw@host:port/db
    /// [default: the order DB of `cargo xtask start`]
    #[arg(long, env = "SECKILL_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Which private Redis of `cargo xtask start` the defaults name (and its order DB).
    #[arg(long, value_enum, default_value_t = Topology::Single)]
    redis: Topology,
    /// First port of that private Redis, as given to `cargo xtask start`.
    #[arg(long, default_value_t = 6479)]
    redis_port: u16,
}

impl Stores {
    fn redis_url(&self) -> String {
        if let Some(url) = self.redis_url.as_ref().filter(|u| !u.trim().is_empty()) {
            return url.trim().to_owned();
        }
        let p = self.redis_port;
        match self.redis {
            Topology::Single => format!("redis://127.0.0.1:{p}/"),
            Topology::Sentinel => {
                let hosts: Vec<String> = (0..3).map(|i| format!("127.0.0.1:{}", p + 20000 + i)).collect();
                format!("redis+sentinel://{}/{MASTER_NAME}", hosts.join(","))
            }
            Topology::Cluster => (0..6).map(|i| format!("redis://127.0.0.1:{}/", p + i)).collect::<Vec<_>>().join(","),
        }
    }

    fn database_url(&self) -> String {
        if let Some(url) = self.database_url.as_ref().filter(|u| !u.trim().is_empty()) {
            return url.trim().to_owned();
        }
        match self.redis {
            Topology::Single => "sqlite://var/orders.db",
            Topology::Sentinel => "sqlite://var/redis-sentinel/orders.db",
            Topology::Cluster => "sqlite://var/redis-cluster/orders.db",
        }
        .to_owned()
    }
}

#[derive(clap::Args)]
pub struct BackupArgs {
    #[command(flatten)]
    stores: Stores,
    /// Where the timestamped backup directory goes [default: var/backups]
    #[arg(long)]
    out: Option<PathBuf>,
    /// How long one master's snapshot may take before the backup gives up.
    #[arg(long, default_value_t = 600)]
    snapshot_timeout_secs: u64,
}

#[derive(clap::Args)]
pub struct RestoreArgs {
    /// A directory `cargo xtask backup` wrote (it holds manifest.json).
    dir: PathBuf,
    #[command(flatten)]
    stores: Stores,
    /// Overwrite a target that holds keys or order rows (they are deleted first).
    #[arg(long)]
    yes: bool,
}

// ---------------------------------------------------------------- backup

pub fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let redis_url = args.stores.redis_url();
    let database_url = args.stores.database_url();
    let db = OrderDb::parse(&database_url)?;
    let mut redis = open_redis(&redis_url)?;
    ensure_tools(&db)?;
    say(format_args!("backup: Redis {} ({}), order DB {}", redact(&redis_url), redis.describe(), db.describe()));

    let out = match &args.out {
        Some(out) => out.clone(),
        None => root().join("var/backups"),
    };
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let at = time::OffsetDateTime::now_utc();
    let stamp = at.format(time::macros::format_description!("[year][month][day]T[hour][minute][second]Z"))?;
    let (name, partial) = (1..)
        .map(|n| if n == 1 { stamp.clone() } else { format!("{stamp}-{n}") })
        .map(|name| {
            let partial = out.join(format!(".{name}.partial"));
            (name, partial)
        })
        .find(|(name, partial)| !out.join(name).exists() && !partial.exists())
        .expect("some name is free");
    std::fs::create_dir_all(&partial).with_context(|| format!("creating {}", partial.display()))?;
    let result = write_backup(&args, &mut redis, &redis_url, &db, &partial, at);
    let manifest = match result {
        Ok(manifest) => manifest,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&partial);
            return Err(e);
        }
    };
    let dir = out.join(&name);
    std::fs::rename(&partial, &dir).with_context(|| format!("renaming {} to {}", partial.display(), dir.display()))?;
    let dir = dir.canonicalize().unwrap_or(dir);

    let at_ms = manifest["created_at_ms"].as_i64().unwrap_or_else(now_ms).to_string();
    let dir_text = dir.display().to_string();
    redis
        .call_keyed(
            LAST_BACKUP_KEY.as_bytes(),
            &[
                b"HSET",
                LAST_BACKUP_KEY.as_bytes(),
                b"at_ms",
                at_ms.as_bytes(),
                b"dir",
                dir_text.as_bytes(),
                b"ok",
                b"1",
            ],
        )
        .with_context(|| format!("recording the backup in {LAST_BACKUP_KEY}"))?;
    say(format_args!("backup: recorded in {LAST_BACKUP_KEY} (at_ms {at_ms})"));

    println!("backup written to {}", dir.display());
    print_summary(&manifest);
    println!("  took {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn write_backup(
    args: &BackupArgs,
    redis: &mut Redis,
    redis_url: &str,
    db: &OrderDb,
    dir: &Path,
    at: time::OffsetDateTime,
) -> anyhow::Result<Value> {
    let created_at_ms = (at.unix_timestamp_nanos() / 1_000_000) as i64;
    let mut tools = BTreeMap::new();
    tools.insert("seckill".to_owned(), env!("CARGO_PKG_VERSION").to_owned());
    tools.insert("redis-cli".to_owned(), tool_version("redis-cli", "--version"));
    tools.insert("redis-server".to_owned(), tool_version("redis-server", "--version"));
    let server_version = redis.masters[0].conn.info_field("server", "redis_version").unwrap_or_default();
    tools.insert("source redis_version".to_owned(), server_version);

    // 1. Redis: every master's snapshot (all at once, so a Cluster's are close in
    // time; an activity's keys live on one master), then the keys read back from them.
    let took = Instant::now();
    let deadline = Duration::from_secs(args.snapshot_timeout_secs);
    let files: Vec<PathBuf> = (0..redis.masters.len()).map(|i| dir.join(format!("redis-{i}.rdb"))).collect();
    let mut snapshots = Vec::new();
    for (master, file) in redis.masters.iter().zip(&files) {
        snapshots.push(Snapshot::start(&master.ep, file)?);
    }
    let mut rdbs = Vec::new();
    for (snapshot, file) in snapshots.into_iter().zip(&files) {
        let addr = snapshot.addr.clone();
        snapshot.wait(took, deadline)?;
        let bytes = std::fs::metadata(file)?.len();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        say(format_args!(
            "backup: Redis {addr} snapshot: {name} ({}, {:.1} s)",
            human_bytes(bytes),
            took.elapsed().as_secs_f64()
        ));
        rdbs.push(json!({"master": addr, "file": name}));
    }
    let keys_path = dir.join(KEYS_FILE);
    let mut keys_out = BufWriter::new(std::fs::File::create(&keys_path)?);
    let db_index = redis.db;
    let mut loaded = Vec::new();
    let mut keys_from = "snapshot";
    for i in 0..redis.masters.len() {
        match LocalRedis::load(&dir.join(format!("redis-{i}.rdb"))) {
            Ok(local) => loaded.push(local),
            Err(e) => {
                // A snapshot newer than the local redis-server can read: the keys come from
                // the live masters instead (the .rdb files are still the snapshot).
                say(format_args!(
                    "backup: WARNING: cannot load the snapshot into a local redis-server ({e:#}); \
                     reading the keys from the live server instead, which is not one instant"
                ));
                keys_from = "live";
                loaded.clear();
                break;
            }
        }
    }
    let mut conns: Vec<&mut Conn> = if keys_from == "snapshot" {
        let mut conns = Vec::new();
        for local in &mut loaded {
            if db_index != 0 {
                local.conn.call(&["SELECT", &db_index.to_string()])?;
            }
            conns.push(&mut local.conn);
        }
        conns
    } else {
        redis.masters.iter_mut().map(|m| &mut m.conn).collect()
    };
    let mut key_count = 0;
    for conn in conns.iter_mut() {
        key_count += dump_keys(conn, &mut keys_out)?;
    }
    keys_out.flush()?;
    drop(keys_out);
    say(format_args!("backup: {key_count} keys of db {db_index} written to {KEYS_FILE} (from the {keys_from})"));
    let activities = read_activities(&mut conns)?;
    drop(conns);
    drop(loaded);

    // 2. The order DB, after Redis: every sale in the snapshot is in its stream there or a row here.
    let (db_file, counts, counts_exact) = db.backup(dir, &mut tools)?;
    say(format_args!(
        "backup: order DB copied to {db_file} ({}; {})",
        human_bytes(std::fs::metadata(dir.join(&db_file))?.len()),
        describe_counts(&counts)
    ));

    // 3. The manifest, with every file's checksum.
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type()?.is_file() {
            files.insert(name, json!({"bytes": entry.metadata()?.len(), "sha256": sha256_file(&entry.path())?}));
        }
    }
    let manifest = json!({
        "format": MANIFEST_FORMAT,
        "created_at": at.format(&time::format_description::well_known::Rfc3339)?,
        "created_at_ms": created_at_ms,
        "redis": {
            "url": redact(redis_url),
            "kind": redis.kind,
            "masters": redis.masters.iter().map(|m| m.ep.addr()).collect::<Vec<_>>(),
            "db": db_index,
            "snapshots": rdbs,
            "keys": key_count,
            "keys_from": keys_from,
        },
        "activities": activities.iter().map(ActivityCounts::to_json).collect::<Vec<_>>(),
        "order_db": {
            "kind": db.kind(),
            "url": redact(&db.url),
            "file": db_file,
            "orders_by_status": counts_json(&counts),
            "orders": counts.values().map(|(n, _)| n).sum::<i64>(),
            "counts_exact": counts_exact,
        },
        "tools": tools,
        "files": files,
    });
    std::fs::write(dir.join(MANIFEST), serde_json::to_string_pretty(&manifest)? + "\n")?;
    Ok(manifest)
}

fn print_summary(manifest: &Value) {
    let r = &manifest["redis"];
    println!(
        "  redis    {} {}: {} keys of db {} (from the {})",
        r["kind"].as_str().unwrap_or("?"),
        r["masters"]
            .as_array()
            .map(|m| m.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","))
            .unwrap_or_default(),
        r["keys"],
        r["db"],
        r["keys_from"].as_str().unwrap_or("?"),
    );
    let d = &manifest["order_db"];
    println!(
        "  orders   {} {}: {}",
        d["kind"].as_str().unwrap_or("?"),
        d["url"].as_str().unwrap_or("?"),
        describe_counts(&counts_from_json(&d["orders_by_status"]))
    );
    for a in manifest["activities"].as_array().into_iter().flatten() {
        println!(
            "  activity {} {}: total {}, remaining {}, sold {}, {} orders waiting in the stream, {} dead letters",
            a["id"], a["name"], a["total_stock"], a["remaining"], a["sold"], a["stream_orders"], a["dead_letters"]
        );
    }
}

// ---------------------------------------------------------------- restore

pub fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let dir = args.dir.clone();
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(dir.join(MANIFEST)).with_context(|| format!("reading {}", dir.join(MANIFEST).display()))?,
    )
    .context("manifest.json is not JSON")?;
    if manifest["format"].as_i64() != Some(MANIFEST_FORMAT) {
        bail!("{}: format {} is not one this restore reads ({MANIFEST_FORMAT})", dir.display(), manifest["format"]);
    }
    for (name, file) in manifest["files"].as_object().context("manifest.json lists no files")? {
        let path = dir.join(name);
        let sum = sha256_file(&path).with_context(|| format!("reading {}", path.display()))?;
        if Some(sum.as_str()) != file["sha256"].as_str() {
            bail!("{} does not match its sha256 in manifest.json: the backup is damaged", path.display());
        }
    }
    say(format_args!(
        "restore: {} ({} files, checksums match)",
        dir.display(),
        manifest["files"].as_object().unwrap().len()
    ));

    let redis_url = args.stores.redis_url();
    let database_url = args.stores.database_url();
    let db = OrderDb::parse(&database_url)?;
    let backup_kind = manifest["order_db"]["kind"].as_str().unwrap_or("?");
    if backup_kind != db.kind() {
        bail!("the backup holds a {backup_kind} order DB and the target {} is {}", redact(&database_url), db.kind());
    }
    ensure_tools(&db)?;
    let mut redis = open_redis(&redis_url)?;
    say(format_args!("restore: into Redis {} ({}), order DB {}", redact(&redis_url), redis.describe(), db.describe()));

    // What is there now.
    let (key_count, sample) = redis.key_count()?;
    let target_counts = db.counts()?;
    let rows: i64 = target_counts.values().map(|(n, _)| n).sum();
    if (key_count > 0 || rows > 0) && !args.yes {
        let mut what = Vec::new();
        if key_count > 0 {
            what.push(format!(
                "Redis {} (db {}) holds {key_count} keys (e.g. {}), which restore would delete",
                redact(&redis_url),
                redis.db,
                sample.join(", ")
            ));
        }
        if rows > 0 {
            what.push(format!(
                "the order DB {} holds {rows} order rows ({}), which restore would replace",
                redact(&database_url),
                describe_counts(&target_counts)
            ));
        }
        bail!("the target is not empty: {}. Run again with --yes to overwrite them", what.join("; and "));
    }
    if let OrderDbKind::Sqlite(file) = &db.kind_data {
        let holders = holders_of(file);
        if !holders.is_empty() {
            bail!(
                "{} is open in {}: stop the backend(s) using it before restoring",
                file.display(),
                holders.join(", ")
            );
        }
    }

    // Redis: empty the database, then replay every key.
    if key_count > 0 {
        let deleted = redis.delete_all()?;
        say(format_args!("restore: deleted {deleted} keys from the target Redis"));
    }
    let (restored, expired) = replay_keys(&mut redis, &dir.join(KEYS_FILE))
        .context("the target Redis is partly restored (run the restore again with --yes once this is fixed)")?;
    say(format_args!(
        "restore: {restored} keys restored{}",
        if expired.is_empty() {
            String::new()
        } else {
            format!(", {} expired since the backup and left out", expired.len())
        }
    ));

    // The order DB.
    let file = manifest["order_db"]["file"].as_str().context("manifest.json names no order DB file")?;
    db.restore(&dir.join(file))
        .context("Redis is restored but the order DB is not (run the restore again with --yes once this is fixed)")?;
    say(format_args!("restore: order DB {} restored from {file}", db.describe()));

    // Check: every activity's counts and the rows per status, as the manifest has them.
    let mut problems = Vec::new();
    let mut conns: Vec<&mut Conn> = redis.masters.iter_mut().map(|m| &mut m.conn).collect();
    let now: BTreeMap<u64, ActivityCounts> = read_activities(&mut conns)?.into_iter().map(|a| (a.id, a)).collect();
    for want in manifest["activities"].as_array().into_iter().flatten() {
        let id = want["id"].as_u64().unwrap_or_default();
        let Some(have) = now.get(&id) else {
            problems.push(format!("activity {id} is missing"));
            continue;
        };
        let mut line = format!("restore: activity {id} {}:", want["name"]);
        for (field, have, key) in [
            ("remaining", have.remaining, format!("seckill:inventory:{{{id}}}")),
            ("sold", have.sold, format!("seckill:sold:{{{id}}}")),
            ("stream_orders", Some(have.stream_orders), format!("queue:seckill_order:{{{id}}}")),
            ("dead_letters", Some(have.dead_letters), format!("queue:seckill_order_dead:{{{id}}}")),
        ] {
            let want = want[field].as_i64();
            if expired.contains(key.as_bytes()) {
                line.push_str(&format!(" {field} expired,"));
            } else if want == have {
                line.push_str(&format!(" {field} {} ok,", fmt_opt(have)));
            } else {
                line.push_str(&format!(" {field} {} (backup: {}),", fmt_opt(have), fmt_opt(want)));
                problems.push(format!("activity {id}: {field} is {} but was {}", fmt_opt(have), fmt_opt(want)));
            }
        }
        say(line.trim_end_matches(','));
    }
    let counts = db.counts()?;
    let want_counts = counts_from_json(&manifest["order_db"]["orders_by_status"]);
    if counts == want_counts {
        say(format_args!("restore: order rows {} ok", describe_counts(&counts)));
    } else if manifest["order_db"]["counts_exact"].as_bool() == Some(false) {
        say(format_args!(
            "restore: order rows {} (the manifest says {}, read while the DB changed during the backup)",
            describe_counts(&counts),
            describe_counts(&want_counts)
        ));
    } else {
        problems.push(format!(
            "order rows are {} but were {}",
            describe_counts(&counts),
            describe_counts(&want_counts)
        ));
    }
    if !problems.is_empty() {
        bail!("restored, but it does not match the backup: {}", problems.join("; "));
    }
    println!(
        "restored {} into Redis {} and order DB {}: {restored} keys, {} order rows, {} activities checked ({:.1} s)",
        dir.display(),
        redact(&redis_url),
        db.describe(),
        counts.values().map(|(n, _)| n).sum::<i64>(),
        now.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn fmt_opt(v: Option<i64>) -> String {
    v.map_or_else(|| "none".to_owned(), |v| v.to_string())
}

/// Replays `redis-keys.jsonl` with `RESTORE … REPLACE ABSTTL`; returns the
/// keys restored and those whose expiry passed since the backup.
fn replay_keys(redis: &mut Redis, path: &Path) -> anyhow::Result<(u64, HashSet<Vec<u8>>)> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let (mut restored, mut expired) = (0, HashSet::new());
    let mut batch: Vec<(Vec<u8>, Vec<u8>, i64)> = Vec::new();
    let mut lines = BufReader::new(file).lines();
    loop {
        let line = lines.next().transpose()?;
        if let Some(line) = line.as_deref().filter(|l| !l.trim().is_empty()) {
            let entry: Value = serde_json::from_str(line).with_context(|| format!("{}: a bad line", path.display()))?;
            let key = match (entry["key"].as_str(), entry["key_b64"].as_str()) {
                (Some(key), _) => key.as_bytes().to_vec(),
                (None, Some(key)) => b64.decode(key).map_err(|e| anyhow!("{}: a bad key_b64: {e}", path.display()))?,
                _ => bail!("{}: a line without a key", path.display()),
            };
            let payload = b64
                .decode(entry["dump"].as_str().context("a line without its dump")?)
                .map_err(|e| anyhow!("{}: a bad dump payload: {e}", path.display()))?;
            let expire_at = entry["expire_at_ms"].as_i64().unwrap_or(0);
            if expire_at != 0 && expire_at <= now_ms() {
                expired.insert(key);
                continue;
            }
            batch.push((key, payload, expire_at));
        }
        if batch.len() >= 500 || (line.is_none() && !batch.is_empty()) {
            restored += redis.restore_batch(std::mem::take(&mut batch))?;
        }
        if line.is_none() {
            return Ok((restored, expired));
        }
    }
}

// ---------------------------------------------------------------- helpers

/// The sale's Redis, or an error that says where else it could be.
fn open_redis(url: &str) -> anyhow::Result<Redis> {
    Redis::open(url).with_context(|| {
        format!("reaching the Redis {} (is it running? --redis-url or SECKILL_REDIS_URL names another)", redact(url))
    })
}

/// The programs backup and restore run, installed with apt-get if missing.
fn ensure_tools(db: &OrderDb) -> anyhow::Result<()> {
    let mut wanted = vec![("redis-cli", "redis-tools"), ("redis-server", "redis-server")];
    match db.kind_data {
        OrderDbKind::Sqlite(_) => wanted.push(("sqlite3", "sqlite3")),
        OrderDbKind::MySql(_) => {
            if first_on_path(&["mariadb-dump", "mysqldump"]).is_err() || first_on_path(&["mariadb", "mysql"]).is_err() {
                wanted.push(("mariadb-dump", "mariadb-client"));
            }
        }
    }
    deps::ensure_packages(&crate::steps(), &wanted)
}

fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}
