//! The checks that fail a crowd run, as pure functions of what the crowd
//! saw, what the admin API reports and what the order DB holds: the sale
//! was exact, nobody bought past the limit, nobody blacklisted or forged
//! bought, every accepted purchase became a row, and the stock adds up.

use std::time::Duration;

use seckill_api::ActivityStats;

use super::plan::Class;
use super::tally::Tally;
use crate::report::check_invariant;
use crate::rows::{RowsSummary, check_rows};

/// What the order DB says about the run's activity, when it was given.
#[derive(Debug, Clone)]
pub struct DbFindings {
    pub rows: RowsSummary,
    /// Users whose rows hold more units than the limit, with their units.
    pub over_limit: Vec<(String, i64)>,
    /// Rows of blacklisted or forged users.
    pub forbidden_rows: u64,
}

/// The figures the checks need besides the tally.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub stats: &'a ActivityStats,
    pub limit_per_user: u64,
    /// Units the clients that may buy wanted, together.
    pub demand: u64,
    /// Units per purchase.
    pub quantity: u64,
    pub db: Option<&'a DbFindings>,
}

/// One check's name and outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub outcome: Result<(), String>,
}

impl Check {
    pub fn line(&self) -> String {
        match &self.outcome {
            Ok(()) => format!("check {}: OK", self.name),
            Err(why) => format!("check {}: FAILED ({why})", self.name),
        }
    }
}

/// Every check, in the order they are printed.
pub fn run(tally: &Tally, facts: &Facts) -> Vec<Check> {
    vec![
        Check { name: "sold exactly the stock", outcome: exact_sale(tally, facts) },
        Check { name: "nobody over the limit", outcome: within_limit(tally, facts) },
        Check { name: "no blacklisted or forged purchase", outcome: nothing_forbidden(tally, facts) },
        Check { name: "every accepted purchase is an order row", outcome: rows(tally, facts) },
        Check { name: "inventory + sold == total", outcome: check_invariant(facts.stats, None) },
    ]
}

fn exact_sale(tally: &Tally, facts: &Facts) -> Result<(), String> {
    let sold = facts.stats.sold.max(0) as u64;
    let seen = tally.units();
    let unseen = tally.lost_purchases() * facts.quantity;
    let total = facts.stats.total_stock.max(0) as u64;
    if sold > total {
        return Err(format!("sold {sold} of a stock of {total}"));
    }
    if !(seen..=seen + unseen).contains(&sold) {
        return Err(format!(
            "the activity sold {sold} but the crowd was answered 202 for {seen} units{}",
            if unseen > 0 { format!(" (and {unseen} more may have sold unanswered)") } else { String::new() }
        ));
    }
    if facts.demand >= total && sold != total {
        return Err(format!("demand was {} units but only {sold} of {total} sold", facts.demand));
    }
    Ok(())
}

fn within_limit(tally: &Tally, facts: &Facts) -> Result<(), String> {
    let most = tally.most_bought();
    if most > facts.limit_per_user {
        return Err(format!("a client was answered 202 for {most} units, the limit is {}", facts.limit_per_user));
    }
    match facts.db {
        Some(db) if !db.over_limit.is_empty() => {
            let (user, units) = &db.over_limit[0];
            Err(format!(
                "{} users hold more than {} units in order rows, e.g. {user} with {units}",
                db.over_limit.len(),
                facts.limit_per_user
            ))
        }
        _ => Ok(()),
    }
}

fn nothing_forbidden(tally: &Tally, facts: &Facts) -> Result<(), String> {
    let bought = |class| tally.class(class).accepted;
    let (blacklisted, forged) = (bought(Class::Blacklisted), bought(Class::Forged));
    if blacklisted + forged > 0 {
        return Err(format!("accepted purchases: {blacklisted} blacklisted, {forged} forged"));
    }
    match facts.db {
        Some(db) if db.forbidden_rows > 0 => {
            Err(format!("{} order rows belong to blacklisted or forged users", db.forbidden_rows))
        }
        _ => Ok(()),
    }
}

