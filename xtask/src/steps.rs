//! A long command told as one line per step: what it is doing, how far it
//! got (cargo's `n/m` crates) and how long it took, with the time since the
//! command began in front. The package managers' and compilers' own output
//! goes to a log file per step under `var/logs/`; it is shown (its last
//! lines, and the file's path) only when the step fails, with what to do.
//!
//! On a terminal the running step's line is redrawn in place; elsewhere (CI,
//! a pipe) each step prints its line when it ends, and a line a minute while
//! it runs, so a log never looks stuck.

use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How many of a failed step's last log lines are shown.
const FAILURE_TAIL: usize = 40;
/// Without a terminal, a running step's line is repeated this often.
const QUIET_REPEAT: Duration = Duration::from_secs(60);

/// The steps of one command, sharing its start time and its log folder.
#[derive(Clone)]
pub struct Steps {
    began: Instant,
    logs: PathBuf,
    console: Arc<Mutex<Console>>,
    /// Whether this thread's running step is redrawn in place.
    redraw: bool,
}

/// stderr, and the line being redrawn on it, if any.
struct Console {
    terminal: bool,
    live: Option<String>,
}

impl Console {
    /// Prints a finished line, keeping the live one (if any) below it.
    fn print(&mut self, line: &str) {
        let mut err = std::io::stderr().lock();
        if self.terminal && self.live.is_some() {
            let _ = write!(err, "\r\x1b[2K");
        }
        let _ = writeln!(err, "{line}");
        if let (true, Some(live)) = (self.terminal, &self.live) {
            let _ = write!(err, "{live}");
        }
        let _ = err.flush();
    }

    /// Redraws the running step's line (a terminal only).
    fn redraw(&mut self, line: String) {
        if self.terminal {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[2K{line}");
            let _ = std::io::stderr().flush();
            self.live = Some(line);
        }
    }

    fn clear(&mut self) {
        if self.terminal && self.live.take().is_some() {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[2K");
        }
    }
}

/// How far a cargo step got: its last progress frame's `n/m` units.
type Units = Mutex<Option<(u32, u32)>>;

impl Steps {
    /// Steps whose logs go to `logs` (created when the first one is written).
    pub fn new(logs: PathBuf) -> Self {
        let terminal = std::io::stderr().is_terminal();
        Self {
            began: Instant::now(),
            logs,
            console: Arc::new(Mutex::new(Console { terminal, live: None })),
            redraw: true,
        }
    }

    /// These steps, for a thread running beside another: their lines are
    /// printed when they end, not redrawn, so the two do not fight over one line.
    pub fn in_background(&self) -> Self {
        Self { redraw: false, ..self.clone() }
    }

    /// Prints the done line of a step that is not a command
    /// (say, waiting for a server), begun at `started`.
    pub fn record(&self, what: &str, started: Instant) {
        self.done(what, started, None);
    }

    /// A line of its own (a result, a URL), above any running step's.
    pub fn say(&self, line: &str) {
        self.console.lock().unwrap().print(&format!("{} {line}", self.clock()));
    }

    /// Runs `cmd` as the step `what`, its output into `var/logs/<log>.log`.
    /// Cargo's progress bar is read for its `n/m`; a failure shows the log's
    /// end and `hint` (what to do).
    pub fn command(&self, what: &str, log: &str, hint: &str, cmd: &mut Command) -> anyhow::Result<()> {
        let path = self.logs.join(format!("{log}.log"));
        std::fs::create_dir_all(&self.logs).with_context(|| format!("creating {}", self.logs.display()))?;
        let file = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let units = Arc::new(Units::default());
        cmd.stdin(Stdio::null()).stdout(file.try_clone()?).stderr(Stdio::piped());
        // Cargo draws its bar only on a terminal unless told; the bar's frames are read, not logged.
        cmd.env("CARGO_TERM_PROGRESS_WHEN", "always").env("CARGO_TERM_PROGRESS_WIDTH", "100");
        cmd.env("CARGO_TERM_COLOR", "never");
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => {
                let program = cmd.get_program().to_string_lossy().into_owned();
                return self.failed(what, Instant::now(), &format!("cannot run {program}: {e}"), None, hint);
            }
        };
        let stderr = child.stderr.take().expect("stderr is piped");
        let reader = {
            let units = units.clone();
            std::thread::spawn(move || copy_output(stderr, file, &units))
        };
        let started = Instant::now();
        self.watch(what, &units, || child.try_wait().map(|s| s.is_some()))?;
        let _ = reader.join();
        let status = child.wait()?;
        if !status.success() {
            return self.failed(what, started, &format!("exited with {status}"), Some(&path), hint);
        }
        let total = units.lock().unwrap().map(|(_, m)| m);
        self.done(what, started, total);
        Ok(())
    }

    /// Redraws the step's line until `finished` says so.
    fn watch(
        &self,
        what: &str,
        units: &Units,
        mut finished: impl FnMut() -> std::io::Result<bool>,
    ) -> anyhow::Result<()> {
        let mut repeated = Instant::now();
        loop {
            if finished()? {
                return Ok(());
            }
            let detail = match *units.lock().unwrap() {
                Some((n, m)) => format!("… {n}/{m} crates"),
                None => "…".to_owned(),
            };
            let line = self.line(what, &detail);
            let mut console = self.console.lock().unwrap();
            if console.terminal {
                if self.redraw {
                    console.redraw(line);
                }
            } else if repeated.elapsed() >= QUIET_REPEAT {
                console.print(&line);
                repeated = Instant::now();
            }
            drop(console);
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    fn done(&self, what: &str, started: Instant, units: Option<u32>) {
        let units = units.map(|m| format!(", {m} crates")).unwrap_or_default();
        let line = self.line(what, &format!("done in {}{units}", seconds(started.elapsed())));
        let mut console = self.console.lock().unwrap();
        if self.redraw {
            console.clear();
        }
        console.print(&line);
    }

    fn failed<T>(&self, what: &str, started: Instant, why: &str, log: Option<&Path>, hint: &str) -> anyhow::Result<T> {
        let mut console = self.console.lock().unwrap();
        if self.redraw {
            console.clear();
        }
        console.print(&self.line(what, &format!("FAILED after {}: {why}", seconds(started.elapsed()))));
        if let Some(log) = log {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(FAILURE_TAIL)..];
            console.print(&format!("── the last {} lines of {} ──", tail.len(), log.display()));
            for line in tail {
                console.print(line);
            }
            console.print(&format!("── full output: {} ──", log.display()));
        }
        drop(console);
        if hint.is_empty() {
            bail!("{what} failed: {why}");
        }
        bail!("{what} failed: {why}\n  what to do: {hint}");
    }

    /// `[m:ss] what detail`, the clock counting from the command's start.
    fn line(&self, what: &str, detail: &str) -> String {
        format!("{} {what} {detail}", self.clock())
    }

    fn clock(&self) -> String {
        let s = self.began.elapsed().as_secs();
        format!("[{:>2}:{:02}]", s / 60, s % 60)
    }
}

/// `4.2 s` or `3 min 12 s`.
pub fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 { format!("{s:.1} s") } else { format!("{} min {:02} s", (s / 60.0) as u64, (s % 60.0) as u64) }
}

/// Copies a child's stderr into its log, taking cargo's progress frames
/// (`Building [===>  ] 12/345: …`, ended by `\r`) out as progress instead.
fn copy_output(stderr: impl Read, mut log: std::fs::File, units: &Units) {
    let mut reader = BufReader::new(stderr);
    let mut piece = Vec::new();
    loop {
        piece.clear();
        // A frame ends with `\r`, a line with `\n`: split on both.
        match read_until_any(&mut reader, &mut piece) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&piece);
        if let Some(frame) = cargo_units(&text) {
            *units.lock().unwrap() = Some(frame);
            continue;
        }
        let text = text.trim_end_matches(['\r', '\n']);
        if !text.trim().is_empty() {
            let _ = writeln!(log, "{text}");
        }
    }
}

