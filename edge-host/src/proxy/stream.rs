//! One request's life on a worker, in Envoy's order and one function a phase:
//! [`handle`] opens the stream, runs the request headers and body through
//! the filter, forwards with the filter's headers, and runs the response
//! phase (on local replies too); the stream's [`StreamGuard`] finishes it
//! however it ends. A phase that decides the answer early returns it as
//! `Err(reply)`, so `phases` reads as the sequence of phases. Around them,
//! [`handle`] gives the request its `x-request-id`, puts it on the answer
//! and writes the access line (see [`access`]).

use super::access::{self, AccessLine, Decided, X_REQUEST_ID};
use super::body::{self, RespBody};
use super::config::Scheme;
use super::forward::{self, ResetError};
use super::guard::StreamGuard;
use super::state::{ProxyMetrics, Shared};
use super::worker::WorkerThread;
use crate::abi::Fields;
use crate::host::{LocalResponse, Signal, StreamInfo};
use crate::vm::{Decision, Vm, VmError};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response};
use seckill_api::ErrorCode;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;
use tokio::sync::mpsc;

/// What the client gets: a response, or its connection reset.
type Reply = Result<Response<RespBody>, ResetError>;

/// Serves one request on `worker`: its `x-request-id` (the client's if
/// well-formed, else a new one) goes to the filter and the backend with the
/// request and back to the client on the answer, as Envoy's connection
/// manager does with `generate_request_id` and
/// `always_set_request_id_in_response`; then the access line, if kept.
pub(super) async fn handle(
    worker: Rc<WorkerThread>,
    req: Request<Incoming>,
    peer: SocketAddr,
    local: SocketAddr,
    scheme: Scheme,
    connection_id: u64,
) -> Reply {
    let start = Instant::now();
    let (parts, body) = req.into_parts();
    let id = access::request_id(&parts.headers);
    let logged = worker.shared.cfg.access_log.is_some().then(|| (parts.method.clone(), parts.uri.clone()));
    let mut reply = phases(&worker, parts, body, &id, peer, local, scheme, connection_id).await;
    let (status, decided) = match &mut reply {
        Ok(response) => {
            response.headers_mut().insert(X_REQUEST_ID.clone(), id.clone());
            (response.status().as_u16(), response.extensions_mut().remove::<Decided>())
        }
        Err(_) => (0, Some(Decided("reset".into()))),
    };
    if let (Some(log), Some((method, uri))) = (&worker.shared.cfg.access_log, &logged) {
        log.record(&AccessLine {
            request_id: &id,
            method,
            uri,
            status,
            latency: start.elapsed(),
            client: peer.ip(),
            decision: decided.as_ref().map_or("forwarded", |d| d.0.as_str()),
        });
    }
    reply
}