fn rows(tally: &Tally, facts: &Facts) -> Result<(), String> {
    match facts.db {
        Some(db) => check_rows(&db.rows, tally.accepted(), tally.lost_purchases(), facts.stats.sold),
        None => Err("not checked: give --database-url (the backend's SECKILL_DATABASE_URL)".to_owned()),
    }
}

/// How long after the last sale the last row was written, when known.
pub fn rows_trail(db: Option<&DbFindings>) -> Option<Duration> {
    db.filter(|d| d.rows.measured > 0).map(|d| d.rows.tail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crowd::tally::Seen;
    use seckill_api::ActivityStatus;

    fn stats(total: i64, sold: i64) -> ActivityStats {
        ActivityStats {
            activity_id: 1,
            status: ActivityStatus::SoldOut,
            total_stock: total,
            remaining: total - sold,
            sold,
            invariant_ok: true,
            live_tokens: 0,
            stream_length: sold,
        }
    }

    fn tally_with_sales(sales: &[(Class, u32)]) -> Tally {
        let mut t = Tally::new(3);
        for &(class, n) in sales {
            let at = Duration::from_millis(u64::from(n));
            t.record(class, Seen { status: 202, code: None, latency: at, from_edge: false, at });
            t.sale(class, n, &format!("1-{n}-{}", t.requests()), 1, at);
        }
        t
    }

    fn facts(stats: &ActivityStats) -> Facts<'_> {
        Facts { stats, limit_per_user: 1, demand: 10, quantity: 1, db: None }
    }

    fn failed(checks: &[Check]) -> Vec<&'static str> {
        checks.iter().filter(|c| c.outcome.is_err()).map(|c| c.name).collect()
    }

    #[test]
    fn an_exact_sale_passes_every_check_but_the_rows_without_a_database() {
        let t = tally_with_sales(&[(Class::Honest, 1), (Class::Eager, 2), (Class::Bot, 3)]);
        let s = stats(3, 3);
        assert_eq!(failed(&run(&t, &facts(&s))), ["every accepted purchase is an order row"]);
    }

    #[test]
    fn undersold_oversold_and_forbidden_purchases_fail() {
        let t = tally_with_sales(&[(Class::Honest, 1), (Class::Honest, 2)]);
        let s = stats(3, 2);
        let checks = run(&t, &facts(&s));
        assert!(checks[0].line().contains("demand was 10 units but only 2 of 3 sold"), "{}", checks[0].line());

        let s = stats(3, 3);
        let checks = run(&t, &facts(&s));
        assert!(checks[0].line().contains("sold 3 but the crowd was answered 202 for 2"), "{}", checks[0].line());

        let t = tally_with_sales(&[(Class::Honest, 1), (Class::Honest, 1), (Class::Forged, 9)]);
        let checks = run(&t, &facts(&s));
        assert_eq!(failed(&checks)[..2], ["nobody over the limit", "no blacklisted or forged purchase"], "{checks:?}");
    }

    #[test]
    fn a_lost_purchase_answer_may_have_sold() {
        let mut t = tally_with_sales(&[(Class::Honest, 1), (Class::Honest, 2)]);
        t.lost(Class::Eager, true, "reset".into());
        let s = stats(3, 3);
        assert_eq!(run(&t, &facts(&s))[0].outcome, Ok(()));
    }

    #[test]
    fn the_database_has_the_last_word() {
        let t = tally_with_sales(&[(Class::Honest, 1), (Class::Honest, 2), (Class::Honest, 3)]);
        let s = stats(3, 3);
        let rows = RowsSummary::new(&[]);
        let db = DbFindings { rows, over_limit: vec![("crowd-1-h2".into(), 2)], forbidden_rows: 1 };
        let checks = run(&t, &Facts { db: Some(&db), ..facts(&s) });
        assert_eq!(
            failed(&checks),
            ["nobody over the limit", "no blacklisted or forged purchase", "every accepted purchase is an order row"]
        );
        assert!(checks[1].line().contains("crowd-1-h2 with 2"), "{}", checks[1].line());
    }
}
