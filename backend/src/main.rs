//! `seckill-backend`: serves the public API, the admin API, `/metrics`,
//! `/healthz` and `/readyz` (see `CONTRACT.md`).

// glibc malloc showed up as ~16% of the purchase path's CPU (arena lock
// contention between the runtime's workers); mimalloc's per-thread heaps avoid it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::IsTerminal as _;

use clap::Parser;
use seckill_backend::config::{LogFormat, Settings};
use seckill_backend::server;
use seckill_backend::state::AppState;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let settings = Settings::parse();
    // The per-request access lines cost about 14 % of a hot backend's purchases/s:
    // on by default for a log collector (JSON), off for a person reading text.
    // RUST_LOG decides either way.
    let default = match settings.log_format {
        LogFormat::Json => "info",
        LogFormat::Text => "info,seckill::access=off",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    match settings.log_format {
        // Colours only for a person at a terminal: a log file gets plain text.
        LogFormat::Text => {
            tracing_subscriber::fmt().with_env_filter(filter).with_ansi(std::io::stdout().is_terminal()).init()
        }
        // One JSON object per line, the event's fields at the top level, for a collector.
        LogFormat::Json => {
            tracing_subscriber::fmt().json().flatten_event(true).with_current_span(false).with_env_filter(filter).init()
        }
    }
    match run(settings).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One or two lines that say what is wrong, not a stack trace: a start-up
            // error is a setting or a dependency to fix, not a bug to debug.
            eprintln!("seckill-backend: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(settings: Settings) -> anyhow::Result<()> {
    let secrets = settings.secrets()?;
    let listen = settings.listen;
    let role = settings.role;
    let state = AppState::new(settings, &secrets).await?;
    let _tasks = state.start_background().await;
    if !role.serves_http() {
        tracing::info!("seckill order worker running (no HTTP listener in the worker role)");
        shutdown_signal().await;
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}; set SECKILL_LISTEN to a free address"))?;
    tracing::info!(%listen, "seckill backend serving");
    server::serve(listener, state, shutdown_signal()).await?;
    tracing::info!("seckill backend stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
}
