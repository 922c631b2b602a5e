//! The request id every request goes by (`x-request-id`), edge → backend →
//! logs: which incoming ids are kept. One rule for the backend and
//! `seckill-edge` (Envoy replaces every client's id with its own).

/// The header, as Envoy names it.
pub const HEADER: &str = "x-request-id";

/// Longest request id kept.
pub const MAX_LEN: usize = 64;

/// 1–64 characters of `[A-Za-z0-9._-]`: safe to log, to put in a header and
/// to search for. Anything else (empty, too long, `/`, spaces, quotes) is
/// replaced by a fresh id.
pub fn well_formed(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}
