//! An order event as the purchase script appends it to an activity's stream,
//! checked field by field before it becomes an order row. The worker, the
//! dead-letter actions, reconciliation and order lookup all read events
//! through [`parse_event`], so they agree on what a good one is.

use crate::db::NewOrder;
use crate::store::keys;
use crate::store::stream::{Entry, event_seq};

/// Why an event cannot become an order (the dead letter's reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("missing field {0}")]
    Missing(&'static str),
    #[error("field {0} is not an integer")]
    NotInteger(&'static str),
    #[error("activity_id {found} in the stream of activity {stream}")]
    WrongActivity { found: i64, stream: u64 },
    #[error("user_id is not a valid user id")]
    BadUser,
    #[error("quantity {0} is not positive")]
    BadQuantity(i64),
    #[error("malformed entry id")]
    BadEntryId,
}

/// An order event, parsed and checked.
pub fn parse_event(activity: u64, entry: &Entry) -> Result<NewOrder, EventError> {
    let text = |k: &'static str| entry.fields.get(k).map(String::as_str).ok_or(EventError::Missing(k));
    let int = |k: &'static str| -> Result<i64, EventError> { text(k)?.parse().map_err(|_| EventError::NotInteger(k)) };
    let found = int("activity_id")?;
    if found != activity as i64 {
        return Err(EventError::WrongActivity { found, stream: activity });
    }
    let user = text("user_id")?;
    if !seckill_api::valid_user_id(user) {
        return Err(EventError::BadUser);
    }
    let quantity = int("quantity")?;
    if quantity <= 0 {
        return Err(EventError::BadQuantity(quantity));
    }
    Ok(NewOrder {
        order_id: keys::order_id(activity, &entry.id),
        activity_id: activity,
        user_id: user.to_owned(),
        quantity,
        amount_cents: int("amount_cents")?,
        created_at_ms: int("created_at_ms")?,
        pay_deadline_ms: int("pay_deadline_ms")?,
        event_seq: event_seq(&entry.id).ok_or(EventError::BadEntryId)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(fields: &[(&str, &str)]) -> Entry {
        Entry {
            id: "1764083707629-3".into(),
            fields: fields.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    const GOOD: [(&str, &str); 6] = [
        ("activity_id", "7"),
        ("user_id", "alice"),
        ("quantity", "2"),
        ("amount_cents", "500"),
        ("created_at_ms", "1764083707629"),
        ("pay_deadline_ms", "1764084607629"),
    ];

    #[test]
    fn a_good_event_becomes_an_order() {
        let order = parse_event(7, &entry(&GOOD)).unwrap();
        assert_eq!(order.order_id, "7-1764083707629-3");
        assert_eq!((order.quantity, order.amount_cents), (2, 500));
        assert_eq!(order.event_seq, (1764083707629 << 20) | 3);
    }

    #[test]
    fn poison_events_say_why() {
        let mut missing = GOOD.to_vec();
        missing.retain(|(k, _)| *k != "user_id");
        assert_eq!(parse_event(7, &entry(&missing)).unwrap_err(), EventError::Missing("user_id"));
        let mut bad = GOOD.to_vec();
        bad[2] = ("quantity", "abc");
        assert_eq!(parse_event(7, &entry(&bad)).unwrap_err(), EventError::NotInteger("quantity"));
        assert_eq!(parse_event(8, &entry(&GOOD)).unwrap_err().to_string(), "activity_id 7 in the stream of activity 8");
    }
}
