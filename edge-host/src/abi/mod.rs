//! The proxy-wasm ABI v0.2.1 as this host speaks it: the numbers on the wire
//! (statuses, buffer/map/stream types) and the serialised header-map format.
//! Only the vocabulary: the functions that answer a filter in it are
//! [`crate::imports`], so everything may point here and this points nowhere.
//!
//! Every status this host returns is one the Rust SDK (`proxy-wasm` 0.2.x)
//! accepts from that particular call: the SDK `panic!`s on any other status,
//! and its `Status` enum has no `INVALID_MEMORY_ACCESS` (6) or
//! `UNIMPLEMENTED` (12), so returning those would even be undefined behaviour
//! inside the guest. Invalid guest pointers therefore trap instead. One
//! exception: `proxy_set_shared_data` answers `INTERNAL_FAILURE` (which the
//! SDK's enum has) for a write the store is too full to keep, since answering
//! `OK` for a value not stored silently disables what depends on it.

pub mod map;

pub use map::{Fields, MapError};

/// `proxy_status_t`, restricted to the values the Rust SDK can represent.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok = 0,
    NotFound = 1,
    BadArgument = 2,
    SerializationFailure = 3,
    ParseFailure = 4,
    Empty = 7,
    CasMismatch = 8,
    InternalFailure = 10,
}

impl Status {
    pub(crate) fn code(self) -> i32 {
        self as u32 as i32
    }
}

/// `proxy_log_level_t`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Critical = 5,
}

impl LogLevel {
    /// The level of a raw ABI value; anything above `CRITICAL` is critical.
    pub fn from_raw(raw: u32) -> Self {
        match raw {
            0 => Self::Trace,
            1 => Self::Debug,
            2 => Self::Info,
            3 => Self::Warn,
            4 => Self::Error,
            _ => Self::Critical,
        }
    }
}

impl std::str::FromStr for LogLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "trace" => Self::Trace,
            "debug" => Self::Debug,
            "info" => Self::Info,
            "warn" | "warning" => Self::Warn,
            "error" => Self::Error,
            "critical" | "off" => Self::Critical,
            other => return Err(format!("unknown log level `{other}` (trace|debug|info|warn|error|critical)")),
        })
    }
}

/// `proxy_buffer_type_t`.
pub mod buffer {
    pub const HTTP_REQUEST_BODY: u32 = 0;
    pub const HTTP_RESPONSE_BODY: u32 = 1;
    pub const DOWNSTREAM_DATA: u32 = 2;
    pub const UPSTREAM_DATA: u32 = 3;
    pub const HTTP_CALL_RESPONSE_BODY: u32 = 4;
    pub const GRPC_CALL_MESSAGE: u32 = 5;
    pub const VM_CONFIGURATION: u32 = 6;
    pub const PLUGIN_CONFIGURATION: u32 = 7;
    pub const FOREIGN_FUNCTION_ARGUMENTS: u32 = 8;
}

/// `proxy_map_type_t`. Note that the HTTP-call response headers are map 6
/// (not 3, which is the response trailers of the proxied stream).
pub mod map_type {
    pub const HTTP_REQUEST_HEADERS: u32 = 0;
    pub const HTTP_REQUEST_TRAILERS: u32 = 1;
    pub const HTTP_RESPONSE_HEADERS: u32 = 2;
    pub const HTTP_RESPONSE_TRAILERS: u32 = 3;
    pub const GRPC_CALL_INITIAL_METADATA: u32 = 4;
    pub const GRPC_CALL_TRAILING_METADATA: u32 = 5;
    pub const HTTP_CALL_RESPONSE_HEADERS: u32 = 6;
    pub const HTTP_CALL_RESPONSE_TRAILERS: u32 = 7;
}

/// `proxy_stream_type_t`.
pub mod stream_type {
    pub const HTTP_REQUEST: u32 = 0;
    pub const HTTP_RESPONSE: u32 = 1;
    pub const DOWNSTREAM: u32 = 2;
    pub const UPSTREAM: u32 = 3;
}

/// `proxy_action_t`: what a stream callback returns.
pub mod action {
    pub const CONTINUE: i32 = 0;
    pub const PAUSE: i32 = 1;
}

/// `proxy_metric_type_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

impl MetricKind {
    pub fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            0 => Some(Self::Counter),
            1 => Some(Self::Gauge),
            2 => Some(Self::Histogram),
            _ => None,
        }
    }
}

/// The ABI version markers this host accepts, newest first.
pub const ABI_VERSION_EXPORTS: &[&str] = &["proxy_abi_version_0_2_1", "proxy_abi_version_0_2_0"];
