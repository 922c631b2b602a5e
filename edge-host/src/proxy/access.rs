//! Request ids and the access log, as Envoy's connection manager has them.
//!
//! Every request goes by one `x-request-id`, which the backend and its order
//! worker log too, so that the lines one buy leaves in three processes can be
//! found together. The edge keeps a well-formed incoming id (1–64 of
//! `[A-Za-z0-9._-]`; a client may choose its own, e.g. to find its request
//! later) or makes one (a random UUID, as Envoy does), puts it on the request
//! before the filter sees it (so the filter and the backend get it), and on
//! the response to the client, local replies included.
//!
//! With an [`AccessLog`] (`--access-log json`) the edge writes one JSON object
//! per request and line, with the field names of the backend's and Envoy's
//! access lines (`deploy/LOGS.md`): `timestamp`, `level`, `target`
//! (`seckill::access`), `request_id`, `method`, `path`, `status`,
//! `latency_ms`, `client`, `decision`. `decision` says who answered:
//! `forwarded` (the backend), the `code` of the filter's own answer
//! (`rate_limited`, `blacklisted`, `sold_out`, …), or the edge's own reason
//! (`edge_bad_request`, `edge_denied`, `upstream_unavailable`,
//! `upstream_timeout`, `filter_failure`, `filter_timeout`,
//! `forwarded_unfiltered`, `reset`).

use crate::host::LocalResponse;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Uri};
use std::io::Write as _;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// The request id header.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub use seckill_api::request_id::well_formed;

/// A fresh id: a random (version 4) UUID, the shape Envoy's ids have.
pub fn generate() -> HeaderValue {
    let uuid = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    HeaderValue::from_bytes(uuid.hyphenated().encode_lower(&mut text).as_bytes()).expect("a UUID is a header value")
}

/// The id a request goes by: the first `x-request-id` if well-formed, else a new one.
pub fn request_id(headers: &HeaderMap) -> HeaderValue {
    match headers.get(&X_REQUEST_ID) {
        Some(v) if well_formed(v.as_bytes()) => v.clone(),
        _ => generate(),
    }
}

/// Who answered a request, for the access line; left in the response's
/// extensions where the answer is made (none: the backend's answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided(pub String);

impl Decided {
    /// A local reply's decision: the edge's own reason (in `details`), else
    /// the `code` of the filter's JSON answer, else `local_reply`.
    pub fn of(reply: &LocalResponse) -> Self {
        #[derive(serde::Deserialize)]
        struct Coded {
            code: String,
        }
        if !reply.details.is_empty() {
            return Self(reply.details.clone());
        }
        match serde_json::from_slice::<Coded>(&reply.body) {
            Ok(c) if well_formed(c.code.as_bytes()) => Self(c.code),
            _ => Self("local_reply".into()),
        }
    }
}

/// Writes one whole line, newline included.
type WriteLine = dyn Fn(&[u8]) + Send + Sync;

/// Where access lines go.
#[derive(Clone)]
pub struct AccessLog {
    write: Arc<WriteLine>,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessLog")
    }
}

impl AccessLog {
    /// Lines to standard output (the edge's own logs go to standard error),
    /// each in one write, so that lines of several workers never interleave.
    pub fn stdout() -> Self {
        Self::to(|line| {
            let _ = std::io::stdout().lock().write_all(line);
        })
    }

    /// Lines to `write` (tests collect them).
    pub fn to(write: impl Fn(&[u8]) + Send + Sync + 'static) -> Self {
        Self { write: Arc::new(write) }
    }

    /// Writes the line of one request.
    pub fn record(&self, line: &AccessLine<'_>) {
        let mut out = Vec::with_capacity(256);
        if serde_json::to_writer(&mut out, &line.json()).is_ok() {
            out.push(b'\n');
            (self.write)(&out);
        }
    }
}

/// What one request's line says.
#[derive(Debug)]
pub struct AccessLine<'a> {
    pub request_id: &'a HeaderValue,
    pub method: &'a Method,
    pub uri: &'a Uri,
    /// 0 when the connection was reset instead of answered (as in Envoy's log).
    pub status: u16,
    /// From the request's arrival to its response head.
    pub latency: Duration,
    pub client: IpAddr,
    pub decision: &'a str,
}

