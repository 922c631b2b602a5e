//! How the edge runs: its settings and defaults, and the plugin
//! configuration the binary builds for the filter. Plain data, so that the
//! binary and tests can build it without starting anything.

use super::access::AccessLog;
use super::tls::TlsFiles;
use crate::abi::LogLevel;
use crate::host::HostConfig;
use anyhow::{Context as _, bail};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How the edge runs. [`ProxyConfig::new`] has the defaults of the binary.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The public listener: plain HTTP, or only TLS when `tls` is set and
    /// `tls_listen` is not.
    pub listen: SocketAddr,
    /// HTTPS: the certificate chain and key (PEM files); `None`: plain HTTP only.
    pub tls: Option<TlsFiles>,
    /// With `tls`: a second public listener, for HTTPS, while `listen` stays
    /// plain HTTP; both share everything else (workers, VMs, limits).
    pub tls_listen: Option<SocketAddr>,
    /// Admin listener (`/metrics`, `/healthz`); `None`: none.
    pub admin_listen: Option<SocketAddr>,
    /// `host:port` of the backend; also cluster `seckill_backend`.
    pub backend: String,
    /// The filter.
    pub wasm: PathBuf,
    /// Worker threads, one VM each.
    pub workers: usize,
    /// Requests whose request line and headers pass this get a JSON 400.
    pub max_header_bytes: usize,
    /// Request bodies beyond this get a JSON 400.
    pub max_body_bytes: usize,
    /// Time to the backend's response headers; then a JSON 503.
    pub upstream_timeout: Duration,
    /// Longest a filter may hold a request or response paused.
    pub pause_timeout: Duration,
    /// Paths starting with one of these are never forwarded (JSON 404), even
    /// if the filter lets them through.
    pub deny_prefixes: Vec<String>,
    /// When the filter VM fails: forward the request unfiltered (`true`) or
    /// answer 503 (`false`). The VM is rebuilt either way.
    pub fail_open: bool,
    /// Filter configuration, clusters (`seckill_backend` is added), log level.
    pub host: HostConfig,
    /// One JSON line per request (`--access-log json`); `None`: none.
    pub access_log: Option<AccessLog>,
}

impl ProxyConfig {
    pub fn new(wasm: impl Into<PathBuf>, backend: &str, plugin_config: Vec<u8>) -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().expect("literal address"),
            tls: None,
            tls_listen: None,
            admin_listen: Some("127.0.0.1:9901".parse().expect("literal address")),
            backend: backend.to_string(),
            wasm: wasm.into(),
            workers: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            max_header_bytes: 16 * 1024,
            max_body_bytes: 1 << 20,
            upstream_timeout: Duration::from_secs(30),
            pause_timeout: Duration::from_secs(30),
            deny_prefixes: vec!["/internal/".into()],
            fail_open: false,
            host: HostConfig { plugin_config, ..HostConfig::default() },
            access_log: None,
        }
    }
}

/// How a public listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    /// As `:scheme` and `x-forwarded-proto` say it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }
}

impl ProxyConfig {
    /// The public listeners and how each speaks: `listen` alone (plain, or
    /// TLS with `tls`), or `listen` plain and `tls_listen` TLS.
    pub fn public_listeners(&self) -> anyhow::Result<Vec<(SocketAddr, Scheme)>> {
        Ok(match (&self.tls, self.tls_listen) {
            (None, None) => vec![(self.listen, Scheme::Http)],
            (None, Some(_)) => bail!(
                "--tls-listen (SECKILL_EDGE_TLS_LISTEN) needs --tls-cert (SECKILL_EDGE_TLS_CERT_FILE) and \
                 --tls-key (SECKILL_EDGE_TLS_KEY_FILE)"
            ),
            (Some(_), None) => vec![(self.listen, Scheme::Https)],
            // The sockets are SO_REUSEPORT (see `listen`): an overlapping pair would bind and share
            // connections between plain HTTP and TLS instead of failing, so it is refused here.
            (Some(_), Some(tls)) if overlap(tls, self.listen) => {
                bail!("--tls-listen (SECKILL_EDGE_TLS_LISTEN) must differ from --listen ({tls})")
            }
            (Some(_), Some(tls)) => vec![(self.listen, Scheme::Http), (tls, Scheme::Https)],
        })
    }
}

