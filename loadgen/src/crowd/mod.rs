//! Crowd mode (`--crowd`): a flash-sale crowd through the edge instead of
//! two tidy phases straight at the backend.
//!
//! One activity; honest buyers, eager ones that retry, page refreshers,
//! bots, blacklisted users and forged JWTs, each client from an address of
//! its own; a live progress line; a report per class saying who answered
//! (the edge by itself, or the backend); and the checks that fail the run
//! when the sale was not exact. The order of a run is here; who is in the
//! crowd is `plan`, what they do on the wire `actors`, what they saw
//! `tally`, and what must hold `checks`.

mod actors;
mod checks;
mod plan;
mod tally;

use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use clap::Args;
use hyper::Method;
use hyper::body::Bytes;
use hyper::header::HeaderValue;
use seckill_api::{EDGE_DECISION_HEADER, NewActivity, buyer_jwt};
use time::OffsetDateTime;

use crate::admin::Admin;
use crate::client::{Endpoint, send};
use crate::rows::{OrderDb, RowsSummary, Scope};
use actors::{Crowd, Routes};
use checks::{DbFindings, Facts};
use plan::{Actor, Class, Mix, Plan};

/// The crowd's own options (the rest are the tool's).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Crowd mode (through the edge)")]
pub struct CrowdArgs {
    /// Drive a crowd through the edge (--url): many addresses, classes of
    /// traffic, a live progress line, checks that fail the run.
    #[arg(long)]
    pub crowd: bool,

    /// How the buyers (--buyers) are shared between honest, eager,
    /// blacklisted and forged ones, in parts.
    #[arg(long, default_value = "honest=85,eager=10,blacklisted=3,forged=2")]
    pub mix: String,

    /// Page refreshers (each with its own address) [default: --buyers / 5].
    #[arg(long)]
    pub refreshers: Option<u64>,

    /// Page loads per refresher.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub refreshes: u32,

    /// Bots: one address and one account each, as fast as they can.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub bots: u64,

    /// Connections each bot keeps busy at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1_000))]
    pub bot_connections: u64,

    /// Requests of the whole crowd: the bots keep going until it has sent
    /// this many [default: --buyers x 10].
    #[arg(long)]
    pub requests: Option<u64>,

    /// Tries an eager buyer makes after a rate_limited or unavailable answer.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=1_000))]
    pub eager_retries: u32,

    /// Seed of the arrival order (the same seed, the same crowd).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Everything a crowd run needs from the command line.
pub struct Settings<'a> {
    pub url: &'a str,
    pub admin_url: &'a str,
    pub jwt_secret: &'a str,
    pub admin_password: &'a str,
    pub connections: u64,
    pub buyers: u64,
    pub stock: Option<i64>,
    pub quantity: u64,
    pub run_id: Option<&'a str>,
    pub database_url: Option<&'a str>,
    pub rows_deadline: u64,
    pub json: bool,
    pub crowd: &'a CrowdArgs,
}

/// How long the edge gets to refuse blacklisted users by itself before the
/// crowd starts (it reads the blacklist on its sync tick).
const EDGE_SYNC_WAIT: Duration = Duration::from_secs(15);
/// Refusals in a row, each on a fresh connection, that show every worker of
/// the edge has the blacklist (with two workers, eight all on one happen
/// less than once in a hundred).
const SYNCED_REFUSALS: u32 = 8;

