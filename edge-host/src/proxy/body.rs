//! Response bodies: local replies, pass-through, and the backend's body
//! streamed through `proxy_on_response_body`.

use super::forward::{header_map, is_hop_by_hop};
use super::guard::StreamGuard;
use crate::abi::Fields;
use crate::host::LocalResponse;
use crate::vm::Decision;
use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use hyper::Response;
use hyper::body::Incoming;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body type of every edge response (not `Send`: the filtered body
/// talks to its worker's VM).
pub type RespBody = Pin<Box<dyn Body<Data = Bytes, Error = BoxError>>>;

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

pub(crate) fn full(r: LocalResponse) -> Response<RespBody> {
    let mut headers = header_map(&r.headers, false);
    if !headers.contains_key(http::header::CONTENT_TYPE) && !r.body.is_empty() {
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    }
    let body: RespBody = Box::pin(Full::new(Bytes::from(r.body)).map_err(|never| match never {}));
    let mut resp = Response::new(body);
    *resp.status_mut() = status(r.status);
    *resp.headers_mut() = headers;
    resp
}

pub(crate) fn passthrough(mut parts: http::response::Parts, body: Incoming) -> Response<RespBody> {
    let names: Vec<_> = parts.headers.keys().filter(|k| is_hop_by_hop(k.as_str())).cloned().collect();
    for n in names {
        parts.headers.remove(n);
    }
    let body: RespBody = Box::pin(body.map_err(|e| Box::new(e) as BoxError));
    Response::from_parts(parts, body)
}

/// `map` is the response header map after the filter (`:status` first).
pub(crate) fn filtered(map: Fields, body: Incoming, guard: StreamGuard) -> Response<RespBody> {
    let code = map.get_str(":status").and_then(|s| s.parse().ok()).unwrap_or(502);
    let headers = header_map(&map, true);
    // A response without a body had `end_of_stream` on its headers already.
    let eos_sent = body.is_end_stream();
    let body = FilteredBody { inner: body, guard, ended: false, eos_sent };
    let body: RespBody = Box::pin(body);
    let mut resp = Response::new(body);
    *resp.status_mut() = status(code);
    *resp.headers_mut() = headers;
    resp
}

struct FilteredBody {
    inner: Incoming,
    guard: StreamGuard,
    ended: bool,
    eos_sent: bool,
}

impl FilteredBody {
    fn end(&mut self) {
        self.ended = true;
        self.guard.finish();
    }
}

impl Body for FilteredBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if this.ended {
                return Poll::Ready(None);
            }
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    let data = match frame.into_data() {
                        Ok(d) => d,
                        Err(trailers) => return Poll::Ready(Some(Ok(trailers))),
                    };
                    let eos = this.inner.is_end_stream();
                    let out = match this.guard.response_body(&data, eos) {
                        // The VM failed: the body passes through.
                        None => data,
                        Some((Decision::Continue, b)) => Bytes::from(b),
                        Some((Decision::Pause, _)) if eos => Bytes::from(this.guard.take_held_body()),
                        Some((Decision::Pause, _)) => continue,
                        Some((Decision::LocalResponse(_) | Decision::Reset, _)) => {
                            this.end();
                            return Poll::Ready(Some(Err("response reset by the edge filter".into())));
                        }
                    };
                    if eos {
                        this.eos_sent = true;
                        this.end();
                    }
                    if out.is_empty() {
                        continue;
                    }
                    return Poll::Ready(Some(Ok(Frame::data(out))));
                }
                Some(Err(e)) => {
                    this.end();
                    return Poll::Ready(Some(Err(Box::new(e))));
                }
                None => {
                    let mut out = Bytes::new();
                    if !this.eos_sent {
                        out = match this.guard.response_body(&[], true) {
                            Some((Decision::Continue, b)) => Bytes::from(b),
                            Some((Decision::Pause, _)) => Bytes::from(this.guard.take_held_body()),
                            _ => Bytes::new(),
                        };
                    }
                    this.end();
                    if out.is_empty() {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(out))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }

    fn size_hint(&self) -> SizeHint {
        // The filter may replace the body: the upstream's length says
        // nothing about it. The response's content-length, if the filter
        // left it, frames the body; else it goes chunked, as from Envoy, or
        // with `content-length: 0` when there is no body at all (ditto).
        if self.eos_sent { SizeHint::with_exact(0) } else { SizeHint::default() }
    }
}
