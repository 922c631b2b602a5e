//! The wire format of seckill's HTTP APIs (see `CONTRACT.md`).
//!
//! The backend, the admin UI (compiled to wasm) and the load tool all use these
//! types, so the JSON the server writes and the JSON its clients read have one
//! definition. Nothing here does I/O; it only names things and how they look on
//! the wire. The types live by subject (`activity`, `order`, `admin`, `edge`,
//! `live`, `error`) and are all re-exported here; beside them are the rules
//! several crates share: [`valid_user_id`], [`client_addr`], [`placeholders`],
//! [`limits`], [`header_map`] (the proxy-wasm header map, for the edge host
//! and the filter), [`buyer_jwt`] (minting buyers' tokens for tests, the demo
//! and the load tool) [`payment`] (payment callbacks and their signature), [`pow`] (the
//! token step's proof of work) and [`request_id`] (which request ids are kept).

mod activity;
mod admin;
pub mod buyer_jwt;
pub mod client_addr;
mod edge;
mod error;
pub mod header_map;
pub mod limits;
mod live;
mod order;
pub mod payment;
pub mod percent;
pub mod placeholders;
pub mod pow;
pub mod request_id;

pub use activity::*;
pub use admin::*;
pub use edge::*;
pub use error::*;
pub use live::*;
pub use order::*;

/// A user id as the contract allows it (`CONTRACT.md`, "Identity"): 1–64
/// characters of `[A-Za-z0-9_-]`. The one definition the backend, the edge
/// filter and the load tool check against.
pub fn valid_user_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_follow_the_contract() {
        assert!(valid_user_id("alice_01-x"));
        assert!(valid_user_id(&"a".repeat(64)));
        for bad in ["", &"a".repeat(65), "al ice", "bob:1", "é", "a.b"] {
            assert!(!valid_user_id(bad), "{bad:?}");
        }
    }
    use time::macros::datetime;

    #[test]
    fn statuses_have_one_wire_name_each_as_serde_writes_it() {
        for s in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(OrderStatus::parse("PAID"), None);
        for s in CheckStatus::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in [ActivityStatus::Scheduled, ActivityStatus::Live, ActivityStatus::SoldOut, ActivityStatus::Ended] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }

    #[test]
    fn error_codes_serialise_as_the_contract_spells_them() {
        for code in [ErrorCode::BadRequest, ErrorCode::InvalidToken, ErrorCode::LimitExceeded, ErrorCode::Unavailable] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }

    #[test]
    fn status_follows_window_then_stock() {
        let start = datetime!(2026-11-11 00:00 UTC);
        let end = datetime!(2026-11-12 00:00 UTC);
        let before = datetime!(2026-11-10 23:59 UTC);
        let during = datetime!(2026-11-11 12:00 UTC);
        assert_eq!(ActivityStatus::at(before, start, end, 0), ActivityStatus::Scheduled);
        assert_eq!(ActivityStatus::at(during, start, end, 5), ActivityStatus::Live);
        assert_eq!(ActivityStatus::at(during, start, end, 0), ActivityStatus::SoldOut);
        assert_eq!(ActivityStatus::at(end, start, end, 5), ActivityStatus::Ended);
    }

    #[test]
    fn activity_times_are_rfc3339() {
        let a = Activity {
            id: 1,
            name: "phone".into(),
            price_cents: 100,
            total_stock: 10,
            remaining: 10,
            sold: 0,
            limit_per_user: 1,
            starts_at: datetime!(2026-11-11 00:00 UTC),
            ends_at: datetime!(2026-11-12 00:00 UTC),
            status: ActivityStatus::Live,
        };
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json["starts_at"], "2026-11-11T00:00:00Z");
        assert_eq!(json["status"], "live");
    }
}
