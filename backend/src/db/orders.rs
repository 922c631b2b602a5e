//! The `orders` table: the worker's idempotent insert, the buyers' and
//! admins' reads, the compare-and-set status transitions, and the totals
//! reconciliation compares against Redis.

use std::str::FromStr;

use seckill_api::OrderStatus;
use sqlx::Row;

use super::failure::retry_on_lock_conflict;
use super::pool::{Db, Dialect};

/// An order as the worker writes it from its stream event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    pub order_id: String,
    pub activity_id: u64,
    pub user_id: String,
    pub quantity: i64,
    pub amount_cents: i64,
    pub created_at_ms: i64,
    pub pay_deadline_ms: i64,
    pub event_seq: i64,
}

/// A row of `orders`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRow {
    pub order_id: String,
    pub activity_id: u64,
    pub user_id: String,
    pub quantity: i64,
    pub amount_cents: i64,
    pub status: OrderStatus,
    pub created_at_ms: i64,
    pub pay_deadline_ms: i64,
    pub stock_released: i64,
}

/// Values of `stock_released`.
pub mod released {
    pub const NO: i64 = 0;
    pub const YES: i64 = 1;
    pub const REFUSED: i64 = 2;
}

/// Filters of the admin order list.
#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    pub activity_id: Option<u64>,
    pub status: Option<OrderStatus>,
    pub user_id: Option<String>,
}

/// Position in a list ordered by (created_at_ms, order_id), newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub created_at_ms: i64,
    pub order_id: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        format!("{}.{}", self.created_at_ms, self.order_id)
    }

    pub fn decode(s: &str) -> Option<Self> {
        let (ms, id) = s.split_once('.')?;
        (!id.is_empty()).then_some(Self { created_at_ms: ms.parse().ok()?, order_id: id.to_owned() })
    }
}

/// Quantities per status of one activity, for reconciliation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActivityTotals {
    pub orders: i64,
    /// Quantity of orders that hold stock: pending payment or paid.
    pub holding_quantity: i64,
    /// Quantity of cancelled/expired orders whose stock is not back yet.
    pub unreleased_quantity: i64,
    pub by_status: Vec<(OrderStatus, i64)>,
}

const COLUMNS: &str =
    "order_id, activity_id, user_id, quantity, amount_cents, status, created_at_ms, pay_deadline_ms, stock_released";

/// The hot queries' SQL, each written once: the methods below run it and
/// `plans.rs` checks that the database answers it from an index.
pub(super) mod sql {
    use super::{COLUMNS, OrderFilter};

    pub fn order() -> String {
        format!("SELECT {COLUMNS} FROM orders WHERE order_id = ?")
    }

    /// A page of orders matching `filter`, newest first; `after` a cursor.
    pub fn list(filter: &OrderFilter, after: bool) -> String {
        let mut sql = format!("SELECT {COLUMNS} FROM orders WHERE 1 = 1");
        if filter.activity_id.is_some() {
            sql.push_str(" AND activity_id = ?");
        }
        if filter.status.is_some() {
            sql.push_str(" AND status = ?");
        }
        if filter.user_id.is_some() {
            sql.push_str(" AND user_id = ?");
        }
        if after {
            sql.push_str(" AND (created_at_ms < ? OR (created_at_ms = ? AND order_id < ?))");
        }
        sql.push_str(" ORDER BY created_at_ms DESC, order_id DESC LIMIT ?");
        sql
    }

    pub fn overdue() -> String {
        format!(
            "SELECT {COLUMNS} FROM orders WHERE status = 'pending_payment' AND pay_deadline_ms <= ? \
             ORDER BY pay_deadline_ms LIMIT ?"
        )
    }

    pub fn unreleased() -> String {
        format!("SELECT {COLUMNS} FROM orders WHERE stock_released = 0 AND status IN ('cancelled', 'expired') LIMIT ?")
    }

    pub const ACTIVITY_TOTALS: &str = "SELECT status, stock_released, COUNT(*), CAST(SUM(quantity) AS SIGNED INTEGER) \
         FROM orders WHERE activity_id = ? AND event_seq <= ? GROUP BY status, stock_released";
}

impl Db {
    /// Writes new orders in one transaction; an order id already present is
    /// left as it is (the worker may see an event twice).
    pub async fn insert_orders(&self, orders: &[NewOrder], now_ms: i64) -> Result<(), sqlx::Error> {
        self.guarded(async move {
            let sql = match self.dialect() {
                Dialect::Sqlite => {
                    "INSERT INTO orders (order_id, activity_id, user_id, quantity, amount_cents, status, \
                     created_at_ms, pay_deadline_ms, updated_at_ms, event_seq, stock_released) \
                     VALUES (?, ?, ?, ?, ?, 'pending_payment', ?, ?, ?, ?, 0) ON CONFLICT(order_id) DO NOTHING"
                }
                Dialect::MySql => {
                    "INSERT INTO orders (order_id, activity_id, user_id, quantity, amount_cents, status, \
                     created_at_ms, pay_deadline_ms, updated_at_ms, event_seq, stock_released) \
                     VALUES (?, ?, ?, ?, ?, 'pending_payment', ?, ?, ?, ?, 0) \
                     ON DUPLICATE KEY UPDATE order_id = order_id"
                }
            };
            retry_on_lock_conflict(|| self.insert_orders_once(sql, orders, now_ms)).await
        })
        .await
    }