/// Reads up to and including the next `\r` or `\n`.
fn read_until_any(reader: &mut impl BufRead, out: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut read = 0;
    loop {
        let buffer = reader.fill_buf()?;
        if buffer.is_empty() {
            return Ok(read);
        }
        match buffer.iter().position(|b| *b == b'\r' || *b == b'\n') {
            Some(i) => {
                out.extend_from_slice(&buffer[..=i]);
                reader.consume(i + 1);
                return Ok(read + i + 1);
            }
            None => {
                let n = buffer.len();
                out.extend_from_slice(buffer);
                reader.consume(n);
                read += n;
            }
        }
    }
}

/// The `n/m` of a cargo progress frame (`    Building [====>   ] 12/345: serde, …`).
fn cargo_units(frame: &str) -> Option<(u32, u32)> {
    let rest = frame.trim_start().strip_prefix("Building")?;
    let after_bar = &rest[rest.find(']')? + 1..];
    let (counts, _) = after_bar.trim_start().split_once(':').unwrap_or((after_bar.trim(), ""));
    let (n, m) = counts.trim().split_once('/')?;
    Some((n.parse().ok()?, m.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cargo_progress_frames() {
        assert_eq!(cargo_units("    Building [=====>     ] 120/345: serde, tokio\r"), Some((120, 345)));
        assert_eq!(cargo_units("    Building [==========> ] 344/345\r"), Some((344, 345)));
        assert_eq!(cargo_units("   Compiling serde v1.0.0\n"), None);
        assert_eq!(cargo_units("warning: Building [ugly] x/y"), None);
    }

    #[test]
    fn a_failing_step_keeps_its_output_and_says_where() {
        let logs = std::env::temp_dir().join(format!("xtask-steps-{}", std::process::id()));
        let steps = Steps::new(logs.clone());
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo to-stdout; echo to-stderr >&2; exit 3"]);
        let err = steps.command("trying", "trying", "fix it", &mut cmd).unwrap_err().to_string();
        assert!(err.contains("trying failed") && err.contains("fix it"), "{err}");
        let log = std::fs::read_to_string(logs.join("trying.log")).unwrap();
        assert!(log.contains("to-stdout") && log.contains("to-stderr"), "{log}");

        let mut ok = Command::new("true");
        steps.command("passing", "passing", "", &mut ok).unwrap();
        std::fs::remove_dir_all(&logs).unwrap();
    }
}