/// The request through the filter and the backend, one phase a call.
#[allow(clippy::too_many_arguments)]
async fn phases(
    worker: &Rc<WorkerThread>,
    mut parts: http::request::Parts,
    body: Incoming,
    id: &http::HeaderValue,
    peer: SocketAddr,
    local: SocketAddr,
    scheme: Scheme,
    connection_id: u64,
) -> Reply {
    let shared = &worker.shared;
    if let Err(msg) = forward::check_head(&parts, shared.cfg.max_header_bytes) {
        shared.count(shared.metrics.rejected);
        return Ok(answer(shared, json_error(400, ErrorCode::BadRequest, msg, "edge_bad_request")));
    }
    // After the size check, as Envoy adds its id after its codec's limit.
    parts.headers.insert(X_REQUEST_ID.clone(), id.clone());
    let fields = forward::request_fields(&parts, peer, scheme);
    let info = StreamInfo { peer, local, connection_id, protocol: forward::protocol(parts.version), start_nanos: 0 };
    let mut stream = match Stream::open(worker, info) {
        Ok(stream) => stream,
        Err(e) => return filter_failed(worker, e, parts, body, peer, scheme).await,
    };
    let end_of_stream = hyper::body::Body::is_end_stream(&body);
    let decision = match stream.request_headers(fields, end_of_stream).await {
        Ok(d) => d,
        Err(e) => {
            stream.abandon();
            return filter_failed(worker, e, parts, body, peer, scheme).await;
        }
    };
    let request_body = match stream.request_body(decision, body, end_of_stream).await {
        Ok(b) => b,
        Err(reply) => return reply,
    };
    let response = match stream.forward(request_body).await {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    stream.response(response).await
}

/// A stream open in the worker's VM, with the channel its signals (continue,
/// local response, reset) arrive on while it is paused.
struct Stream {
    guard: StreamGuard,
    signals: mpsc::UnboundedReceiver<Signal>,
}

impl Stream {
    /// Creates the filter's context and registers for its signals.
    fn open(worker: &Rc<WorkerThread>, info: StreamInfo) -> Result<Self, VmError> {
        let generation = worker.generation.get();
        let ctx = worker.with_vm(|vm| vm.create_stream(info))?;
        let (tx, signals) = mpsc::unbounded_channel();
        worker.waiters.borrow_mut().insert(ctx, tx);
        Ok(Self { guard: StreamGuard { worker: worker.clone(), ctx, generation, done: false }, signals })
    }

    fn worker(&self) -> &Rc<WorkerThread> {
        &self.guard.worker
    }

    /// Runs `f` on the VM, unless the VM was rebuilt since the stream began.
    fn op<R>(&self, f: impl FnOnce(&mut Vm, u32) -> Result<R, VmError>) -> Result<R, VmError> {
        let ctx = self.guard.ctx;
        self.worker().stream_op(self.guard.generation, |vm| f(vm, ctx))
    }

    fn count(&self, pick: impl FnOnce(&ProxyMetrics) -> u32) {
        let shared = &self.worker().shared;
        shared.count(pick(&shared.metrics));
    }

    /// The VM failed under the stream before anything was decided: the
    /// stream is given up without its end callbacks (the VM is being rebuilt).
    fn abandon(&mut self) {
        self.guard.done = true;
        self.worker().waiters.borrow_mut().remove(&self.guard.ctx);
    }

    /// `proxy_on_request_headers`, and the wait when the filter pauses.
    async fn request_headers(&mut self, fields: Fields, end_of_stream: bool) -> Result<Decision, VmError> {
        let d = self.op(|vm, ctx| vm.on_request_headers(ctx, fields, end_of_stream))?;
        Ok(if d == Decision::Pause { self.resume(false).await } else { d })
    }

    /// Collects the body and runs `proxy_on_request_body` once, with
    /// `end_of_stream`; returns the body to forward (the filter's, if it
    /// changed it), or the answer when the request goes no further.
    async fn request_body(&mut self, mut d: Decision, body: Incoming, end_of_stream: bool) -> Result<Bytes, Reply> {
        let cfg = &self.worker().shared.cfg;
        let (max_body_bytes, fail_open) = (cfg.max_body_bytes, cfg.fail_open);
        let mut request_body = Bytes::new();
        if d == Decision::Continue && !end_of_stream {
            match Limited::new(body, max_body_bytes).collect().await {
                Ok(collected) => {
                    let bytes = collected.to_bytes();
                    d = match self.op(|vm, ctx| vm.on_request_body(ctx, &bytes, true)) {
                        Ok(Decision::Pause) => self.resume(false).await,
                        Ok(d) => d,
                        Err(_) if fail_open => Decision::Continue,
                        Err(_) => {
                            self.count(|m| m.filter_failures);
                            let r = json_error(503, ErrorCode::Unavailable, "edge filter failure", "filter_failure");
                            return Err(Ok(answer(&self.worker().shared, r)));
                        }
                    };
                    request_body = match self.op(|vm, ctx| Ok(vm.take_request_body(ctx))) {
                        Ok(b) if d == Decision::Continue => Bytes::from(b),
                        _ => bytes,
                    };
                }
                Err(e) => {
                    let too_big = e.downcast_ref::<http_body_util::LengthLimitError>().is_some();
                    if !too_big {
                        self.count(|m| m.resets);
                        return Err(Err(ResetError("the client's request body failed")));
                    }
                    let r = json_error(400, ErrorCode::BadRequest, "request body too large", "edge_bad_request");
                    d = Decision::LocalResponse(r);
                }
            }
        }
        match d {
            Decision::Continue => Ok(request_body),
            Decision::LocalResponse(r) => {
                self.count(|m| m.local);
                Err(Ok(self.local_reply(r)))
            }
            Decision::Reset | Decision::Pause => Err(self.reset()),
        }
    }

    /// Sends the request to the backend with the filter's headers (never a
    /// denied path) and waits for the response headers.
    async fn forward(&mut self, request_body: Bytes) -> Result<Response<Incoming>, Reply> {
        let worker = self.worker().clone();
        let cfg = &worker.shared.cfg;
        let headers = match self.op(|vm, ctx| Ok(vm.request_headers(ctx).cloned())) {
            Ok(Some(h)) => h,
            _ => {
                let r = json_error(503, ErrorCode::Unavailable, "edge filter failure", "filter_failure");
                return Err(Ok(answer(&worker.shared, r)));
            }
        };
        let path = headers.get_str(":path").unwrap_or("/");
        if cfg.deny_prefixes.iter().any(|p| !p.is_empty() && path.starts_with(p.as_str())) {
            self.count(|m| m.rejected);
            return Err(Ok(self.local_reply(json_error(404, ErrorCode::NotFound, "not found", "edge_denied"))));
        }
        let upstream = match forward::upstream_request(&cfg.backend, &headers, request_body) {
            Ok(r) => r,
            Err(msg) => {
                self.count(|m| m.rejected);
                return Err(Ok(self.local_reply(json_error(400, ErrorCode::BadRequest, &msg, "edge_bad_request"))));
            }
        };
        match tokio::time::timeout(cfg.upstream_timeout, worker.client.request(upstream)).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                tracing::warn!("backend {}: {e}", cfg.backend);
                self.count(|m| m.upstream_errors);
                let r = json_error(503, ErrorCode::Unavailable, "the backend is unavailable", "upstream_unavailable");
                Err(Ok(self.local_reply(r)))
            }
            Err(_) => {
                self.count(|m| m.upstream_errors);
                let r =
                    json_error(503, ErrorCode::Unavailable, "the backend did not answer in time", "upstream_timeout");
                Err(Ok(self.local_reply(r)))
            }
        }
    }

    /// `proxy_on_response_headers` on the backend's answer, then its body
    /// streamed through `proxy_on_response_body`; the guard travels with the
    /// body and finishes the stream when it ends.
    async fn response(mut self, response: Response<Incoming>) -> Reply {
        let (rparts, rbody) = response.into_parts();
        let rfields = forward::response_fields(&rparts.headers);
        let status = rparts.status.as_u16();
        let end_of_stream = hyper::body::Body::is_end_stream(&rbody);
        let mut d = match self.op(|vm, ctx| vm.on_response_headers(ctx, status, &rfields, end_of_stream)) {
            Ok(d) => d,
            // The backend already acted: pass its answer through.
            Err(_) => {
                self.count(|m| m.filter_failures);
                self.abandon();
                return Ok(body::passthrough(rparts, rbody));
            }
        };
        if d == Decision::Pause {
            d = self.resume(true).await;
        }
        self.worker().waiters.borrow_mut().remove(&self.guard.ctx);
        match d {
            Decision::Continue => {}
            Decision::LocalResponse(r) => {
                self.count(|m| m.local);
                self.guard.finish();
                return Ok(answer(&self.worker().shared, r));
            }
            Decision::Reset | Decision::Pause => return self.reset(),
        }
        let map = self.op(|vm, ctx| Ok(vm.response_headers(ctx).cloned())).ok().flatten();
        self.count(|m| m.forwarded);
        let map = map.unwrap_or_else(|| {
            let mut f = Fields::new();
            f.add(":status", status.to_string().as_bytes());
            for (k, v) in rfields.iter() {
                f.add(k, v);
            }
            f
        });
        Ok(body::filtered(map, rbody, self.guard))
    }

    /// Runs the response phase on a local reply (Envoy does), then finishes
    /// the stream.
    fn local_reply(&mut self, r: LocalResponse) -> Response<RespBody> {
        let decided = self.worker().shared.cfg.access_log.is_some().then(|| Decided::of(&r));
        // The reply itself goes out, changed where the filter changed it:
        // its headers are copied once out of the VM's map, never cloned whole.
        let mut out = r;
        if let Ok(Decision::Continue | Decision::Pause) =
            self.op(|vm, ctx| vm.on_response_headers(ctx, out.status, &out.headers, out.body.is_empty()))
            && let Ok(Some((status, headers))) = self.op(|vm, ctx| {
                Ok(vm.response_headers(ctx).map(|map| {
                    (map.get_str(":status").and_then(|s| s.parse().ok()), Fields::from_pairs(map.regular()))
                }))
            })
        {
            out.status = status.unwrap_or(out.status);
            out.headers = headers;
        }
        if !out.body.is_empty()
            && let Ok(Decision::Continue | Decision::Pause) =
                self.op(|vm, ctx| vm.on_response_body(ctx, &out.body, true))
            && let Ok(b) = self.op(|vm, ctx| Ok(vm.take_response_body(ctx)))
        {
            out.body = b;
        }
        self.guard.finish();
        let mut response = body::full(out);
        if let Some(d) = decided {
            response.extensions_mut().insert(d);
        }
        response
    }

    /// The filter reset the stream (or left it paused).
    fn reset(&self) -> Reply {
        self.count(|m| m.resets);
        Err(ResetError("reset by the edge filter"))
    }

    /// Waits for a paused stream to be continued, answered or reset.
    async fn resume(&mut self, response_phase: bool) -> Decision {
        let signals = &mut self.signals;
        let wait = async {
            while let Some(s) = signals.recv().await {
                match s {
                    Signal::ContinueRequest if !response_phase => return Decision::Continue,
                    Signal::ContinueResponse if response_phase => return Decision::Continue,
                    Signal::LocalResponse(r) => return Decision::LocalResponse(r),
                    Signal::Reset => return Decision::Reset,
                    _ => {}
                }
            }
            Decision::Reset
        };
        match tokio::time::timeout(self.guard.worker.shared.cfg.pause_timeout, wait).await {
            Ok(d) => d,
            Err(_) => Decision::LocalResponse(json_error(
                503,
                ErrorCode::Unavailable,
                "the edge filter did not resume the request in time",
                "filter_timeout",
            )),
        }
    }
}

