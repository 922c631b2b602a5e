//! Shared test support (see `support`).
