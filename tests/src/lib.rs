//! Test support for seckill's end-to-end tests: real `redis-server` processes
//! on free loopback ports, the real backend router served in-process, and the
//! HTTP calls a buyer or an operator makes.
//!
//! Longer than 500 lines on purpose: this is every server and client the
//! end-to-end tests share (redis-server, the backend in-process and as a
//! process, buyers' and operators' calls); the edges, Envoy and MariaDB have
//! modules of their own.
//!
//! Everything a test starts is stopped when its handle drops, and every wait is
//! a poll with a deadline, never a bare sleep.

use std::future::Future;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use time::OffsetDateTime;

pub mod crowd;
pub mod edge;
pub mod envoy;
pub mod mariadb;
pub mod redis_topology;

/// The workspace root.
pub fn root() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// The filter's release `.wasm` (`cargo xtask test` builds it), under
/// `$CARGO_TARGET_DIR` when that is set.
pub fn filter_wasm() -> PathBuf {
    release_wasm("seckill_edge_filter")
}

/// The hosts suite's probe filter (`tests/fixtures/probe-filter`, a filter
/// that is not ours), built with the edge filter.
pub fn probe_wasm() -> PathBuf {
    release_wasm("seckill_probe_filter")
}

fn release_wasm(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root().join("target"));
    let wasm = target.join(format!("wasm32-unknown-unknown/release/{name}.wasm"));
    assert!(wasm.is_file(), "{} is missing: run `cargo xtask test` (it builds the filters)", wasm.display());
    wasm
}

/// `envoy/filter-config.json` rendered for an edge in front of `backend`
/// (named `edge_id`, syncing every `sync_ms`).
pub fn filter_config(backend: SocketAddr, edge_id: &str, sync_ms: u64) -> Vec<u8> {
    let template = std::fs::read_to_string(root().join("envoy/filter-config.json")).unwrap();
    let rendered = seckill_api::placeholders::fill(&template, |name| match name {
        "SECKILL_BACKEND" => Some(backend.to_string()),
        "SECKILL_EDGE_ID" => Some(edge_id.to_owned()),
        "SECKILL_EDGE_SECRET" => Some(EDGE_SECRET.to_owned()),
        "SECKILL_JWT_SECRET" => Some(JWT_SECRET.to_owned()),
        _ => None,
    })
    .unwrap();
    let mut config: Value = serde_json::from_str(&rendered).unwrap();
    config["sync_period_ms"] = json!(sync_ms);
    config["sync_timeout_ms"] = json!(sync_ms);
    serde_json::to_vec(&config).unwrap()
}

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

