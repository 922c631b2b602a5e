//! What every thread of one edge shares: its configuration, the plugin, the
//! edge's own counters and each worker's health. The admin server and the
//! workers all read it; it points at none of them.

use super::config::ProxyConfig;
use super::tls::Acceptor;
use crate::vm::Plugin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};

pub(super) struct ProxyMetrics {
    pub(super) forwarded: u32,
    pub(super) local: u32,
    pub(super) rejected: u32,
    pub(super) upstream_errors: u32,
    pub(super) filter_failures: u32,
    pub(super) resets: u32,
    pub(super) calls_ok: u32,
    pub(super) calls_failed: u32,
    pub(super) vm_rebuilds: u32,
    pub(super) tls_handshake_failures: u32,
    /// Connections each worker accepted on its own sockets (Envoy's
    /// `worker_<n>.downstream_cx_total`): how the kernel spread them.
    pub(super) connections: Vec<u32>,
}

impl ProxyMetrics {
    pub(super) fn define(plugin: &Plugin, workers: usize) -> Self {
        use crate::abi::MetricKind::Counter;
        let m = &plugin.env().metrics;
        let req = |o: &str| m.define(Counter, &format!("seckill_edge_requests_total{{outcome=\"{o}\"}}"));
        let call = |r: &str| m.define(Counter, &format!("seckill_edge_http_calls_total{{result=\"{r}\"}}"));
        Self {
            forwarded: req("forwarded"),
            local: req("local_response"),
            rejected: req("rejected_by_host"),
            upstream_errors: req("upstream_error"),
            filter_failures: req("filter_failure"),
            resets: req("reset"),
            calls_ok: call("ok"),
            calls_failed: call("failed"),
            vm_rebuilds: m.define(Counter, "seckill_edge_vm_rebuilds_total"),
            tls_handshake_failures: m.define(Counter, "seckill_edge_tls_handshake_failures_total"),
            connections: (0..workers)
                .map(|w| m.define(Counter, &format!("seckill_edge_connections_total{{worker=\"{w}\"}}")))
                .collect(),
        }
    }
}

pub(super) struct Shared {
    pub(super) cfg: ProxyConfig,
    /// The HTTPS listener's handshakes (`cfg.tls` loaded); `None`: no TLS.
    pub(super) tls: Option<Acceptor>,
    pub(super) plugin: Arc<Plugin>,
    pub(super) metrics: ProxyMetrics,
    pub(super) healthy: Vec<AtomicBool>,
    pub(super) connection_ids: AtomicU64,
}

impl Shared {
    pub(super) fn count(&self, id: u32) {
        let _ = self.plugin.env().metrics.increment(id, 1);
    }
}
