//! The order DB's side of backup and restore, through the databases' own
//! tools: `sqlite3` (`VACUUM INTO`, an online consistent copy) and
//! `mariadb-dump`/`mariadb` (or `mysqldump`/`mysql`), the password in
//! `MYSQL_PWD`, never in argv.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use seckill_api::percent::percent_decode;

use super::common::{now_ms, redact, say, split_host_port, tool_version};
use crate::deps::{self, root};

/// Order rows per status: (rows, units).
pub(super) type StatusCounts = BTreeMap<String, (i64, i64)>;

pub(super) const COUNT_SQL: &str =
    "SELECT status, COUNT(*), COALESCE(SUM(quantity), 0) FROM orders GROUP BY status ORDER BY status";

pub(super) struct OrderDb {
    pub(super) url: String,
    pub(super) kind_data: OrderDbKind,
}

pub(super) enum OrderDbKind {
    Sqlite(PathBuf),
    MySql(MySql),
}

impl OrderDb {
    pub(super) fn parse(url: &str) -> anyhow::Result<Self> {
        let kind_data = if let Some(path) = url.strip_prefix("sqlite://") {
            let file = path.split('?').next().unwrap_or_default();
            if file.is_empty() || file.starts_with(':') {
                bail!("{url}: backup needs an SQLite file, not an in-memory database");
            }
            let file = PathBuf::from(file);
            OrderDbKind::Sqlite(if file.is_absolute() { file } else { root().join(file) })
        } else if url.starts_with("mysql://") || url.starts_with("mariadb://") {
            OrderDbKind::MySql(MySql::parse(url)?)
        } else {
            bail!("{}: the order DB URL must start with sqlite:// or mysql://", redact(url));
        };
        Ok(Self { url: url.to_owned(), kind_data })
    }

    pub(super) fn kind(&self) -> &'static str {
        match self.kind_data {
            OrderDbKind::Sqlite(_) => "sqlite",
            OrderDbKind::MySql(_) => "mysql",
        }
    }

    pub(super) fn describe(&self) -> String {
        match &self.kind_data {
            OrderDbKind::Sqlite(file) => format!("sqlite {}", file.display()),
            OrderDbKind::MySql(m) => format!("mysql {}@{}:{}/{}", m.user, m.host, m.port, m.db),
        }
    }

    /// Copies the DB into `dir`; returns the file's name, the rows per status
    /// in the copy, and whether those counts are exactly the copy's.
    pub(super) fn backup(
        &self,
        dir: &Path,
        tools: &mut BTreeMap<String, String>,
    ) -> anyhow::Result<(String, StatusCounts, bool)> {
        match &self.kind_data {
            OrderDbKind::Sqlite(file) => {
                tools.insert("sqlite3".into(), tool_version("sqlite3", "--version"));
                if !file.is_file() {
                    bail!("no order DB at {} (has the backend run with this SECKILL_DATABASE_URL?)", file.display());
                }
                let copy = dir.join("orders.db");
                let into = format!("VACUUM INTO '{}'", copy.display().to_string().replace('\'', "''"));
                sqlite3(file, false, &into).with_context(|| format!("copying {} (VACUUM INTO)", file.display()))?;
                // Counted in the copy itself: exactly what restore puts back.
                Ok(("orders.db".into(), sqlite_counts(&copy)?, true))
            }
            OrderDbKind::MySql(m) => {
                let dump = m.dump_program()?;
                tools.insert(dump.clone(), tool_version(&dump, "--version"));
                let before = m.counts()?;
                let file = dir.join("orders.sql");
                m.dump(&dump, &file)?;
                let after = m.counts()?;
                if before != after {
                    say(
                        "backup: WARNING: the order rows changed while they were dumped; the manifest has the counts after the dump",
                    );
                }
                Ok(("orders.sql".into(), after.clone(), before == after))
            }
        }
    }

    /// The rows per status now (none when there is no orders table yet).
    pub(super) fn counts(&self) -> anyhow::Result<StatusCounts> {
        match &self.kind_data {
            OrderDbKind::Sqlite(file) if !file.exists() => Ok(StatusCounts::new()),
            OrderDbKind::Sqlite(file) => sqlite_counts(file),
            OrderDbKind::MySql(m) => m.counts(),
        }
    }

    pub(super) fn restore(&self, from: &Path) -> anyhow::Result<()> {
        match &self.kind_data {
            OrderDbKind::Sqlite(file) => {
                if let Some(parent) = file.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                if file.exists() {
                    // What was there stays beside it, in one consistent file.
                    let keep = PathBuf::from(format!("{}.before-restore-{}", file.display(), now_ms()));
                    let into = format!("VACUUM INTO '{}'", keep.display().to_string().replace('\'', "''"));
                    sqlite3(file, false, &into).with_context(|| format!("keeping {}", file.display()))?;
                    say(format_args!("restore: the previous order DB is kept as {}", keep.display()));
                    for suffix in ["", "-wal", "-shm", "-journal"] {
                        let path = PathBuf::from(format!("{}{suffix}", file.display()));
                        if path.exists() {
                            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
                        }
                    }
                }
                let tmp = PathBuf::from(format!("{}.restoring", file.display()));
                std::fs::copy(from, &tmp)
                    .with_context(|| format!("copying {} to {}", from.display(), tmp.display()))?;
                std::fs::rename(&tmp, file)?;
                Ok(())
            }
            OrderDbKind::MySql(m) => m.load(from),
        }
    }
}

