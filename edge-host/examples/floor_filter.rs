//! Writes the floor filter: the tests' minimal proxy-wasm module, which lets
//! every request through with a few host calls and answers `429` at once to a
//! request with an `x-deny` header. `bench/edge.sh` runs a second edge with it,
//! to show what our proxy and host cost per request before the real filter
//! does any work.
//!
//! `cargo run --release -p seckill-edge-host --example floor_filter -- OUT.wasm`

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

fn main() -> std::process::ExitCode {
    let Some(out) = std::env::args_os().nth(1) else {
        eprintln!("usage: floor_filter OUT.wasm");
        return std::process::ExitCode::from(2);
    };
    let module = common::mini_filter(&common::Mini { deny_status: 429, ..common::Mini::default() });
    if let Err(e) = std::fs::write(&out, module) {
        eprintln!("cannot write {}: {e}", std::path::Path::new(&out).display());
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}
