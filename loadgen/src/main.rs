//! `seckill-load`: drives N distinct buyers through the token and purchase
//! calls of a running backend (or edge) and reports throughput, latency and
//! whether the stock invariant held; with `--database-url`, also how fast the
//! accepted purchases became order rows.
//!
//! This file is the command line and the order of a run; the connection pool
//! is in `client`, the admin calls in `admin`, the buyers' JWTs and bodies in
//! `buyers`, the figures in `report`, and the order-row phase in `rows`.

mod admin;
mod buyers;
mod client;
mod crowd;
mod report;
mod rows;

// glibc malloc showed up as ~16% of the purchase path's CPU (arena lock
// contention between the runtime's workers); mimalloc's per-thread heaps avoid it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use seckill_api::{NewActivity, PurchaseToken};
use time::OffsetDateTime;

use crate::admin::Admin;
use crate::client::{Endpoint, Item, Phase, PhaseOutcome, run_phase};
use crate::report::{ExpectedSold, Summary, check_invariant};
use crate::rows::{OrderDb, RowsSummary, Scope, check_rows};

/// Flash-sale load: N buyers each get a purchase token, then each buys.
#[derive(Debug, Parser)]
#[command(name = "seckill-load", version, about)]
struct Args {
    /// Base URL of the backend or the edge (public API).
    #[arg(long, env = "SECKILL_LOAD_URL", default_value = "http://127.0.0.1:8081")]
    url: String,

    /// Base URL of the admin API [default: --url].
    #[arg(long, env = "SECKILL_LOAD_ADMIN_URL")]
    admin_url: Option<String>,

    /// Secret the buyers' HS256 JWTs are signed with.
    #[arg(long, env = "SECKILL_JWT_SECRET", hide_env_values = true)]
    jwt_secret: String,

    /// Admin password (to create the activity and read its stats).
    #[arg(long, env = "SECKILL_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: String,

    /// Concurrent keep-alive connections.
    #[arg(long, env = "SECKILL_LOAD_CONNECTIONS", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    connections: u64,

    /// Distinct buyers (user ids `load-<run>-<n>`).
    #[arg(long, env = "SECKILL_LOAD_BUYERS", default_value_t = 100_000,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    buyers: u64,

    /// Stock of the created activity [default: buyers x quantity, so every purchase can succeed].
    #[arg(long, env = "SECKILL_LOAD_STOCK", value_parser = clap::value_parser!(i64).range(0..))]
    stock: Option<i64>,

    /// Use this existing activity instead of creating one.
    #[arg(long, env = "SECKILL_LOAD_ACTIVITY", conflicts_with = "activities")]
    activity: Option<u64>,

    /// Activities created for the run, the buyers spread over them in turn
    /// (buyer n buys in activity n mod N): many hot items at once, as a
    /// Redis Cluster spreads them over its masters.
    #[arg(long, env = "SECKILL_LOAD_ACTIVITIES", default_value_t = 1, conflicts_with = "database_url",
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    activities: u64,

    /// Quantity each buyer asks for.
    #[arg(long, env = "SECKILL_LOAD_QUANTITY", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    quantity: u64,

    /// Run id in the user ids [default: the current unix time in ms].
    #[arg(long)]
    run_id: Option<String>,

    /// Worker threads of the client's runtime (it shares the cores with the server).
    #[arg(long, env = "SECKILL_LOAD_THREADS", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=256))]
    threads: u64,

    /// Order database of the backend (its SECKILL_DATABASE_URL, e.g.
    /// sqlite://var/orders.db or mysql://…): after the purchases, wait until
    /// every accepted purchase has its order row and report purchase -> row.
    #[arg(long, env = "SECKILL_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,

    /// Seconds to wait, after the purchase phase, for the order rows.
    #[arg(long, env = "SECKILL_LOAD_ROWS_DEADLINE", default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    rows_deadline: u64,

