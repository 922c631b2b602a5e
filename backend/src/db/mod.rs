//! The order database: SQLite by default, MySQL/MariaDB in production, behind
//! one sqlx `Any` pool so that every query is written once.
//!
//! The few statements whose syntax differs (the idempotent insert) are picked
//! by `Dialect`. Order state changes are compare-and-set `UPDATE`s: the row's
//! current status is part of the `WHERE`, so of two racing transitions exactly
//! one changes the row and the other sees zero rows affected.

mod checklist;
mod edge_rules;
mod failure;
mod orders;
mod payments;
mod plans;
mod pool;
mod replica;

pub use edge_rules::{RulesSave, StoredRules};
pub use failure::{Failure, classify, is_lock_conflict};
pub use orders::{ActivityTotals, Cursor, NewOrder, OrderFilter, OrderRow, released};
pub use payments::{PaymentOutcome, PaymentRecord, PaymentRow};
pub use plans::QueryPlan;
pub use pool::{Db, Dialect, PoolUse};
pub use replica::ReplicaLag;
