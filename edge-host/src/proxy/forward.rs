//! Turning hyper requests into filter header maps and back, and performing
//! the filter's HTTP calls.

use super::config::Scheme;
use crate::abi::Fields;
use crate::host::{HttpCallRequest, HttpCallResponse};
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Version};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use std::net::SocketAddr;

/// Ends the client connection (a reset stream).
#[derive(Debug)]
pub struct ResetError(pub &'static str);

impl std::fmt::Display for ResetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for ResetError {}

/// Headers that describe one hop and are never forwarded.
const HOP_BY_HOP: &[&str] =
    &["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"];

pub(crate) fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
}

/// The request line and headers within `max` bytes, every header value UTF-8
/// (the SDK's text accessors panic on anything else).
pub(crate) fn check_head(parts: &http::request::Parts, max: usize) -> Result<(), &'static str> {
    let mut size = parts.method.as_str().len() + uri_len(&parts.uri) + 12;
    for (name, value) in &parts.headers {
        size += name.as_str().len() + value.len() + 4;
        if std::str::from_utf8(value.as_bytes()).is_err() {
            return Err("header values must be UTF-8");
        }
    }
    if size > max {
        return Err("request headers too large");
    }
    Ok(())
}

/// The length of `uri` as `Display` writes it (scheme `://`, authority,
/// path, `?` query), without writing it.
fn uri_len(uri: &http::Uri) -> usize {
    uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path().len()
        + uri.query().map_or(0, |q| q.len() + 1)
}

pub(crate) fn protocol(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

/// `:authority` (from Host), `:path`, `:method`, `:scheme`, then the other
/// headers, with the peer appended to `x-forwarded-for` and
/// `x-forwarded-proto` set (see [`add_forwarded_as`]) — before the filter
/// runs, as Envoy's connection manager does with `use_remote_address`.
pub(crate) fn request_fields(parts: &http::request::Parts, peer: SocketAddr, scheme: Scheme) -> Fields {
    let mut f = Fields::with_capacity(parts.headers.len() + 6);
    let authority = parts
        .headers
        .get(http::header::HOST)
        .map(|h| h.as_bytes().to_vec())
        .or_else(|| parts.uri.authority().map(|a| a.as_str().as_bytes().to_vec()))
        .unwrap_or_default();
    f.add(":authority", &authority);
    f.add(":path", parts.uri.path_and_query().map_or("/", |p| p.as_str()).as_bytes());
    f.add(":method", parts.method.as_str().as_bytes());
    f.add(":scheme", scheme.as_str().as_bytes());
    for (name, value) in &parts.headers {
        if name != http::header::HOST {
            f.add(name.as_str(), value.as_bytes());
        }
    }
    add_forwarded_as(&mut f, peer, scheme);
    f
}

/// Appends the peer to `x-forwarded-for` (one header, comma-joined) and sets
/// `x-forwarded-proto: http` when absent.
pub fn add_forwarded(f: &mut Fields, peer: SocketAddr) {
    add_forwarded_as(f, peer, Scheme::Http);
}

/// [`add_forwarded`] for a request that came in over `scheme`: over TLS,
/// `x-forwarded-proto` is `https` whatever the client sent (the edge knows,
/// as Envoy's edge does); over plain HTTP a client's value is kept.
pub fn add_forwarded_as(f: &mut Fields, peer: SocketAddr, scheme: Scheme) {
    // Built as bytes, the address written digit by digit: on every request,
    // where `format!` and `Ipv4Addr`'s `Display` were a visible share of a
    // shed request's cost.
    let mut xff = Vec::with_capacity(48);
    for v in f.get_all("x-forwarded-for") {
        let v = match std::str::from_utf8(v) {
            Ok(text) => std::borrow::Cow::Borrowed(text.trim()),
            Err(_) => std::borrow::Cow::Owned(String::from_utf8_lossy(v).trim().to_owned()),
        };
        if !v.is_empty() {
            xff.extend_from_slice(v.as_bytes());
            xff.extend_from_slice(b", ");
        }
    }
    push_ip(&mut xff, peer.ip());
    f.replace("x-forwarded-for", &xff);
    match scheme {
        Scheme::Https => f.replace("x-forwarded-proto", b"https"),
        Scheme::Http if f.get("x-forwarded-proto").is_none() => f.add("x-forwarded-proto", b"http"),
        Scheme::Http => {}
    }
}

/// `ip` as `Display` writes it; IPv4 without the formatting machinery.
fn push_ip(out: &mut Vec<u8>, ip: std::net::IpAddr) {
    let std::net::IpAddr::V4(v4) = ip else {
        use std::io::Write as _;
        let _ = write!(out, "{ip}");
        return;
    };
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        if octet >= 100 {
            out.push(b'0' + octet / 100);
        }
        if octet >= 10 {
            out.push(b'0' + octet / 10 % 10);
        }
        out.push(b'0' + octet % 10);
    }
}

