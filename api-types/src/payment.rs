//! Payment callbacks (`POST /api/payments/callback`): what a payment provider
//! posts when a buyer has paid, and the signature that proves it came from
//! the provider — HMAC-SHA256 of the exact body with the shared secret, hex,
//! in `x-seckill-signature: sha256=<hex>`. The backend verifies; the
//! simulated provider of the tests and the demo signs. One implementation.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use time::OffsetDateTime;

/// The header carrying a callback's signature.
pub const SIGNATURE_HEADER: &str = "x-seckill-signature";

/// What the provider says: payment `payment_id` of `amount_cents` for `order_id`.
/// The provider may send it more than once, late, and out of order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentCallback {
    /// The provider's id of the payment: applying it twice changes nothing.
    pub payment_id: String,
    pub order_id: String,
    pub amount_cents: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub paid_at: OffsetDateTime,
}

/// A payment as applied (`GET /admin/api/payments`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    pub payment_id: String,
    pub order_id: String,
    pub amount_cents: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub paid_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub applied_at: OffsetDateTime,
    /// `applied` (it paid its order) or `refund_needed` (it could not: see `reason`).
    pub outcome: String,
    pub reason: String,
}

/// The signature header's value for `body`: `sha256=<hex>`.
pub fn sign(secret: impl AsRef<[u8]>, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_ref()).expect("HMAC takes keys of any length");
    mac.update(body);
    let hex = hex::encode(mac.finalize().into_bytes());
    format!("sha256={hex}")
}

/// Whether `header` is `body`'s signature with `secret`, compared in constant time.
pub fn verify(secret: impl AsRef<[u8]>, body: &[u8], header: &str) -> bool {
    let Some(hex) = header.strip_prefix("sha256=") else { return false };
    if hex.len() != 64 {
        return false;
    }
    let Some(expected) =
        (0..32).map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()).collect::<Option<Vec<u8>>>()
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_ref()).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_body_and_secret() {
        let body = br#"{"payment_id":"p1"}"#;
        let signature = sign("s3cret", body);
        assert!(signature.starts_with("sha256=") && signature.len() == 7 + 64);
        assert!(verify("s3cret", body, &signature));
        assert!(!verify("other", body, &signature));
        assert!(!verify("s3cret", br#"{"payment_id":"p2"}"#, &signature));
        assert!(verify("s3cret", body, &signature.to_uppercase().replacen("SHA256", "sha256", 1)), "hex in any case");
        for bad in ["", "sha256=", "md5=00", &signature[..70], &format!("{signature}00"), "sha256=zz"] {
            assert!(!verify("s3cret", body, bad), "{bad:?}");
        }
    }
}
