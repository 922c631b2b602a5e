//! HTTPS on the public listener (issue #16, "数据加密"): buyers' JWTs and
//! orders cross the network to the edge, so the edge can terminate TLS
//! itself instead of needing another proxy in front of it. It lives apart
//! from the request path: a TLS connection is handshaken here, then served
//! exactly as a plain one (`worker_loop::serve` is generic over the stream),
//! so plain HTTP pays nothing for it.
//!
//! rustls with its default provider, aws-lc-rs (post-quantum key exchange
//! included); HTTP/1.1 only, announced with ALPN `http/1.1`.

use anyhow::{Context as _, bail};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::server::TlsStream;

/// A client that has not finished its handshake by then is dropped.
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The certificate chain and private key of the HTTPS listener (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// The settings as the binary takes them: both files or neither.
    pub fn from_settings(cert: Option<PathBuf>, key: Option<PathBuf>) -> anyhow::Result<Option<Self>> {
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(Some(Self { cert, key })),
            (None, None) => Ok(None),
            (cert, _) => bail!(
                "TLS needs both --tls-cert (SECKILL_EDGE_TLS_CERT_FILE) and --tls-key (SECKILL_EDGE_TLS_KEY_FILE); \
                 {} is missing",
                if cert.is_none() { "--tls-cert" } else { "--tls-key" }
            ),
        }
    }

    /// Reads both files into a server configuration; an error names the
    /// file that is unreadable, holds no certificate or key, or does not match.
    pub fn load(&self) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let certs = read_certs(&self.cert)?;
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| pem_error(e, &self.key, "private key"))
            .with_context(|| format!("TLS key {}", self.key.display()))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .with_context(|| {
                format!("TLS key {} does not go with the certificate {}", self.key.display(), self.cert.display())
            })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| pem_error(e, path, "certificate"))
        .with_context(|| format!("TLS certificate {}", path.display()))?;
    if certs.is_empty() {
        bail!("TLS certificate {}: no PEM certificate in it", path.display());
    }
    Ok(certs)
}

fn pem_error(e: rustls::pki_types::pem::Error, path: &Path, what: &str) -> anyhow::Error {
    use rustls::pki_types::pem::Error;
    match e {
        Error::Io(e) => anyhow::Error::new(e).context(format!("reading {}", path.display())),
        Error::NoItemsFound => anyhow::anyhow!("no PEM {what} in it"),
        other => anyhow::anyhow!("not a PEM {what}: {other:?}"),
    }
}

/// What the worker threads accept TLS connections with.
pub(super) type Acceptor = tokio_rustls::TlsAcceptor;

pub(super) fn acceptor(config: Arc<rustls::ServerConfig>) -> Acceptor {
    tokio_rustls::TlsAcceptor::from(config)
}

/// The server side of a handshake on a freshly accepted connection, given
/// up after [`HANDSHAKE_TIMEOUT`] or at shutdown. The future owns all it
/// needs, so the worker can spawn it.
pub(super) fn handshake(
    acceptor: &Acceptor,
    stream: TcpStream,
    mut shutdown: watch::Receiver<bool>,
) -> impl Future<Output = std::io::Result<TlsStream<TcpStream>>> + 'static {
    let accept = acceptor.accept(stream);
    async move {
        tokio::select! {
            r = tokio::time::timeout(HANDSHAKE_TIMEOUT, accept) => {
                r.map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no handshake in time"))?
            }
            _ = shutdown.changed() => Err(std::io::Error::other("shutting down")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(tag: &str, cert: &str, key: &str) -> TlsFiles {
        let dir = std::env::temp_dir().join(format!("seckill-edge-tls-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let files = TlsFiles { cert: dir.join("cert.pem"), key: dir.join("key.pem") };
        std::fs::write(&files.cert, cert).unwrap();
        std::fs::write(&files.key, key).unwrap();
        files
    }

    fn self_signed() -> (String, String) {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        (c.cert.pem(), c.signing_key.serialize_pem())
    }

    #[test]
    fn both_files_or_neither() {
        let (c, k) = (Some(PathBuf::from("c.pem")), Some(PathBuf::from("k.pem")));
        assert_eq!(TlsFiles::from_settings(None, None).unwrap(), None);
        assert_eq!(
            TlsFiles::from_settings(c.clone(), k.clone()).unwrap(),
            Some(TlsFiles { cert: "c.pem".into(), key: "k.pem".into() })
        );
        for (cert, key, missing) in [(c, None, "--tls-key is missing"), (None, k, "--tls-cert is missing")] {
            let e = TlsFiles::from_settings(cert, key).unwrap_err().to_string();
            for name in ["--tls-cert", "SECKILL_EDGE_TLS_CERT_FILE", "--tls-key", "SECKILL_EDGE_TLS_KEY_FILE", missing]
            {
                assert!(e.contains(name), "{e:?} names {name}");
            }
        }
    }

    #[test]
    fn a_matching_pair_loads_with_alpn_http_1_1() {
        let (cert, key) = self_signed();
        let config = files("ok", &cert, &key).load().unwrap();
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    #[test]
    fn a_bad_file_is_named() {
        let (cert, key) = self_signed();
        let (_, other_key) = self_signed();
        let cases = [
            ("garbage-cert", "not pem".to_string(), key.clone(), "cert.pem"),
            ("key-as-cert", key.clone(), key.clone(), "cert.pem"),
            ("garbage-key", cert.clone(), "not pem".to_string(), "key.pem"),
            ("cert-as-key", cert.clone(), cert.clone(), "key.pem"),
            ("other-key", cert.clone(), other_key, "does not go with"),
        ];
        for (tag, c, k, named) in cases {
            let f = files(tag, &c, &k);
            let e = format!("{:#}", f.load().unwrap_err());
            assert!(e.contains(named), "{tag}: {e}");
        }
        let missing = TlsFiles { cert: "/nonexistent/cert.pem".into(), key: "/nonexistent/key.pem".into() };
        let e = format!("{:#}", missing.load().unwrap_err());
        assert!(e.contains("/nonexistent/cert.pem") && e.contains("No such file"), "{e}");
    }
}
