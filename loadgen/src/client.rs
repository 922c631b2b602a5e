//! The HTTP side of the load tool, kept lean because it shares the machine
//! with the server it measures.
//!
//! Each of `--connections` tokio tasks owns one keep-alive HTTP/1.1 connection
//! (hyper's `client::conn::http1` over a `TcpStream` with `TCP_NODELAY`) and
//! takes work items from a shared atomic counter. Requests are pre-built
//! (bodies and `Authorization` values are refcounted `Bytes`), so the timed
//! loop allocates only what hyper itself needs. A transport error reconnects
//! and retries the same item: both the token and the purchase call are
//! idempotent per the contract, so a retry can never buy twice.
//!
//! The admin API calls (login, create, stats) go through [`Endpoint::oneshot`],
//! one short connection each.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderMap, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Barrier;

use crate::report::{PhaseStats, error_code};

/// Attempts per work item before it counts as a transport error.
const MAX_ATTEMPTS: u32 = 3;
/// Connection attempts in a row before a task gives up.
const MAX_RECONNECTS: u32 = 8;

pub type Sender = SendRequest<Full<Bytes>>;

/// Where a base URL points: only `http://host[:port][/prefix]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    pub host: String,
    pub port: u16,
    /// The `Host` header: the URL's authority.
    pub authority: String,
    /// Path prefix without a trailing slash ("" for none).
    pub prefix: String,
}

