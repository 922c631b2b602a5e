//! Builds the admin dashboard (`admin-ui/`, Leptos) into `target/admin-ui/`,
//! the folder the backend serves at `/admin/`.
//!
//! Only Rust is needed: the wasm32 target comes from rustup and `wasm-bindgen`
//! from `cargo install`, pinned to the version in `Cargo.lock` (the CLI and the
//! library must match exactly). No npm, no trunk, no wasm-opt (Debian's breaks
//! wasm-bindgen's output).
//!
//! Every asset but `index.html` gets its content hash in its name, so the
//! backend can serve them with `cache-control: public, max-age=31536000,
//! immutable` and `index.html` with `no-cache`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

use crate::deps::{BUILD_HINT, cargo, ensure_wasm_target};
use crate::steps::Steps;

const PACKAGE: &str = "seckill-admin-ui";
/// The crate's library name: what cargo calls the `.wasm` and wasm-bindgen its outputs.
const LIB: &str = "seckill_admin_ui";
const WASM_TARGET: &str = "wasm32-unknown-unknown";
/// Hex digits of the SHA-256 kept in a hashed file name.
const HASH_LEN: usize = 16;

/// Builds the dashboard and returns the folder to serve (`target/admin-ui/`).
pub fn build_ui(steps: &Steps) -> anyhow::Result<PathBuf> {
    let root = crate::deps::root();
    let target_dir = crate::deps::target_dir();

    ensure_wasm_target(steps)?;
    let version = locked_wasm_bindgen_version(&root.join("Cargo.lock"))?;
    let bindgen = ensure_wasm_bindgen(steps, &version)?;

    let mut build = cargo();
    build.args(["build", "--release", "--target", WASM_TARGET, "-p", PACKAGE]);
    // Small rather than fast: the dashboard is downloaded, and its hot paths are tiny.
    // These only apply to this build (cargo keeps its artifacts apart from other release builds).
    for (key, value) in [("OPT_LEVEL", "z"), ("LTO", "true"), ("CODEGEN_UNITS", "1"), ("DEBUG", "false")] {
        build.env(format!("CARGO_PROFILE_RELEASE_{key}"), value);
    }
    steps.command("building the admin UI (.wasm, release)", "build-admin-ui", BUILD_HINT, &mut build)?;
    let wasm = target_dir.join(WASM_TARGET).join("release").join(format!("{LIB}.wasm"));
    if !wasm.is_file() {
        bail!("the admin UI build did not produce {}", wasm.display());
    }

    let out = target_dir.join("admin-ui");
    // What the served folder was made from; equal on a warm start, when
    // binding and assembling again would give the same files.
    let stamp_path = target_dir.join("admin-ui.source");
    let stamp = source_stamp(&version, &wasm, &root.join("admin-ui"))?;
    if out.join("index.html").is_file() && fs::read_to_string(&stamp_path).ok().as_deref() == Some(stamp.as_str()) {
        return Ok(out);
    }

    let staging = target_dir.join("admin-ui.bindgen");
    reset_dir(&staging)?;
    steps.command(
        "binding the admin UI to JavaScript (wasm-bindgen)",
        "wasm-bindgen",
        "the wasm-bindgen CLI must be the lock file's version: `cargo uninstall wasm-bindgen-cli` and run this again",
        Command::new(&bindgen)
            .args(["--target", "web", "--no-typescript", "--remove-name-section", "--remove-producers-section"])
            .args(["--out-name", LIB, "--out-dir"])
            .arg(&staging)
            .arg(&wasm),
    )?;

    let fresh = target_dir.join("admin-ui.new");
    reset_dir(&fresh)?;
    assemble(&root.join("admin-ui"), &staging, &fresh)?;
    // The stamp goes before the folder it describes and comes back after it.
    if stamp_path.exists() {
        fs::remove_file(&stamp_path).with_context(|| format!("removing {}", stamp_path.display()))?;
    }
    if out.exists() {
        fs::remove_dir_all(&out).with_context(|| format!("removing the old {}", out.display()))?;
    }
    // One rename: a backend looking for the UI finds the old build or the new, never half of one.
    fs::rename(&fresh, &out).with_context(|| format!("moving {} to {}", fresh.display(), out.display()))?;
    fs::remove_dir_all(&staging).ok();
    fs::write(&stamp_path, &stamp).with_context(|| format!("writing {}", stamp_path.display()))?;
    Ok(out)
}

