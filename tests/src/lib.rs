//! Test support for seckill's end-to-end tests: real `redis-server` processes
//! on free loopback ports, the real backend router served in-process, and the
//! HTTP calls a buyer or an operator makes.
//!
//! Everything a test starts is stopped when its handle drops, and every wait is
//! a poll with a deadline, never a bare sleep.

use std::future::Future;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};
use time::OffsetDateTime;

pub mod mariadb;

pub const JWT_SECRET: &str = "test-jwt-secret";
pub const ADMIN_PASSWORD: &str = "test-admin-password";
pub const EDGE_SECRET: &str = "test-edge-secret";

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Polls `check` until it returns `Some`, or fails after `deadline`.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(start.elapsed() < deadline, "timed out after {deadline:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A private `redis-server` on a free port, with its data in a temp dir.
pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server with AOF on (so a restart keeps the data) and waits for PING.
    pub fn start() -> anyhow::Result<Self> {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("seckill-test-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let mut server = Self { port, dir, child: None };
        server.restart()?;
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// (Re)starts the process on the same port and data dir.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", "everysec"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting redis-server (is it installed? `cargo xtask test` installs it)")?;
        self.child = Some(child);
        let client = redis::Client::open(self.url())?;
        let start = Instant::now();
        loop {
            if let Ok(mut c) = client.get_connection()
                && redis::cmd("PING").query::<String>(&mut c).is_ok()
            {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(10) {
                bail!("redis-server on port {} did not answer PING within 10s", self.port);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the process (as a crash would) and waits until it is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A plain async connection for assertions on raw keys.
    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url()).unwrap().get_multiplexed_async_connection().await.unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sends the backend's logs to the test output (shown for failing tests).
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
}

/// The backend router served in-process on a free port, against `redis_url`.
pub struct Backend {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    /// The order database this backend writes (a fresh SQLite file).
    pub database_url: String,
    /// The worker, sweeper and refresher tasks, aborted on drop.
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    _db_dir: Option<TempDir>,
}

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let n: u64 = rand_u64();
        let dir = std::env::temp_dir().join(format!("seckill-test-{tag}-{}-{n:x}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

impl Backend {
    pub async fn start(redis_url: &str) -> anyhow::Result<Self> {
        Self::start_with(redis_url, &[]).await
    }

    /// Starts with extra command-line settings (e.g. `--token-factor`) and a
    /// fresh SQLite order database.
    pub async fn start_with(redis_url: &str, extra: &[&str]) -> anyhow::Result<Self> {
        let db_dir = TempDir::new("db");
        let database_url = format!("sqlite://{}/orders.db", db_dir.0.display());
        Self::start_on_db(redis_url, &database_url, Some(db_dir), extra).await
    }

    /// Starts on an existing order database (a restart, or MariaDB); `db_dir`
    /// is removed when the backend drops.
    pub async fn start_on_db(
        redis_url: &str,
        database_url: &str,
        db_dir: Option<TempDir>,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        use clap::Parser as _;
        init_logging();
        let database_url = database_url.to_owned();
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
            &database_url,
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
        Ok(Self { addr, http, database_url, tasks, shutdown: Some(tx), _db_dir: db_dir })
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

    /// `POST /api/activities/{id}/token` as `user`; returns (status, body).
    pub async fn token(&self, activity: u64, user: &str) -> (u16, Value) {
        let res =
            self.http.post(self.url(&format!("/api/activities/{activity}/token"))).bearer_auth(jwt(user)).send().await;
        into_pair(res).await
    }

    /// `POST /api/activities/{id}/purchase` as `user`; returns (status, body).
    pub async fn purchase(&self, activity: u64, user: &str, token: &str, quantity: Value) -> (u16, Value) {
        let res = self
            .http
            .post(self.url(&format!("/api/activities/{activity}/purchase")))
            .bearer_auth(jwt(user))
            .json(&json!({"token": token, "quantity": quantity}))
            .send()
            .await;
        into_pair(res).await
    }

    /// `POST path` with `bearer` and an optional JSON body; returns (status, body).
    pub async fn post(&self, path: &str, bearer: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.post(self.url(path)).bearer_auth(bearer);
        if let Some(body) = body {
            req = req.json(&body);
        }
        into_pair(req.send().await).await
    }

    /// `GET path` with `bearer`; returns (status, body).
    pub async fn get(&self, path: &str, bearer: &str) -> (u16, Value) {
        into_pair(self.http.get(self.url(path)).bearer_auth(bearer).send().await).await
    }

    /// Token then purchase of `quantity`; panics unless both succeed. Returns the order id.
    pub async fn buy(&self, activity: u64, user: &str, quantity: u64) -> String {
        let (status, body) = self.token(activity, user).await;
        assert_eq!(status, 200, "token for {user}: {body}");
        let (status, body) = self.purchase(activity, user, body["token"].as_str().unwrap(), json!(quantity)).await;
        assert_eq!(status, 202, "purchase for {user}: {body}");
        body["order_id"].as_str().unwrap().to_owned()
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn into_pair(res: reqwest::Result<reqwest::Response>) -> (u16, Value) {
    let res = res.expect("request failed at the transport level");
    let status = res.status().as_u16();
    let body = res.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

/// What a test activity looks like; defaults to live now, for an hour.
#[derive(Debug, Clone)]
pub struct ActivitySpec {
    pub name: String,
    pub price_cents: i64,
    pub stock: i64,
    pub limit: i64,
    pub starts_in: time::Duration,
    pub lasts: time::Duration,
}

impl ActivitySpec {
    pub fn live(stock: i64, limit: i64) -> Self {
        Self {
            name: "test phone".into(),
            price_cents: 1999,
            stock,
            limit,
            starts_in: time::Duration::seconds(-60),
            lasts: time::Duration::hours(1),
        }
    }
}

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap()
}

/// A buyer JWT for `user`, valid for an hour, signed with the test secret.
pub fn jwt(user: &str) -> String {
    jwt_with(user, OffsetDateTime::now_utc().unix_timestamp() + 3600, JWT_SECRET)
}

/// A buyer JWT with a chosen expiry and secret (for forged and expired tokens).
pub fn jwt_with(user: &str, exp: i64, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::default(),
        &json!({"sub": user, "exp": exp}),
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// Reads an integer key (0 when missing).
pub async fn get_int(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> i64 {
    let v: Option<i64> = redis::cmd("GET").arg(key).query_async(conn).await.unwrap();
    v.unwrap_or(0)
}