#[derive(serde::Serialize)]
struct Json<'a> {
    timestamp: String,
    level: &'static str,
    target: &'static str,
    request_id: &'a str,
    method: &'a str,
    path: &'a str,
    status: u16,
    latency_ms: f64,
    client: String,
    decision: &'a str,
}

impl AccessLine<'_> {
    fn json(&self) -> Json<'_> {
        Json {
            timestamp: timestamp(time::OffsetDateTime::now_utc()),
            level: "INFO",
            target: "seckill::access",
            request_id: self.request_id.to_str().unwrap_or_default(),
            method: self.method.as_str(),
            path: self.uri.path_and_query().map_or("/", |p| p.as_str()),
            status: self.status,
            latency_ms: (self.latency.as_secs_f64() * 1_000_000.0).round() / 1000.0,
            client: self.client.to_string(),
            decision: self.decision,
        }
    }
}

/// RFC 3339 in UTC with microseconds, as the backend's JSON lines have it
/// (tracing-subscriber's format): `2026-12-05T14:03:07.123456Z`.
fn timestamp(t: time::OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::Fields;

    #[test]
    fn well_formed_ids_are_kept_and_others_replaced() {
        let mut headers = HeaderMap::new();
        headers.insert(&X_REQUEST_ID, HeaderValue::from_static("test-req-1"));
        assert_eq!(request_id(&headers), "test-req-1");
        for bad in ["../..", &"x".repeat(65), &"x".repeat(200), "", "a b", "a\"b"] {
            headers.insert(&X_REQUEST_ID, HeaderValue::from_str(bad).unwrap());
            let id = request_id(&headers);
            assert_ne!(id, bad);
            assert!(well_formed(id.as_bytes()));
        }
        assert!(well_formed(&[b'x'; 64]));
        let fresh = request_id(&HeaderMap::new());
        assert_eq!(uuid::Uuid::parse_str(fresh.to_str().unwrap()).unwrap().get_version_num(), 4);
        assert_ne!(fresh, request_id(&HeaderMap::new()));
    }

    #[test]
    fn a_local_reply_is_decided_by_the_edge_or_by_the_filters_code() {
        let reply = |body: &str, details: &str| LocalResponse {
            status: 429,
            headers: Fields::new(),
            body: body.as_bytes().to_vec(),
            details: details.into(),
        };
        assert_eq!(Decided::of(&reply(r#"{"code":"rate_limited","message":"slow down"}"#, "")).0, "rate_limited");
        assert_eq!(Decided::of(&reply(r#"{"code":"unavailable"}"#, "upstream_timeout")).0, "upstream_timeout");
        assert_eq!(Decided::of(&reply("not json", "")).0, "local_reply");
        assert_eq!(Decided::of(&reply(r#"{"code":"a b"}"#, "")).0, "local_reply");
    }

    #[test]
    fn a_line_is_one_json_object_with_the_shared_field_names() {
        let lines = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let sink = lines.clone();
        let log = AccessLog::to(move |l| sink.lock().unwrap().extend_from_slice(l));
        let id = HeaderValue::from_static("test-req-1");
        let uri: Uri = "/api/activities/7/purchase?x=1".parse().unwrap();
        log.record(&AccessLine {
            request_id: &id,
            method: &Method::POST,
            uri: &uri,
            status: 202,
            latency: Duration::from_micros(1234),
            client: "203.0.113.9".parse().unwrap(),
            decision: "forwarded",
        });
        let text = String::from_utf8(lines.lock().unwrap().clone()).unwrap();
        assert!(text.ends_with('\n') && text.matches('\n').count() == 1, "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["target"], "seckill::access");
        assert_eq!(v["request_id"], "test-req-1");
        assert_eq!(v["method"], "POST");
        assert_eq!(v["path"], "/api/activities/7/purchase?x=1");
        assert_eq!(v["status"], 202);
        assert_eq!(v["latency_ms"], 1.234);
        assert_eq!(v["client"], "203.0.113.9");
        assert_eq!(v["decision"], "forwarded");
        let ts = v["timestamp"].as_str().unwrap();
        let parsed = time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339).unwrap();
        assert!((time::OffsetDateTime::now_utc() - parsed).whole_seconds().abs() < 60, "{ts}");
        assert_eq!(ts.len(), "2026-12-05T14:03:07.123456Z".len(), "{ts}");
    }
}
