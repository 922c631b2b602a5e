//! Small things every part of backup and restore uses: progress lines, the
//! clock, URLs (read and redacted), tool versions.

use std::process::{Command, Stdio};

use anyhow::{Context, bail};

pub(super) fn say(what: impl std::fmt::Display) {
    eprintln!("xtask: {what}");
}

pub(super) fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

pub(super) fn split_host_port(hostport: &str, default_port: u16) -> anyhow::Result<(String, u16)> {
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (host, after) = rest.split_once(']').context("an IPv6 address without its ]")?;
        (host, after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    let port = match port {
        None | Some("") => default_port,
        Some(p) => p.parse().with_context(|| format!("{p:?} is not a port"))?,
    };
    if host.is_empty() {
        bail!("no host");
    }
    Ok((host.to_owned(), port))
}

pub(super) fn tool_version(program: &str, flag: &str) -> String {
    Command::new(program)
        .arg(flag)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).lines().next().map(|l| l.trim().to_owned()))
        .unwrap_or_else(|| "not installed".into())
}

pub(super) fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// A URL (or a comma-separated list of them) without passwords.
pub(super) fn redact(url: &str) -> String {
    url.split(',')
        .map(|part| match (part.find("://"), part.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => format!("{}://…@{}", &part[..scheme], &part[at + 1..]),
            _ => part.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}
