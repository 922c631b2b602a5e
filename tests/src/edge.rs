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
