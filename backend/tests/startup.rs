//! Starting the real `seckill-backend` binary as an operator would: a wrong
//! setting is one or two clear lines (never a stack trace, even with
//! `RUST_BACKTRACE=1`), and logs written to a pipe carry no terminal colours.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

fn backend() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_seckill-backend"));
    cmd.env_clear()
        .env("RUST_BACKTRACE", "1")
        .env("SECKILL_JWT_SECRET", "j")
        .env("SECKILL_ADMIN_PASSWORD", "p")
        .env("SECKILL_EDGE_SECRET", "e")
        .env("SECKILL_LISTEN", "127.0.0.1:0")
        .env("SECKILL_ADMIN_UI_DIR", "/nonexistent")
        .stdin(Stdio::null());
    cmd
}

fn assert_short_error(out: &std::process::Output, mentions: &str) {
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!((1..=2).contains(&lines.len()), "one or two lines, got:\n{stderr}");
    assert!(!stderr.contains("backtrace") && !stderr.contains("Backtrace"), "{stderr}");
    assert!(stderr.contains(mentions), "the error names {mentions}:\n{stderr}");
    assert!(!stderr.contains('\u{1b}'), "no colour codes in a pipe:\n{stderr}");
}

#[test]
fn an_unsupported_redis_url_is_one_clear_line() {
    let out = backend().env("SECKILL_REDIS_URL", "memcached://127.0.0.1:11211").output().unwrap();
    assert_short_error(&out, "SECKILL_REDIS_URL");
}

#[test]
fn a_sentinel_url_without_its_master_name_says_so() {
    let out = backend().env("SECKILL_REDIS_URL", "redis+sentinel://127.0.0.1:26379").output().unwrap();
    assert_short_error(&out, "no master name");
    assert_short_error(&out, "SECKILL_REDIS_URL");
}

#[test]
fn a_replica_wait_longer_than_the_redis_timeout_names_both_settings() {
    let out = backend()
        .env("SECKILL_REDIS_URL", "redis+sentinel://127.0.0.1:26379/seckill")
        .env("SECKILL_REDIS_REPLICAS_ACK_TIMEOUT_MS", "900")
        .output()
        .unwrap();
    assert_short_error(
        &out,
        "SECKILL_REDIS_REPLICAS_ACK_TIMEOUT_MS (900) must be below SECKILL_REDIS_TIMEOUT_MS (800)",
    );
}

#[test]
fn a_pool_of_no_connections_is_refused() {
    let out = backend().env("SECKILL_DATABASE_POOL_SIZE", "0").output().unwrap();
    assert_short_error(&out, "database-pool-size");
}

#[test]
fn a_missing_secret_names_the_setting() {
    let out = backend().env_remove("SECKILL_EDGE_SECRET").output().unwrap();
    assert_short_error(&out, "SECKILL_EDGE_SECRET");
}

#[test]
fn an_unknown_database_scheme_names_the_setting() {
    let out = backend().env("SECKILL_DATABASE_URL", "postgres://db/seckill").output().unwrap();
    assert_short_error(&out, "SECKILL_DATABASE_URL");
}

/// Starts the backend (no Redis: it serves, not ready) with `env` added and
/// returns its log line saying it serves.
fn serving_line(env: &[(&str, &str)]) -> String {
    let dir = std::env::temp_dir().join(format!("seckill-startup-test-{}-{}", std::process::id(), env.len()));
    let mut cmd = backend();
    cmd.envs(env.iter().copied())
        // Redis is connected lazily: the backend serves (not ready) without one.
        .env("SECKILL_REDIS_URL", "redis://127.0.0.1:1/")
        .env("SECKILL_DATABASE_URL", format!("sqlite://{}/orders.db", dir.display()))
        .env("SECKILL_ROLE", "api")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let serving = lines.by_ref().map(Result::unwrap).find(|l| l.contains("seckill backend serving"));
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    serving.expect("the backend logs that it serves")
}

#[test]
fn logs_to_a_pipe_have_no_colours() {
    let serving = serving_line(&[]);
    assert!(!serving.contains('\u{1b}'), "no escape codes in {serving:?}");
    assert!(serving.contains("INFO"), "{serving}");
}

#[test]
fn json_logs_are_one_object_per_line_with_the_fields_at_the_top() {
    let serving = serving_line(&[("SECKILL_LOG_FORMAT", "json")]);
    let line: serde_json::Value = serde_json::from_str(&serving).expect("a JSON object");
    assert_eq!(line["level"], "INFO", "{line}");
    assert_eq!(line["message"], "seckill backend serving", "{line}");
    assert!(line["listen"].as_str().unwrap().starts_with("127.0.0.1:"), "{line}");
    assert!(line["timestamp"].is_string(), "{line}");
}

#[test]
fn dev_mode_is_on_with_seckill_dev_1_as_the_error_says() {
    let serving = serving_line(&[("SECKILL_DEV", "1"), ("SECKILL_EDGE_SECRET", "")]);
    assert!(serving.contains("serving"), "{serving}");
}