impl BaseUrl {
    pub fn parse(url: &str) -> Result<Self> {
        let uri: Uri = url.parse().with_context(|| format!("`{url}` is not a URL"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => bail!(
                "`{url}`: only http:// is supported (got {other}://); put TLS in front of the edge, not in the load tool"
            ),
            None => bail!("`{url}`: the URL needs a scheme, e.g. http://127.0.0.1:8081"),
        }
        let authority = uri.authority().with_context(|| format!("`{url}` has no host"))?;
        let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_owned();
        let prefix = uri.path().trim_end_matches('/').to_owned();
        if uri.query().is_some() {
            bail!("`{url}`: a base URL cannot carry a query");
        }
        Ok(Self { host, port: authority.port_u16().unwrap_or(80), authority: authority.as_str().to_owned(), prefix })
    }

    /// The request target of `path` (which starts with `/`) under this base.
    pub fn uri(&self, path: &str) -> Result<Uri> {
        format!("{}{}", self.prefix, path)
            .parse()
            .with_context(|| format!("`{}{path}` is not a valid request path", self.prefix))
    }
}

/// A resolved server: what to connect to and how to name it in messages.
#[derive(Debug)]
pub struct Endpoint {
    /// "backend" or "admin API", for error messages.
    role: &'static str,
    url: String,
    base: BaseUrl,
    addr: SocketAddr,
    host: HeaderValue,
}

impl Endpoint {
    pub async fn resolve(role: &'static str, url: &str) -> Result<Self> {
        let base = BaseUrl::parse(url)?;
        let addr = tokio::net::lookup_host((base.host.as_str(), base.port))
            .await
            .with_context(|| format!("cannot resolve {role} host `{}`", base.host))?
            .next()
            .with_context(|| format!("{role} host `{}` has no address", base.host))?;
        let host = HeaderValue::from_str(&base.authority)
            .with_context(|| format!("`{}` is not a valid Host header", base.authority))?;
        Ok(Self { role, url: url.trim_end_matches('/').to_owned(), base, addr, host })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn uri(&self, path: &str) -> Result<Uri> {
        self.base.uri(path)
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `Host` header of every request.
    pub fn host(&self) -> &HeaderValue {
        &self.host
    }

    /// Opens one keep-alive HTTP/1.1 connection.
    pub async fn connect(&self) -> Result<Sender> {
        self.connect_from(None).await
    }

    /// Opens one keep-alive HTTP/1.1 connection from `source` when given (a
    /// local address to bind: the crowd gives each of its clients one of
    /// 127.0.0.0/8, so that the edge sees as many clients as there are),
    /// else from the address the OS picks.
    pub async fn connect_from(&self, source: Option<IpAddr>) -> Result<Sender> {
        let reach = || format!("cannot reach {} at {}", self.role, self.url);
        let stream = match source {
            None => TcpStream::connect(self.addr).await.with_context(reach)?,
            Some(ip) => {
                let socket = if ip.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }
                    .context("opening a client socket")?;
                socket
                    .bind(SocketAddr::new(ip, 0))
                    .with_context(|| format!("binding a client socket to {ip} (a local address is needed)"))?;
                socket.connect(self.addr).await.with_context(|| format!("{} from {ip}", reach()))?
            }
        };
        stream.set_nodelay(true).context("setting TCP_NODELAY")?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .with_context(|| format!("HTTP/1.1 handshake with {} at {}", self.role, self.url))?;
        tokio::spawn(async move {
            // The error, if any, surfaces on the sender's next request.
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// One request on a fresh connection; returns the status and the whole body.
    pub async fn oneshot(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        json: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes)> {
        let mut sender = self.connect().await?;
        let mut builder =
            Request::builder().method(method.clone()).uri(self.uri(path)?).header(HOST, self.host.clone());
        if let Some(token) = bearer {
            builder = builder.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match json {
            Some(json) => {
                builder = builder.header(CONTENT_TYPE, "application/json");
                Bytes::from(json)
            }
            None => {
                if method == Method::POST || method == Method::PUT {
                    builder = builder.header(CONTENT_LENGTH, "0");
                }
                Bytes::new()
            }
        };
        let request = builder.body(Full::new(body)).context("building a request")?;
        let what = || format!("{method} {}{path}", self.url);
        sender.ready().await.with_context(what)?;
        let response = sender.send_request(request).await.with_context(what)?;
        let status = response.status();
        let body = response.into_body().collect().await.with_context(what)?.to_bytes();
        Ok((status, body))
    }
}

/// One pre-built request of a phase.
#[derive(Debug, Clone)]
pub struct Item {
    /// Where it goes (its activity's token or purchase URL).
    pub uri: Uri,
    /// `Bearer <jwt>`.
    pub auth: HeaderValue,
    /// JSON body, or empty for none.
    pub body: Bytes,
}

/// One timed phase: a `POST` per item.
pub struct Phase {
    pub items: Vec<Item>,
    /// Keep the bodies of 2xx answers (the token phase needs them).
    pub keep_bodies: bool,
}

/// What a phase produced.
pub struct PhaseOutcome {
    pub stats: PhaseStats,
    pub duration: Duration,
    /// Connections actually used (never more than there were items).
    pub connections: usize,
    /// `(item index, body)` of every 2xx answer, when `keep_bodies`.
    pub bodies: Vec<(usize, Bytes)>,
    /// Tasks that gave up because they could not reconnect.
    pub task_errors: Vec<String>,
}

struct Shared {
    phase: Phase,
    host: HeaderValue,
    next: AtomicUsize,
}

struct TaskOutcome {
    stats: PhaseStats,
    bodies: Vec<(usize, Bytes)>,
    error: Option<String>,
}

/// Runs `phase` over `connections` concurrent connections. The clock starts
/// once every task has tried its first connection, so connection set-up is
/// not part of the measured time.
pub async fn run_phase(endpoint: Arc<Endpoint>, phase: Phase, connections: usize) -> Result<PhaseOutcome> {
    let connections = connections.clamp(1, phase.items.len().max(1));
    let shared = Arc::new(Shared { host: endpoint.host.clone(), phase, next: AtomicUsize::new(0) });
    let barrier = Arc::new(Barrier::new(connections + 1));
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let (endpoint, shared, barrier) = (endpoint.clone(), shared.clone(), barrier.clone());
            tokio::spawn(async move { worker(&endpoint, &shared, &barrier).await })
        })
        .collect();
    barrier.wait().await;
    let started = Instant::now();
    let mut stats = PhaseStats::new();
    let mut bodies = Vec::new();
    let mut task_errors = Vec::new();
    for task in tasks {
        let out = task.await.context("a connection task panicked")?;
        stats.merge(out.stats);
        bodies.extend(out.bodies);
        task_errors.extend(out.error);
    }
    Ok(PhaseOutcome { stats, duration: started.elapsed(), connections, bodies, task_errors })
}

async fn worker(endpoint: &Endpoint, shared: &Shared, barrier: &Barrier) -> TaskOutcome {
    let mut out = TaskOutcome { stats: PhaseStats::new(), bodies: Vec::new(), error: None };
    let mut conn = endpoint.connect().await.ok();
    barrier.wait().await;
    let items = &shared.phase.items;
    loop {
        if let Err(e) = ensure_ready(&mut conn, endpoint).await {
            out.error = Some(format!("{e:#}"));
            return out;
        }
        let index = shared.next.fetch_add(1, Ordering::Relaxed);
        let Some(item) = items.get(index) else {
            return out;
        };
        let started = Instant::now();
        let mut attempt = 1;
        loop {
            let sender = conn.as_mut().expect("ensure_ready left a connection");
            match exchange(sender, shared, item).await {
                Ok((status, body)) => {
                    let code = if status.is_success() { None } else { error_code(&body) };
                    out.stats.record(status.as_u16(), code, started.elapsed());
                    if status.is_success() && shared.phase.keep_bodies {
                        out.bodies.push((index, body));
                    }
                    break;
                }
                Err(e) => {
                    conn = None;
                    if attempt >= MAX_ATTEMPTS {
                        out.stats.record_transport_error(format!("{e:#}"));
                        break;
                    }
                    attempt += 1;
                    out.stats.retries += 1;
                    if let Err(e) = ensure_ready(&mut conn, endpoint).await {
                        out.stats.record_transport_error(format!("{e:#}"));
                        out.error = Some(format!("{e:#}"));
                        return out;
                    }
                }
            }
        }
    }
}

/// Makes `conn` a connection ready for a request, reconnecting (with a short
/// backoff) when it is missing or was closed.
async fn ensure_ready(conn: &mut Option<Sender>, endpoint: &Endpoint) -> Result<()> {
    if let Some(sender) = conn.as_mut() {
        if sender.ready().await.is_ok() {
            return Ok(());
        }
        *conn = None;
    }
    let mut delay = Duration::from_millis(10);
    let mut failures = 0;
    loop {
        match endpoint.connect().await {
            Ok(mut sender) => {
                if sender.ready().await.is_ok() {
                    *conn = Some(sender);
                    return Ok(());
                }
            }
            Err(e) => {
                failures += 1;
                if failures >= MAX_RECONNECTS {
                    return Err(e.context(format!("gave up after {failures} attempts")));
                }
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(500));
    }
}

/// Sends one pre-built request and reads the whole answer.
async fn exchange(sender: &mut Sender, shared: &Shared, item: &Item) -> Result<(StatusCode, Bytes), hyper::Error> {
    let answer = send(sender, Method::POST, &item.uri, &shared.host, Some(&item.auth), &item.body).await?;
    Ok((answer.status, answer.body))
}

/// A whole answer: status, headers and body.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Sends one request (a JSON body when `body` is not empty) and reads the whole answer.
pub async fn send(
    sender: &mut Sender,
    method: Method,
    uri: &Uri,
    host: &HeaderValue,
    auth: Option<&HeaderValue>,
    body: &Bytes,
) -> Result<Answer, hyper::Error> {
    let has_body = method == Method::POST || !body.is_empty();
    let mut request = Request::new(Full::new(body.clone()));
    *request.method_mut() = method;
    *request.uri_mut() = uri.clone();
    let headers = request.headers_mut();
    headers.insert(HOST, host.clone());
    if let Some(auth) = auth {
        headers.insert(AUTHORIZATION, auth.clone());
    }
    if !body.is_empty() {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    } else if has_body {
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
    }
    let response = sender.send_request(request).await?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Answer { status: parts.status, headers: parts.headers, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        let b = BaseUrl::parse("http://127.0.0.1:8091").unwrap();
        assert_eq!(
            b,
            BaseUrl { host: "127.0.0.1".into(), port: 8091, authority: "127.0.0.1:8091".into(), prefix: String::new() }
        );
        assert_eq!(b.uri("/api/activities/7/token").unwrap(), "/api/activities/7/token");
        let b = BaseUrl::parse("http://localhost/shop/").unwrap();
        assert_eq!((b.host.as_str(), b.port), ("localhost", 80));
        assert_eq!(b.uri("/api/x").unwrap(), "/shop/api/x");
        let b = BaseUrl::parse("http://[::1]:8080").unwrap();
        assert_eq!((b.host.as_str(), b.port), ("::1", 8080));
        assert_eq!(b.authority, "[::1]:8080");
    }

    #[test]
    fn unsupported_urls_are_refused_with_a_reason() {
        let err = BaseUrl::parse("https://example.com").unwrap_err();
        assert!(err.to_string().contains("only http://"), "{err}");
        let err = BaseUrl::parse("127.0.0.1:8081").unwrap_err();
        assert!(err.to_string().contains("scheme"), "{err}");
        assert!(BaseUrl::parse("http://h/?a=1").is_err());
    }
}
