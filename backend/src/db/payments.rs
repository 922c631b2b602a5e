//! The `payments` table: every payment callback applied, once per provider
//! payment id, with what it did — paid its order, or could not and needs a
//! refund (and why).

use sqlx::Row;

use super::pool::{Db, text_column};

/// A payment callback to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRecord {
    pub payment_id: String,
    pub order_id: String,
    pub amount_cents: i64,
    pub paid_at_ms: i64,
}

/// What applying a payment did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentOutcome {
    /// It paid its order.
    Applied,
    /// It could not pay its order; the money goes back.
    RefundNeeded(String),
    /// This payment id was applied before (a duplicated callback): nothing changed.
    Duplicate,
}

/// A row of `payments`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRow {
    pub payment_id: String,
    pub order_id: String,
    pub amount_cents: i64,
    pub paid_at_ms: i64,
    pub applied_at_ms: i64,
    pub outcome: String,
    pub reason: String,
}

pub const APPLIED: &str = "applied";
pub const REFUND_NEEDED: &str = "refund_needed";

impl Db {
    /// Applies `payment` exactly once: in one transaction, records it under
    /// its payment id (a second callback with that id finds the record and
    /// changes nothing) and pays its order with the same compare-and-set as
    /// the buyer's pay call — pending, before its deadline, and here also for
    /// the amount the order costs. A payment that cannot pay its order is kept
    /// as needing a refund, with the reason.
    pub async fn apply_payment(&self, payment: &PaymentRecord, now_ms: i64) -> Result<PaymentOutcome, sqlx::Error> {
        self.guarded(async move {
            let mut tx = self.pool().begin().await?;
            let seen = sqlx::query("SELECT outcome FROM payments WHERE payment_id = ?")
                .bind(&payment.payment_id)
                .fetch_optional(&mut *tx)
                .await?;
            if seen.is_some() {
                return Ok(PaymentOutcome::Duplicate);
            }
            let paid = sqlx::query(
                "UPDATE orders SET status = 'paid', updated_at_ms = ? WHERE order_id = ? \
                 AND status = 'pending_payment' AND pay_deadline_ms > ? AND amount_cents = ?",
            )
            .bind(now_ms)
            .bind(&payment.order_id)
            .bind(now_ms)
            .bind(payment.amount_cents)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            let outcome = if paid {
                PaymentOutcome::Applied
            } else {
                let order = sqlx::query("SELECT status, amount_cents, pay_deadline_ms FROM orders WHERE order_id = ?")
                    .bind(&payment.order_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                PaymentOutcome::RefundNeeded(match order {
                    None => "no such order".to_owned(),
                    Some(row) => {
                        let status = text_column(&row, "status")?;
                        let amount: i64 = row.try_get("amount_cents")?;
                        let deadline: i64 = row.try_get("pay_deadline_ms")?;
                        if amount != payment.amount_cents {
                            format!("paid {} cents for an order of {amount}", payment.amount_cents)
                        } else if status == "paid" {
                            "the order was paid already (another payment, or the buyer's pay call)".to_owned()
                        } else if status == "pending_payment" && deadline <= now_ms {
                            "the payment arrived after the order's payment deadline".to_owned()
                        } else {
                            format!("the order was {status} before the payment arrived")
                        }
                    }
                })
            };
            let (name, reason) = match &outcome {
                PaymentOutcome::RefundNeeded(reason) => (REFUND_NEEDED, reason.as_str()),
                _ => (APPLIED, ""),
            };
            sqlx::query(
                "INSERT INTO payments (payment_id, order_id, amount_cents, paid_at_ms, applied_at_ms, outcome, reason) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&payment.payment_id)
            .bind(&payment.order_id)
            .bind(payment.amount_cents)
            .bind(payment.paid_at_ms)
            .bind(now_ms)
            .bind(name)
            .bind(reason)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(outcome)
        })
        .await
    }

    /// Applied payments, newest first; only those with `outcome` if given.
    pub async fn payments(&self, outcome: Option<&str>, limit: usize) -> Result<Vec<PaymentRow>, sqlx::Error> {
        self.read_replica(|pool| async move {
            let filter = if outcome.is_some() { "WHERE outcome = ?" } else { "" };
            let sql = format!(
                "SELECT payment_id, order_id, amount_cents, paid_at_ms, applied_at_ms, outcome, reason FROM payments \
                 {filter} ORDER BY applied_at_ms DESC, payment_id DESC LIMIT ?"
            );
            let mut q = sqlx::query(&sql);
            if let Some(o) = outcome {
                q = q.bind(o);
            }
            let rows = q.bind(limit as i64).fetch_all(&pool).await?;
            rows.iter()
                .map(|r| {
                    Ok(PaymentRow {
                        payment_id: text_column(r, "payment_id")?,
                        order_id: text_column(r, "order_id")?,
                        amount_cents: r.try_get("amount_cents")?,
                        paid_at_ms: r.try_get("paid_at_ms")?,
                        applied_at_ms: r.try_get("applied_at_ms")?,
                        outcome: text_column(r, "outcome")?,
                        reason: text_column(r, "reason")?,
                    })
                })
                .collect()
        })
        .await
    }
}
