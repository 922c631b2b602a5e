//! seckill's admin dashboard, compiled to wasm and served by the backend at
//! `/admin/` (built by `xtask/src/ui.rs` into `target/admin-ui/`).
//!
//! The pure logic — the activity form's validation, the i18n table, number
//! and time formatting, chart scaling, the live stream's history and the
//! routes — lives in plain modules that build and are tested natively
//! (`cargo test -p seckill-admin-ui`). The Leptos app (`app`) only exists on
//! wasm32: its pages use the app-wide signals (`app/state.rs`), the browser's
//! time (`app/local_time.rs`) and the admin API (`app/api.rs`, with the
//! shared `seckill-api` types), never the shell that mounts them.

pub mod chart;
pub mod form;
pub mod format;
pub mod i18n;
pub mod live;
pub mod model;
pub mod route;

#[cfg(target_arch = "wasm32")]
mod app;

/// Entry point: replaces `index.html`'s loading state with the app.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen(start)]
pub fn start() {
    app::mount();
}
