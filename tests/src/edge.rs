//! An edge in front of real backends, on either host that runs the filter:
//! a real Envoy (`envoy/envoy.yaml`), or `seckill-edge`, our wasmtime proxy.
//! The edge suite runs each test body on both, so a difference between the
//! hosts shows up as a test that fails on one of them.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use seckill_edge_host::proxy::EdgeProxy;

use crate::envoy::{EnvoyConfig, EnvoyProxy};

/// Which proxy runs the filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeHost {
    Envoy,
    SeckillEdge,
}

/// A running edge, whichever host; stopped on drop.
pub enum RunningEdge {
    Envoy(EnvoyProxy),
    SeckillEdge(EdgeProxy),
}

impl RunningEdge {
    /// Starts `host` in front of `backends` with the filter configuration
    /// `filter_config` and two worker threads (each with its own VM, so the
    /// limits must hold through shared data). `seckill-edge` forwards to the
    /// first backend only.
    pub fn start(host: EdgeHost, backends: &[SocketAddr], filter_config: Vec<u8>) -> Self {
        Self::start_module(host, backends, crate::filter_wasm(), filter_config)
    }

    /// [`RunningEdge::start`] with another proxy-wasm module than the filter.
    pub fn start_module(host: EdgeHost, backends: &[SocketAddr], wasm: PathBuf, filter_config: Vec<u8>) -> Self {
        match host {
            EdgeHost::Envoy => {
                let config = EnvoyConfig { backends: backends.to_vec(), filter_config, workers: 2, wasm, tls: None };
                Self::Envoy(EnvoyProxy::start(config).unwrap_or_else(|e| panic!("{e:#}")))
            }
            EdgeHost::SeckillEdge => {
                use seckill_edge_host::proxy::ProxyConfig;
                let mut cfg = ProxyConfig::new(wasm, &backends[0].to_string(), filter_config);
                cfg.listen = "127.0.0.1:0".parse().unwrap();
                cfg.admin_listen = None;
                cfg.workers = 2;
                Self::SeckillEdge(EdgeProxy::start(cfg).unwrap())
            }
        }
    }

    /// Where buyers connect.
    pub fn addr(&self) -> SocketAddr {
        match self {
            Self::Envoy(e) => e.listen_addr(),
            Self::SeckillEdge(e) => e.listen_addr(),
        }
    }

    /// `http://<edge><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr())
    }
}

/// Answered by the filter itself, whichever host runs it: it names its
/// decision in `x-seckill-edge` on its own answers (and only there).
pub fn answered_by_the_filter(headers: &hyper::HeaderMap) -> bool {
    headers.contains_key(seckill_api::EDGE_DECISION_HEADER)
}

/// The local edge proxy, in this process, running the real filter `.wasm`
/// with `envoy/filter-config.json` in front of `backend`, on a free port.
pub fn start_edge(backend: SocketAddr, edge_id: &str, sync_ms: u64) -> EdgeProxy {
    let config = crate::filter_config(backend, edge_id, sync_ms);
    match RunningEdge::start(EdgeHost::SeckillEdge, &[backend], config) {
        RunningEdge::SeckillEdge(proxy) => proxy,
        RunningEdge::Envoy(_) => unreachable!("asked for seckill-edge"),
    }
}

/// An HTTP client whose connections come from `source` (any of 127.0.0.0/8
/// is this machine), so that one test plays many clients.
pub fn client_from(source: IpAddr) -> reqwest::Client {
    reqwest::Client::builder().local_address(source).build().unwrap()
}

/// The `n`-th loopback address, `127.0.1.<n>` (n ≥ 1).
pub fn loopback(n: u8) -> IpAddr {
    IpAddr::from([127, 0, 1, n])
}

/// The real `seckill-edge` binary in a process of its own, in front of one
/// backend with `envoy/filter-config.json` and two workers, started with
/// `extra` flags (e.g. `--access-log json`); its standard output (the access
/// log) and error go to files in its own directory. Killed on drop.
pub struct EdgeProcess {
    pub addr: SocketAddr,
    child: std::process::Child,
    dir: crate::TempDir,
}

impl EdgeProcess {
    /// `target/<profile>/seckill-edge`, built with the workspace's tests
    /// (`cargo test -p seckill-edge-host` builds it).
    pub fn binary() -> anyhow::Result<PathBuf> {
        let binary = crate::BackendProcess::binary()?.with_file_name("seckill-edge");
        anyhow::ensure!(
            binary.is_file(),
            "{} is missing: build it with `cargo build -p seckill-edge-host` (cargo xtask test does)",
            binary.display()
        );
        Ok(binary)
    }

    /// Starts the edge in front of `backend` and waits until it serves.
    pub fn start(backend: SocketAddr, extra: &[&str]) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let dir = crate::TempDir::new("edge");
        let config = dir.0.join("filter-config.json");
        std::fs::write(&config, crate::filter_config(backend, "edge-process", 200))?;
        let (port, admin) = (crate::free_port(), crate::free_port());
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let child = std::process::Command::new(Self::binary()?)
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--admin-listen")
            .arg(format!("127.0.0.1:{admin}"))
            .arg("--backend")
            .arg(backend.to_string())
            .arg("--wasm")
            .arg(crate::filter_wasm())
            .arg("--plugin-config")
            .arg(&config)
            .args(["--workers", "2"])
            .args(extra)
            // The configuration file holds the test's secrets; the environment would win.
            .env_remove("SECKILL_EDGE_SECRET")
            .env_remove("SECKILL_JWT_SECRET")
            .env_remove("SECKILL_EDGE_ACCESS_LOG")
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(dir.0.join("stdout.log"))?)
            .stderr(std::fs::File::create(dir.0.join("stderr.log"))?)
            .spawn()
            .context("starting seckill-edge")?;
        let mut edge = Self { addr, child, dir };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Some(status) = edge.child.try_wait()? {
                anyhow::bail!("seckill-edge exited with {status}: {}", edge.stderr());
            }
            if std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(1)).is_ok() {
                return Ok(edge);
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "seckill-edge did not listen on {addr} within 30 s: {}",
                edge.stderr()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// `http://<edge><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Its standard output so far: with `--access-log json`, the access lines.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("stdout.log")).unwrap_or_default()
    }

    /// Its standard error so far (its own log).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("stderr.log")).unwrap_or_default()
    }
}

impl Drop for EdgeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
