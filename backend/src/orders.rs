//! The life of an order after the sale: finding it (row or still queued in
//! the stream), paying, cancelling, expiring, and giving stock back.
//!
//! Every transition is a compare-and-set on the row (see `db::transition`),
//! and stock goes back through the release script, which is idempotent per
//! order; `stock_released` on the row records that it happened, so a crash
//! between the two is finished by the sweeper. An order therefore ends `paid`
//! with its stock kept, or `cancelled`/`expired` with its stock returned once.

use seckill_api::{Order, OrderStatus};

use crate::clock::{from_ms, now_ms};
use crate::db::{Cursor, Db, NewOrder, OrderFilter, OrderRow, PaymentOutcome, PaymentRecord, released};
use crate::dependency::DependencyError;
use crate::order_event::parse_event;
use crate::store::StoreError;
use crate::store::keys;
use crate::store::{ReleaseOutcome, Store};

/// Why an order was not found, paid or cancelled.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error("order not found")]
    NotFound,
    #[error("this order belongs to someone else")]
    NotYours,
    #[error("the order is {} and can no longer be paid or cancelled", .0.as_str())]
    Closed(OrderStatus),
    #[error(transparent)]
    Dependency(#[from] DependencyError),
}

impl From<StoreError> for OrderError {
    fn from(e: StoreError) -> Self {
        Self::Dependency(e.into())
    }
}

impl From<sqlx::Error> for OrderError {
    fn from(e: sqlx::Error) -> Self {
        Self::Dependency(e.into())
    }
}

/// An order wherever it currently is.
#[derive(Debug, Clone)]
pub enum Found {
    Row(OrderRow),
    /// Sold, its event still waiting in the stream for the worker.
    Queued(NewOrder),
}

impl Found {
    pub fn user_id(&self) -> &str {
        match self {
            Self::Row(r) => &r.user_id,
            Self::Queued(o) => &o.user_id,
        }
    }

    pub fn view(&self) -> Order {
        match self {
            Self::Row(r) => row_view(r),
            Self::Queued(o) => Order {
                order_id: o.order_id.clone(),
                activity_id: o.activity_id,
                user_id: o.user_id.clone(),
                quantity: o.quantity,
                amount_cents: o.amount_cents,
                status: OrderStatus::Queued,
                created_at: from_ms(o.created_at_ms),
                pay_deadline: from_ms(o.pay_deadline_ms),
            },
        }
    }
}

pub fn row_view(r: &OrderRow) -> Order {
    Order {
        order_id: r.order_id.clone(),
        activity_id: r.activity_id,
        user_id: r.user_id.clone(),
        quantity: r.quantity,
        amount_cents: r.amount_cents,
        status: r.status,
        created_at: from_ms(r.created_at_ms),
        pay_deadline: from_ms(r.pay_deadline_ms),
    }
}

/// Orders over Redis and the order database.
#[derive(Clone)]
pub struct Orders {
    pub store: Store,
    pub db: Db,
}

impl Orders {
    /// The order, from its row or its stream event; an unpaid order past its
    /// deadline is expired on the way (so nobody sees a stale `pending_payment`).
    pub async fn find(&self, order_id: &str) -> Result<Option<Found>, OrderError> {
        if let Some(row) = self.db.order(order_id).await? {
            return Ok(Some(Found::Row(self.expire_if_due(row).await?)));
        }
        let Some((a, event_id)) = keys::parse_order_id(order_id) else { return Ok(None) };
        if let Some(entry) = self.store.stream_entry(a, event_id).await? {
            return Ok(parse_event(a, &entry).ok().map(Found::Queued));
        }
        // The worker may have written the row and deleted the event in between.
        Ok(self.db.order(order_id).await?.map(Found::Row))
    }

    /// The order's row, writing it from the stream now if the worker has not
    /// yet (the same idempotent insert the worker does).
    async fn materialize(&self, order_id: &str) -> Result<Option<OrderRow>, OrderError> {
        match self.find(order_id).await? {
            Some(Found::Row(row)) => Ok(Some(row)),
            Some(Found::Queued(order)) => {
                self.db.insert_orders(std::slice::from_ref(&order), now_ms()).await?;
                // Written just now, so only a database that lost it has no row.
                let Some(row) = self.db.order(order_id).await? else { return Ok(None) };
                Ok(Some(self.expire_if_due(row).await?))
            }
            None => Ok(None),
        }
    }

    /// The row of `user`'s order, or `not_found` / `forbidden`.
    async fn owned_row(&self, user: &str, order_id: &str) -> Result<OrderRow, OrderError> {
        let row = self.materialize(order_id).await?.ok_or(OrderError::NotFound)?;
        if row.user_id != user {
            return Err(OrderError::NotYours);
        }
        Ok(row)
    }

