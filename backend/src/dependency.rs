//! The one way domain code fails that is nobody's fault: Redis or the order
//! database did not answer. Domain errors wrap it (`#[from]`), and only the
//! HTTP layer decides what a client is told (`unavailable`, retry shortly).

use crate::store::StoreError;

/// Redis or the order database failed (down, slow, refusing writes).
#[derive(Debug, thiserror::Error)]
pub enum DependencyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("order database: {0}")]
    Db(#[from] sqlx::Error),
}