    async fn insert_orders_once(&self, sql: &str, orders: &[NewOrder], now_ms: i64) -> Result<(), sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        for o in orders {
            sqlx::query(sql)
                .bind(&o.order_id)
                .bind(o.activity_id as i64)
                .bind(&o.user_id)
                .bind(o.quantity)
                .bind(o.amount_cents)
                .bind(o.created_at_ms)
                .bind(o.pay_deadline_ms)
                .bind(now_ms)
                .bind(o.event_seq)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }

    pub async fn order(&self, order_id: &str) -> Result<Option<OrderRow>, sqlx::Error> {
        self.guarded(async move {
            let sql = sql::order();
            let row = sqlx::query(&sql).bind(order_id).fetch_optional(self.pool()).await?;
            row.map(|r| order_row(&r)).transpose()
        })
        .await
    }

    /// Which of `order_ids` have a row.
    pub async fn existing(&self, order_ids: &[String]) -> Result<Vec<String>, sqlx::Error> {
        self.guarded(async move {
            let mut found = Vec::new();
            for chunk in order_ids.chunks(500) {
                let marks = vec!["?"; chunk.len()].join(",");
                let sql = format!("SELECT order_id FROM orders WHERE order_id IN ({marks})");
                let mut q = sqlx::query(&sql);
                for id in chunk {
                    q = q.bind(id);
                }
                for row in q.fetch_all(self.pool()).await? {
                    found.push(row.try_get::<String, _>(0)?);
                }
            }
            Ok(found)
        })
        .await
    }

