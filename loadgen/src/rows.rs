//! The third phase, "order rows": from accepted purchase to committed row.
//!
//! With `--database-url`, after the purchase phase the tool watches the order
//! database (the `orders` table the backend's order worker fills from the
//! Redis stream, `backend/migrations/*/0001_orders.sql`) until every accepted
//! (202) purchase of the run has its row, then reads the rows' times. A
//! freshly written row (status `pending_payment`) carries `created_at_ms`, the
//! purchase time set by the Redis purchase script, and `updated_at_ms`, the
//! time the worker wrote it; so the rows alone give the end-to-end orders/s
//! (rows over first purchase → last row) and the purchase → row latency.
//! Rows whose status already moved on (paid, cancelled, expired) have a later
//! `updated_at_ms` and are left out of those figures.
//!
//! The database is only read: one sqlx `Any` pool (SQLite or MySQL/MariaDB,
//! like the backend), opened without creating anything. The figures and the
//! final check are pure functions, tested without a database.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use serde::Serialize;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Row};

/// Highest purchase → row latency the histogram tracks, in milliseconds (one
/// hour); larger values are clamped to it.
const MAX_MS: u64 = 3_600_000;
/// How often the row count is polled while waiting.
const POLL: Duration = Duration::from_millis(250);
/// How often the progress line is printed while waiting.
const PROGRESS: Duration = Duration::from_secs(1);
/// Without a new row for this long, the progress line says so once.
const STALL: Duration = Duration::from_secs(10);

/// Which rows belong to this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub activity_id: u64,
    /// A `LIKE` pattern (escape character `!`) on `user_id`, when the activity
    /// was not created by this run and may hold rows of other buyers.
    pub users: Option<String>,
}

impl Scope {
    /// Every row of an activity this run created.
    pub fn activity(activity_id: u64) -> Self {
        Self { activity_id, users: None }
    }

    /// The rows of this run's buyers (`load-<run>-<n>`) in an existing activity.
    pub fn run(activity_id: u64, run_id: &str) -> Self {
        Self { activity_id, users: Some(format!("{}%", like_escape(&crate::buyers::user_prefix(run_id)))) }
    }

    fn filter(&self) -> &'static str {
        if self.users.is_some() { "activity_id = ? AND user_id LIKE ? ESCAPE '!'" } else { "activity_id = ?" }
    }

    fn bind<'q>(
        &'q self,
        q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        let q = q.bind(self.activity_id as i64);
        match &self.users {
            Some(pattern) => q.bind(pattern.as_str()),
            None => q,
        }
    }
}

/// `s` as a literal in a `LIKE … ESCAPE '!'` pattern.
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '!' | '%' | '_') {
            out.push('!');
        }
        out.push(c);
    }
    out
}

/// The times (and quantity) of one order row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowTimes {
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub quantity: i64,
    /// Still `pending_payment`, i.e. `updated_at_ms` is when the worker wrote it.
    pub fresh: bool,
}

/// The order database, read-only.
pub struct OrderDb {
    pool: AnyPool,
    shown: String,
}

impl OrderDb {
    /// Opens the database behind `url` (`sqlite://<file>` or `mysql://…`)
    /// without creating it, and checks that it has the `orders` table.
    pub async fn connect(url: &str) -> Result<Self> {
        install_default_drivers();
        let shown = redact(url);
        let url = if url.starts_with("sqlite:") {
            let file = sqlite_file(url)?;
            if !Path::new(file).is_file() {
                bail!(
                    "the order database {file} does not exist; --database-url must be the backend's \
                     SECKILL_DATABASE_URL (the backend creates the file when it starts)"
                );
            }
            // Read-only unless the URL says otherwise: this tool never writes.
            if url.contains("mode=") {
                url.to_owned()
            } else {
                format!("{url}{}mode=ro", if url.contains('?') { '&' } else { '?' })
            }
        } else if url.starts_with("mysql://") || url.starts_with("mariadb://") {
            url.replacen("mariadb://", "mysql://", 1)
        } else {
            bail!("--database-url must start with sqlite:// or mysql://, got {shown}");
        };
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .connect(&url)
            .await
            .with_context(|| format!("cannot open the order database {shown}"))?;
        sqlx::query("SELECT COUNT(*) FROM orders WHERE 1 = 0")
            .fetch_one(&pool)
            .await
            .with_context(|| format!("the order database {shown} has no readable `orders` table"))?;
        Ok(Self { pool, shown })
    }

