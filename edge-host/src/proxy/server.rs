//! Starting and stopping an edge: the public listening sockets are bound (one
//! per worker and address, see [`listen`](super::listen)), the filter is
//! compiled and every worker's VM started before the edge reports ready (so a
//! bad module or configuration fails the start, not a request); each worker
//! then accepts on its own sockets, and one more thread serves the admin
//! listener.

use super::admin::admin_main;
use super::config::{ProxyConfig, Scheme};
use super::listen::reuseport_group;
use super::state::{ProxyMetrics, Shared};
use super::tls;
use super::worker_loop::worker_main;
use crate::clock::SystemClock;
use crate::vm::Plugin;
use anyhow::{Context as _, bail};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use tokio::sync::watch;

/// A running edge proxy.
pub struct EdgeProxy {
    listen_addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    admin_addr: Option<SocketAddr>,
    plugin: Arc<Plugin>,
    shutdown: watch::Sender<bool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl EdgeProxy {
    /// Loads the filter, starts every worker's VM (any failure — a missing
    /// import, a rejected configuration — is returned here, before anything
    /// listens), then serves.
    pub fn start(mut cfg: ProxyConfig) -> anyhow::Result<Self> {
        if cfg.workers == 0 {
            bail!("--workers must be at least 1");
        }
        let public = cfg.public_listeners()?;
        let tls = cfg.tls.as_ref().map(|files| files.load().map(tls::acceptor)).transpose()?;
        cfg.host.clusters.entry("seckill_backend".into()).or_insert_with(|| cfg.backend.clone());
        let plugin = Arc::new(Plugin::from_file(&cfg.wasm, cfg.host.clone(), SystemClock::shared())?);
        // groups[a][w]: worker w's socket on public address a.
        let mut groups = Vec::with_capacity(public.len());
        for &(addr, scheme) in &public {
            groups.push((reuseport_group(addr, cfg.workers)?, scheme));
        }
        let listen_addr = groups[0].0[0].local_addr()?;
        let tls_addr = groups.iter().find(|(_, s)| *s == Scheme::Https).map(|(g, _)| g[0].local_addr()).transpose()?;
        let admin = match cfg.admin_listen {
            Some(a) => {
                let l = std::net::TcpListener::bind(a).with_context(|| format!("binding the admin listener {a}"))?;
                l.set_nonblocking(true)?;
                Some(l)
            }
            None => None,
        };
        let admin_addr = admin.as_ref().map(|l| l.local_addr()).transpose()?;
        let shared = Arc::new(Shared {
            metrics: ProxyMetrics::define(&plugin, cfg.workers),
            healthy: (0..cfg.workers).map(|_| AtomicBool::new(true)).collect(),
            connection_ids: AtomicU64::new(1),
            plugin: plugin.clone(),
            tls,
            cfg,
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut threads = Vec::new();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<anyhow::Result<()>>();
        for index in 0..shared.cfg.workers {
            let own: Vec<(std::net::TcpListener, Scheme)> =
                groups.iter_mut().map(|(g, scheme)| (g.remove(0), *scheme)).collect();
            let (shared, shutdown_rx, ready) = (shared.clone(), shutdown_rx.clone(), ready_tx.clone());
            threads.push(
                std::thread::Builder::new()
                    .name(format!("edge-worker-{index}"))
                    .spawn(move || worker_main(index, shared, own, shutdown_rx, ready))?,
            );
        }
        drop(ready_tx);
        let mut failure = None;
        for _ in 0..shared.cfg.workers {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failure = failure.or(Some(e)),
                Err(_) => failure = failure.or(Some(anyhow::anyhow!("a worker thread died while starting"))),
            }
        }
        if let Some(e) = failure {
            let _ = shutdown.send(true);
            for t in threads {
                let _ = t.join();
            }
            return Err(e);
        }
        if let Some(admin) = admin {
            let (admin_shared, admin_shutdown) = (shared.clone(), shutdown_rx.clone());
            threads.push(std::thread::Builder::new().name("edge-admin".into()).spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
                rt.block_on(async move {
                    let admin = tokio::net::TcpListener::from_std(admin).expect("admin listener");
                    admin_main(admin, admin_shared, admin_shutdown).await;
                });
            })?);
        }
        tracing::info!(%listen_addr, ?tls_addr, ?admin_addr, workers = shared.cfg.workers, backend = %shared.cfg.backend, "edge proxy listening");
        Ok(Self { listen_addr, tls_addr, admin_addr, plugin, shutdown, threads })
    }

    /// The `listen` listener: plain HTTP, or only TLS when there is no `tls_listen`.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen_addr
    }

    /// The listener that speaks TLS, if any (`listen_addr` itself, or `tls_listen`'s).
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    /// Stops accepting, lets requests in flight finish (up to 5 s), ends the
    /// VMs' root contexts.
    pub fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    /// Serves until the process ends.
    pub fn wait(mut self) {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for EdgeProxy {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}