pub async fn run(s: Settings<'_>) -> Result<ExitCode> {
    let args = s.crowd;
    let mix = Mix::parse(&args.mix)?;
    let refreshers = args.refreshers.unwrap_or(s.buyers / 5);
    let plan = Plan::new(&mix, s.buyers, refreshers, args.bots, args.seed)?;
    let budget = args.requests.unwrap_or(s.buyers * 10);
    let stock = match s.stock {
        Some(stock) => stock,
        None => i64::try_from((s.buyers / 10).max(1) * s.quantity).context("--buyers x --quantity is too large")?,
    };

    let endpoint = Arc::new(Endpoint::resolve("edge", s.url).await?);
    let admin_endpoint = Endpoint::resolve("admin API", s.admin_url).await?;
    drop(endpoint.connect().await?);
    let distinct_sources = endpoint.addr().ip().is_loopback();
    let order_db = match s.database_url {
        Some(url) => Some(OrderDb::connect(url).await?),
        None => None,
    };
    let admin = Admin::login(&admin_endpoint, s.admin_password).await?;

    let now = OffsetDateTime::now_utc();
    let run_id = s.run_id.map_or_else(|| (now.unix_timestamp_nanos() / 1_000_000).to_string(), str::to_owned);
    let activity = admin
        .create_activity(&NewActivity {
            name: format!("crowd run {run_id}"),
            price_cents: 100,
            total_stock: stock,
            limit_per_user: s.quantity as i64,
            starts_at: now - time::Duration::minutes(1),
            ends_at: now + time::Duration::hours(1),
        })
        .await?;
    println!(
        "activity {} ({}): {} units, limit {} per user, created by this run",
        activity.id, activity.name, activity.total_stock, activity.limit_per_user
    );
    let counts: Vec<(Class, u64)> = Class::ALL.iter().map(|&c| (c, plan.count(c))).collect();
    println!(
        "crowd: {} through {}; from {}",
        counts.iter().map(|(c, n)| format!("{n} {c}")).collect::<Vec<_>>().join(", "),
        endpoint.url(),
        if distinct_sources {
            "an address of its own for each client (127.16.0.1 and up)".to_owned()
        } else {
            "this host's address: the edge is not on loopback, so the clients cannot have addresses of their own"
                .to_owned()
        },
    );

    let blacklisted = blacklist(&admin, &plan, &run_id, distinct_sources).await?;
    // Whatever happens from here on (a failure, Ctrl-C), the run's blacklist
    // entries come off again.
    let rest = async {
        let minting = Instant::now();
        let auth = mint(&plan, s.jwt_secret, &run_id, now)?;
        println!(
            "{} JWTs minted in {:.2} s; {} blacklist entries",
            auth.iter().flatten().count(),
            minting.elapsed().as_secs_f64(),
            blacklisted.len()
        );
        let routes = Routes {
            token: endpoint.uri(&format!("/api/activities/{}/token", activity.id))?,
            purchase: endpoint.uri(&format!("/api/activities/{}/purchase", activity.id))?,
            page: endpoint.uri(&format!("/api/activities/{}", activity.id))?,
        };
        wait_for_the_edge_to_refuse(&endpoint, &routes, &plan, &auth, distinct_sources).await;

        let crowd = Arc::new(Crowd::new(
            endpoint.clone(),
            routes,
            distinct_sources,
            plan.arrivals.clone(),
            auth,
            s.quantity,
            args.refreshes,
            args.eager_retries,
            budget,
            stock as u64,
        ));
        // In a set, so that it stops however this block ends.
        let mut progress_line = tokio::task::JoinSet::new();
        progress_line.spawn(progress(crowd.clone()));
        crowd.clone().run(s.connections as usize, &plan.bots, args.bot_connections as usize).await?;
        progress_line.abort_all();
        let tally = crowd.tally().clone();
        print!("{}", tally.render(&counts));

        let stats = admin.stats(activity.id).await?;
        println!("stats: remaining {}, sold {}, total_stock {}", stats.remaining, stats.sold, stats.total_stock);
        let db = match &order_db {
            Some(db) => Some(findings(db, activity.id, &tally, &s, &run_id).await?),
            None => None,
        };
        if let Some(trail) = checks::rows_trail(db.as_ref()) {
            println!("order rows: the last written {:.3} s after the last sale", trail.as_secs_f64());
        }
        let demand = Class::ALL.iter().filter(|c| c.may_buy()).map(|&c| plan.count(c)).sum::<u64>() * s.quantity;
        let facts = Facts { stats: &stats, limit_per_user: s.quantity, demand, quantity: s.quantity, db: db.as_ref() };
        let results = checks::run(&tally, &facts);
        for check in &results {
            println!("{}", check.line());
        }
        if s.json {
            let mut json = tally.json(&counts);
            json["activity_id"] = activity.id.into();
            json["rows_trail_s"] = checks::rows_trail(db.as_ref()).map(|d| d.as_secs_f64()).into();
            json["checks_ok"] = results.iter().all(|c| c.outcome.is_ok()).into();
            println!("{}", serde_json::json!({ "crowd": json }));
        }
        Ok(if results.iter().all(|c| c.outcome.is_ok()) { ExitCode::SUCCESS } else { ExitCode::FAILURE })
    };
    let outcome = tokio::select! {
        outcome = rest => outcome,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted: stopping the crowd");
            Ok(ExitCode::from(130))
        }
    };
    unblacklist(&admin, &blacklisted).await;
    outcome
}

/// Takes the run's entries off the blacklist; a failure here changes no figure.
async fn unblacklist(admin: &Admin<'_>, entries: &[(&'static str, String)]) {
    for (list, entry) in entries {
        if let Err(e) = admin.unblacklist(list, entry).await {
            eprintln!("warning: the blacklist keeps the run's {} entries: {e:#}", entries.len());
            return;
        }
    }
}

/// Puts the blacklisted class on the blacklist: every other one by user id,
/// the rest by address (only when they have addresses of their own).
/// Returns the entries, to take them off after the run.
async fn blacklist(
    admin: &Admin<'_>,
    plan: &Plan,
    run_id: &str,
    by_address: bool,
) -> Result<Vec<(&'static str, String)>> {
    let mut entries = Vec::new();
    for (i, actor) in plan.everyone().filter(|a| a.class == Class::Blacklisted).enumerate() {
        let entry = if by_address && i % 2 == 1 {
            ("ips", actor.source().to_string())
        } else {
            ("users", actor.user_id(run_id))
        };
        admin.blacklist(entry.0, &entry.1).await?;
        entries.push(entry);
    }
    Ok(entries)
}

