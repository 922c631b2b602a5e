//! One request's life on a worker, Envoy's order: request headers and body
//! through the filter, the filter's local response or the request forwarded
//! with the filter's headers, then the response phase — on local replies
//! too — and the stream finished by its [`StreamGuard`].

use super::body::{self, RespBody};
use super::forward;
use super::guard::StreamGuard;
use super::worker::Worker;
use crate::host::{LocalResponse, Signal, StreamInfo};
use crate::vm::{Decision, VmError};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response};
use std::net::SocketAddr;
use std::rc::Rc;
use tokio::sync::mpsc;

impl Worker {
    pub(super) fn json_error(status: u16, code: seckill_api::ErrorCode, message: &str) -> LocalResponse {
        let body = serde_json::to_vec(&seckill_api::ErrorBody { code, message: message.into() }).unwrap_or_default();
        let mut headers = crate::abi::Fields::new();
        headers.add("content-type", b"application/json");
        LocalResponse { status, headers, body, details: String::new() }
    }

    /// Waits for a paused stream to be continued, answered or reset.
    pub(super) async fn resume(&self, rx: &mut mpsc::UnboundedReceiver<Signal>, response_phase: bool) -> Decision {
        let wait = async {
            while let Some(s) = rx.recv().await {
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
        match tokio::time::timeout(self.shared.cfg.pause_timeout, wait).await {
            Ok(d) => d,
            Err(_) => Decision::LocalResponse(Self::json_error(
                503,
                seckill_api::ErrorCode::Unavailable,
                "the edge filter did not resume the request in time",
            )),
        }
    }

    pub(super) async fn handle(
        self: Rc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
        local: SocketAddr,
        connection_id: u64,
    ) -> Result<Response<RespBody>, forward::ResetError> {
        use seckill_api::ErrorCode;
        let shared = self.shared.clone();
        let cfg = &shared.cfg;
        let m = &shared.metrics;
        let (parts, body) = req.into_parts();
        if let Err(msg) = forward::check_head(&parts, cfg.max_header_bytes) {
            shared.count(m.rejected);
            return Ok(body::full(Self::json_error(400, ErrorCode::BadRequest, msg)));
        }
        let fields = forward::request_fields(&parts, peer);
        let generation = self.generation.get();
        let info =
            StreamInfo { peer, local, connection_id, protocol: forward::protocol(parts.version), start_nanos: 0 };
        let ctx = match self.with_vm(|vm| vm.create_stream(info)) {
            Ok(ctx) => ctx,
            Err(e) => return self.filter_failed(e, parts, body, peer).await,
        };
        let (tx, mut rx) = mpsc::unbounded_channel();
        self.waiters.borrow_mut().insert(ctx, tx);
        let mut guard = StreamGuard { worker: self.clone(), ctx, generation, done: false };

        // Request phase.
        let end_of_stream = hyper::body::Body::is_end_stream(&body);
        let mut d = match self.stream_op(generation, |vm| vm.on_request_headers(ctx, fields, end_of_stream)) {
            Ok(d) => d,
            Err(e) => {
                guard.done = true;
                self.waiters.borrow_mut().remove(&ctx);
                return self.filter_failed(e, parts, body, peer).await;
            }
        };
        if d == Decision::Pause {
            d = self.resume(&mut rx, false).await;
        }
        let mut request_body = Bytes::new();
        if d == Decision::Continue && !end_of_stream {
            match Limited::new(body, cfg.max_body_bytes).collect().await {
                Ok(collected) => {
                    let bytes = collected.to_bytes();
                    d = match self.stream_op(generation, |vm| vm.on_request_body(ctx, &bytes, true)) {
                        Ok(Decision::Pause) => self.resume(&mut rx, false).await,
                        Ok(d) => d,
                        Err(_) if cfg.fail_open => Decision::Continue,
                        Err(_) => {
                            shared.count(m.filter_failures);
                            return Ok(body::full(Self::json_error(
                                503,
                                ErrorCode::Unavailable,
                                "edge filter failure",
                            )));
                        }
                    };
                    request_body = match self.stream_op(generation, |vm| Ok(vm.take_request_body(ctx))) {
                        Ok(b) if d == Decision::Continue => Bytes::from(b),
                        _ => bytes,
                    };
                }
                Err(e) => {
                    let too_big = e.downcast_ref::<http_body_util::LengthLimitError>().is_some();
                    if !too_big {
                        shared.count(m.resets);
                        return Err(forward::ResetError("the client's request body failed"));
                    }
                    d = Decision::LocalResponse(Self::json_error(400, ErrorCode::BadRequest, "request body too large"));
                }
            }
        }
        match d {
            Decision::Continue => {}
            Decision::LocalResponse(r) => {
                shared.count(m.local);
                return Ok(self.local_reply(guard, r));
            }
            Decision::Reset | Decision::Pause => {
                shared.count(m.resets);
                return Err(forward::ResetError("reset by the edge filter"));
            }
        }

        // Forward with the filter's headers.
        let headers = match self.stream_op(generation, |vm| Ok(vm.request_headers(ctx).cloned())) {
            Ok(Some(h)) => h,
            _ => return Ok(body::full(Self::json_error(503, ErrorCode::Unavailable, "edge filter failure"))),
        };
        let path = headers.get_str(":path").unwrap_or("/");
        if cfg.deny_prefixes.iter().any(|p| !p.is_empty() && path.starts_with(p.as_str())) {
            shared.count(m.rejected);
            return Ok(self.local_reply(guard, Self::json_error(404, ErrorCode::NotFound, "not found")));
        }
        let upstream = match forward::upstream_request(&cfg.backend, &headers, request_body) {
            Ok(r) => r,
            Err(msg) => {
                shared.count(m.rejected);
                return Ok(self.local_reply(guard, Self::json_error(400, ErrorCode::BadRequest, &msg)));
            }
        };
        let response = match tokio::time::timeout(cfg.upstream_timeout, self.client.request(upstream)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::warn!("backend {}: {e}", cfg.backend);
                shared.count(m.upstream_errors);
                let r = Self::json_error(503, ErrorCode::Unavailable, "the backend is unavailable");
                return Ok(self.local_reply(guard, r));
            }
            Err(_) => {
                shared.count(m.upstream_errors);
                let r = Self::json_error(503, ErrorCode::Unavailable, "the backend did not answer in time");
                return Ok(self.local_reply(guard, r));
            }
        };

        // Response phase.
        let (rparts, rbody) = response.into_parts();
        let rfields = forward::response_fields(&rparts.headers);
        let status = rparts.status.as_u16();
        let end_of_stream = hyper::body::Body::is_end_stream(&rbody);
        let mut d = match self.stream_op(generation, |vm| vm.on_response_headers(ctx, status, &rfields, end_of_stream))
        {
            Ok(d) => d,
            // The backend already acted: pass its answer through.
            Err(_) => {
                shared.count(m.filter_failures);
                guard.done = true;
                self.waiters.borrow_mut().remove(&ctx);
                return Ok(body::passthrough(rparts, rbody));
            }
        };
        if d == Decision::Pause {
            d = self.resume(&mut rx, true).await;
        }
        self.waiters.borrow_mut().remove(&ctx);
        match d {
            Decision::Continue => {}
            Decision::LocalResponse(r) => {
                shared.count(m.local);
                guard.finish();
                return Ok(body::full(r));
            }
            Decision::Reset | Decision::Pause => {
                shared.count(m.resets);
                return Err(forward::ResetError("reset by the edge filter"));
            }
        }
        let map = self.stream_op(generation, |vm| Ok(vm.response_headers(ctx).cloned())).ok().flatten();
        shared.count(m.forwarded);
        let map = map.unwrap_or_else(|| {
            let mut f = crate::abi::Fields::new();
            f.add(":status", status.to_string().as_bytes());
            for (k, v) in rfields.iter() {
                f.add(k, v);
            }
            f
        });
        Ok(body::filtered(map, rbody, guard))
    }

    /// Runs the response phase on a local reply (Envoy does), then finishes
    /// the stream.
    pub(super) fn local_reply(self: &Rc<Self>, mut guard: StreamGuard, r: LocalResponse) -> Response<RespBody> {
        let (ctx, generation) = (guard.ctx, guard.generation);
        let mut out = r.clone();
        if let Ok(Decision::Continue | Decision::Pause) =
            self.stream_op(generation, |vm| vm.on_response_headers(ctx, r.status, &r.headers, r.body.is_empty()))
            && let Ok(Some(map)) = self.stream_op(generation, |vm| Ok(vm.response_headers(ctx).cloned()))
        {
            out.status = map.get_str(":status").and_then(|s| s.parse().ok()).unwrap_or(r.status);
            out.headers = crate::abi::Fields::from_pairs(map.regular());
        }
        if !r.body.is_empty()
            && let Ok(Decision::Continue | Decision::Pause) =
                self.stream_op(generation, |vm| vm.on_response_body(ctx, &r.body, true))
            && let Ok(b) = self.stream_op(generation, |vm| Ok(vm.take_response_body(ctx)))
        {
            out.body = b;
        }
        guard.finish();
        body::full(out)
    }

    /// The VM failed before the request was decided.
    pub(super) async fn filter_failed(
        self: &Rc<Self>,
        e: VmError,
        parts: http::request::Parts,
        body: Incoming,
        peer: SocketAddr,
    ) -> Result<Response<RespBody>, forward::ResetError> {
        let shared = &self.shared;
        shared.count(shared.metrics.filter_failures);
        tracing::warn!(worker = self.index, "request not filtered: {e}");
        if !shared.cfg.fail_open {
            return Ok(body::full(Self::json_error(503, seckill_api::ErrorCode::Unavailable, "edge filter failure")));
        }
        let fields = forward::request_fields(&parts, peer);
        let body = match Limited::new(body, shared.cfg.max_body_bytes).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return Ok(body::full(Self::json_error(
                    400,
                    seckill_api::ErrorCode::BadRequest,
                    "request body too large",
                )));
            }
        };
        let upstream = match forward::upstream_request(&shared.cfg.backend, &fields, body) {
            Ok(r) => r,
            Err(msg) => return Ok(body::full(Self::json_error(400, seckill_api::ErrorCode::BadRequest, &msg))),
        };
        match tokio::time::timeout(shared.cfg.upstream_timeout, self.client.request(upstream)).await {
            Ok(Ok(r)) => {
                let (p, b) = r.into_parts();
                Ok(body::passthrough(p, b))
            }
            _ => {
                Ok(body::full(Self::json_error(503, seckill_api::ErrorCode::Unavailable, "the backend is unavailable")))
            }
        }
    }
}
