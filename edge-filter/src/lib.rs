//! seckill's edge filter: a proxy-wasm (ABI v0.2.1) HTTP filter in front of
//! the backend that rate-limits per client IP, per user and per route, caps
//! requests in flight, enforces the blacklist, and answers token and
//! purchase requests for sold-out or not-live activities by itself.
//!
//! The decision logic is plain Rust, tested natively:
//!
//! * [`config`]: the plugin configuration (JSON) and the checks of the rules,
//! * [`bucket`]: nginx `limit_req ... nodelay` token buckets in fixed point,
//! * [`matcher`]: CIDR ranges (IPv4 and IPv6) and route patterns,
//! * [`client_ip`]: the peer, or `x-forwarded-for` behind trusted proxies,
//! * [`jwt`]: HS256 verification of buyers' tokens,
//! * [`state`]: the backend's `EdgeState`, its shared-data keys and snapshot,
//! * [`store`]: shared data with compare-and-swap, and counters over it,
//! * [`decision`]: one request's verdict, in the documented order,
//! * [`engine`]: one VM's cached state and bucket sweeping,
//! * [`sync`]: the state sync protocol with the backend.
//!
//! The proxy-wasm glue (`filter`, and `host_calls` for the raw ones) only
//! exists on `wasm32`; see `README.md`
//! for the configuration, the protocol, the shared-data keys and the metrics.

pub mod bucket;
pub mod client_ip;
pub mod config;
pub mod decision;
pub mod engine;
pub mod jwt;
pub mod matcher;
pub mod state;
pub mod store;
pub mod sync;

#[cfg(target_arch = "wasm32")]
mod filter;
#[cfg(target_arch = "wasm32")]
mod host_calls;

// dlmalloc, Rust's default allocator for wasm, was the largest single cost of
// an allowed request inside the VM (~18 %); talc does the same job faster.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();
