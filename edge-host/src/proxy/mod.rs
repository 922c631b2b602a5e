//! The local edge proxy: a hyper HTTP/1 server in front of the backend that
//! runs every request through the filter, Envoy-style: N worker threads,
//! each with its own single-threaded runtime, its own listening sockets
//! (`SO_REUSEPORT`), its own VM and its own keep-alive pool to the backend:
//! a connection is accepted, served and forwarded on one worker thread.
//!
//! Per request: `proxy_on_request_headers` (pseudo headers `:authority`,
//! `:path`, `:method`, `:scheme` first, then the client's headers) →
//! `proxy_on_request_body` when there is a body (buffered, at most
//! `max_body_bytes`) → the filter's local response, or the request forwarded
//! with the filter's headers → `proxy_on_response_headers` →
//! `proxy_on_response_body` per chunk while streaming → `proxy_on_done`,
//! `proxy_on_log`, `proxy_on_delete`, also when the client goes away.
//!
//! One module a job, the arrows pointing down: [`server`] starts the
//! threads; `listen` binds each worker's sockets; `admin` serves `/metrics` and `/healthz`; `worker_loop` is a
//! worker thread's life; `stream` is one request's; `worker` owns the VM all
//! of a worker's streams share; `guard` ends a stream exactly once; `body`
//! and `forward` translate between hyper and the filter; `tls` handshakes
//! HTTPS connections before they are served as plain ones; `access` gives
//! each request its `x-request-id` and writes its access line. `config` and
//! `state` are the data they all read.

mod access;
mod admin;
mod body;
mod config;
mod forward;
mod guard;
mod listen;
mod server;
mod state;
mod stream;
mod tls;
mod worker;
mod worker_loop;

pub use access::{AccessLog, X_REQUEST_ID};
pub use body::RespBody;
pub use config::{ProxyConfig, Scheme, parse_log_level, plugin_config_json};
pub use forward::add_forwarded;
pub use server::EdgeProxy;
pub use tls::TlsFiles;
