//! seckill's edge filter: a proxy-wasm HTTP filter that rate-limits, blacklists
//! and short-circuits sold-out activities before requests reach the backend.
//!
//! Placeholder until the edge issue lands: the crate exists so that the
//! workspace layout, CI and the launcher already account for it.
