//! `seckill-edge`: the local edge proxy — the proxy-wasm filter in front of
//! the backend (see the crate README).

// glibc malloc showed up as ~16% of the purchase path's CPU (arena lock
// contention between the runtime's workers); mimalloc's per-thread heaps avoid it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Context as _;
use clap::Parser;
use seckill_edge_host::LogLevel;
use seckill_edge_host::proxy::{AccessLog, EdgeProxy, ProxyConfig, TlsFiles, parse_log_level, plugin_config_json};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(name = "seckill-edge", about = "seckill's edge: the proxy-wasm filter in front of the backend")]
struct Args {
    /// Public listener: plain HTTP, or only HTTPS with --tls-cert/--tls-key and no --tls-listen.
    #[arg(long, env = "SECKILL_EDGE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// HTTPS: the certificate chain (PEM), with --tls-key.
    #[arg(long, env = "SECKILL_EDGE_TLS_CERT_FILE", value_name = "PEM")]
    tls_cert: Option<PathBuf>,
    /// HTTPS: the certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1), with --tls-cert.
    #[arg(long, env = "SECKILL_EDGE_TLS_KEY_FILE", value_name = "PEM")]
    tls_key: Option<PathBuf>,
    /// A second public listener, for HTTPS, while --listen stays plain HTTP (needs --tls-cert/--tls-key).
    #[arg(long, env = "SECKILL_EDGE_TLS_LISTEN")]
    tls_listen: Option<SocketAddr>,
    /// The backend (`host:port`), also cluster `seckill_backend` for the filter's calls.
    #[arg(long, env = "SECKILL_EDGE_BACKEND", default_value = "127.0.0.1:8081")]
    backend: String,
    /// The filter module.
    #[arg(
        long,
        env = "SECKILL_EDGE_WASM",
        default_value = "target/wasm32-unknown-unknown/release/seckill_edge_filter.wasm"
    )]
    wasm: PathBuf,
    /// The filter's JSON configuration; `SECKILL_EDGE_SECRET` / `SECKILL_JWT_SECRET`
    /// fill (and override) `edge_secret` / `jwt_secret`.
    #[arg(long, env = "SECKILL_EDGE_PLUGIN_CONFIG")]
    plugin_config: Option<PathBuf>,
    /// Worker threads, one filter VM each (default: the number of cores).
    #[arg(long, env = "SECKILL_EDGE_WORKERS")]
    workers: Option<usize>,
    /// Admin listener for `/metrics` and `/healthz`.
    #[arg(long, env = "SECKILL_EDGE_ADMIN_LISTEN", default_value = "127.0.0.1:9901")]
    admin_listen: SocketAddr,
    /// More clusters the filter may call: `name=host:port` (repeatable).
    #[arg(long = "cluster", value_name = "NAME=HOST:PORT")]
    clusters: Vec<String>,
    /// Least level of the filter's log lines that are kept.
    #[arg(long, env = "SECKILL_EDGE_LOG_LEVEL", default_value = "info", value_parser = parse_log_level)]
    log_level: LogLevel,
    /// Request line plus headers beyond this get a JSON 400.
    #[arg(long, default_value_t = 16 * 1024)]
    max_header_bytes: usize,
    /// Request bodies beyond this get a JSON 400.
    #[arg(long, default_value_t = 1 << 20)]
    max_body_bytes: usize,
    /// Time to the backend's response headers, then a JSON 503.
    #[arg(long, default_value_t = 30_000)]
    upstream_timeout_ms: u64,
    /// Paths with this prefix are never forwarded (repeatable; `""` disables).
    #[arg(long = "deny-prefix", default_values_t = vec!["/internal/".to_string()])]
    deny_prefixes: Vec<String>,
    /// When the filter VM fails, forward requests unfiltered instead of answering 503.
    #[arg(long)]
    fail_open: bool,
    /// Longest one filter callback may run before its VM is interrupted and
    /// rebuilt; 0 turns the deadline (and its small cost) off.
    #[arg(long, default_value_t = 1000)]
    callback_timeout_ms: u64,
    /// One line per request on standard output: `json` (the fields of
    /// deploy/LOGS.md), or `off`.
    #[arg(long, env = "SECKILL_EDGE_ACCESS_LOG", value_enum, default_value_t = AccessLogFormat::Off)]
    access_log: AccessLogFormat,
}

/// `--access-log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum AccessLogFormat {
    Off,
    Json,
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One or two lines that say what is wrong: a start-up error is a setting to
            // fix, not a bug to debug, so no stack trace (even with RUST_BACKTRACE set).
            eprintln!("seckill-edge: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let plugin_config = plugin_config_json(args.plugin_config.as_deref(), &args.backend, |k| std::env::var(k).ok())?;
    let mut cfg = ProxyConfig::new(&args.wasm, &args.backend, plugin_config);
    cfg.listen = args.listen;
    cfg.tls = TlsFiles::from_settings(args.tls_cert, args.tls_key)?;
    cfg.tls_listen = args.tls_listen;
    cfg.admin_listen = Some(args.admin_listen);
    if let Some(w) = args.workers {
        cfg.workers = w;
    }
    cfg.max_header_bytes = args.max_header_bytes;
    cfg.max_body_bytes = args.max_body_bytes;
    cfg.upstream_timeout = Duration::from_millis(args.upstream_timeout_ms);
    cfg.deny_prefixes = args.deny_prefixes;
    cfg.fail_open = args.fail_open;
    cfg.host.log_level = args.log_level;
    cfg.host.callback_timeout = Duration::from_millis(args.callback_timeout_ms);
    cfg.access_log = (args.access_log == AccessLogFormat::Json).then(AccessLog::stdout);
    for c in &args.clusters {
        let (name, target) = c.split_once('=').with_context(|| format!("--cluster {c}: expected NAME=HOST:PORT"))?;
        cfg.host.clusters.insert(name.to_string(), target.to_string());
    }
    let proxy = EdgeProxy::start(cfg)?;
    let public = match (proxy.tls_addr(), proxy.listen_addr()) {
        (Some(tls), plain) if tls == plain => format!("https://{tls}"),
        (Some(tls), plain) => format!("http://{plain} and https://{tls}"),
        (None, plain) => format!("http://{plain}"),
    };
    let started =
        format!("seckill-edge listening on {public} (backend {}), admin on http://{}", args.backend, args.admin_listen);
    match args.access_log {
        AccessLogFormat::Off => println!("{started}"),
        // Standard output is the access log's alone, every line JSON.
        AccessLogFormat::Json => eprintln!("{started}"),
    }
    let stop = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    stop.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
        }
    });
    eprintln!("seckill-edge: shutting down");
    proxy.shutdown();
    Ok(())
}
