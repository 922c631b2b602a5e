//! seckill's admin dashboard, compiled to wasm and served by the backend at
//! `/admin/`.
//!
//! Placeholder until the dashboard issue lands; it already depends on
//! `seckill-api` so the UI and the server share one wire format from day one.