/// The SHA-256 of everything the served folder is made from: the
/// wasm-bindgen version, the UI's `.wasm`, and the crate's `index.html` and
/// `style.css`.
fn source_stamp(bindgen_version: &str, wasm: &Path, ui_src: &Path) -> anyhow::Result<String> {
    let mut hash = Sha256::new();
    hash.update(bindgen_version.as_bytes());
    for file in [wasm.to_owned(), ui_src.join("index.html"), ui_src.join("style.css")] {
        let bytes = fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(&bytes);
    }
    Ok(hex::encode(hash.finalize()))
}

/// Writes the hashed assets and `index.html` from the crate's sources (`ui_src`:
/// `index.html`, `style.css`) and wasm-bindgen's output (`bindgen`) into `out`.
fn assemble(ui_src: &Path, bindgen: &Path, out: &Path) -> anyhow::Result<()> {
    let read = |p: &Path| fs::read(p).with_context(|| format!("reading {}", p.display()));

    let wasm_name = hashed_name(LIB, "_bg.wasm", &read(&bindgen.join(format!("{LIB}_bg.wasm")))?);
    fs::copy(bindgen.join(format!("{LIB}_bg.wasm")), out.join(&wasm_name))?;

    // The glue's default wasm URL names the unhashed file; index.html passes the
    // hashed URL to `init()` explicitly, and the default is renamed too, so the
    // glue's own hash follows the wasm's.
    let glue =
        String::from_utf8(read(&bindgen.join(format!("{LIB}.js")))?).context("wasm-bindgen glue is not UTF-8")?;
    let glue = glue.replace(&format!("'{LIB}_bg.wasm'"), &format!("'{wasm_name}'"));
    let js_name = hashed_name(LIB, ".js", glue.as_bytes());
    fs::write(out.join(&js_name), &glue)?;

    // Inline JS snippets (crates using `#[wasm_bindgen(inline_js)]`), already
    // named by content hash and imported by relative path.
    let snippets = bindgen.join("snippets");
    if snippets.is_dir() {
        copy_dir(&snippets, &out.join("snippets"))?;
    }

    let css = read(&ui_src.join("style.css"))?;
    let css_name = hashed_name("style", ".css", &css);
    fs::write(out.join(&css_name), &css)?;

    let html = String::from_utf8(read(&ui_src.join("index.html"))?).context("index.html is not UTF-8")?;
    let html = rewrite_index(
        &html,
        &[
            ("style.css", css_name.as_str()),
            (&format!("{LIB}.js"), js_name.as_str()),
            (&format!("{LIB}_bg.wasm"), wasm_name.as_str()),
        ],
    )?;
    fs::write(out.join("index.html"), html)?;
    Ok(())
}

/// `stem-<hash><suffix>`, the hash being the first hex digits of the SHA-256 of `content`.
fn hashed_name(stem: &str, suffix: &str, content: &[u8]) -> String {
    let hex = hex::encode(Sha256::digest(content));
    format!("{stem}-{}{suffix}", &hex[..HASH_LEN])
}

/// Replaces each `./name` reference in `html` by `./hashed`; every one must be there.
fn rewrite_index(html: &str, names: &[(&str, &str)]) -> anyhow::Result<String> {
    let mut html = html.to_owned();
    for (plain, hashed) in names {
        let from = format!("./{plain}");
        if !html.contains(&from) {
            bail!("admin-ui/index.html does not reference {from}");
        }
        html = html.replace(&from, &format!("./{hashed}"));
    }
    Ok(html)
}

/// The wasm-bindgen version in `Cargo.lock`: the CLI must be exactly this one.
fn locked_wasm_bindgen_version(lock: &Path) -> anyhow::Result<String> {
    let text = fs::read_to_string(lock).with_context(|| format!("reading {}", lock.display()))?;
    let mut versions = wasm_bindgen_versions(&text);
    versions.dedup();
    match versions.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("{} has no wasm-bindgen package; is admin-ui a workspace member?", lock.display()),
        many => bail!("{} has several wasm-bindgen versions ({}); unify them first", lock.display(), many.join(", ")),
    }
}

/// Versions of the `wasm-bindgen` packages in a `Cargo.lock`, sorted.
fn wasm_bindgen_versions(lock: &str) -> Vec<String> {
    let mut out = Vec::new();
    for package in lock.split("[[package]]").skip(1) {
        let field = |key: &str| {
            package.lines().find_map(|line| {
                let (k, v) = line.split_once('=')?;
                (k.trim() == key).then(|| v.trim().trim_matches('"').to_owned())
            })
        };
        if field("name").as_deref() == Some("wasm-bindgen")
            && let Some(version) = field("version")
        {
            out.push(version);
        }
    }
    out.sort();
    out
}