    /// Also print one JSON line per phase with the figures.
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    crowd: crowd::CrowdArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime =
        match tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads as usize).enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("error: cannot start the tokio runtime: {e}");
                return ExitCode::FAILURE;
            }
        };
    match runtime.block_on(run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<ExitCode> {
    if args.crowd.crowd {
        if args.activity.is_some() || args.activities != 1 {
            bail!("--crowd creates its one activity itself: leave out --activity and --activities");
        }
        let admin_url = args.admin_url.as_deref().unwrap_or(&args.url);
        return crowd::run(crowd::Settings {
            url: &args.url,
            admin_url,
            jwt_secret: &args.jwt_secret,
            admin_password: &args.admin_password,
            connections: args.connections,
            buyers: args.buyers,
            stock: args.stock,
            quantity: args.quantity,
            run_id: args.run_id.as_deref(),
            database_url: args.database_url.as_deref(),
            rows_deadline: args.rows_deadline,
            json: args.json,
            crowd: &args.crowd,
        })
        .await;
    }
    let backend = Arc::new(Endpoint::resolve("backend", &args.url).await?);
    let admin_url = args.admin_url.as_deref().unwrap_or(&args.url);
    let admin_endpoint = Endpoint::resolve("admin API", admin_url).await?;
    // Fail fast, with the address, when nothing listens.
    drop(backend.connect().await?);
    // Likewise for the order database, before the rush rather than after it.
    let order_db = match &args.database_url {
        Some(url) => Some(OrderDb::connect(url).await?),
        None => None,
    };

    let admin = Admin::login(&admin_endpoint, &args.admin_password).await?;
    let buyers = args.buyers as usize;
    let now = OffsetDateTime::now_utc();
    let (activities, created) = match args.activity {
        Some(id) => (vec![admin.activity(id).await?], false),
        None => {
            let n = args.activities as usize;
            // Every buyer can buy once: each activity has stock for its share of them.
            let per_activity = args.buyers.div_ceil(args.activities);
            let stock = match args.stock {
                Some(s) => s,
                None => i64::try_from(per_activity * args.quantity).context("--buyers x --quantity is too large")?,
            };
            let mut created = Vec::with_capacity(n);
            for k in 0..n {
                let new = NewActivity {
                    name: format!(
                        "load run {}{}",
                        now.unix_timestamp(),
                        if n > 1 { format!(" #{k}") } else { String::new() }
                    ),
                    price_cents: 100,
                    total_stock: stock,
                    // One purchase per buyer; a buyer may take `--quantity` units in it.
                    limit_per_user: args.quantity as i64,
                    starts_at: now - time::Duration::minutes(1),
                    ends_at: now + time::Duration::hours(1),
                };
                created.push(admin.create_activity(&new).await?);
            }
            (created, true)
        }
    };
    for activity in &activities {
        println!(
            "activity {} ({}): {} of {} left, status {:?}, limit {} per user{}",
            activity.id,
            activity.name,
            activity.remaining,
            activity.total_stock,
            activity.status,
            activity.limit_per_user,
            if created { ", created by this run" } else { "" },
        );
    }
    // Buyer n buys in activity n mod N.
    let activity_of = |n: usize| &activities[n % activities.len()];
    let uris = |action: &str| -> Result<Vec<hyper::Uri>> {
        activities.iter().map(|a| backend.uri(&format!("/api/activities/{}/{action}", a.id))).collect()
    };
    let (token_uris, purchase_uris) = (uris("token")?, uris("purchase")?);

    let run_id = args.run_id.clone().unwrap_or_else(|| (now.unix_timestamp_nanos() / 1_000_000).to_string());
    let minting = Instant::now();
    let exp = (now + time::Duration::hours(1)).unix_timestamp();
    let auth = buyers::bearer_headers(&args.jwt_secret, &run_id, buyers, exp)?;
    println!(
        "{} buyers load-{run_id}-0..{}: JWTs minted in {:.2} s; {} connections to {}",
        buyers,
        buyers - 1,
        minting.elapsed().as_secs_f64(),
        args.connections,
        backend.url(),
    );

    // Phase 1: a purchase token per buyer.
    let token_phase = Phase {
        items: auth
            .iter()
            .enumerate()
            .map(|(n, a)| Item {
                uri: token_uris[n % activities.len()].clone(),
                auth: a.clone(),
                body: Default::default(),
            })
            .collect(),
        keep_bodies: true,
    };
    let outcome = run_phase(backend.clone(), token_phase, args.connections as usize).await?;
    report(&args, "token", &outcome, buyers);
    let mut tokens = Vec::with_capacity(outcome.bodies.len());
    for (index, body) in &outcome.bodies {
        let t: PurchaseToken = serde_json::from_slice(body)
            .with_context(|| format!("buyer {index}: the token answer is not {{token, expires_at}}"))?;
        tokens.push((*index, t.token));
    }
    tokens.sort_unstable_by_key(|(i, _)| *i);
    if tokens.is_empty() {
        bail!("no buyer got a purchase token; nothing to buy with (see the status breakdown above)");
    }

    // Phase 2: every buyer with a token buys.
    let purchase_phase = Phase {
        items: tokens
            .iter()
            .map(|(i, token)| Item {
                uri: purchase_uris[*i % activities.len()].clone(),
                auth: auth[*i].clone(),
                body: buyers::purchase_body(token, args.quantity),
            })
            .collect(),
        keep_bodies: false,
    };
    drop(tokens);
    let purchases = purchase_phase.items.len();
    let outcome = run_phase(backend.clone(), purchase_phase, args.connections as usize).await?;
    report(&args, "purchase", &outcome, purchases);

    // The invariant, as the admin API sees it: of every activity, and summed.
    let mut each = Vec::with_capacity(activities.len());
    for activity in &activities {
        each.push(admin.stats(activity.id).await?);
    }
    let stats = report::sum_stats(&each);
    println!(
        "stats: remaining {}, sold {}, total_stock {} (live tokens {}, stream length {})",
        stats.remaining, stats.sold, stats.total_stock, stats.live_tokens, stats.stream_length
    );
    let accepted = outcome.stats.count(202);
    let unanswered = outcome.stats.transport_errors;
    let expected = created.then(|| ExpectedSold::new(args.quantity, accepted, unanswered));
    let mut ok = match check_invariant(&stats, expected) {
        Ok(()) => {
            println!("invariant: OK");
            true
        }
        Err(why) => {
            println!("invariant: VIOLATED ({why})");
            false
        }
    };

    // Phase 3: the accepted purchases as order rows.
    if let Some(db) = &order_db {
        // Rows of an existing activity may be other buyers': keep to this run's.
        let activity = activity_of(0);
        let scope = if created { Scope::activity(activity.id) } else { Scope::run(activity.id, &run_id) };
        println!("waiting up to {} s for {accepted} order rows in {}", args.rows_deadline, db.shown());
        db.wait_for(&scope, accepted, Duration::from_secs(args.rows_deadline)).await?;
        let summary = RowsSummary::new(&db.times(&scope).await?);
        print!("{}", summary.render(accepted));
        if args.json {
            println!("{}", summary.json_line(accepted));
        }
        match check_rows(&summary, accepted, unanswered, stats.sold) {
            Ok(()) => println!("order rows: OK"),
            Err(why) => {
                println!("order rows: FAILED ({why})");
                ok = false;
            }
        }
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Prints a phase's figures (and its JSON line with `--json`).
fn report(args: &Args, phase: &'static str, outcome: &PhaseOutcome, planned: usize) {
    let summary = Summary::new(phase, &outcome.stats, outcome.duration);
    print!("{}", summary.render(&outcome.stats, outcome.connections));
    let skipped = planned as u64 - outcome.stats.attempted().min(planned as u64);
    if skipped > 0 {
        println!("  not sent: {skipped} (every connection task gave up)");
    }
    if let Some(e) = outcome.task_errors.first() {
        println!("  {} connection task(s) gave up; first: {e}", outcome.task_errors.len());
    }
    if args.json {
        println!("{}", summary.json_line(&outcome.stats));
    }
}
