//! The HTTPS settings of the real `seckill-edge` binary as an operator meets
//! them: a certificate without its key (or the other way round), a TLS
//! listener without either, or a file that is not what it should be, each
//! stops the start with one clear line naming the settings or the file.

use std::process::{Command, Stdio};

fn edge(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_seckill-edge"))
        .env_clear()
        .env("SECKILL_EDGE_SECRET", "e")
        .env("SECKILL_JWT_SECRET", "j")
        .envs(env.iter().copied())
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Exit code 1 and one line on stderr that names each of `names`.
fn assert_refused(out: &std::process::Output, names: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line:\n{stderr}");
    for name in names {
        assert!(stderr.contains(name), "the error names {name}:\n{stderr}");
    }
}

const BOTH: &[&str] = &["--tls-cert", "SECKILL_EDGE_TLS_CERT_FILE", "--tls-key", "SECKILL_EDGE_TLS_KEY_FILE"];

#[test]
fn a_certificate_without_its_key_is_refused_naming_both_settings() {
    let out = edge(&["--tls-cert", "/etc/seckill/cert.pem"], &[]);
    assert_refused(&out, BOTH);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-key is missing"));
}

#[test]
fn a_key_without_its_certificate_is_refused_naming_both_settings() {
    let out = edge(&[], &[("SECKILL_EDGE_TLS_KEY_FILE", "/etc/seckill/key.pem")]);
    assert_refused(&out, BOTH);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-cert is missing"));
}

#[test]
fn a_tls_listener_without_a_certificate_is_refused() {
    let out = edge(&["--tls-listen", "127.0.0.1:0"], &[]);
    assert_refused(&out, &["--tls-listen", "SECKILL_EDGE_TLS_LISTEN", "--tls-cert", "--tls-key"]);
}

#[test]
fn an_unreadable_or_invalid_file_is_named() {
    let dir = std::env::temp_dir().join(format!("seckill-edge-tls-startup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pair = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key, junk) = (dir.join("cert.pem"), dir.join("key.pem"), dir.join("junk.pem"));
    std::fs::write(&cert, pair.cert.pem()).unwrap();
    std::fs::write(&key, pair.signing_key.serialize_pem()).unwrap();
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let missing = dir.join("missing.pem");
    let s = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    for (c, k, named) in
        [(s(&missing), s(&key), s(&missing)), (s(&junk), s(&key), s(&junk)), (s(&cert), s(&junk), s(&junk))]
    {
        let out = edge(&["--tls-cert", &c, "--tls-key", &k], &[]);
        assert_refused(&out, &[&named]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
