//! `seckill-backend`: serves the public API, the admin API, `/metrics`,
//! `/healthz` and `/readyz` (see `CONTRACT.md`).

// glibc malloc showed up as ~16% of the purchase path's CPU (arena lock
// contention between the runtime's workers); mimalloc's per-thread heaps avoid it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use seckill_backend::app::{self, AppState};
use seckill_backend::config::Settings;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    let settings = Settings::parse();
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
    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    tracing::info!(%listen, "seckill backend serving");
    app::serve(listener, state, shutdown_signal()).await?;
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