/// The version a `wasm-bindgen` binary reports (`wasm-bindgen 0.2.130`), if it runs.
fn bindgen_version(program: &Path) -> Option<String> {
    let out = Command::new(program).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    out.status.success().then(|| text.split_whitespace().nth(1).map(str::to_owned)).flatten()
}

/// A `wasm-bindgen` CLI of exactly `version`: on PATH, in cargo's bin folder, or installed now.
fn ensure_wasm_bindgen(steps: &Steps, version: &str) -> anyhow::Result<PathBuf> {
    let cargo_bin = cargo_home().join("bin").join("wasm-bindgen");
    let candidates = [PathBuf::from("wasm-bindgen"), cargo_bin.clone()];
    if let Some(found) = candidates.iter().find(|p| bindgen_version(p).as_deref() == Some(version)) {
        return Ok(found.clone());
    }
    let have = bindgen_version(&cargo_bin).or_else(|| bindgen_version(Path::new("wasm-bindgen")));
    let have = have.map_or("none installed".to_owned(), |v| format!("{v} installed"));
    // Not `--locked`: its lock file may name crate versions the registry mirror lacks.
    // `--debug`: measured on 2 cores, it compiles in 53-76 s instead of 5 min 50 s,
    // and binds the dashboard in 1.1 s instead of 1.0 s, to the same bytes.
    let mut install = cargo();
    install.args(["install", "--debug", "wasm-bindgen-cli", "--version", &format!("={version}")]);
    steps.command(
        &format!("installing wasm-bindgen-cli {version}, the lock file's ({have}; compiled once)"),
        "install-wasm-bindgen",
        "cargo install needs crates.io (or the mirror cargo is set up for)",
        &mut install,
    )?;
    match bindgen_version(&cargo_bin) {
        Some(v) if v == version => Ok(cargo_bin),
        other => bail!("after cargo install, {} reports {other:?}, not {version}", cargo_bin.display()),
    }
}

fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into())).join(".cargo"))
}

fn reset_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let dest = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &dest)?;
        } else {
            fs::copy(entry.path(), &dest)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_locked_wasm_bindgen() {
        let lock = r#"
[[package]]
name = "wasm-bindgen-futures"
version = "0.4.80"

[[package]]
name = "wasm-bindgen"
version = "0.2.130"
source = "registry+https://github.com/rust-lang/crates.io-index"
dependencies = [
 "wasm-bindgen-macro",
]
"#;
        assert_eq!(wasm_bindgen_versions(lock), vec!["0.2.130".to_owned()]);
    }

    #[test]
    fn hashed_names_follow_the_content() {
        let a = hashed_name("style", ".css", b"a{}");
        assert!(a.starts_with("style-") && a.ends_with(".css"));
        assert_eq!(a.len(), "style-".len() + HASH_LEN + ".css".len());
        assert_eq!(a, hashed_name("style", ".css", b"a{}"));
        assert_ne!(a, hashed_name("style", ".css", b"b{}"));
    }

    #[test]
    fn index_references_are_all_rewritten() {
        let html = r#"<link href="./style.css"><script>import init from './x.js'; init('./x_bg.wasm')</script>"#;
        let out =
            rewrite_index(html, &[("style.css", "style-1.css"), ("x.js", "x-2.js"), ("x_bg.wasm", "x-3_bg.wasm")])
                .unwrap();
        assert_eq!(
            out,
            r#"<link href="./style-1.css"><script>import init from './x-2.js'; init('./x-3_bg.wasm')</script>"#
        );
        assert!(rewrite_index(html, &[("missing.css", "m.css")]).is_err());
    }

    #[test]
    fn the_source_stamp_changes_with_every_input() {
        let dir = std::env::temp_dir().join(format!("xtask-ui-stamp-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let wasm = dir.join("ui.wasm");
        let write = |name: &str, text: &str| fs::write(dir.join(name), text).unwrap();
        write("ui.wasm", "wasm");
        write("index.html", "<html>");
        write("style.css", "a{}");
        let stamp = || source_stamp("0.2.1", &wasm, &dir).unwrap();
        let first = stamp();
        assert_eq!(first, stamp(), "same inputs, same stamp");
        let mut seen = vec![first];
        for (name, text) in [("ui.wasm", "wasm2"), ("index.html", "<html lang=en>"), ("style.css", "b{}")] {
            write(name, text);
            assert!(!seen.contains(&stamp()), "{name} changed");
            seen.push(stamp());
        }
        assert_ne!(source_stamp("0.2.2", &wasm, &dir).unwrap(), stamp(), "another wasm-bindgen");
        fs::remove_dir_all(&dir).unwrap();
    }
}
