//! Starting the real `seckill-edge` binary as an operator would: a wrong
//! setting is one or two clear lines, never a stack trace (even with
//! `RUST_BACKTRACE=1`), and no terminal colours in a pipe.

use std::process::{Command, Stdio};

fn edge(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_seckill-edge"))
        .env_clear()
        .env("RUST_BACKTRACE", "1")
        .env("SECKILL_EDGE_SECRET", "e")
        .env("SECKILL_JWT_SECRET", "j")
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn assert_short_error(out: &std::process::Output, mentions: &str) {
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!((1..=2).contains(&lines.len()), "one or two lines, got:\n{stderr}");
    assert!(!stderr.to_lowercase().contains("backtrace"), "{stderr}");
    assert!(stderr.contains(mentions), "the error names {mentions}:\n{stderr}");
    assert!(!stderr.contains('\u{1b}'), "no colour codes in a pipe:\n{stderr}");
}

#[test]
fn a_missing_filter_module_is_one_clear_line() {
    assert_short_error(&edge(&["--wasm", "/nonexistent/filter.wasm"]), "/nonexistent/filter.wasm");
}

#[test]
fn a_plugin_configuration_that_is_not_json_names_the_file() {
    let file = std::env::temp_dir().join(format!("seckill-edge-startup-{}.json", std::process::id()));
    std::fs::write(&file, "{ not json").unwrap();
    let out = edge(&["--plugin-config", file.to_str().unwrap()]);
    let _ = std::fs::remove_file(&file);
    assert_short_error(&out, file.to_str().unwrap());
}