/// `Authorization` of every client by number: valid JWTs, except the forged
/// class's (every other one signed with another secret, the rest expired);
/// refreshers send none.
fn mint(plan: &Plan, secret: &str, run_id: &str, now: OffsetDateTime) -> Result<Vec<Option<HeaderValue>>> {
    let mut actors: Vec<Actor> = plan.everyone().copied().collect();
    actors.sort_by_key(|a| a.n);
    ensure!(actors.iter().enumerate().all(|(i, a)| a.n as usize == i), "clients are numbered 0..n");
    let exp = (now + time::Duration::hours(1)).unix_timestamp();
    let expired = (now - time::Duration::hours(1)).unix_timestamp();
    let wrong_secret = format!("not-{secret}");
    let minted = crate::buyers::mint_bearers(actors.len(), |n| {
        let a = actors[n];
        match (a.class, n % 2) {
            (Class::Forged, 0) => buyer_jwt::mint(&wrong_secret, &a.user_id(run_id), exp),
            (Class::Forged, _) => buyer_jwt::mint(secret, &a.user_id(run_id), expired),
            _ => buyer_jwt::mint(secret, &a.user_id(run_id), exp),
        }
    })?;
    Ok(minted.into_iter().zip(&actors).map(|(h, a)| (a.class != Class::Refresher).then_some(h)).collect())
}

/// Waits (a bounded while) until the edge refuses a blacklisted user by
/// itself, so the crowd meets an edge that has synced the blacklist; says
/// so and goes on when it does not (then the backend refuses them).
async fn wait_for_the_edge_to_refuse(
    endpoint: &Endpoint,
    routes: &Routes,
    plan: &Plan,
    auth: &[Option<HeaderValue>],
    distinct_sources: bool,
) {
    // The last entry the run put on the blacklist: the edge syncs the whole
    // list at once, so once it refuses that one, it has all of them.
    let Some(probe) = plan.everyone().filter(|a| a.class == Class::Blacklisted).last() else { return };
    let source = distinct_sources.then(|| probe.source());
    let deadline = Instant::now() + EDGE_SYNC_WAIT;
    // Each fresh connection may land on another of the edge's workers, and
    // each worker syncs its own copy: several refusals in a row.
    let mut in_a_row = 0;
    while Instant::now() < deadline {
        if refused_by_the_edge(endpoint, routes, source, auth[probe.n as usize].as_ref()).await {
            in_a_row += 1;
            if in_a_row == SYNCED_REFUSALS {
                return;
            }
            continue;
        }
        in_a_row = 0;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "note: the edge did not refuse a blacklisted user by itself within {} s; the backend will",
        EDGE_SYNC_WAIT.as_secs()
    );
}

async fn refused_by_the_edge(
    endpoint: &Endpoint,
    routes: &Routes,
    source: Option<IpAddr>,
    auth: Option<&HeaderValue>,
) -> bool {
    let Ok(mut sender) = endpoint.connect_from(source).await else { return false };
    if sender.ready().await.is_err() {
        return false;
    }
    match send(&mut sender, Method::POST, &routes.token, endpoint.host(), auth, &Bytes::new()).await {
        Ok(answer) => answer.headers.get(EDGE_DECISION_HEADER).is_some_and(|v| v == "blacklisted"),
        Err(_) => false,
    }
}

/// The live line on standard error, once a second.
async fn progress(crowd: Arc<Crowd>) {
    let tick = Duration::from_secs(1);
    let mut last_sent = 0;
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + tick, tick);
    loop {
        interval.tick().await;
        let sent = crowd.sent.load(std::sync::atomic::Ordering::Relaxed);
        let line = crowd.tally().progress_line(crowd.elapsed(), sent - last_sent, tick);
        last_sent = sent;
        eprintln!("{line}{}", if crowd.arrivals_done() { " (buyers done; bots finishing)" } else { "" });
    }
}

/// What the order DB holds for the activity once every accepted purchase
/// has its row (or the deadline passed).
async fn findings(
    db: &OrderDb,
    activity_id: u64,
    tally: &tally::Tally,
    s: &Settings<'_>,
    run_id: &str,
) -> Result<DbFindings> {
    let scope = Scope::activity(activity_id);
    let accepted = tally.accepted();
    println!("waiting up to {} s for {accepted} order rows in {}", s.rows_deadline, db.shown());
    db.wait_for(&scope, accepted, Duration::from_secs(s.rows_deadline)).await?;
    let rows = RowsSummary::new(&db.times(&scope).await?);
    let over_limit = db.users_over(&scope, s.quantity).await?;
    let forbidden = [plan::user_prefix(run_id, Class::Blacklisted), plan::user_prefix(run_id, Class::Forged)];
    let forbidden_rows = db.rows_of_users(activity_id, &forbidden).await?;
    Ok(DbFindings { rows, over_limit, forbidden_rows })
}
