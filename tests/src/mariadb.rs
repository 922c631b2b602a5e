//! A private MariaDB server for one test, and the backend served against it.
//!
//! `MariaDb::start` initialises a fresh data directory with
//! `mariadb-install-db`, runs `mariadbd` on a free loopback port and waits
//! until it answers a query; everything goes when the handle drops. The
//! server is tuned to be small and quick (a few MB of log, no fsync per
//! commit), not durable: the tests exercise the SQL, not crash recovery.

use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use sqlx::Connection as _;
use time::OffsetDateTime;

use crate::{ADMIN_PASSWORD, ActivitySpec, EDGE_SECRET, JWT_SECRET, TempDir, free_port, init_logging, jwt, rfc3339};

/// Options both `mariadb-install-db` and `mariadbd` get (the redo log size must agree).
const SERVER_OPTIONS: &[&str] = &[
    "--innodb-log-file-size=8M",
    "--innodb-buffer-pool-size=32M",
    "--innodb-flush-log-at-trx-commit=2",
    "--skip-name-resolve",
];

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
        let server = program("mariadbd")?;
        let install = program("mariadb-install-db")?;
        // A port taken between `free_port` and the server binding it is retried.
        let mut last_error = None;
        for _ in 0..3 {
            match Self::start_once(&server, &install).await {
                Ok(db) => return Ok(db),
                Err(e) if format!("{e:#}").contains("already in use") => last_error = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_error.expect("at least one attempt"))
    }

    async fn start_once(server: &Path, install: &Path) -> anyhow::Result<Self> {
        let dir = TempDir::new("mariadb");
        let data = dir.0.join("data");
        // mariadbd refuses to run as root unless told to; `--user` is for root only.
        let as_root = std::fs::metadata(&dir.0)?.uid() == 0;
        let user: &[&str] = if as_root { &["--user=root"] } else { &[] };

        let log = dir.0.join("install.log");
        let status = Command::new(install)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
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
        let error_log = dir.0.join("error.log");
        let child = Command::new(server)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", dir.0.join("sock").display()))
            .arg(format!("--pid-file={}", dir.0.join("mariadbd.pid").display()))
            .arg(format!("--log-error={}", error_log.display()))
            .arg(format!("--tmpdir={}", dir.0.display()))
            .arg(format!("--port={port}"))
            .args(["--bind-address=127.0.0.1", "--skip-networking=0"])
            .args(user)
            .args(SERVER_OPTIONS)
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
                Ok(conn) => break conn,
                Err(e) if start.elapsed() > START_DEADLINE => {
                    bail!("mariadbd on port {port} did not answer within {START_DEADLINE:?}: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        sqlx::query("CREATE DATABASE seckill").execute(&mut conn).await?;
        conn.close().await?;
        Ok(db)
    }

    /// The URL the backend takes: `mysql://root@127.0.0.1:<port>/seckill`.
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}/seckill", self.port)
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

/// The backend router served in-process against Redis and a chosen order
/// database. It mirrors `Backend::start_with`, which always brings its own
/// SQLite file.
pub struct DbBackend {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub database_url: String,
    /// The worker, sweeper and refresher tasks, aborted on drop.
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl DbBackend {
    /// Starts with extra command-line settings (e.g. `--pay-timeout-secs`).
    pub async fn start(redis_url: &str, database_url: &str, extra: &[&str]) -> anyhow::Result<Self> {
        use clap::Parser as _;
        init_logging();
        let mut args = vec![
            "seckill-backend",
            "--redis-url",
            redis_url,
            "--jwt-secret",
            JWT_SECRET,
            "--admin-password",
            ADMIN_PASSWORD,
            "--edge-secret",
            EDGE_SECRET,
            "--database-url",
            database_url,
        ];
        args.extend_from_slice(extra);
        let settings = seckill_backend::config::Settings::try_parse_from(args)?;
        let secrets = settings.secrets()?;
        let state = seckill_backend::app::AppState::new(settings, &secrets).await?;
        let tasks = state.start_background().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(seckill_backend::app::serve(listener, state, async move {
            let _ = rx.await;
        }));
        let http = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
        Ok(Self { addr, http, database_url: database_url.to_owned(), tasks, shutdown: Some(tx) })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A connection of the test's own to the backend's order database.
    pub async fn db(&self) -> seckill_backend::db::Db {
        seckill_backend::db::Db::connect(&self.database_url).await.unwrap()
    }

    /// Logs in as admin and returns the session token.
    pub async fn admin_token(&self) -> String {
        let res = self
            .http
            .post(self.url("/admin/api/login"))
            .json(&json!({"password": ADMIN_PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "admin login failed");
        res.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned()
    }

    /// Creates an activity through the admin API and returns its id.
    pub async fn create_activity(&self, spec: ActivitySpec) -> u64 {
        let admin = self.admin_token().await;
        let now = OffsetDateTime::now_utc();
        let body = json!({
            "name": spec.name,
            "price_cents": spec.price_cents,
            "total_stock": spec.stock,
            "limit_per_user": spec.limit,
            "starts_at": rfc3339(now + spec.starts_in),
            "ends_at": rfc3339(now + spec.starts_in + spec.lasts),
        });
        let res =
            self.http.post(self.url("/admin/api/activities")).bearer_auth(&admin).json(&body).send().await.unwrap();
        assert_eq!(res.status(), 201, "creating the activity failed: {}", res.text().await.unwrap());
        res.json::<Value>().await.unwrap()["id"].as_u64().unwrap()
    }

    /// Token then purchase of `quantity` as `user`; panics unless both succeed. Returns the order id.
    pub async fn buy(&self, activity: u64, user: &str, quantity: u64) -> String {
        let (status, body) = self.post(&format!("/api/activities/{activity}/token"), &jwt(user), None).await;
        assert_eq!(status, 200, "token for {user}: {body}");
        let purchase = json!({"token": body["token"], "quantity": quantity});
        let (status, body) =
            self.post(&format!("/api/activities/{activity}/purchase"), &jwt(user), Some(purchase)).await;
        assert_eq!(status, 202, "purchase for {user}: {body}");
        body["order_id"].as_str().unwrap().to_owned()
    }

    /// `POST path` with `bearer` and an optional JSON body; returns (status, body).
    pub async fn post(&self, path: &str, bearer: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.post(self.url(path)).bearer_auth(bearer);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.expect("request failed at the transport level");
        (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
    }

    /// `GET path` with `bearer`; returns (status, body).
    pub async fn get(&self, path: &str, bearer: &str) -> (u16, Value) {
        let res = self.http.get(self.url(path)).bearer_auth(bearer).send().await.expect("request failed");
        (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for DbBackend {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        for task in &self.tasks {
            task.abort();
        }
    }
}
