//! `cargo xtask test`'s runner: every test binary of the workspace built in
//! one cargo run, then run side by side (as many at once as the machine has
//! cores, the longest first), each one's output kept in
//! `var/logs/test/<suite>.log`, and a table at the end: suite, tests, passed,
//! failed, time.
//!
//! Side by side is safe because every test starts its own servers on free
//! loopback ports; the suite is also run on one core before a change lands,
//! so two binaries sharing two cores is no harsher than that. The times of
//! the last run (`target/xtask-test-times.json`) order the next one, so the
//! slowest suites start first and the run ends when the slowest does.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::deps::{self, BUILD_HINT};
use crate::steps::{Steps, seconds};

/// One test binary: a library's unit tests or one integration test file.
#[derive(Debug)]
struct Suite {
    /// See [`suite_name`].
    name: String,
    executable: PathBuf,
    /// The package's folder: cargo runs a test binary there.
    dir: PathBuf,
}

/// What one suite's run printed and how it ended.
#[derive(Debug, Default, Clone)]
struct Outcome {
    passed: u32,
    failed: u32,
    ignored: u32,
    time: Duration,
    /// Exited non-zero (a failed test, or a crash before any result).
    broken: bool,
}

/// Builds every test, runs them all, prints the table; fails if any failed.
pub fn run_all(steps: &Steps) -> anyhow::Result<()> {
    let mut build = deps::cargo();
    build.args(["test", "--workspace", "--no-run"]);
    steps.command("building every test", "build-tests", BUILD_HINT, &mut build)?;
    let mut queue = list_suites()?;

    let times_file = deps::target_dir().join("xtask-test-times.json");
    let mut last: BTreeMap<String, f64> =
        std::fs::read_to_string(&times_file).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
    // Longest first (by the last run; unknown ones first of all, they may be long).
    queue.sort_by(|a, b| {
        let time = |s: &Suite| last.get(&s.name).copied().unwrap_or(f64::MAX);
        time(b).total_cmp(&time(a))
    });
    let jobs = jobs();
    steps.say(&format!("running {} test suites, {jobs} at a time; their output: var/logs/test/", queue.len()));

    let logs = deps::logs_dir().join("test");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let queue = Arc::new(Mutex::new(VecDeque::from(queue)));
    let outcomes: Arc<Mutex<BTreeMap<String, Outcome>>> = Arc::default();
    let began = Instant::now();
    let workers: Vec<_> = (0..jobs)
        .map(|_| {
            let (queue, outcomes, steps, logs) = (queue.clone(), outcomes.clone(), steps.clone(), logs.clone());
            std::thread::spawn(move || {
                loop {
                    let Some(suite) = queue.lock().unwrap().pop_front() else { return };
                    let mut cmd = Command::new(&suite.executable);
                    cmd.current_dir(&suite.dir);
                    let outcome = run_logged(&mut cmd, &log_file(&logs, &suite.name));
                    report(&steps, &suite.name, &outcome, &logs);
                    outcomes.lock().unwrap().insert(suite.name, outcome);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().map_err(|_| anyhow::anyhow!("a test runner thread panicked"))?;
    }
    let wall = began.elapsed();

    // Doc tests are not binaries cargo hands out: cargo runs them itself.
    const DOC_TESTS: &str = "doc tests";
    let mut doc = deps::cargo();
    doc.args(["test", "--workspace", "--doc"]);
    let outcome = run_logged(&mut doc, &log_file(&logs, DOC_TESTS));
    report(steps, DOC_TESTS, &outcome, &logs);
    let doc_time = outcome.time;
    let mut outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    outcomes.insert(DOC_TESTS.to_owned(), outcome);

    for (name, outcome) in &outcomes {
        last.insert(name.clone(), outcome.time.as_secs_f64());
    }
    let _ = std::fs::write(&times_file, serde_json::to_string_pretty(&last).unwrap_or_default());

    print_table(&outcomes, wall + doc_time, jobs);
    let failed: Vec<&str> = outcomes.iter().filter(|(_, o)| o.broken).map(|(n, _)| n.as_str()).collect();
    if !failed.is_empty() {
        bail!("{} suite(s) failed: {} (their output: var/logs/test/<suite>.log)", failed.len(), failed.join(", "));
    }
    Ok(())
}

/// How many suites run at once: `SECKILL_TEST_JOBS`, else the number of cores.
fn jobs() -> usize {
    std::env::var("SECKILL_TEST_JOBS")
        .ok()
        .and_then(|j| j.parse().ok())
        .filter(|j| *j > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The test binaries the last `cargo test --no-run` built (cargo says, as JSON, which they are).
fn list_suites() -> anyhow::Result<Vec<Suite>> {
    let output = deps::cargo()
        .args(["test", "--workspace", "--no-run", "--message-format=json"])
        .stderr(Stdio::null())
        .output()
        .context("listing the test binaries (cargo test --no-run)")?;
    if !output.status.success() {
        bail!("cargo test --no-run --message-format=json failed with {}", output.status);
    }
    let mut suites = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if message["reason"] != "compiler-artifact" || message["profile"]["test"] != true {
            continue;
        }
        let Some(executable) = message["executable"].as_str() else { continue };
        let target = &message["target"];
        let package = package_name(message["package_id"].as_str().unwrap_or_default());
        let kind = target["kind"][0].as_str().unwrap_or("?");
        let name = suite_name(package, kind, target["name"].as_str().unwrap_or("?"));
        if suites.iter().any(|s: &Suite| s.name == name) {
            // Two suites under one name would share a log and one's result would hide the other's.
            bail!("two test binaries are both called {name}");
        }
        let manifest = Path::new(message["manifest_path"].as_str().unwrap_or_default());
        let dir = manifest.parent().map(Path::to_path_buf).unwrap_or_else(deps::root);
        suites.push(Suite { name, executable: executable.into(), dir });
    }
    if suites.is_empty() {
        bail!("cargo built no test binaries");
    }
    Ok(suites)
}

/// The package's name out of a cargo package id (`path+file:///…/backend#seckill-backend@0.1.0`,
/// `path+file:///…/xtask#0.1.0`).
fn package_name(id: &str) -> &str {
    let (path, fragment) = id.rsplit_once('#').unwrap_or((id, ""));
    match fragment.split_once('@') {
        Some((name, _)) => name,
        None => path.rsplit('/').next().unwrap_or(path),
    }
}

/// What the table calls a test binary: a library's unit tests by its
/// package's name, an integration test file as `package::file`, any other
/// target (a binary's unit tests, say) as `package::target (kind)`; a package
/// often has a library and a binary of the same name.
fn suite_name(package: &str, kind: &str, target: &str) -> String {
    match kind {
        "lib" | "rlib" | "cdylib" | "dylib" | "staticlib" | "proc-macro" => package.to_owned(),
        "test" => format!("{package}::{target}"),
        other => format!("{package}::{target} ({other})"),
    }
}

/// `logs/<suite>.log`, the suite's name made a file name.
fn log_file(logs: &Path, suite: &str) -> PathBuf {
    let name: String = suite.chars().filter(|c| !matches!(c, '(' | ')')).collect();
    logs.join(format!("{}.log", name.replace("::", "-").replace(' ', "-")))
}

/// Runs a test command with its output into `log`, timed; reads the counts
/// from libtest's `test result:` lines.
fn run_logged(cmd: &mut Command, log: &Path) -> Outcome {
    let started = Instant::now();
    let Ok(file) = std::fs::File::create(log) else { return Outcome { broken: true, ..Outcome::default() } };
    let Ok(err) = file.try_clone() else { return Outcome { broken: true, ..Outcome::default() } };
    let status = cmd.stdin(Stdio::null()).stdout(file).stderr(err).status();
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut outcome =
        Outcome { broken: !status.is_ok_and(|s| s.success()), time: started.elapsed(), ..Outcome::default() };
    for line in text.lines().filter(|l| l.starts_with("test result: ")) {
        outcome.passed += count(line, " passed");
        outcome.failed += count(line, " failed");
        outcome.ignored += count(line, " ignored");
    }
    outcome
}

/// The number before `label` in a `test result:` line (`… 12 passed; 0 failed; …`).
fn count(line: &str, label: &str) -> u32 {
    line.find(label)
        .and_then(|end| line[..end].rsplit([' ', '.', ';']).next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// One line per finished suite; a failure also shows libtest's failure report and the log's path.
fn report(steps: &Steps, suite: &str, outcome: &Outcome, logs: &Path) {
    let total = outcome.passed + outcome.failed;
    if !outcome.broken {
        steps.say(&format!("ok      {suite:<40} {:>4} passed in {}", outcome.passed, seconds(outcome.time)));
        return;
    }
    let log = log_file(logs, suite);
    steps.say(&format!(
        "FAILED  {suite:<40} {}/{total} passed in {}; its output: {}",
        outcome.passed,
        seconds(outcome.time),
        log.display()
    ));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    // libtest's own summary of what failed, or the end of the output if it crashed first.
    let report = match text.find("\nfailures:\n") {
        Some(at) => &text[at..],
        None => &text[text.char_indices().rev().nth(4000).map_or(0, |(i, _)| i)..],
    };
    eprintln!("{report}");
}

fn print_table(outcomes: &BTreeMap<String, Outcome>, wall: Duration, jobs: usize) {
    let width = outcomes.keys().map(String::len).max().unwrap_or(5).max(5);
    eprintln!();
    eprintln!(
        "{:<width$}  {:>6}  {:>6}  {:>6}  {:>7}  {:>12}",
        "suite", "tests", "passed", "failed", "ignored", "time"
    );
    let mut sum = Outcome::default();
    for (name, o) in outcomes {
        let mark = if o.broken { "  ← FAILED" } else { "" };
        eprintln!(
            "{name:<width$}  {:>6}  {:>6}  {:>6}  {:>7}  {:>12}{mark}",
            o.passed + o.failed,
            o.passed,
            o.failed,
            o.ignored,
            seconds(o.time)
        );
        sum.passed += o.passed;
        sum.failed += o.failed;
        sum.ignored += o.ignored;
        sum.time += o.time;
    }
    eprintln!(
        "{:<width$}  {:>6}  {:>6}  {:>6}  {:>7}  {:>12}",
        "total",
        sum.passed + sum.failed,
        sum.passed,
        sum.failed,
        sum.ignored,
        seconds(sum.time)
    );
    eprintln!("(the suites ran {jobs} at a time: {} of wall time)", seconds(wall));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libtest_counts() {
        let line = "test result: FAILED. 12 passed; 2 failed; 1 ignored; 0 measured; 0 filtered out; finished in 3.2s";
        assert_eq!((count(line, " passed"), count(line, " failed"), count(line, " ignored")), (12, 2, 1));
        assert_eq!(count("test result: ok. 0 passed; 0 failed; 0 ignored", " passed"), 0);
    }

    #[test]
    fn a_library_and_a_binary_of_one_name_are_two_suites() {
        let lib = suite_name("seckill-backend", "lib", "seckill_backend");
        let bin = suite_name("seckill-backend", "bin", "seckill-backend");
        assert_eq!(lib, "seckill-backend");
        assert_eq!(bin, "seckill-backend::seckill-backend (bin)");
        assert_eq!(suite_name("seckill-tests", "test", "crowd"), "seckill-tests::crowd");
        assert_eq!(suite_name("seckill-edge-filter", "cdylib", "seckill_edge_filter"), "seckill-edge-filter");
        let logs = Path::new("/l");
        assert_ne!(log_file(logs, &lib), log_file(logs, &bin));
        assert_eq!(log_file(logs, "seckill-tests::crowd"), Path::new("/l/seckill-tests-crowd.log"));
    }

    #[test]
    fn names_packages_from_cargo_ids() {
        assert_eq!(package_name("path+file:///w/backend#seckill-backend@0.1.0"), "seckill-backend");
        assert_eq!(package_name("path+file:///w/xtask#0.1.0"), "xtask");
    }
}