pub(crate) fn response_fields(headers: &HeaderMap) -> Fields {
    let mut f = Fields::with_capacity(headers.len());
    for (name, value) in headers {
        if !is_hop_by_hop(name.as_str()) {
            f.add(name.as_str(), value.as_bytes());
        }
    }
    f
}

/// Copies the regular fields to a `HeaderMap`, without hop-by-hop headers
/// (and those the `Connection` header names), `host` and `content-length`.
pub(crate) fn header_map(fields: &Fields, keep_content_length: bool) -> HeaderMap {
    let connection_tokens: Vec<String> = fields
        .get_all("connection")
        .flat_map(|v| String::from_utf8_lossy(v).split(',').map(|t| t.trim().to_ascii_lowercase()).collect::<Vec<_>>())
        .collect();
    let mut map = HeaderMap::with_capacity(fields.len());
    for (k, v) in fields.regular() {
        if is_hop_by_hop(k)
            || k == "host"
            || (k == "content-length" && !keep_content_length)
            || connection_tokens.iter().any(|t| t == k)
        {
            continue;
        }
        match (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_bytes(v)) {
            (Ok(name), Ok(value)) => {
                map.append(name, value);
            }
            _ => tracing::debug!("dropping an invalid header `{k}`"),
        }
    }
    map
}

/// The request to the backend: the filter's `:method`, `:path`, `:authority`
/// and headers.
pub(crate) fn upstream_request(backend: &str, fields: &Fields, body: Bytes) -> Result<Request<Full<Bytes>>, String> {
    let method = fields.get(":method").unwrap_or(b"GET");
    let method = Method::from_bytes(method).map_err(|_| "invalid method".to_string())?;
    let path = fields.get_str(":path").unwrap_or("/");
    if !path.starts_with('/') {
        return Err("invalid path".into());
    }
    let uri: http::Uri = format!("http://{backend}{path}").parse().map_err(|_| "invalid path".to_string())?;
    let mut headers = header_map(fields, false);
    let authority = fields.get(":authority").filter(|a| !a.is_empty()).unwrap_or(backend.as_bytes());
    if let Ok(host) = HeaderValue::from_bytes(authority) {
        headers.insert(http::header::HOST, host);
    }
    let mut req = Request::builder().method(method).uri(uri).body(Full::new(body)).map_err(|e| e.to_string())?;
    *req.headers_mut() = headers;
    Ok(req)
}

/// Most bytes of an HTTP call's response body kept.
const MAX_CALL_BODY: usize = 16 << 20;

