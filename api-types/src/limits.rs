//! The bounds of an activity and a purchase, which the backend enforces and
//! the admin UI checks before sending: one definition, so the form never
//! accepts what the API refuses.

/// Longest activity name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Largest stock one activity may hold (keeps every count exact in Lua's doubles).
pub const MAX_STOCK: i64 = 1_000_000_000_000;
/// Largest per-user limit, which bounds one purchase's quantity.
pub const MAX_LIMIT_PER_USER: i64 = 1_000_000;
/// Largest unit price (10 million in the currency's main unit). With the
/// quantity bounded by `MAX_LIMIT_PER_USER`, `price × quantity` stays below
/// 2^53, so the purchase script's Lua doubles and SQL's BIGINT hold it exactly.
pub const MAX_PRICE_CENTS: i64 = 1_000_000_000;
/// Largest quantity one purchase may ask for.
pub const MAX_QUANTITY: u64 = MAX_LIMIT_PER_USER as u64;

const _: () = assert!(MAX_PRICE_CENTS.checked_mul(MAX_LIMIT_PER_USER).unwrap() < 1 << 53);
