//! A private MariaDB server for one test, and the backend served against it.
//!
//! `MariaDb::start` initialises a fresh data directory with
//! `mariadb-install-db`, runs `mariadbd` on a free loopback port and waits
//! until it answers a query; everything goes when the handle drops. The
//! server is tuned to be small and quick (a few MB of log, no fsync per
//! commit, data in `/dev/shm` when there is one), not durable: the tests
//! exercise the SQL, not crash recovery.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sqlx::{Connection as _, Row as _};

use crate::{TempDir, free_port};

/// Options both `mariadb-install-db` and `mariadbd` get (the redo log size must agree).
const SERVER_OPTIONS: &[&str] = &[
    "--innodb-log-file-size=8M",
    "--innodb-buffer-pool-size=32M",
    "--innodb-flush-log-at-trx-commit=2",
    "--skip-name-resolve",
];

/// The application's account: all rights on `seckill.*`, nothing else.
const APP_USER: &str = "seckill";
const APP_PASSWORD: &str = "seckill-test";

/// How long the server may take to answer its first query.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// A private `mariadbd` on a free port, with its data in a temp dir.
pub struct MariaDb {
    pub port: u16,
    child: Option<Child>,
    dir: TempDir,
}

impl MariaDb {
    /// Starts a fresh server with an empty `seckill` database.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(&[]).await
    }

    /// A primary that writes a binary log, for a replica to follow.
    pub async fn start_primary() -> anyhow::Result<Self> {
        Self::start_with(&["--log-bin=mariadb-bin", "--server-id=1", "--binlog-format=ROW"]).await
    }

    /// A second server replicating `primary` from now on: its own `seckill`
    /// database and application account exist already, and whatever the
    /// primary does from here (the backend's migrations first) replays on it.
    /// Read-only to the application, as replicas are.
    pub async fn start_replica_of(primary: &MariaDb) -> anyhow::Result<Self> {
        let replica = Self::start_with(&["--server-id=2", "--read-only=1", "--relay-log=relay-bin"]).await?;
        let mut source = primary.root().await?;
        for sql in [
            "CREATE USER 'repl'@'127.0.0.1' IDENTIFIED BY 'repl'",
            "GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1'",
        ] {
            sqlx::raw_sql(sql).execute(&mut source).await?;
        }
        let status = sqlx::raw_sql("SHOW MASTER STATUS").fetch_one(&mut source).await?;
        let (file, position): (String, u64) = (status.try_get("File")?, status.try_get("Position")?);
        let mut conn = replica.root().await?;
        let change = format!(
            "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, MASTER_USER='repl', MASTER_PASSWORD='repl', \
             MASTER_LOG_FILE='{file}', MASTER_LOG_POS={position}, MASTER_CONNECT_RETRY=1",
            primary.port
        );
        sqlx::raw_sql(&change).execute(&mut conn).await?;
        replica.start_replication().await?;
        Ok(replica)
    }

    /// `STOP SLAVE`: the replica falls behind from now on.
    pub async fn stop_replication(&self) -> anyhow::Result<()> {
        sqlx::raw_sql("STOP SLAVE").execute(&mut self.root().await?).await?;
        Ok(())
    }

    /// `START SLAVE`, and waits until both replication threads run.
    pub async fn start_replication(&self) -> anyhow::Result<()> {
        let mut conn = self.root().await?;
        sqlx::raw_sql("START SLAVE").execute(&mut conn).await?;
        let start = Instant::now();
        loop {
            let status = sqlx::raw_sql("SHOW SLAVE STATUS").fetch_one(&mut conn).await?;
            let running = |column: &str| status.try_get::<String, _>(column).is_ok_and(|v| v == "Yes");
            if running("Slave_IO_Running") && running("Slave_SQL_Running") {
                return Ok(());
            }
            if start.elapsed() > START_DEADLINE {
                let error: String = status.try_get("Last_Error").unwrap_or_default();
                bail!("replication on port {} did not start within {START_DEADLINE:?}: {error}", self.port);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn start_with(extra: &[&str]) -> anyhow::Result<Self> {
        let server = program("mariadbd")?;
        let install = program("mariadb-install-db")?;
        // A port taken between `free_port` and the server binding it is retried.
        let mut last_error = None;
        for _ in 0..3 {
            match Self::start_once(&server, &install, extra).await {
                Ok(db) => return Ok(db),
                Err(e) if format!("{e:#}").contains("already in use") => last_error = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_error.expect("at least one attempt"))
    }

    async fn start_once(server: &Path, install: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        let dir = data_dir()?;
        let data = dir.0.join("data");
        // mariadbd refuses to run as root unless told to; `--user` is for root only.
        let as_root = std::fs::metadata(&dir.0)?.uid() == 0;
        let user: &[&str] = if as_root { &["--user=root"] } else { &[] };

        // A private tmpdir too: a starting server deletes the `#sql*` temp files it finds
        // there, which breaks another server's bootstrap in a shared /tmp.
        let tmp = dir.0.join("tmp");
        std::fs::create_dir_all(&tmp)?;
        let log = dir.0.join("install.log");
        let status = Command::new(install)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .args(user)
            .args(SERVER_OPTIONS)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log)?)
            .stderr(std::fs::File::create(dir.0.join("install.err"))?)
            .status()
            .with_context(|| format!("running {}", install.display()))?;
        if !status.success() {
            let err = std::fs::read_to_string(dir.0.join("install.err")).unwrap_or_default();
            bail!("{} failed with {status}: {}", install.display(), tail(&err));
        }

        let port = free_port();
        let socket = dir.0.join("sock").display().to_string();
        let error_log = dir.0.join("error.log");
        let child = Command::new(server)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={socket}"))
            .arg(format!("--pid-file={}", dir.0.join("mariadbd.pid").display()))
            .arg(format!("--log-error={}", error_log.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .arg(format!("--port={port}"))
            .args(["--bind-address=127.0.0.1", "--skip-networking=0"])
            .args(user)
            .args(SERVER_OPTIONS)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", server.display()))?;
        let mut db = Self { port, child: Some(child), dir };

        let admin_url = format!("mysql://root@127.0.0.1:{port}/");
        let start = Instant::now();
        let mut conn = loop {
            if let Some(status) = db.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                let log = std::fs::read_to_string(&error_log).unwrap_or_default();
                bail!("mariadbd on port {port} exited with {status} before answering: {}", tail(&log));
            }
            match sqlx::MySqlConnection::connect(&admin_url).await {
                Ok(mut conn) => {
                    // Another test's server may hold the port we picked; ours then fails to bind.
                    let theirs: String = sqlx::query_scalar("SELECT @@socket").fetch_one(&mut conn).await?;
                    if theirs != socket {
                        bail!("port {port} is already in use by another MariaDB ({theirs})");
                    }
                    break conn;
                }
                Err(e) if start.elapsed() > START_DEADLINE => {
                    bail!("mariadbd on port {port} did not answer within {START_DEADLINE:?}: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        sqlx::query("CREATE DATABASE seckill").execute(&mut conn).await?;
        // The application's own account, as production has: rights on its database
        // only, so that `read_only` and `max_connections` apply to it as to a real backend.
        sqlx::query(&format!("CREATE USER '{APP_USER}'@'127.0.0.1' IDENTIFIED BY '{APP_PASSWORD}'"))
            .execute(&mut conn)
            .await?;
        sqlx::query(&format!("GRANT ALL PRIVILEGES ON seckill.* TO '{APP_USER}'@'127.0.0.1'"))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        Ok(db)
    }

    /// The URL the backend takes: `mysql://root@127.0.0.1:<port>/seckill`.
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}/seckill", self.port)
    }

    /// The `seckill` database as the application's own account (no admin rights).
    pub fn app_url(&self) -> String {
        format!("mysql://{APP_USER}:{APP_PASSWORD}@127.0.0.1:{}/seckill", self.port)
    }

    /// A connection as root, for the faults a test injects (`SET GLOBAL …`, `KILL`).
    pub async fn root(&self) -> anyhow::Result<sqlx::MySqlConnection> {
        Ok(sqlx::MySqlConnection::connect(&format!("mysql://root@127.0.0.1:{}/", self.port)).await?)
    }

    /// Freezes the server (`SIGSTOP`), as a stuck or swapped-out database is:
    /// connections stay open and every query hangs until [`MariaDb::resume`].
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused server run again (`SIGCONT`).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, which: &str) {
        let pid = self.child.as_ref().expect("the server runs").id().to_string();
        let status = Command::new("kill").args([which, &pid]).status().expect("kill runs");
        assert!(status.success(), "kill {which} {pid} failed");
    }

    /// The server's data and log directory.
    pub fn dir(&self) -> &Path {
        &self.dir.0
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // `dir` is removed by its own drop, after the process is gone.
    }
}

/// A fresh directory for one server, in memory (`/dev/shm`) where there is one:
/// on a busy disk, the fsyncs of `mariadb-install-db` alone take seconds.
fn data_dir() -> anyhow::Result<TempDir> {
    use std::hash::{BuildHasher, RandomState};
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
    let n = RandomState::new().hash_one(std::time::SystemTime::now());
    let dir = base.join(format!("seckill-test-mariadb-{}-{n:x}", std::process::id()));
    match std::fs::create_dir_all(&dir) {
        Ok(()) => Ok(TempDir(dir)),
        Err(_) if base != std::env::temp_dir() => Ok(TempDir::new("mariadb")),
        Err(e) => Err(e).with_context(|| format!("creating {}", dir.display())),
    }
}

/// `name` on the PATH, or in the sbin directories a non-root PATH lacks.
fn program(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let extra = ["/usr/sbin", "/usr/local/sbin", "/usr/bin"].map(PathBuf::from);
    std::env::split_paths(&path)
        .chain(extra)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .with_context(|| format!("{name} not found: install MariaDB with `cargo xtask deps` (Debian: mariadb-server)"))
}

/// The last lines of a log, for an error message.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}
