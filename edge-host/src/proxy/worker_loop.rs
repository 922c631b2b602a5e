//! One worker thread's life: its single-threaded runtime and its VM (started
//! before the edge reports ready), the accept loops on its own listening
//! sockets (one per public address, see `listen`), the connections it serves,
//! and the drain at shutdown. Nothing a request needs lives on another thread.

use super::config::Scheme;
use super::state::Shared;
use super::stream;
use super::tls;
use super::worker::WorkerThread;
use hyper::Request;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};

pub(super) fn worker_main(
    index: usize,
    shared: Arc<Shared>,
    listeners: Vec<(std::net::TcpListener, Scheme)>,
    mut shutdown: watch::Receiver<bool>,
    ready: std::sync::mpsc::Sender<anyhow::Result<()>>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(e.into()));
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let vm = match shared.plugin.new_vm(index) {
            Ok(vm) => vm,
            Err(e) => {
                let _ = ready.send(Err(e.context(format!("starting the filter on worker {index}"))));
                return;
            }
        };
        let _ = ready.send(Ok(()));
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(1024)
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .build(connector);
        let worker = Rc::new(WorkerThread {
            index,
            shared: shared.clone(),
            vm: RefCell::new(vm),
            generation: Cell::new(0),
            client,
            waiters: RefCell::new(HashMap::new()),
            tick_notify: Notify::new(),
            rebuilt: Notify::new(),
            deferred_finish: RefCell::new(Vec::new()),
            last_rebuild: Cell::new(None),
            active: Cell::new(0),
        });
        worker.after_vm();
        tokio::task::spawn_local(worker.clone().tick_loop(shutdown.clone()));
        tokio::task::spawn_local(worker.clone().queue_loop(shutdown.clone()));
        for (listener, scheme) in listeners {
            match tokio::net::TcpListener::from_std(listener) {
                Ok(l) => {
                    tokio::task::spawn_local(accept_loop(worker.clone(), l, scheme, shutdown.clone()));
                }
                Err(e) => tracing::error!(worker = index, "cannot serve a listener: {e}"),
            }
        }
        while !*shutdown.borrow_and_update() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
        // Drain: connections close gracefully (they watch the same signal).
        let deadline = Instant::now() + Duration::from_secs(5);
        while worker.active.get() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        worker.vm.borrow_mut().shutdown();
    });
}

/// Accepts on one of the worker's own sockets until shutdown (its socket then
/// closes); each connection is served here, a TLS one after its handshake.
async fn accept_loop(
    worker: Rc<WorkerThread>,
    listener: tokio::net::TcpListener,
    scheme: Scheme,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, mostly: give closing connections a moment.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        worker.shared.count(worker.shared.metrics.connections[worker.index]);
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().unwrap_or(worker.shared.cfg.listen);
        match worker.shared.tls.as_ref().filter(|_| scheme == Scheme::Https) {
            None => {
                tokio::task::spawn_local(serve(worker.clone(), stream, peer, local, Scheme::Http, shutdown.clone()));
            }
            Some(acceptor) => {
                let handshake = tls::handshake(acceptor, stream, shutdown.clone());
                let (worker, shutdown) = (worker.clone(), shutdown.clone());
                tokio::task::spawn_local(async move {
                    match handshake.await {
                        Ok(stream) => serve(worker, stream, peer, local, Scheme::Https, shutdown).await,
                        Err(e) => {
                            // A port scanner, a plain-HTTP client, a client that does
                            // not trust the certificate: the client's problem, not ours.
                            worker.shared.count(worker.shared.metrics.tls_handshake_failures);
                            tracing::debug!("TLS handshake with {peer} failed: {e}");
                        }
                    }
                });
            }
        }
    }
}

/// Serves one connection, plain or already handshaken (`scheme` says which),
/// until it closes or the edge shuts down.
pub(super) async fn serve<S>(
    worker: Rc<WorkerThread>,
    stream: S,
    peer: SocketAddr,
    local: SocketAddr,
    scheme: Scheme,
    mut shutdown: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + 'static,
{
    let connection_id = worker.shared.connection_ids.fetch_add(1, Ordering::Relaxed);
    worker.active.set(worker.active.get() + 1);
    let w = worker.clone();
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let worker = w.clone();
        async move { stream::handle(worker, req, peer, local, scheme, connection_id).await }
    });
    let max_headers = worker.shared.cfg.max_header_bytes;
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).keep_alive(true).max_headers(256).max_buf_size((max_headers * 4).max(64 * 1024));
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => { if let Err(e) = r { tracing::debug!("connection from {peer}: {e}"); } }
        _ = shutdown.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
    worker.active.set(worker.active.get() - 1);
}
