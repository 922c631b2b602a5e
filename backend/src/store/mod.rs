//! The Redis side of seckill: connections, the Lua scripts, and the few plain
//! commands around them.
//!
//! Every call is bounded by a timeout, so that a Redis that is down or stuck
//! turns into a fast error (`unavailable`) instead of a hanging request; the
//! connection manager reconnects by itself, so sales resume when Redis is back.
//! Script outcomes are values (`Rejection`, `PurchaseOutcome`, …), not errors:
//! a sold-out answer is a normal result of a sale, not a failure of the store.

mod activities;
mod blacklist;
mod client;
mod degraded;
mod edge_rules;
pub mod keys;
mod reconnecting;
mod redis_url;
mod scripts;
pub mod stream;
mod topology;

pub use activities::{ActivityRecord, Counters, DeleteOutcome, NewActivityRecord, StockChange};
pub use blacklist::BlacklistKind;
pub use client::{RedisConn, ReplicasAck, Store, StoreError};
pub use redis_url::{RedisTarget, SentinelTarget};
pub use scripts::{Purchase, PurchaseOutcome, PurchaseRequest, ReleaseOutcome, Sale, ScriptRefusal, TokenOutcome};
pub use stream::Queue;
pub use topology::{Failover, MasterReport};