/// Two listeners would take the same connections: one port, and one address
/// or either of them the wildcard.
fn overlap(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0 && a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// The plugin configuration the binary hands the filter: the JSON file (or
/// `{}`), with `edge_secret` / `jwt_secret` taken from `SECKILL_EDGE_SECRET` /
/// `SECKILL_JWT_SECRET` when those are set (environment wins), and
/// `backend_cluster`, `backend_authority`, `state_path` defaulted when absent.
pub fn plugin_config_json(
    file: Option<&std::path::Path>,
    backend: &str,
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Vec<u8>> {
    let mut value: serde_json::Value = match file {
        Some(p) => {
            let text = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            serde_json::from_slice(&text).with_context(|| format!("{} is not JSON", p.display()))?
        }
        None => serde_json::json!({}),
    };
    let Some(obj) = value.as_object_mut() else { bail!("the plugin configuration must be a JSON object") };
    for (key, var) in [("edge_secret", "SECKILL_EDGE_SECRET"), ("jwt_secret", "SECKILL_JWT_SECRET")] {
        if let Some(v) = env(var).filter(|v| !v.is_empty()) {
            obj.insert(key.into(), v.into());
        }
    }
    obj.entry("backend_cluster").or_insert_with(|| "seckill_backend".into());
    obj.entry("backend_authority").or_insert_with(|| backend.into());
    obj.entry("state_path").or_insert_with(|| "/internal/edge/state".into());
    Ok(serde_json::to_vec(&value)?)
}

/// Parses a `--log-level`.
pub fn parse_log_level(s: &str) -> Result<LogLevel, String> {
    s.parse()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(tls: bool, tls_listen: Option<&str>) -> ProxyConfig {
        let mut cfg = ProxyConfig::new("f.wasm", "127.0.0.1:8081", b"{}".to_vec());
        cfg.tls = tls.then(|| TlsFiles { cert: "c.pem".into(), key: "k.pem".into() });
        cfg.tls_listen = tls_listen.map(|a| a.parse().unwrap());
        cfg
    }

    #[test]
    fn the_public_listeners_follow_the_tls_settings() {
        let (plain, tls) = ("127.0.0.1:8080".parse().unwrap(), "127.0.0.1:8443".parse().unwrap());
        assert_eq!(config(false, None).public_listeners().unwrap(), [(plain, Scheme::Http)]);
        assert_eq!(config(true, None).public_listeners().unwrap(), [(plain, Scheme::Https)], "only TLS");
        assert_eq!(
            config(true, Some("127.0.0.1:8443")).public_listeners().unwrap(),
            [(plain, Scheme::Http), (tls, Scheme::Https)]
        );
        let e = config(false, Some("127.0.0.1:8443")).public_listeners().unwrap_err().to_string();
        for name in ["--tls-listen", "SECKILL_EDGE_TLS_LISTEN", "--tls-cert", "--tls-key"] {
            assert!(e.contains(name), "{e}");
        }
        let e = config(true, Some("127.0.0.1:8080")).public_listeners().unwrap_err().to_string();
        assert!(e.contains("must differ"), "{e}");
        // SO_REUSEPORT would let overlapping listeners share connections: the wildcard overlaps too.
        let e = config(true, Some("0.0.0.0:8080")).public_listeners().unwrap_err().to_string();
        assert!(e.contains("must differ"), "{e}");
        assert_eq!(config(true, Some("127.0.0.1:8081")).public_listeners().unwrap().len(), 2);
        // Port 0 twice is two free ports.
        let mut cfg = config(true, Some("127.0.0.1:0"));
        cfg.listen = "127.0.0.1:0".parse().unwrap();
        assert_eq!(cfg.public_listeners().unwrap().len(), 2);
    }

    #[test]
    fn schemes_are_spelled_as_headers_want() {
        assert_eq!(Scheme::Http.as_str(), "http");
        assert_eq!(Scheme::Https.as_str(), "https");
    }
}