    /// Simulated payment: idempotent for a paid order; `order_closed` once the
    /// order is cancelled or expired, however late the payment arrives.
    pub async fn pay(&self, user: &str, order_id: &str) -> Result<Order, OrderError> {
        let row = self.owned_row(user, order_id).await?;
        if row.status == OrderStatus::PendingPayment
            && self.db.transition(order_id, OrderStatus::Paid, now_ms()).await?
        {
            metrics::counter!("seckill_order_transitions_total", "to" => "paid").increment(1);
        }
        let row = self.db.order(order_id).await?.ok_or(OrderError::NotFound)?;
        let row = self.expire_if_due(row).await?;
        match row.status {
            OrderStatus::Paid => Ok(row_view(&row)),
            status => Err(OrderError::Closed(status)),
        }
    }

    /// Applies a provider's payment callback exactly once (see
    /// [`Db::apply_payment`](crate::db::Db::apply_payment)): the order's row is
    /// written from its event first if the worker has not yet, and an order a
    /// late payment finds past its deadline is expired (its stock goes back).
    pub async fn apply_payment(&self, payment: &PaymentRecord) -> Result<PaymentOutcome, OrderError> {
        let row = self.materialize(&payment.order_id).await?;
        let outcome = self.db.apply_payment(payment, now_ms()).await?;
        let label = match &outcome {
            PaymentOutcome::Applied => {
                metrics::counter!("seckill_order_transitions_total", "to" => "paid").increment(1);
                "applied"
            }
            PaymentOutcome::RefundNeeded(_) => {
                if let Some(row) = self.db.order(&payment.order_id).await? {
                    self.expire_if_due(row).await?;
                }
                "refund_needed"
            }
            PaymentOutcome::Duplicate => "duplicate",
        };
        metrics::counter!("seckill_payments_total", "outcome" => label).increment(1);
        tracing::info!(payment = %payment.payment_id, order = %payment.order_id, outcome = ?outcome, found = row.is_some(), "payment callback applied");
        Ok(outcome)
    }

    /// Cancels a pending order and gives its stock back, exactly once.
    pub async fn cancel(&self, user: &str, order_id: &str) -> Result<Order, OrderError> {
        let row = self.owned_row(user, order_id).await?;
        if row.status != OrderStatus::PendingPayment
            || !self.db.transition(order_id, OrderStatus::Cancelled, now_ms()).await?
        {
            let current = self.db.order(order_id).await?.map(|r| r.status).unwrap_or(row.status);
            return Err(OrderError::Closed(current));
        }
        metrics::counter!("seckill_order_transitions_total", "to" => "cancelled").increment(1);
        let row = OrderRow { status: OrderStatus::Cancelled, ..row };
        self.release(&row).await?;
        Ok(row_view(&row))
    }

    /// Expires `row` if it is pending and past its deadline; returns the row as it is now.
    async fn expire_if_due(&self, row: OrderRow) -> Result<OrderRow, OrderError> {
        let now = now_ms();
        if row.status != OrderStatus::PendingPayment || row.pay_deadline_ms > now {
            return Ok(row);
        }
        if self.db.transition(&row.order_id, OrderStatus::Expired, now).await? {
            metrics::counter!("seckill_order_transitions_total", "to" => "expired").increment(1);
            let expired = OrderRow { status: OrderStatus::Expired, ..row };
            self.release(&expired).await?;
            return Ok(expired);
        }
        Ok(self.db.order(&row.order_id).await?.unwrap_or(row))
    }

    /// Gives a closed order's stock back and records that it did.
    pub async fn release(&self, row: &OrderRow) -> Result<(), OrderError> {
        let outcome = self.store.release(row.activity_id, &row.user_id, &row.order_id, row.quantity).await?;
        let mark = match outcome {
            ReleaseOutcome::Released { remaining, sold } => {
                crate::telemetry::record_stock(row.activity_id, remaining, sold);
                released::YES
            }
            ReleaseOutcome::AlreadyReleased => released::YES,
            other => {
                tracing::error!(order = %row.order_id, ?other, "release refused by redis; reconciliation will show it");
                released::REFUSED
            }
        };
        self.db.mark_released(&row.order_id, mark).await?;
        Ok(())
    }

    /// One page of orders matching `filter`, newest first, after `after`;
    /// with the cursor of the next page, if there is one.
    pub async fn list(
        &self,
        filter: &OrderFilter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<(Vec<Order>, Option<Cursor>), DependencyError> {
        let (rows, next) = self.db.orders(filter, after, limit).await?;
        Ok((rows.iter().map(row_view).collect(), next))
    }

    /// One pass of the sweeper: expire what is overdue, and finish releases a
    /// crash interrupted. Returns how many orders it touched.
    pub async fn sweep(&self, batch: usize) -> Result<usize, OrderError> {
        let mut touched = 0;
        for row in self.db.overdue(now_ms(), batch).await? {
            if self.expire_if_due(row).await?.status == OrderStatus::Expired {
                touched += 1;
            }
        }
        for row in self.db.unreleased(batch).await? {
            self.release(&row).await?;
            touched += 1;
        }
        Ok(touched)
    }
}
