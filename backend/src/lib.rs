//! seckill's backend: the buyers' API, the operators' API, health and
//! metrics, over the Redis Lua scripts in `lua/`, and the worker that turns
//! accepted sales into order rows.
//!
//! The modules form layers, and every arrow points down (a test,
//! `tests/tests/module_cycles.rs`, keeps it so):
//!
//! | layer | modules | what it knows |
//! |---|---|---|
//! | serving | [`server`], [`state`] | the listener, and the state built from the settings |
//! | HTTP | [`routes`] (`auth`, `extract`, `error`, one file per audience) | requests and answers: extractors, thin handlers, [`routes::error::ApiError`], the only place the contract's error codes are chosen |
//! | domain | [`activities`], [`alerting`], [`anti_bot`], [`benchmarks`], [`orders`], [`payments`], [`order_event`], [`purchase_batch`], [`reconcile`], [`dead_letters`], [`worker`], [`edge`], [`blacklist`], [`blacklist_reach`], [`admin_session`], [`credentials`], [`checklist`], [`instances`], [`profile`], [`live`], [`ui_assets`] | the rules, with an error enum each; no HTTP types |
//! | storage | [`store`] (Redis: client, scripts, activities, blacklist, edge rules, stream, key plan), [`db`] (SQL: pool, failure classes, orders, edge rules, checklist) | how things are kept; [`dependency::DependencyError`] is their failure as the domain sees it |
//! | ground | [`clock`], [`config`], [`breaker`], [`telemetry`] | time, settings, failing fast, metric names |
//!
//! The binary (`main.rs`) parses the settings, builds [`state::AppState`]
//! and calls [`server::serve`]; tests build the same state around their own
//! Redis and order database.

pub mod activities;
pub mod admin_session;
pub mod alerting;
pub mod anti_bot;
pub mod benchmarks;
pub mod blacklist;
pub mod blacklist_reach;
pub mod breaker;
pub mod checklist;
pub mod clock;
pub mod config;
pub mod credentials;
pub mod db;
pub mod dead_letters;
pub mod dependency;
pub mod edge;
pub mod instances;
pub mod live;
pub mod order_event;
pub mod orders;
pub mod payments;
pub mod profile;
pub mod purchase_batch;
pub mod reconcile;
pub mod routes;
pub mod server;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod ui_assets;
pub mod worker;
