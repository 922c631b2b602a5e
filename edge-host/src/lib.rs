//! seckill's edge host: a proxy-wasm ABI v0.2.1 host on wasmtime.
//!
//! - [`Plugin`] compiles a filter and holds what its VMs share; [`Vm`] is one
//!   instance, driven the way Envoy drives one (root context, configure,
//!   ticks, a context per stream, `on_done`/`on_log`/`on_delete`).
//! - [`harness::Harness`] drives the real `.wasm` synchronously with an
//!   injectable clock, for tests and benchmarks.
//! - [`proxy`] is the local edge proxy (`seckill-edge`): hyper in front of the
//!   backend, one VM per worker thread.
//!
//! The modules, each pointing only at those below it (no circle:
//! the workspace's `tests/tests/module_cycles.rs` fails `cargo test` on one):
//!
//! ```text
//! harness    the synchronous test driver (adds x-forwarded-for as proxy does)
//!  ▼
//! proxy      the edge proxy: config, server, admin, worker loop, stream phases
//!  ▼
//! vm         Plugin (compile, check imports) and Vm (drive one instance)
//!  ▼
//! imports    the host functions, one module per family, over imports::guest
//!  ▼
//! host       per-VM state the imports work on (streams, maps, buffers, calls)
//!  ▼
//! metrics, shared, clock   process-wide metrics, shared data/queues, time
//!  ▼
//! abi        the wire vocabulary only: statuses, enums, the header-map format
//! ```

pub mod abi;
pub mod clock;
pub mod harness;
pub mod host;
pub mod imports;
pub mod metrics;
pub mod proxy;
pub mod shared;
pub mod vm;

pub use abi::{Fields, LogLevel};
pub use clock::{Clock, ManualClock, SystemClock};
pub use harness::{Harness, RequestFate, RequestSpec};
pub use host::{HostConfig, HttpCallRequest, HttpCallResponse, LocalResponse, Signal, StreamInfo};
pub use vm::{Decision, Orphan, Plugin, Vm, VmError};