/// Sends `SIGSTOP` to `pid` and returns once every thread of it is stopped:
/// the kernel stops them one by one after `kill` returns, and a thread not
/// yet stopped can still answer a request.
pub fn stop_process(pid: u32, what: &str) {
    send_signal(pid, "-STOP");
    let stopped = || {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return false };
        tasks.flatten().all(|task| {
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            // The state follows the command name's closing parenthesis.
            stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('T') || rest.starts_with('t'))
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !stopped() {
        assert!(Instant::now() < deadline, "{what} {pid} did not stop within 10 s of SIGSTOP");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `kill <signal> <pid>`.
pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill").args([signal, &pid.to_string()]).status().expect("kill runs");
    assert!(status.success(), "kill {signal} {pid} failed");
}

/// A private `redis-server` on a free port, with its data in a temp dir.
pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// `appendfsync`: `everysec` (quick), or `always` (no acknowledged write lost to a crash).
    fsync: &'static str,
}

impl RedisServer {
    /// Starts a server with AOF on (so a restart keeps the data) and waits for PING.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with_fsync("everysec")
    }

    /// Starts a server that fsyncs its AOF before it answers (`appendfsync
    /// always`), as the sale's Redis runs: a `kill -9` loses no write it acknowledged.
    pub fn start_durable() -> anyhow::Result<Self> {
        Self::start_with_fsync("always")
    }

    fn start_with_fsync(fsync: &'static str) -> anyhow::Result<Self> {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("seckill-test-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let mut server = Self { port, dir, child: None, fsync };
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
            .args(["--appendonly", "yes", "--appendfsync", self.fsync])
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

    /// `SIGSTOP`: the server keeps its connections but answers nothing until
    /// [`RedisServer::resume`], as a stuck server does.
    pub fn pause(&self) {
        stop_process(self.child.as_ref().expect("redis-server is running").id(), "redis-server");
    }

    /// `SIGCONT` after [`RedisServer::pause`].
    pub fn resume(&self) {
        send_signal(self.child.as_ref().expect("redis-server is running").id(), "-CONT");
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

/// The real `seckill-backend` binary in a process of its own, for what only a
/// process can suffer (`kill -9`); it keeps its address across restarts.
pub struct BackendProcess {
    pub addr: SocketAddr,
    args: Vec<String>,
    /// Environment beyond `RUST_LOG=warn` (which it may replace).
    env: Vec<(String, String)>,
    child: Option<Child>,
    log: PathBuf,
}

impl BackendProcess {
    /// `target/<profile>/seckill-backend`, built with the workspace's tests
    /// (`cargo test --workspace` builds it for the backend's own tests).
    pub fn binary() -> anyhow::Result<PathBuf> {
        let exe = std::env::current_exe()?;
        let profile_dir = exe.parent().and_then(|deps| deps.parent()).context("test binary outside target/")?;
        let binary = profile_dir.join("seckill-backend");
        if !binary.is_file() {
            bail!(
                "{} is missing: build it with `cargo build -p seckill-backend` (cargo xtask test does)",
                binary.display()
            );
        }
        Ok(binary)
    }

    /// Starts the backend on a free port with the test secrets, `redis_url`,
    /// `database_url` and `extra` flags, and waits until `/healthz` answers.
    pub async fn start(redis_url: &str, database_url: &str, extra: &[&str]) -> anyhow::Result<Self> {
        Self::start_with_env(redis_url, database_url, extra, &[]).await
    }

    /// [`BackendProcess::start`] with `env` set for the process (e.g.
    /// `RUST_LOG=info`, `SECKILL_LOG_FORMAT=json`; it replaces `RUST_LOG=warn`).
    pub async fn start_with_env(
        redis_url: &str,
        database_url: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse()?;
        let mut args: Vec<String> = [
            "--listen",
            &addr.to_string(),
            "--redis-url",
            redis_url,
            "--database-url",
            database_url,
            "--jwt-secret",
            JWT_SECRET,
            "--admin-password",
            ADMIN_PASSWORD,
            "--edge-secret",
            EDGE_SECRET,
            "--admin-ui-dir",
            "/nonexistent",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let log = std::env::temp_dir().join(format!("seckill-test-backend-{}-{}.log", std::process::id(), addr.port()));
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut process = Self { addr, args, env, child: None, log };
        process.restart().await?;
        Ok(process)
    }

    /// (Re)starts the process on the same address and waits for `/healthz`.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let child = Command::new(Self::binary()?)
            .args(&self.args)
            .env("RUST_LOG", "warn")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting seckill-backend")?;
        self.child = Some(child);
        let http = reqwest::Client::new();
        let url = format!("http://{}/healthz", self.addr);
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                bail!("seckill-backend exited with {status}: {log}");
            }
            if http.get(&url).send().await.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(30) {
                bail!("seckill-backend on {} did not answer /healthz within 30 s", self.addr);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `SIGSTOP`: the process keeps its connections but answers nothing
    /// until [`BackendProcess::resume`], as a stuck server does (see [`stop_process`]).
    pub fn pause(&self) {
        stop_process(self.child.as_ref().expect("the backend is running").id(), "seckill-backend");
    }

    /// `SIGCONT` after [`BackendProcess::pause`].
    pub fn resume(&self) {
        send_signal(self.child.as_ref().expect("the backend is running").id(), "-CONT");
    }

    /// `kill -9`, as a crash or the OOM killer would, and waits until it is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for BackendProcess {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.log);
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
        let defaults = [
            ("--redis-url", redis_url),
            ("--jwt-secret", JWT_SECRET),
            ("--admin-password", ADMIN_PASSWORD),
            ("--edge-secret", EDGE_SECRET),
            ("--database-url", &database_url),
        ];
        // A flag in `extra` replaces its default (a flag may be given once).
        let mut args = vec!["seckill-backend"];
        for (flag, value) in defaults.iter().filter(|(flag, _)| !extra.contains(flag)) {
            args.extend([*flag, *value]);
        }
        args.extend_from_slice(extra);
        let settings = seckill_backend::config::Settings::try_parse_from(args)?;
        let secrets = settings.secrets()?;
        let state = seckill_backend::state::AppState::new(settings, &secrets).await?;
        let tasks = state.start_background().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(seckill_backend::server::serve(listener, state, async move {
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
        admin_token_at(&self.http, self.addr).await
    }

    /// Creates an activity through the admin API and returns its id.
    pub async fn create_activity(&self, spec: ActivitySpec) -> u64 {
        create_activity_at(&self.http, self.addr, spec).await
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

    /// `token`, asked again while the backend answers `unavailable` (503), as
    /// a client does: on a busy machine a Redis call can outlast the store's
    /// timeout, and the contract makes asking again safe.
    pub async fn token_retrying(&self, activity: u64, user: &str) -> (u16, Value) {
        retry_unavailable(|| self.token(activity, user)).await
    }

    /// `purchase`, retried with the same token while the backend answers
    /// `unavailable`: the token is the idempotency key, so a purchase that did
    /// happen before the timeout answers with its order, never a second one.
    pub async fn purchase_retrying(&self, activity: u64, user: &str, token: &str, quantity: Value) -> (u16, Value) {
        retry_unavailable(|| self.purchase(activity, user, token, quantity.clone())).await
    }

    /// Token then purchase of `quantity` (each retried while `unavailable`);
    /// panics unless both succeed. Returns the order id.
    pub async fn buy(&self, activity: u64, user: &str, quantity: u64) -> String {
        let (status, body) = self.token_retrying(activity, user).await;
        assert_eq!(status, 200, "token for {user}: {body}");
        let token = body["token"].as_str().unwrap();
        let (status, body) = self.purchase_retrying(activity, user, token, json!(quantity)).await;
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

/// Logs in as admin at the backend on `addr` and returns the session token.
pub async fn admin_token_at(http: &reqwest::Client, addr: SocketAddr) -> String {
    let res = http
        .post(format!("http://{addr}/admin/api/login"))
        .json(&json!({"password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "admin login failed");
    res.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned()
}

/// Creates an activity through the admin API of the backend on `addr` and returns its id.
pub async fn create_activity_at(http: &reqwest::Client, addr: SocketAddr, spec: ActivitySpec) -> u64 {
    let admin = admin_token_at(http, addr).await;
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
        http.post(format!("http://{addr}/admin/api/activities")).bearer_auth(&admin).json(&body).send().await.unwrap();
    assert_eq!(res.status(), 201, "creating the activity failed: {}", res.text().await.unwrap());
    res.json::<Value>().await.unwrap()["id"].as_u64().unwrap()
}

/// Every order row of activity `a`, walked through the keyset pages.
pub async fn order_rows(db: &seckill_backend::db::Db, a: u64) -> Vec<seckill_backend::db::OrderRow> {
    let filter = seckill_backend::db::OrderFilter { activity_id: Some(a), ..Default::default() };
    let (mut all, mut cursor) = (Vec::new(), None);
    loop {
        let (page, next) = db.orders(&filter, cursor.as_ref(), 500).await.unwrap();
        all.extend(page);
        match next {
            Some(c) => cursor = Some(c),
            None => return all,
        }
    }
}

/// How long a test client keeps asking again while the backend is `unavailable`.
const UNAVAILABLE_PATIENCE: Duration = Duration::from_secs(60);

/// Runs `call` again while it answers 503 `unavailable`, pausing briefly in
/// between (shorter than `retry-after`, to keep tests quick), up to `UNAVAILABLE_PATIENCE`.
pub async fn retry_unavailable<F, Fut>(mut call: F) -> (u16, Value)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = (u16, Value)>,
{
    let start = Instant::now();
    loop {
        let (status, body) = call().await;
        if status != 503 || start.elapsed() > UNAVAILABLE_PATIENCE {
            return (status, body);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
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
/// Forged and expired ones: [`seckill_api::buyer_jwt::mint`].
pub fn jwt(user: &str) -> String {
    seckill_api::buyer_jwt::mint(JWT_SECRET, user, OffsetDateTime::now_utc().unix_timestamp() + 3600)
}

/// Reads an integer key (0 when missing).
pub async fn get_int(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> i64 {
    let v: Option<i64> = redis::cmd("GET").arg(key).query_async(conn).await.unwrap();
    v.unwrap_or(0)
}

/// What `user` has bought in activity `a`, as the per-user limit counts it (0 when none).
pub async fn bought(conn: &mut redis::aio::MultiplexedConnection, a: u64, user: &str) -> i64 {
    let v: Option<i64> =
        redis::cmd("HGET").arg(seckill_backend::store::keys::user_limits(a)).arg(user).query_async(conn).await.unwrap();
    v.unwrap_or(0)
}

/// Puts a live token `token` of `user` into activity `a`'s token hash, valid
/// until `expires_ms`, as `lua/token.lua` writes one but without its checks
/// (a second live token, one the limit or the token bound would refuse).
pub async fn forge_token(
    conn: &mut redis::aio::MultiplexedConnection,
    a: u64,
    token: &str,
    user: &str,
    expires_ms: i64,
) {
    let () = redis::cmd("HSET")
        .arg(seckill_backend::store::keys::tokens(a))
        .arg(token)
        .arg(format!("{user}:{expires_ms}"))
        .query_async(conn)
        .await
        .unwrap();
}

/// Waits until the wall clock reads `unix_ms` (a moment the test schedules
/// against, such as an order's payment deadline), returning at once if it has passed.
pub async fn sleep_until_unix_ms(unix_ms: i64) {
    let now = seckill_backend::clock::now_ms();
    if unix_ms > now {
        tokio::time::sleep(Duration::from_millis((unix_ms - now) as u64)).await;
    }
}

/// An order's `pay_deadline` in unix milliseconds, as its buyer reads it.
pub async fn pay_deadline_ms(api: &Backend, order: &str, user: &str) -> i64 {
    let (status, body) = api.get(&format!("/api/orders/{order}"), &jwt(user)).await;
    assert_eq!(status, 200, "{body}");
    let deadline =
        OffsetDateTime::parse(body["pay_deadline"].as_str().unwrap(), &time::format_description::well_known::Rfc3339)
            .unwrap();
    (deadline.unix_timestamp_nanos() / 1_000_000) as i64
}

/// `target/<profile>/seckill-load`, built with the workspace's tests (its
/// own CLI tests make cargo build the binary).
pub fn load_binary() -> PathBuf {
    let binary = BackendProcess::binary().unwrap().with_file_name("seckill-load");
    assert!(binary.is_file(), "{} is missing: `cargo build -p seckill-load` (cargo xtask test does)", binary.display());
    binary
}

/// Runs `seckill-load` with `args` and the test secrets to its end, off the
/// runtime's threads; its whole output.
pub async fn run_load(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        Command::new(load_binary())
            .args(&args)
            .env("SECKILL_JWT_SECRET", JWT_SECRET)
            .env("SECKILL_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .output()
            .expect("seckill-load runs")
    })
    .await
    .expect("the seckill-load task finishes")
}

/// The xtask binary, refused when missing or older than its sources (a test
/// would run a command that is not the one in the tree).
pub fn xtask_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile = exe.parent().and_then(Path::parent).expect("the test binary is in target/<profile>/deps");
    let binary = profile.join("xtask");
    let hint = "build it with `cargo build -p xtask` (`cargo xtask test` does)";
    let built = std::fs::metadata(&binary)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| panic!("{} is missing: {hint}", binary.display()));
    let mut sources = vec![root().join("xtask/Cargo.toml")];
    sources.extend(std::fs::read_dir(root().join("xtask/src")).unwrap().map(|e| e.unwrap().path()));
    for source in sources {
        let modified = std::fs::metadata(&source).and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH);
        assert!(modified <= built, "{} is older than {}: {hint}", binary.display(), source.display());
    }
    binary
}

impl BackendProcess {
    /// Everything the process wrote so far (standard output and error).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The lines of its log that are JSON objects (with `SECKILL_LOG_FORMAT=json`).
    pub fn json_lines(&self) -> Vec<Value> {
        self.log_text().lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).filter(Value::is_object).collect()
    }
}
