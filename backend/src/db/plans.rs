//! Whether the database answers the hot queries from an index (the seed's
//! SQL 语句优化): each one's plan, asked of the database itself (`EXPLAIN
//! QUERY PLAN` on SQLite, `EXPLAIN` on MySQL/MariaDB), for the checklist and
//! for a test on both. A query that scans the whole orders table is fine with
//! a hundred rows and a stall with ten million, so this is checked, not hoped.

use sqlx::Row;

use super::orders::{OrderFilter, sql};
use super::pool::{Db, Dialect, text_column};
use seckill_api::OrderStatus;

/// One hot query and how the database runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryPlan {
    pub name: &'static str,
    /// Whether the database finds the rows through an index.
    pub indexed: bool,
    /// The plan, as the database described it.
    pub plan: String,
}

/// A placeholder's value for `EXPLAIN`: the planner sees the column's type.
enum Bind {
    Int(i64),
    Text(&'static str),
}

/// Below this many rows MySQL may rightly prefer a scan to an index it could
/// use; the plan is then judged by the indexes it could use.
const TINY_TABLE_ROWS: i64 = 1000;

/// The queries that run per request or per worker pass, with placeholder values.
fn hot_queries() -> Vec<(&'static str, String, Vec<Bind>)> {
    use Bind::{Int, Text};
    let user = OrderFilter { user_id: Some("u".into()), ..OrderFilter::default() };
    let activity = OrderFilter { activity_id: Some(1), ..OrderFilter::default() };
    let activity_status = OrderFilter { status: Some(OrderStatus::Paid), ..activity.clone() };
    let page = |first: Vec<Bind>| first.into_iter().chain([Int(0), Int(0), Text("o"), Int(51)]).collect();
    vec![
        ("a buyer's order", sql::order(), vec![Text("o")]),
        ("a buyer's orders", sql::list(&user, true), page(vec![Text("u")])),
        ("an activity's orders", sql::list(&activity, true), page(vec![Int(1)])),
        ("an activity's orders of one status", sql::list(&activity_status, false), vec![Int(1), Text("paid"), Int(51)]),
        ("orders past their payment deadline", sql::overdue(), vec![Int(0), Int(100)]),
        ("closed orders whose stock is not back yet", sql::unreleased(), vec![Int(100)]),
        ("an activity's reconciliation totals", sql::ACTIVITY_TOTALS.to_owned(), vec![Int(1), Int(0)]),
    ]
}

impl Db {
    /// The plan of every hot query, from the primary.
    pub async fn query_plans(&self) -> Result<Vec<QueryPlan>, sqlx::Error> {
        self.guarded(async {
            let mut plans = Vec::new();
            for (name, query, binds) in hot_queries() {
                let explain = match self.dialect() {
                    Dialect::Sqlite => format!("EXPLAIN QUERY PLAN {query}"),
                    Dialect::MySql => format!("EXPLAIN {query}"),
                };
                // Not kept prepared: a plan asked of a cached statement can predate a schema change.
                let mut q = sqlx::query(&explain).persistent(false);
                for bind in binds {
                    q = match bind {
                        Bind::Int(v) => q.bind(v),
                        Bind::Text(v) => q.bind(v),
                    };
                }
                let rows = q.fetch_all(self.pool()).await?;
                let (indexed, plan) = match self.dialect() {
                    Dialect::Sqlite => sqlite_plan(&rows)?,
                    Dialect::MySql => mysql_plan(&rows)?,
                };
                plans.push(QueryPlan { name, indexed, plan });
            }
            Ok(plans)
        })
        .await
    }
}

/// SQLite: every step on `orders` must `SEARCH` (through an index), not `SCAN`.
fn sqlite_plan(rows: &[sqlx::any::AnyRow]) -> Result<(bool, String), sqlx::Error> {
    let steps = rows.iter().map(|r| text_column(r, "detail")).collect::<Result<Vec<_>, _>>()?;
    let indexed = steps.iter().filter(|s| s.contains("orders")).all(|s| s.starts_with("SEARCH"));
    Ok((indexed, steps.join("; ")))
}

/// MySQL/MariaDB: the access type is not a full scan (`ALL`, or `index`,
/// a walk of a whole index) and a key is used, or the table is tiny and a
/// key could be.
fn mysql_plan(rows: &[sqlx::any::AnyRow]) -> Result<(bool, String), sqlx::Error> {
    let mut indexed = true;
    let mut steps = Vec::new();
    for row in rows {
        let column = |name: &str| text_column(row, name).ok().filter(|v| !v.is_empty());
        let access = column("type").unwrap_or_default();
        let (key, possible) = (column("key"), column("possible_keys"));
        let estimate: i64 = row.try_get::<i64, _>("rows").ok().or_else(|| column("rows")?.parse().ok()).unwrap_or(0);
        // A lookup by a unique key that finds no row ends in planning: no table access at all.
        let const_miss = column("Extra").is_some_and(|e| e.contains("Impossible WHERE noticed after reading const"));
        let scans = matches!(access.as_str(), "ALL" | "index") || key.is_none();
        if scans && !const_miss && !(estimate < TINY_TABLE_ROWS && possible.is_some()) {
            indexed = false;
        }
        steps.push(format!(
            "type {access}, key {}, possible {}, rows {estimate}",
            key.as_deref().unwrap_or("none"),
            possible.as_deref().unwrap_or("none")
        ));
    }
    Ok((indexed, steps.join("; ")))
}
