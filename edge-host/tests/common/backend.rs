//! A toy backend for the proxy tests: echoes requests as JSON, serves
//! `/internal/edge/state` (secret-checked, ETag/304), streams `/stream`,
//! answers `/bytes/<n>` with n bytes of a fixed pattern.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const EDGE_SECRET: &str = "mini-secret";

#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
pub struct State {
    pub seen: Vec<Seen>,
    pub edge_state: String,
    pub stream_chunks_sent: usize,
}

pub struct Backend {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<State>>,
    _rt: tokio::runtime::Runtime,
}

type Body = Pin<Box<dyn hyper::body::Body<Data = Bytes, Error = Infallible> + Send>>;

fn full(b: impl Into<Bytes>) -> Body {
    Box::pin(Full::new(b.into()))
}

async fn handle(state: Arc<Mutex<State>>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
    let seen = Seen {
        method: parts.method.to_string(),
        path: parts.uri.path_and_query().map(|p| p.to_string()).unwrap_or_default(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect(),
        body,
    };
    state.lock().unwrap().seen.push(seen.clone());
    let path = parts.uri.path();
    if path == "/internal/edge/state" {
        if seen.header("x-seckill-edge-secret") != Some(EDGE_SECRET) {
            return Ok(Response::builder().status(403).body(full(r#"{"code":"forbidden","message":"no"}"#)).unwrap());
        }
        let body = state.lock().unwrap().edge_state.clone();
        let etag = format!("\"{}\"", body.len());
        if seen.header("if-none-match") == Some(etag.as_str()) {
            return Ok(Response::builder().status(304).header("etag", etag).body(full(Bytes::new())).unwrap());
        }
        return Ok(Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .header("etag", etag)
            .body(full(body))
            .unwrap());
    }
    if path == "/stream" {
        let chunks =
            Chunks { i: 0, sleep: Box::pin(tokio::time::sleep(Duration::from_millis(40))), state: state.clone() };
        return Ok(Response::builder()
            .status(200)
            .header("content-type", "text/plain")
            .body(Box::pin(chunks) as Body)
            .unwrap());
    }
    if let Some(n) = path.strip_prefix("/bytes/").and_then(|n| n.parse::<usize>().ok()) {
        let body: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
        return Ok(Response::builder()
            .status(200)
            .header("content-type", "application/octet-stream")
            .header("x-backend", "toy")
            .header("x-probe-resp-removed", "a filter may remove this")
            .body(full(body))
            .unwrap());
    }
    let echo = serde_json::json!({
        "method": seen.method,
        "path": seen.path,
        "headers": seen.headers.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
        "body": String::from_utf8_lossy(&seen.body),
    });
    Ok(Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .header("x-backend", "toy")
        .body(full(serde_json::to_vec(&echo).unwrap()))
        .unwrap())
}

/// 50 chunks, 40 ms apart.
struct Chunks {
    i: usize,
    sleep: Pin<Box<tokio::time::Sleep>>,
    state: Arc<Mutex<State>>,
}

impl hyper::body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.i == 50 {
            return std::task::Poll::Ready(None);
        }
        std::task::ready!(self.sleep.as_mut().poll(cx));
        let next = tokio::time::Instant::now() + Duration::from_millis(40);
        self.sleep.as_mut().reset(next);
        let i = self.i;
        self.i += 1;
        self.state.lock().unwrap().stream_chunks_sent += 1;
        std::task::Poll::Ready(Some(Ok(Frame::data(Bytes::from(format!("chunk {i}\n"))))))
    }
}

impl Backend {
    pub fn start() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let st = state.clone();
        rt.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| handle(st.clone(), req));
                    let _ =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
        Self { addr, state, _rt: rt }
    }

    pub fn set_edge_state(&self, json: &str) {
        self.state.lock().unwrap().edge_state = json.to_string();
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }
}
