//! The host functions a proxy-wasm module imports, grouped by family, each
//! answering only with statuses the Rust SDK accepts from that call (but a
//! full shared-data store, see `proxy_set_shared_data`). The wire vocabulary
//! they speak lives in [`crate::abi`]; the per-VM state they work on in
//! [`crate::host`]. This module only puts the families on a linker: each
//! family points at `guest` and at no other family.

mod buffers;
mod calls;
mod guest;
mod headers;
mod log_and_time;
mod metrics;
mod properties;
mod shared_data;
mod streams;
mod wasi;

use crate::host::HostState;
use guest::Defs;
use wasmtime::{Linker, Result};

/// The `(module, name)` of every function this host defines.
pub fn provided_imports() -> &'static [(&'static str, &'static str)] {
    static NAMES: std::sync::OnceLock<Vec<(&'static str, &'static str)>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        let engine = wasmtime::Engine::default();
        let mut linker = Linker::new(&engine);
        add_to_linker(&mut linker).expect("the host's own imports link")
    })
}

/// Defines every import on `linker`; returns their names.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> Result<Vec<(&'static str, &'static str)>> {
    let mut d = Defs { linker, names: Vec::new() };
    log_and_time::add(&mut d)?;
    buffers::add(&mut d)?;
    headers::add(&mut d)?;
    properties::add(&mut d)?;
    shared_data::add(&mut d)?;
    streams::add(&mut d)?;
    calls::add(&mut d)?;
    metrics::add(&mut d)?;
    wasi::add(&mut d)?;
    Ok(d.names)
}
