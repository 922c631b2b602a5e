//! seckill's backend: the buyers' API, the operators' API, health and
//! metrics, over the Redis Lua scripts in `lua/`.
//!
//! The binary (`main.rs`) only parses settings and serves `app::router`; tests
//! build the same router around their own Redis.

pub mod admin_session;
pub mod app;
pub mod auth;
pub mod blacklist;
pub mod blacklist_reach;
pub mod checklist;
pub mod clock;
pub mod config;
pub mod db;
pub mod dead_letters;
pub mod edge;
pub mod error;
pub mod extract;
pub mod keys;
pub mod live;
pub mod orders;
pub mod purchase_batch;
pub mod reconcile;
pub mod routes;
pub mod store;
pub mod stream;
pub mod telemetry;
pub mod worker;