    /// The database URL without its password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Rows in `scope`.
    pub async fn count(&self, scope: &Scope) -> Result<u64> {
        let sql = format!("SELECT COUNT(*) FROM orders WHERE {}", scope.filter());
        let row = scope.bind(sqlx::query(&sql)).fetch_one(&self.pool).await.context("counting order rows")?;
        // COUNT(*) is an INTEGER in SQLite and a BIGINT in MySQL: i64 either way.
        let n: i64 = row.try_get(0).context("reading COUNT(*)")?;
        Ok(n.max(0) as u64)
    }

    /// The times of every row in `scope`.
    pub async fn times(&self, scope: &Scope) -> Result<Vec<RowTimes>> {
        let sql = format!("SELECT created_at_ms, updated_at_ms, quantity, status FROM orders WHERE {}", scope.filter());
        let rows = scope.bind(sqlx::query(&sql)).fetch_all(&self.pool).await.context("reading order rows")?;
        rows.iter()
            .map(|r| {
                Ok(RowTimes {
                    created_at_ms: r.try_get(0)?,
                    updated_at_ms: r.try_get(1)?,
                    quantity: r.try_get(2)?,
                    fresh: r.try_get::<String, _>(3)? == "pending_payment",
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .context("decoding order rows")
    }

    /// Users of `scope` whose live rows (not cancelled or expired) hold more
    /// than `limit` units, with their units.
    pub async fn users_over(&self, scope: &Scope, limit: u64) -> Result<Vec<(String, i64)>> {
        let sql = format!(
            // SUM is a DECIMAL in MySQL; SIGNED makes it a BIGINT there and
            // stays an integer in SQLite (NUMERIC affinity).
            "SELECT user_id, CAST(SUM(quantity) AS SIGNED) FROM orders WHERE {} AND status NOT IN ('cancelled', 'expired') \
             GROUP BY user_id HAVING SUM(quantity) > ? ORDER BY user_id",
            scope.filter()
        );
        let rows = scope
            .bind(sqlx::query(&sql))
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await
            .context("summing units per user")?;
        rows.iter()
            .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .context("decoding units per user")
    }

    /// Rows in `activity_id` of users whose id starts with one of `prefixes`.
    pub async fn rows_of_users(&self, activity_id: u64, prefixes: &[String]) -> Result<u64> {
        let mut n = 0;
        for prefix in prefixes {
            let scope = Scope { activity_id, users: Some(format!("{}%", like_escape(prefix))) };
            n += self.count(&scope).await?;
        }
        Ok(n)
    }

    /// Polls until `scope` holds at least `target` rows or `deadline` has
    /// passed, printing the progress every second. Returns the last count.
    pub async fn wait_for(&self, scope: &Scope, target: u64, deadline: Duration) -> Result<u64> {
        let start = Instant::now();
        let mut printed = start;
        let mut progress = (0u64, start);
        let mut stall_told = false;
        loop {
            let n = self.count(scope).await?;
            let now = Instant::now();
            if n != progress.0 {
                progress = (n, now);
            }
            if n >= target {
                return Ok(n);
            }
            if now.duration_since(start) >= deadline {
                println!("rows: {n}/{target} (deadline of {} s passed)", deadline.as_secs());
                return Ok(n);
            }
            if now.duration_since(printed) >= PROGRESS {
                printed = now;
                let mut line = format!("rows: {n}/{target}");
                if !stall_told && now.duration_since(progress.1) >= STALL {
                    stall_told = true;
                    let _ = write!(
                        line,
                        " (no new row for {} s: is the order worker running?)",
                        now.duration_since(progress.1).as_secs()
                    );
                }
                println!("{line}");
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// The file of a `sqlite://<file>[?options]` URL.
fn sqlite_file(url: &str) -> Result<&str> {
    let Some(rest) = url.strip_prefix("sqlite://") else {
        bail!("a SQLite --database-url is sqlite://<file>, e.g. sqlite://var/orders.db");
    };
    let file = rest.split('?').next().unwrap_or("");
    if file.is_empty() || file == ":memory:" {
        bail!("--database-url {url}: name the backend's SQLite file, e.g. sqlite://var/orders.db");
    }
    Ok(file)
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://…@{}", &url[..scheme], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

/// The figures of the "order rows" phase.
#[derive(Debug, Clone, PartialEq)]
pub struct RowsSummary {
    /// Rows of the run.
    pub rows: u64,
    /// Units they hold.
    pub quantity: i64,
    /// Rows still `pending_payment`: the ones the figures below are about.
    pub measured: u64,
    /// First purchase → last row written, over the measured rows.
    pub span: Duration,
    /// Measured rows over `span`.
    pub orders_per_s: f64,
    /// Purchase → row latency.
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// Last purchase → last row: how long the worker trailed the rush.
    pub tail: Duration,
    /// Rows written "before" their purchase (clocks of Redis and the worker
    /// apart); counted as 0 ms.
    pub skewed: u64,
}

impl RowsSummary {
    pub fn new(rows: &[RowTimes]) -> Self {
        let mut latency = Histogram::<u64>::new_with_bounds(1, MAX_MS, 3).expect("static histogram bounds are valid");
        let (mut first_created, mut last_created, mut last_updated) = (i64::MAX, i64::MIN, i64::MIN);
        let mut skewed = 0;
        for r in rows.iter().filter(|r| r.fresh) {
            let delta = r.updated_at_ms - r.created_at_ms;
            if delta < 0 {
                skewed += 1;
            }
            latency.saturating_record((delta.max(0) as u64).min(MAX_MS));
            first_created = first_created.min(r.created_at_ms);
            last_created = last_created.max(r.created_at_ms);
            last_updated = last_updated.max(r.updated_at_ms);
        }
        let measured = latency.len();
        let ms = |v: i64| Duration::from_millis(v.max(0) as u64);
        let (span, tail) = if measured == 0 {
            (Duration::ZERO, Duration::ZERO)
        } else {
            (ms(last_updated - first_created), ms(last_updated - last_created))
        };
        let secs = span.as_secs_f64();
        let q = |quantile: f64| if measured == 0 { 0.0 } else { latency.value_at_quantile(quantile) as f64 };
        Self {
            rows: rows.len() as u64,
            quantity: rows.iter().map(|r| r.quantity).sum(),
            measured,
            span,
            orders_per_s: if secs > 0.0 { measured as f64 / secs } else { 0.0 },
            p50_ms: q(0.50),
            p90_ms: q(0.90),
            p99_ms: q(0.99),
            p999_ms: q(0.999),
            max_ms: if measured == 0 { 0.0 } else { latency.max() as f64 },
            tail,
            skewed,
        }
    }

    /// The human-readable block of the phase.
    pub fn render(&self, accepted: u64) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "phase order rows: {} rows for {} accepted purchases; {} rows in {:.3} s from first purchase to last row = {:.0} orders/s",
            self.rows,
            accepted,
            self.measured,
            self.span.as_secs_f64(),
            self.orders_per_s
        );
        let _ = writeln!(
            out,
            "  purchase -> row: p50 {:.0} ms  p90 {:.0} ms  p99 {:.0} ms  p999 {:.0} ms  max {:.0} ms",
            self.p50_ms, self.p90_ms, self.p99_ms, self.p999_ms, self.max_ms
        );
        let _ = writeln!(out, "  last row {:.3} s after the last purchase", self.tail.as_secs_f64());
        if self.measured < self.rows {
            let _ = writeln!(
                out,
                "  {} row(s) already paid/cancelled/expired, left out of the figures",
                self.rows - self.measured
            );
        }
        if self.skewed > 0 {
            let _ = writeln!(
                out,
                "  {} row(s) written before their purchase time (clock skew between Redis and the worker), counted as 0 ms",
                self.skewed
            );
        }
        out
    }

    /// The `--json` line of the phase (`phase` first, like the others).
    pub fn json_line(&self, accepted: u64) -> String {
        #[derive(Serialize)]
        struct Line {
            phase: &'static str,
            rows: u64,
            accepted: u64,
            quantity: i64,
            measured: u64,
            duration_s: f64,
            orders_per_s: f64,
            p50_ms: f64,
            p90_ms: f64,
            p99_ms: f64,
            p999_ms: f64,
            max_ms: f64,
            tail_s: f64,
        }
        let round = |v: f64| (v * 1000.0).round() / 1000.0;
        let line = Line {
            phase: "rows",
            rows: self.rows,
            accepted,
            quantity: self.quantity,
            measured: self.measured,
            duration_s: round(self.span.as_secs_f64()),
            orders_per_s: round(self.orders_per_s),
            p50_ms: self.p50_ms,
            p90_ms: self.p90_ms,
            p99_ms: self.p99_ms,
            p999_ms: self.p999_ms,
            max_ms: self.max_ms,
            tail_s: round(self.tail.as_secs_f64()),
        };
        serde_json::to_string(&line).expect("plain figures always serialise")
    }
}

/// Checks the rows against the purchase phase: one row per accepted purchase
/// (plus at most one per purchase whose answer was lost), and no more units
/// in rows than the activity sold. The error names every violation.
pub fn check_rows(summary: &RowsSummary, accepted: u64, unanswered: u64, sold: i64) -> Result<(), String> {
    let mut violations = Vec::new();
    if summary.rows < accepted {
        violations.push(format!(
            "only {} of {} accepted purchases have an order row (the worker is behind, stopped, or lost events)",
            summary.rows, accepted
        ));
    } else if summary.rows > accepted + unanswered {
        violations.push(if unanswered == 0 {
            format!("{} order rows for {} accepted purchases", summary.rows, accepted)
        } else {
            format!(
                "{} order rows for {} accepted purchases and {} whose answer was lost",
                summary.rows, accepted, unanswered
            )
        });
    }
    if summary.quantity > sold {
        violations.push(format!("the order rows hold {} units but the activity sold {}", summary.quantity, sold));
    }
    if violations.is_empty() { Ok(()) } else { Err(violations.join("; ")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(created: i64, updated: i64) -> RowTimes {
        RowTimes { created_at_ms: created, updated_at_ms: updated, quantity: 1, fresh: true }
    }

    #[test]
    fn throughput_and_percentiles_from_row_times() {
        // 1000 purchases, one per ms from t = 10 000; row i written i % 100 + 1 ms later.
        let rows: Vec<RowTimes> = (0..1000).map(|i| row(10_000 + i, 10_000 + i + i % 100 + 1)).collect();
        let s = RowsSummary::new(&rows);
        assert_eq!((s.rows, s.measured, s.quantity, s.skewed), (1000, 1000, 1000, 0));
        // First purchase 10 000, last row 10 999 + 99 + 1 = 11 099: 1.099 s.
        assert_eq!(s.span, Duration::from_millis(1099));
        assert!((s.orders_per_s - 1000.0 / 1.099).abs() < 1e-9, "{}", s.orders_per_s);
        assert_eq!((s.p50_ms, s.p90_ms, s.p99_ms, s.p999_ms, s.max_ms), (50.0, 90.0, 99.0, 100.0, 100.0));
        // Last purchase 10 999, last row 11 099.
        assert_eq!(s.tail, Duration::from_millis(100));
    }

    #[test]
    fn rows_that_moved_on_and_skewed_clocks() {
        let mut rows = vec![row(1000, 1010), row(1000, 995), row(2000, 2040)];
        // Paid later: its updated_at_ms is the payment, not the write.
        rows.push(RowTimes { created_at_ms: 1500, updated_at_ms: 900_000, quantity: 3, fresh: false });
        let s = RowsSummary::new(&rows);
        assert_eq!((s.rows, s.measured, s.quantity, s.skewed), (4, 3, 6, 1));
        assert_eq!(s.span, Duration::from_millis(1040));
        assert_eq!((s.p50_ms, s.max_ms), (10.0, 40.0));
        assert!(s.render(4).contains("1 row(s) already paid/cancelled/expired"));
    }

    #[test]
    fn no_rows_report_zeroes() {
        let s = RowsSummary::new(&[]);
        assert_eq!((s.rows, s.measured, s.orders_per_s, s.p99_ms, s.max_ms), (0, 0, 0.0, 0.0, 0.0));
        assert_eq!(s.span, Duration::ZERO);
        // All rows in one millisecond: no rate rather than infinity.
        let s = RowsSummary::new(&[row(5, 5)]);
        assert_eq!((s.orders_per_s, s.p50_ms), (0.0, 0.0));
    }

    #[test]
    fn render_and_json() {
        let rows: Vec<RowTimes> = (0..100).map(|i| row(i * 10, i * 10 + 5)).collect();
        let s = RowsSummary::new(&rows);
        let text = s.render(100);
        assert!(
            text.starts_with("phase order rows: 100 rows for 100 accepted purchases; 100 rows in 0.995 s"),
            "{text}"
        );
        assert!(text.contains("purchase -> row: p50 5 ms"), "{text}");
        let line = s.json_line(100);
        assert!(line.starts_with(r#"{"phase":"rows","rows":100,"accepted":100,"#), "{line}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["p99_ms"], 5.0);
        assert_eq!(v["duration_s"], 0.995);
    }

    #[test]
    fn rows_are_checked_against_the_purchases() {
        let s = |rows: u64, quantity: i64| RowsSummary { rows, quantity, ..RowsSummary::new(&[]) };
        assert_eq!(check_rows(&s(100, 100), 100, 0, 100), Ok(()));
        let err = check_rows(&s(90, 90), 100, 0, 100).unwrap_err();
        assert!(err.starts_with("only 90 of 100 accepted purchases have an order row"), "{err}");
        assert_eq!(check_rows(&s(101, 101), 100, 0, 101).unwrap_err(), "101 order rows for 100 accepted purchases");
        // A lost answer may or may not have become an order.
        assert_eq!(check_rows(&s(101, 101), 100, 2, 101), Ok(()));
        assert!(check_rows(&s(103, 103), 100, 2, 103).is_err());
        assert_eq!(
            check_rows(&s(100, 200), 100, 0, 150).unwrap_err(),
            "the order rows hold 200 units but the activity sold 150"
        );
    }

    #[test]
    fn scopes_and_urls() {
        assert_eq!(Scope::activity(7), Scope { activity_id: 7, users: None });
        assert_eq!(Scope::run(7, "17000").users.as_deref(), Some("load-17000-%"));
        assert_eq!(Scope::run(7, "a_b").users.as_deref(), Some("load-a!_b-%"));
        assert_eq!(like_escape("50%_!"), "50!%!_!!");
        assert_eq!(sqlite_file("sqlite://var/orders.db").unwrap(), "var/orders.db");
        assert_eq!(sqlite_file("sqlite:///tmp/o.db?mode=ro").unwrap(), "/tmp/o.db");
        assert!(sqlite_file("sqlite::memory:").is_err());
        assert!(sqlite_file("sqlite://").is_err());
        assert_eq!(redact("mysql://root:pw@db:3306/seckill"), "mysql://…@db:3306/seckill");
    }
}