/// The edge's own answer, in the contract's words; `decision` is the access
/// line's (kept as the reply's `details`, as Envoy's response code details).
fn json_error(status: u16, code: ErrorCode, message: &str, decision: &str) -> LocalResponse {
    let body = serde_json::to_vec(&seckill_api::ErrorBody { code, message: message.into() }).unwrap_or_default();
    let mut headers = Fields::new();
    headers.add("content-type", b"application/json");
    LocalResponse { status, headers, body, details: decision.into() }
}

/// A local answer (the filter's or the edge's own), marked with its decision
/// for the access line when there is one.
fn answer(shared: &Shared, r: LocalResponse) -> Response<RespBody> {
    let decided = shared.cfg.access_log.is_some().then(|| Decided::of(&r));
    let mut response = body::full(r);
    if let Some(d) = decided {
        response.extensions_mut().insert(d);
    }
    response
}

/// The backend's answer to a request the filter never saw, marked so.
fn unfiltered(shared: &Shared, mut response: Response<RespBody>) -> Response<RespBody> {
    if shared.cfg.access_log.is_some() {
        response.extensions_mut().insert(Decided("forwarded_unfiltered".into()));
    }
    response
}

/// The VM failed before the request was decided: `503`, or with
/// `fail_open` the request forwarded unfiltered.
async fn filter_failed(
    worker: &Rc<WorkerThread>,
    e: VmError,
    parts: http::request::Parts,
    body: Incoming,
    peer: SocketAddr,
    scheme: Scheme,
) -> Reply {
    let shared = &worker.shared;
    shared.count(shared.metrics.filter_failures);
    tracing::warn!(worker = worker.index, "request not filtered: {e}");
    if !shared.cfg.fail_open {
        return Ok(answer(shared, json_error(503, ErrorCode::Unavailable, "edge filter failure", "filter_failure")));
    }
    let fields = forward::request_fields(&parts, peer, scheme);
    let body = match Limited::new(body, shared.cfg.max_body_bytes).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            let r = json_error(400, ErrorCode::BadRequest, "request body too large", "edge_bad_request");
            return Ok(answer(shared, r));
        }
    };
    let upstream = match forward::upstream_request(&shared.cfg.backend, &fields, body) {
        Ok(r) => r,
        Err(msg) => return Ok(answer(shared, json_error(400, ErrorCode::BadRequest, &msg, "edge_bad_request"))),
    };
    match tokio::time::timeout(shared.cfg.upstream_timeout, worker.client.request(upstream)).await {
        Ok(Ok(r)) => {
            let (p, b) = r.into_parts();
            Ok(unfiltered(shared, body::passthrough(p, b)))
        }
        _ => {
            let r = json_error(503, ErrorCode::Unavailable, "the backend is unavailable", "upstream_unavailable");
            Ok(answer(shared, r))
        }
    }
}