    /// One page of orders matching `filter`, newest first.
    pub async fn orders(
        &self,
        filter: &OrderFilter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<(Vec<OrderRow>, Option<Cursor>), sqlx::Error> {
        self.read_replica(|pool| async move {
            let sql = sql::list(filter, after.is_some());
            let mut q = sqlx::query(&sql);
            if let Some(a) = filter.activity_id {
                q = q.bind(a as i64);
            }
            if let Some(s) = filter.status {
                q = q.bind(s.as_str());
            }
            if let Some(u) = &filter.user_id {
                q = q.bind(u.as_str());
            }
            if let Some(c) = after {
                q = q.bind(c.created_at_ms).bind(c.created_at_ms).bind(c.order_id.as_str());
            }
            let rows = q.bind((limit + 1) as i64).fetch_all(&pool).await?;
            let mut orders = rows.iter().map(order_row).collect::<Result<Vec<_>, _>>()?;
            let next = if orders.len() > limit {
                orders.truncate(limit);
                orders.last().map(|o| Cursor { created_at_ms: o.created_at_ms, order_id: o.order_id.clone() })
            } else {
                None
            };
            Ok((orders, next))
        })
        .await
    }

    /// Moves a pending order to `to`. Paying also needs the deadline ahead of
    /// `now_ms`, expiring needs it passed; cancelling needs only the status.
    /// Returns whether this call made the change.
    pub async fn transition(&self, order_id: &str, to: OrderStatus, now_ms: i64) -> Result<bool, sqlx::Error> {
        self.guarded(async move {
            let deadline = match to {
                OrderStatus::Paid => " AND pay_deadline_ms > ?",
                OrderStatus::Expired => " AND pay_deadline_ms <= ?",
                _ => "",
            };
            let sql = format!(
                "UPDATE orders SET status = ?, updated_at_ms = ? WHERE order_id = ? AND status = 'pending_payment'{deadline}"
            );
            let affected = retry_on_lock_conflict(|| {
                let mut q = sqlx::query(&sql).bind(to.as_str()).bind(now_ms).bind(order_id);
                if !deadline.is_empty() {
                    q = q.bind(now_ms);
                }
                q.execute(self.pool())
            })
            .await?;
            Ok(affected.rows_affected() == 1)
        })
        .await
    }

    /// Records the outcome of giving a closed order's stock back.
    pub async fn mark_released(&self, order_id: &str, value: i64) -> Result<(), sqlx::Error> {
        self.guarded(async move {
            retry_on_lock_conflict(|| {
                sqlx::query("UPDATE orders SET stock_released = ? WHERE order_id = ? AND stock_released = 0")
                    .bind(value)
                    .bind(order_id)
                    .execute(self.pool())
            })
            .await
            .map(drop)
        })
        .await
    }

    /// Pending orders whose deadline has passed.
    pub async fn overdue(&self, now_ms: i64, limit: usize) -> Result<Vec<OrderRow>, sqlx::Error> {
        self.guarded(async move {
            let sql = sql::overdue();
            let rows = sqlx::query(&sql).bind(now_ms).bind(limit as i64).fetch_all(self.pool()).await?;
            rows.iter().map(order_row).collect()
        })
        .await
    }

    /// Cancelled or expired orders whose stock has not been given back yet.
    pub async fn unreleased(&self, limit: usize) -> Result<Vec<OrderRow>, sqlx::Error> {
        self.guarded(async move {
            let sql = sql::unreleased();
            let rows = sqlx::query(&sql).bind(limit as i64).fetch_all(self.pool()).await?;
            rows.iter().map(order_row).collect()
        })
        .await
    }

    /// Totals of one activity, counting only orders whose event is at or
    /// before `max_event_seq` (so a reconciliation compares one instant).
    pub async fn activity_totals(&self, activity_id: u64, max_event_seq: i64) -> Result<ActivityTotals, sqlx::Error> {
        self.guarded(async move {
            let rows = sqlx::query(sql::ACTIVITY_TOTALS)
                .bind(activity_id as i64)
                .bind(max_event_seq)
                .fetch_all(self.pool())
                .await?;
            let mut totals = ActivityTotals::default();
            for row in rows {
                let status: String = row.try_get(0)?;
                let released: i64 = row.try_get::<i64, _>(1).or_else(|_| row.try_get::<i16, _>(1).map(i64::from))?;
                let count: i64 = row.try_get(2)?;
                let quantity: i64 = sum_value(&row, 3)?;
                let Some(status) = OrderStatus::parse(&status) else { continue };
                totals.orders += count;
                match status {
                    OrderStatus::PendingPayment | OrderStatus::Paid | OrderStatus::Queued => {
                        totals.holding_quantity += quantity
                    }
                    OrderStatus::Cancelled | OrderStatus::Expired if released == released::NO => {
                        totals.unreleased_quantity += quantity
                    }
                    _ => {}
                }
                match totals.by_status.iter_mut().find(|(s, _)| *s == status) {
                    Some((_, n)) => *n += count,
                    None => totals.by_status.push((status, count)),
                }
            }
            Ok(totals)
        })
        .await
    }

    /// Order counts by activity and status.
    pub async fn counts_by_activity_and_status(&self) -> Result<Vec<(u64, OrderStatus, i64)>, sqlx::Error> {
        self.read_replica(|pool| async move {
            let rows = sqlx::query("SELECT activity_id, status, COUNT(*) FROM orders GROUP BY activity_id, status")
                .fetch_all(&pool)
                .await?;
            let mut out = Vec::new();
            for row in rows {
                if let Some(s) = OrderStatus::parse(&row.try_get::<String, _>(1)?) {
                    out.push((row.try_get::<i64, _>(0)? as u64, s, row.try_get(2)?));
                }
            }
            Ok(out)
        })
        .await
    }

    /// Order counts by status over all activities (for the metrics).
    pub async fn counts_by_status(&self) -> Result<Vec<(OrderStatus, i64)>, sqlx::Error> {
        self.read_replica(|pool| async move {
            let rows = sqlx::query("SELECT status, COUNT(*) FROM orders GROUP BY status").fetch_all(&pool).await?;
            let mut out = Vec::new();
            for row in rows {
                if let Some(s) = OrderStatus::parse(&row.try_get::<String, _>(0)?) {
                    out.push((s, row.try_get(1)?));
                }
            }
            Ok(out)
        })
        .await
    }
}

/// `SUM()` comes back as an integer from SQLite and as a decimal from MySQL.
fn sum_value(row: &sqlx::any::AnyRow, i: usize) -> Result<i64, sqlx::Error> {
    if let Ok(v) = row.try_get::<i64, _>(i) {
        return Ok(v);
    }
    if let Ok(v) = row.try_get::<f64, _>(i) {
        return Ok(v as i64);
    }
    let text: String = row.try_get(i)?;
    i64::from_str(text.split('.').next().unwrap_or("0")).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

fn order_row(r: &sqlx::any::AnyRow) -> Result<OrderRow, sqlx::Error> {
    let status: String = r.try_get("status")?;
    Ok(OrderRow {
        order_id: r.try_get("order_id")?,
        activity_id: r.try_get::<i64, _>("activity_id")? as u64,
        user_id: r.try_get("user_id")?,
        quantity: r.try_get("quantity")?,
        amount_cents: r.try_get("amount_cents")?,
        status: OrderStatus::parse(&status)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown order status {status:?}").into()))?,
        created_at_ms: r.try_get("created_at_ms")?,
        pay_deadline_ms: r.try_get("pay_deadline_ms")?,
        stock_released: r
            .try_get::<i64, _>("stock_released")
            .or_else(|_| r.try_get::<i16, _>("stock_released").map(i64::from))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let c = Cursor { created_at_ms: 1764083707629, order_id: "42-1764083707629-0".into() };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("nope"), None);
        assert_eq!(Cursor::decode("12."), None);
    }
}
