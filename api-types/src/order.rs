//! Buying and its orders: the token and purchase bodies, the order as
//! buyers and admins see it, and reconciliation with its dead letters.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Answer of `POST /api/activities/{id}/token`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PurchaseToken {
    pub token: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// Body of `POST /api/activities/{id}/purchase`.
///
/// `quantity` is kept as raw JSON so that the backend can tell a buyer exactly
/// what is wrong with it (zero, negative, fractional, a string, too large)
/// instead of a generic deserialisation failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PurchaseRequest {
    pub token: String,
    pub quantity: serde_json::Value,
}

/// Answer of an accepted purchase (`202`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PurchaseAccepted {
    pub order_id: String,
    pub status: OrderStatus,
}

/// The life of an order: `queued` until the worker writes its row, then
/// `pending_payment` until it is paid, cancelled or expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Queued,
    PendingPayment,
    Paid,
    Cancelled,
    Expired,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 5] = [
        OrderStatus::Queued,
        OrderStatus::PendingPayment,
        OrderStatus::Paid,
        OrderStatus::Cancelled,
        OrderStatus::Expired,
    ];

    /// The status as it appears on the wire (and in the order DB).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::PendingPayment => "pending_payment",
            Self::Paid => "paid",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
        }
    }

    /// The status named `s` on the wire.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// An order as buyers and admins see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub order_id: String,
    pub activity_id: u64,
    pub user_id: String,
    pub quantity: i64,
    pub amount_cents: i64,
    pub status: OrderStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub pay_deadline: OffsetDateTime,
}

/// Answer of `GET /admin/api/activities/{id}/reconciliation`: Redis `sold`
/// against the order stream, the dead letters and the order database, read
/// at one instant. `drift` is what none of them accounts for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reconciliation {
    pub activity_id: u64,
    pub total_stock: i64,
    pub redis_remaining: i64,
    pub redis_sold: i64,
    /// `redis_remaining + redis_sold == total_stock`.
    pub invariant_ok: bool,
    /// Order events still in the stream and not yet in the database.
    pub stream_orders: i64,
    pub stream_quantity: i64,
    /// Stream entries delivered to a worker and not yet acknowledged.
    pub stream_pending: i64,
    pub dead_letters: i64,
    pub dead_letter_quantity: i64,
    pub db_orders: i64,
    /// Quantity of orders pending payment or paid.
    pub db_holding_quantity: i64,
    /// Quantity of cancelled/expired orders whose stock is not back in Redis yet.
    pub db_unreleased_quantity: i64,
    pub db_orders_by_status: Vec<StatusCount>,
    /// `redis_sold - (db_holding + db_unreleased + stream + dead letters)`.
    pub drift: i64,
    /// No drift, invariant holds, and no dead letters waiting for an operator.
    pub ok: bool,
    pub dead_letter_samples: Vec<DeadLetter>,
}

/// How many orders have one status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusCount {
    pub status: OrderStatus,
    pub count: i64,
}

/// An order event the worker could not turn into an order, as
/// `GET /admin/api/dead-letters` lists it (and reconciliation samples it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    #[serde(default)]
    pub activity_id: u64,
    /// The dead letter's own id, which the replay and refund actions name.
    #[serde(default)]
    pub id: String,
    /// The order id the buyer was given (`<activity>-<entry_id>`).
    #[serde(default)]
    pub order_id: String,
    /// The order event's id in the order stream.
    pub entry_id: String,
    pub reason: String,
    pub fields: std::collections::BTreeMap<String, String>,
}

/// What `POST /admin/api/dead-letters/{activity_id}/{id}/replay|refund` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetterResolution {
    pub order_id: String,
    /// `replayed` (the order is a row now) or `refunded` (its stock is back on sale).
    pub action: String,
    pub quantity: i64,
}
