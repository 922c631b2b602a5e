//! The simulated buyers: their user ids, their JWTs and their request bodies.
//!
//! All of it is built before a timed phase starts, so the measured loop only
//! sends bytes. JWTs are minted locally ([`seckill_api::buyer_jwt`]: HS256
//! over the shared secret, claims `sub` and `exp`, as
//! `backend/src/credentials.rs` verifies them), spread over the machine's
//! cores because a hundred thousand signatures are not free.

use anyhow::{Context, Result, ensure};
use hyper::body::Bytes;
use hyper::header::HeaderValue;
use seckill_api::{PurchaseRequest, buyer_jwt, valid_user_id};

/// The user id of buyer `n` of run `run`: `load-<run>-<n>`.
pub fn user_id(run: &str, n: usize) -> String {
    format!("{}{n}", user_prefix(run))
}

/// What every user id of run `run` starts with: `load-<run>-`.
pub fn user_prefix(run: &str) -> String {
    format!("load-{run}-")
}

/// `Bearer <jwt>` for each of buyers `0..count`, in order.
pub fn bearer_headers(secret: &str, run: &str, count: usize, exp: i64) -> Result<Vec<HeaderValue>> {
    let last = user_id(run, count.saturating_sub(1));
    ensure!(valid_user_id(&last), "user id `{last}` is not 1-64 characters of [A-Za-z0-9_-]; use a shorter --run-id");
    mint_bearers(count, |n| buyer_jwt::mint(secret, &user_id(run, n), exp))
}

/// `Bearer <jwt(n)>` for `n` in `0..count`, in order, minted on every core.
pub fn mint_bearers(count: usize, jwt: impl Fn(usize) -> String + Sync) -> Result<Vec<HeaderValue>> {
    let mint = |n: usize| -> Result<HeaderValue> {
        HeaderValue::from_maybe_shared(Bytes::from(format!("Bearer {}", jwt(n))))
            .context("a JWT is always a valid header value")
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = count.div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..count)
            .step_by(chunk)
            .map(|start| {
                let end = (start + chunk).min(count);
                let mint = &mint;
                scope.spawn(move || (start..end).map(mint).collect::<Result<Vec<_>>>())
            })
            .collect();
        let mut all = Vec::with_capacity(count);
        for w in workers {
            all.extend(w.join().expect("JWT minting thread panicked")?);
        }
        Ok(all)
    })
}

/// The JSON body of a purchase with `token` and `quantity`.
pub fn purchase_body(token: &str, quantity: u64) -> Bytes {
    let request = PurchaseRequest { token: token.to_owned(), quantity: quantity.into() };
    Bytes::from(serde_json::to_vec(&request).expect("a purchase request always serialises"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Decoded {
        sub: String,
        exp: i64,
    }

    #[test]
    fn jwts_verify_like_the_backend_checks_them() {
        let exp = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
        let headers = bearer_headers("s3cret", "r1", 5, exp).unwrap();
        assert_eq!(headers.len(), 5);
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        for (n, h) in headers.iter().enumerate() {
            let jwt = h.to_str().unwrap().strip_prefix("Bearer ").unwrap();
            let data = jsonwebtoken::decode::<Decoded>(jwt, &DecodingKey::from_secret(b"s3cret"), &validation).unwrap();
            assert_eq!(data.claims.sub, format!("load-r1-{n}"));
            assert_eq!(data.claims.exp, exp);
        }
        assert!(bearer_headers("s", "r", 0, exp).unwrap().is_empty());
    }

    #[test]
    fn user_ids_stay_within_the_contract() {
        assert!(valid_user_id(&user_id("1700000000000", 9_999_999)));
        assert!(bearer_headers("s", &"x".repeat(60), 10, 0).is_err());
        assert!(!valid_user_id("load-a b-1"));
    }

    #[test]
    fn purchase_bodies_are_contract_json() {
        let body = purchase_body("0123456789abcdef0123456789abcdef", 2);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v, serde_json::json!({"token": "0123456789abcdef0123456789abcdef", "quantity": 2}));
    }
}