/// Performs a filter's HTTP call; `None` when it fails or times out.
pub(crate) async fn perform_call(
    client: &Client<HttpConnector, Full<Bytes>>,
    call: &HttpCallRequest,
) -> Option<HttpCallResponse> {
    let attempt = async {
        let method = Method::from_bytes(call.method().as_bytes()).ok()?;
        let uri: http::Uri = format!("http://{}{}", call.target, call.path()).parse().ok()?;
        let mut headers = header_map(&call.headers, false);
        if let Ok(host) = HeaderValue::from_str(call.authority()) {
            headers.insert(http::header::HOST, host);
        }
        let mut req =
            Request::builder().method(method).uri(uri).body(Full::new(Bytes::from(call.body.clone()))).ok()?;
        *req.headers_mut() = headers;
        let response =
            client.request(req).await.map_err(|e| tracing::warn!("HTTP call to {}: {e}", call.cluster)).ok()?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_CALL_BODY).collect().await.ok()?.to_bytes();
        Some(HttpCallResponse {
            status: parts.status.as_u16(),
            headers: response_fields(&parts.headers),
            body: body.to_vec(),
            trailers: Fields::new(),
        })
    };
    match tokio::time::timeout(call.timeout, attempt).await {
        Ok(r) => r,
        Err(_) => {
            tracing::warn!("HTTP call to {} timed out after {:?}", call.cluster, call.timeout);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn uri_len_is_the_written_length() {
        for u in ["/", "/p?x=1&y", "http://h:1/p?q", "*", "h:443", "https://h", "/a%20b?"] {
            let uri: http::Uri = u.parse().unwrap();
            assert_eq!(super::uri_len(&uri), uri.to_string().len(), "{u}");
        }
    }

    #[test]
    fn the_peer_is_appended_as_display_writes_it() {
        for (peer, before, after) in [
            ("203.0.113.7:1", None, "203.0.113.7"),
            ("10.0.0.255:1", Some(" 198.51.100.1 "), "198.51.100.1, 10.0.0.255"),
            ("[2001:db8::1]:1", Some(""), "2001:db8::1"),
            ("0.9.99.100:1", None, "0.9.99.100"),
        ] {
            let mut f = Fields::new();
            if let Some(b) = before {
                f.add("x-forwarded-for", b.as_bytes());
            }
            super::add_forwarded(&mut f, peer.parse().unwrap());
            assert_eq!(f.get_str("x-forwarded-for"), Some(after), "{peer}");
        }
    }

    use super::*;

    #[test]
    fn request_fields_put_pseudo_headers_first_and_drop_host() {
        let req = Request::builder()
            .method("POST")
            .uri("/api/activities/1/purchase?x=1")
            .header("host", "edge.example:8080")
            .header("authorization", "Bearer t")
            .body(())
            .unwrap();
        let (parts, _) = req.into_parts();
        let f = request_fields(&parts, "203.0.113.9:5000".parse().unwrap(), Scheme::Http);
        assert_eq!(
            f.to_string_pairs(),
            vec![
                (":authority".into(), "edge.example:8080".into()),
                (":path".into(), "/api/activities/1/purchase?x=1".into()),
                (":method".into(), "POST".into()),
                (":scheme".into(), "http".into()),
                ("authorization".into(), "Bearer t".into()),
                ("x-forwarded-for".into(), "203.0.113.9".into()),
                ("x-forwarded-proto".into(), "http".into()),
            ]
        );
    }

    #[test]
    fn forwarded_headers_append_the_peer() {
        let mut f = Fields::from_pairs([("x-forwarded-for", "198.51.100.1"), ("x-forwarded-for", " 10.0.0.1 ")]);
        add_forwarded(&mut f, "203.0.113.9:5000".parse().unwrap());
        assert_eq!(f.get_str("x-forwarded-for"), Some("198.51.100.1, 10.0.0.1, 203.0.113.9"));
        assert_eq!(f.get_all("x-forwarded-for").count(), 1);
        assert_eq!(f.get_str("x-forwarded-proto"), Some("http"));
        let mut f = Fields::from_pairs([("x-forwarded-proto", "https")]);
        add_forwarded(&mut f, "[2001:db8::1]:443".parse().unwrap());
        assert_eq!(f.get_str("x-forwarded-for"), Some("2001:db8::1"));
        assert_eq!(f.get_str("x-forwarded-proto"), Some("https"));
    }

    #[test]
    fn over_tls_the_scheme_and_forwarded_proto_are_https_whatever_the_client_says() {
        let req = Request::builder().uri("/p").header("host", "edge").header("x-forwarded-proto", "http");
        let (parts, _) = req.body(()).unwrap().into_parts();
        let f = request_fields(&parts, "203.0.113.9:5000".parse().unwrap(), Scheme::Https);
        assert_eq!(f.get_str(":scheme"), Some("https"));
        assert_eq!(f.get_all("x-forwarded-proto").collect::<Vec<_>>(), [b"https"]);
        let mut f = Fields::new();
        add_forwarded_as(&mut f, "203.0.113.9:5000".parse().unwrap(), Scheme::Https);
        assert_eq!(f.get_str("x-forwarded-proto"), Some("https"));
    }

    #[test]
    fn upstream_request_keeps_the_filters_headers_and_drops_hop_by_hop() {
        let f = Fields::from_pairs([
            (":authority", "edge:8080"),
            (":path", "/p"),
            (":method", "GET"),
            ("x-forwarded-for", "198.51.100.1"),
            ("connection", "close, x-private"),
            ("x-private", "1"),
            ("keep-alive", "timeout=5"),
            ("content-length", "0"),
            ("x-kept", "yes"),
        ]);
        let req = upstream_request("127.0.0.1:8081", &f, Bytes::new()).unwrap();
        assert_eq!(req.uri(), "http://127.0.0.1:8081/p");
        let h = req.headers();
        assert_eq!(h["host"], "edge:8080");
        assert_eq!(h["x-forwarded-for"], "198.51.100.1");
        assert_eq!(h["x-kept"], "yes");
        for gone in ["connection", "x-private", "keep-alive", "content-length"] {
            assert!(!h.contains_key(gone), "{gone} forwarded");
        }
        assert!(upstream_request("b:1", &Fields::from_pairs([(":path", "http://evil/")]), Bytes::new()).is_err());
    }

    #[test]
    fn head_limits() {
        let big = "x".repeat(20_000);
        let req = Request::builder().uri("/").header("x-big", big.as_str()).body(()).unwrap();
        assert_eq!(check_head(&req.into_parts().0, 16 * 1024), Err("request headers too large"));
        let req = Request::builder()
            .uri("/")
            .header("x-bin", HeaderValue::from_bytes(b"\xff\xfe").unwrap())
            .body(())
            .unwrap();
        assert_eq!(check_head(&req.into_parts().0, 16 * 1024), Err("header values must be UTF-8"));
        let req = Request::builder().uri("/").header("x-ok", "fine").body(()).unwrap();
        assert_eq!(check_head(&req.into_parts().0, 16 * 1024), Ok(()));
    }
}