pub(super) fn sqlite3(file: &Path, readonly: bool, sql: &str) -> anyhow::Result<String> {
    let mut cmd = Command::new("sqlite3");
    cmd.arg("-bail");
    if readonly {
        cmd.arg("-readonly");
    }
    // A writer holding the lock is waited for, not failed on.
    cmd.args(["-cmd", ".timeout 10000", "-separator", "\t"]).arg(file).arg(sql);
    let out = cmd.stdin(Stdio::null()).output().context("running sqlite3 (Debian package sqlite3)")?;
    if !out.status.success() {
        bail!("sqlite3 {}: {}", file.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub(super) fn sqlite_counts(file: &Path) -> anyhow::Result<StatusCounts> {
    match sqlite3(file, true, COUNT_SQL) {
        Ok(out) => parse_counts(&out),
        Err(e) if format!("{e:#}").contains("no such table") => Ok(StatusCounts::new()),
        Err(e) => Err(e),
    }
}

pub(super) fn parse_counts(out: &str) -> anyhow::Result<StatusCounts> {
    let mut counts = StatusCounts::new();
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        let mut fields = line.split('\t');
        let (Some(status), Some(rows), Some(units)) = (fields.next(), fields.next(), fields.next()) else {
            bail!("an unexpected count line {line:?}");
        };
        counts.insert(status.to_owned(), (rows.trim().parse()?, units.trim().parse()?));
    }
    Ok(counts)
}

pub(super) fn counts_json(counts: &StatusCounts) -> Value {
    counts.iter().map(|(s, (rows, units))| (s.clone(), json!({"orders": rows, "quantity": units}))).collect()
}

pub(super) fn counts_from_json(v: &Value) -> StatusCounts {
    v.as_object()
        .into_iter()
        .flatten()
        .map(|(s, c)| (s.clone(), (c["orders"].as_i64().unwrap_or(0), c["quantity"].as_i64().unwrap_or(0))))
        .collect()
}

pub(super) fn describe_counts(counts: &StatusCounts) -> String {
    if counts.is_empty() {
        return "no rows".into();
    }
    let plural = |n: i64, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let rows: i64 = counts.values().map(|(n, _)| n).sum();
    let parts: Vec<String> = counts.iter().map(|(s, (n, q))| format!("{s} {n} ({})", plural(*q, "unit"))).collect();
    format!("{}: {}", plural(rows, "row"), parts.join(", "))
}

/// A MySQL/MariaDB order DB, reached with the `mariadb`/`mysql` clients.
pub(super) struct MySql {
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) user: String,
    pub(super) password: Option<String>,
    pub(super) db: String,
}

impl MySql {
    pub(super) fn parse(url: &str) -> anyhow::Result<Self> {
        let rest = url.split_once("://").map(|(_, r)| r).unwrap_or_default();
        let rest = rest.split(['?', '#']).next().unwrap_or_default();
        let (authority, db) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hostport) = authority.rsplit_once('@').map_or((None, authority), |(u, h)| (Some(u), h));
        let (user, password) = match userinfo {
            None => ("root".to_owned(), None),
            Some(info) => match info.split_once(':') {
                Some((u, p)) => (percent_decode(u).into_owned(), Some(percent_decode(p).into_owned())),
                None => (percent_decode(info).into_owned(), None),
            },
        };
        let (host, port) = split_host_port(hostport, 3306).with_context(|| redact(url))?;
        let db = percent_decode(db.trim_matches('/')).into_owned();
        if db.is_empty() {
            bail!("{}: name the database (mysql://user:pw@host:port/<db>)", redact(url));
        }
        Ok(Self { host, port, user, password: password.filter(|p| !p.is_empty()), db })
    }

    /// `program` with the connection's options; the password goes in `MYSQL_PWD`, never argv.
    pub(super) fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.arg(format!("--host={}", self.host))
            .arg(format!("--port={}", self.port))
            .arg(format!("--user={}", self.user))
            .arg("--protocol=TCP");
        if let Some(password) = &self.password {
            cmd.env("MYSQL_PWD", password);
        }
        cmd
    }

    pub(super) fn dump_program(&self) -> anyhow::Result<String> {
        first_on_path(&["mariadb-dump", "mysqldump"])
    }

    pub(super) fn client_program(&self) -> anyhow::Result<String> {
        first_on_path(&["mariadb", "mysql"])
    }

    pub(super) fn counts(&self) -> anyhow::Result<StatusCounts> {
        let out = self
            .command(&self.client_program()?)
            .args(["--batch", "--skip-column-names", "-e", COUNT_SQL, &self.db])
            .stdin(Stdio::null())
            .output()
            .context("running the mariadb client")?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            if stderr.contains("1146") || stderr.contains("doesn't exist") {
                return Ok(StatusCounts::new());
            }
            bail!("counting the orders in {}: {}", self.db, stderr.trim());
        }
        parse_counts(&String::from_utf8_lossy(&out.stdout))
    }

    pub(super) fn dump(&self, program: &str, file: &Path) -> anyhow::Result<()> {
        let out_file = std::fs::File::create(file)?;
        let out = self
            .command(program)
            .args(["--single-transaction", "--routines", "--triggers", "--hex-blob", "--no-tablespaces"])
            .arg("--default-character-set=utf8mb4")
            .arg(&self.db)
            .stdin(Stdio::null())
            .stdout(out_file)
            .stderr(Stdio::piped())
            .output()
            .with_context(|| format!("running {program}"))?;
        if !out.status.success() {
            bail!("{program} of {} failed ({}): {}", self.db, out.status, String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(())
    }

    pub(super) fn load(&self, file: &Path) -> anyhow::Result<()> {
        let program = self.client_program()?;
        let input = std::fs::File::open(file)?;
        let out = self
            .command(&program)
            .arg("--default-character-set=utf8mb4")
            .arg(&self.db)
            .stdin(input)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .with_context(|| format!("running {program}"))?;
        if !out.status.success() {
            bail!(
                "loading {} into {} failed: {}",
                file.display(),
                self.db,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }
}

pub(super) fn first_on_path(programs: &[&str]) -> anyhow::Result<String> {
    programs
        .iter()
        .find(|p| deps::on_path(p))
        .map(|p| (*p).to_owned())
        .with_context(|| format!("none of {} is installed (Debian: mariadb-client)", programs.join(", ")))
}

/// The processes (pid and name) that have `file` (or its WAL) open, as far
/// as /proc lets this user see.
pub(super) fn holders_of(file: &Path) -> Vec<String> {
    let Ok(target) = file.canonicalize() else { return Vec::new() };
    let names: Vec<PathBuf> =
        ["", "-wal", "-shm"].iter().map(|s| PathBuf::from(format!("{}{s}", target.display()))).collect();
    let me = std::process::id().to_string();
    let mut holders = Vec::new();
    for proc_entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = proc_entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
            continue;
        }
        let holds = std::fs::read_dir(proc_entry.path().join("fd"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|link| names.contains(&link)));
        if holds {
            let comm = std::fs::read_to_string(proc_entry.path().join("comm")).unwrap_or_default();
            holders.push(format!("pid {pid} ({})", comm.trim()));
        }
    }
    holders
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_urls_are_read() {
        let m = MySql::parse("mysql://seckill:s%3Acret@db.local:3307/orders").unwrap();
        assert_eq!(
            (m.user.as_str(), m.password.as_deref(), m.host.as_str(), m.port, m.db.as_str()),
            ("seckill", Some("s:cret"), "db.local", 3307, "orders")
        );
        assert!(MySql::parse("mysql://root@db/").is_err(), "a database is named");
        let counts = parse_counts("paid\t2\t3\npending_payment\t1\t1\n").unwrap();
        assert_eq!(counts.get("paid"), Some(&(2, 3)));
        assert_eq!(counts_from_json(&counts_json(&counts)), counts);
    }
}
