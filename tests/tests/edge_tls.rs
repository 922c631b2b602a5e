//! HTTPS at the edge, end to end, on both hosts that run the filter:
//! `seckill-edge` (our wasmtime proxy, `--tls-cert`/`--tls-key`) and a real
//! Envoy (`envoy/envoy.yaml` with `envoy/tls-listener.yaml`), each in front
//! of a real backend. A certificate made here with rcgen for `localhost`;
//! clients that trust only it (or only another one) made with rustls.
//!
//! Checked over HTTPS: a buyer's read passes the filter to the backend, a
//! forged JWT is refused by the filter at the edge, the plain listener beside
//! it still serves, a plain-HTTP client on the HTTPS port gets no HTTP answer
//! and a client that does not trust the certificate fails its handshake, and
//! the edge serves on after both; the backend is told `x-forwarded-proto: https`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use seckill_edge_host::proxy::{EdgeProxy, ProxyConfig, TlsFiles};
use seckill_tests::edge::answered_by_the_filter;
use seckill_tests::envoy::{self, EnvoyConfig, EnvoyProxy};
use seckill_tests::{ActivitySpec, Backend, RedisServer, TempDir, eventually, filter_config, jwt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// edge-host's toy backend: echoes each request's headers as JSON.
#[path = "../../edge-host/tests/common/backend.rs"]
#[allow(dead_code)]
mod toy;

/// A self-signed certificate for `localhost` and `127.0.0.1`, in PEM files.
struct Cert {
    _dir: TempDir,
    files: TlsFiles,
    der: CertificateDer<'static>,
}

impl Cert {
    fn new() -> Self {
        let dir = TempDir::new("tls");
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let pair = rcgen::generate_simple_self_signed(names).unwrap();
        let files = TlsFiles { cert: dir.0.join("cert.pem"), key: dir.0.join("key.pem") };
        std::fs::write(&files.cert, pair.cert.pem()).unwrap();
        std::fs::write(&files.key, pair.signing_key.serialize_pem()).unwrap();
        Self { _dir: dir, files, der: pair.cert.der().clone() }
    }

    /// A client that trusts this certificate only.
    fn client(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

/// An answer over HTTPS: status, headers, body.
struct Answer {
    status: u16,
    headers: hyper::HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.body))
    }

    fn answered_by_the_edge(&self) -> bool {
        answered_by_the_filter(&self.headers)
    }
}

/// `GET path` over HTTPS to `addr` (as `localhost`), with `headers`, one
/// connection per request.
async fn https_get(
    addr: SocketAddr,
    client: Arc<rustls::ClientConfig>,
    path: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<Answer> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let tls = tokio_rustls::TlsConnector::from(client).connect(ServerName::try_from("localhost")?, tcp).await?;
    anyhow::ensure!(tls.get_ref().1.alpn_protocol() == Some(b"http/1.1"), "ALPN did not settle on http/1.1");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    let mut req = hyper::Request::get(path).header("host", format!("localhost:{}", addr.port()));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let res = sender.send_request(req.body(Empty::<Bytes>::new())?).await?;
    let (parts, body) = res.into_parts();
    Ok(Answer { status: parts.status.as_u16(), headers: parts.headers, body: body.collect().await?.to_bytes() })
}

/// A plain-HTTP request on the HTTPS port: no HTTP answer, and the
/// connection closed (not left hanging).
async fn plain_http_gets_no_answer(addr: SocketAddr) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the connection was left open");
    assert!(!got.starts_with(b"HTTP/"), "a plain-HTTP answer on the HTTPS port: {:?}", String::from_utf8_lossy(&got));
}

/// A client that trusts another certificate: its handshake fails.
async fn untrusting_client_fails_the_handshake(addr: SocketAddr) {
    let stranger = Cert::new();
    let err = match https_get(addr, stranger.client(), "/healthz", &[]).await {
        Ok(a) => panic!("a client that does not trust the certificate got {}", a.status),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("certificate"), "not a certificate failure: {err}");
}

/// A backend (in-process) with one live activity, and a filter configuration for an edge in front of it.
struct World {
    _redis: RedisServer,
    api: Backend,
    activity: u64,
}

impl World {
    async fn start() -> Self {
        let redis = RedisServer::start().unwrap();
        let api = Backend::start_with(&redis.url(), &["--trusted-proxies", "127.0.0.1/32"]).await.unwrap();
        let activity = api.create_activity(ActivitySpec::live(10, 2)).await;
        Self { _redis: redis, api, activity }
    }

    /// The checklist's 数据加密: what the backend saw of the buyers' scheme.
    async fn encryption(&self) -> Value {
        let admin = self.api.admin_token().await;
        let (_, checklist) = self.api.get("/admin/api/checklist", &admin).await;
        checklist.as_array().unwrap().iter().find(|i| i["id"] == "security.encryption").unwrap().clone()
    }

    fn filter_config(&self) -> Vec<u8> {
        filter_config(self.api.addr, "tls-edge", 200)
    }

