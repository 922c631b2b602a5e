//! The command line refuses what it cannot run, with a reason, before it
//! touches any server (the crowd's own run is `tests/tests/crowd.rs`).

use std::process::Command;

fn load(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_seckill-load"))
        .args(args)
        .env("SECKILL_JWT_SECRET", "s")
        .env("SECKILL_ADMIN_PASSWORD", "p")
        // Nothing listens here: a refusal must come before any connection.
        .env("SECKILL_LOAD_URL", "http://127.0.0.1:9")
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_crowd_with_an_unknown_class_is_refused_by_name() {
    let (ok, err) = load(&["--crowd", "--mix", "honest=9,robots=1"]);
    assert!(!ok);
    assert!(err.contains("unknown class `robots`"), "{err}");
}

#[test]
fn a_crowd_makes_its_own_activity() {
    let (ok, err) = load(&["--crowd", "--activity", "3"]);
    assert!(!ok);
    assert!(err.contains("--crowd creates its one activity itself"), "{err}");
}

#[test]
fn the_help_documents_the_crowd() {
    let out = Command::new(env!("CARGO_BIN_EXE_seckill-load")).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in ["--crowd", "--mix", "--refreshers", "--bots", "--requests", "--eager-retries"] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
}
