//! The admin server (Envoy's admin port): `/metrics` for Prometheus and
//! `/healthz`, which fails while a worker has no working filter VM. Its own
//! listener, so scraping never queues behind buyers.

use super::state::Shared;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::watch;

pub(super) async fn admin_main(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (stream, _) = tokio::select! {
            a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
            _ = shutdown.changed() => return,
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let shared = shared.clone();
                async move { Ok::<_, std::convert::Infallible>(admin_response(&shared, req.uri().path())) }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

fn admin_response(shared: &Shared, path: &str) -> Response<Full<Bytes>> {
    let text = |status: u16, ctype: &str, body: String| {
        Response::builder()
            .status(status)
            .header("content-type", ctype)
            .body(Full::new(Bytes::from(body)))
            .expect("valid response")
    };
    match path {
        "/metrics" => text(200, "text/plain; version=0.0.4", shared.plugin.render_metrics()),
        "/healthz" => {
            let down: Vec<String> = shared
                .healthy
                .iter()
                .enumerate()
                .filter(|(_, h)| !h.load(Ordering::Relaxed))
                .map(|(i, _)| i.to_string())
                .collect();
            if down.is_empty() {
                text(200, "text/plain", "ok\n".into())
            } else {
                text(503, "text/plain", format!("filter VM down on worker(s) {}\n", down.join(", ")))
            }
        }
        _ => text(404, "text/plain", "not found\n".into()),
    }
}