    /// What every host must do over HTTPS at `tls`, with a plain listener at `plain`.
    async fn check_https(&self, tls: SocketAddr, plain: Option<SocketAddr>, cert: &Cert) {
        let activity = format!("/api/activities/{}", self.activity);
        let read = eventually(Duration::from_secs(15), "an HTTPS read through the edge", || async {
            https_get(tls, cert.client(), &activity, &[]).await.ok().filter(|a| a.status == 200)
        })
        .await;
        assert_eq!(read.json()["id"].as_u64(), Some(self.activity), "{:?}", read.body);

        let forged = seckill_api::buyer_jwt::mint("not-the-secret", "tls-buyer", 4_000_000_000);
        let bearer = format!("Bearer {forged}");
        let refused = https_get(tls, cert.client(), "/api/me/orders", &[("authorization", &bearer)]).await.unwrap();
        assert_eq!(refused.status, 401, "{:?}", refused.body);
        assert!(refused.answered_by_the_edge(), "a forged JWT went past the edge over HTTPS");
        let bearer = format!("Bearer {}", jwt("tls-buyer"));
        let mine = https_get(tls, cert.client(), "/api/me/orders", &[("authorization", &bearer)]).await.unwrap();
        assert_eq!(mine.status, 200, "{:?}", mine.body);

        if let Some(plain) = plain {
            let res = reqwest::get(format!("http://{plain}{activity}")).await.unwrap();
            assert_eq!(res.status(), 200, "the plain listener beside the HTTPS one");
        }
        plain_http_gets_no_answer(tls).await;
        untrusting_client_fails_the_handshake(tls).await;
        let again = https_get(tls, cert.client(), &activity, &[]).await.unwrap();
        assert_eq!(again.status, 200, "the edge serves on after failed handshakes");
    }
}

fn seckill_edge(backend: SocketAddr, filter_config: Vec<u8>, tls: TlsFiles, tls_listen: bool) -> EdgeProxy {
    let mut cfg = ProxyConfig::new(seckill_tests::filter_wasm(), &backend.to_string(), filter_config);
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    cfg.admin_listen = None;
    cfg.workers = 2;
    cfg.tls = Some(tls);
    cfg.tls_listen = tls_listen.then(|| "127.0.0.1:0".parse().unwrap());
    EdgeProxy::start(cfg).unwrap()
}

fn envoy(backend: SocketAddr, filter_config: Vec<u8>, wasm: PathBuf, cert: &Cert) -> EnvoyProxy {
    let tls = envoy::TlsFiles { cert: cert.files.cert.clone(), key: cert.files.key.clone() };
    let config = EnvoyConfig { backends: vec![backend], filter_config, workers: 2, wasm, tls: Some(tls) };
    EnvoyProxy::start(config).unwrap_or_else(|e| panic!("{e:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seckill_edge_serves_https_beside_plain_http() {
    let w = World::start().await;
    let cert = Cert::new();
    let edge = seckill_edge(w.api.addr, w.filter_config(), cert.files.clone(), true);
    let tls = edge.tls_addr().expect("an HTTPS listener");
    assert_ne!(tls, edge.listen_addr());
    w.check_https(tls, Some(edge.listen_addr()), &cert).await;
    let seen = w.encryption().await;
    assert_eq!(seen["status"], "warning", "{seen}");
    assert!(seen["evidence"].as_str().unwrap().contains("1 over plain HTTP"), "the one plain read: {seen}");
    let failures = edge.plugin().env().metrics.value("seckill_edge_tls_handshake_failures_total");
    assert!(failures.is_some_and(|n| n >= 2), "failed handshakes are counted: {failures:?}");
    edge.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seckill_edge_with_a_certificate_and_one_listener_speaks_only_https() {
    let w = World::start().await;
    let cert = Cert::new();
    let edge = seckill_edge(w.api.addr, w.filter_config(), cert.files.clone(), false);
    assert_eq!(edge.tls_addr(), Some(edge.listen_addr()));
    w.check_https(edge.listen_addr(), None, &cert).await;
    let seen = w.encryption().await;
    assert_eq!(seen["status"], "ok", "every buyer request came over HTTPS: {seen}");
    assert!(seen["evidence"].as_str().unwrap().contains("buyer requests since start came over HTTPS"), "{seen}");
    edge.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_serves_https_with_the_same_filter_chain() {
    let w = World::start().await;
    let cert = Cert::new();
    let envoy = envoy(w.api.addr, w.filter_config(), seckill_tests::filter_wasm(), &cert);
    let tls = envoy.tls_addr().expect("an HTTPS listener");
    w.check_https(tls, Some(envoy.listen_addr()), &cert).await;
    let stats = envoy.admin_get("/stats?filter=ssl.connection_error").unwrap();
    assert!(stats.contains(&format!("listener.127.0.0.1_{}.ssl.connection_error", tls.port())), "{stats}");
}

/// The toy backend sees what the edge forwards: over TLS,
/// `x-forwarded-proto: https`, whatever the client claimed.
#[test]
fn the_backend_is_told_https_by_both_hosts() {
    let backend = toy::Backend::start();
    let cert = Cert::new();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let config = filter_config(backend.addr, "tls-proto", 200);
    let edge = seckill_edge(backend.addr, config.clone(), cert.files.clone(), false);
    let envoy = envoy(backend.addr, config, seckill_tests::filter_wasm(), &cert);
    for (host, addr) in [("seckill-edge", edge.listen_addr()), ("envoy", envoy.tls_addr().unwrap())] {
        let echo = rt.block_on(async {
            eventually(Duration::from_secs(15), &format!("{host}: an HTTPS request through"), || async {
                let a = https_get(addr, cert.client(), "/echo", &[("x-forwarded-proto", "http")]).await.ok()?;
                (a.status == 200 && a.headers.contains_key("x-backend")).then(|| a.json())
            })
            .await
        });
        assert_eq!(echo["headers"]["x-forwarded-proto"], "https", "{host}: {echo}");
    }
    drop(envoy);
    edge.shutdown();
    drop(rt);
}
