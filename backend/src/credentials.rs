//! What a caller proves itself with: a buyer's HS256 JWT, signed with the
//! buyers' secret, the secret the edge presents on `/internal/` routes, and
//! the payment provider's HMAC signature on its callbacks.
//! The HTTP extractors (`routes::auth`) ask this module; admins' sessions
//! have a key of their own (`admin_session`), never the buyers' secret.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use seckill_api::valid_user_id;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Why a buyer's JWT is refused.
#[derive(Debug, thiserror::Error)]
pub enum BuyerTokenError {
    #[error("invalid bearer token: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    #[error("the token's sub must be 1-64 characters of [A-Za-z0-9_-]")]
    BadSubject,
}

/// Claims of a buyer's JWT.
#[derive(Debug, Serialize, Deserialize)]
pub struct BuyerClaims {
    pub sub: String,
    pub exp: i64,
}

/// The buyers' key and the edge's secret, built once from the secrets.
pub struct Credentials {
    buyer: DecodingKey,
    buyer_validation: Validation,
    edge_secret_digest: [u8; 32],
    payment_secret: Option<Vec<u8>>,
}

impl Credentials {
    pub fn new(jwt_secret: &str, edge_secret: &str) -> Self {
        let mut buyer_validation = Validation::new(Algorithm::HS256);
        buyer_validation.set_required_spec_claims(&["exp", "sub"]);
        buyer_validation.leeway = 5;
        Self {
            buyer: DecodingKey::from_secret(jwt_secret.as_bytes()),
            buyer_validation,
            edge_secret_digest: Sha256::digest(edge_secret.as_bytes()).into(),
            payment_secret: None,
        }
    }

    /// Accepts payment callbacks signed with `secret` (none without one).
    pub fn with_payment_secret(mut self, secret: Option<&str>) -> Self {
        self.payment_secret = secret.map(|s| s.as_bytes().to_vec());
        self
    }

    /// Whether `signature` signs `body` with the payment secret (constant
    /// time); `None` when no payment secret is set.
    pub fn check_payment_signature(&self, body: &[u8], signature: &str) -> Option<bool> {
        let secret = self.payment_secret.as_ref()?;
        Some(seckill_api::payment::verify(secret, body, signature))
    }

    /// Verifies a buyer's JWT and returns the user id.
    pub fn verify_buyer(&self, token: &str) -> Result<String, BuyerTokenError> {
        let data = jsonwebtoken::decode::<BuyerClaims>(token, &self.buyer, &self.buyer_validation)?;
        let sub = data.claims.sub;
        if !valid_user_id(&sub) {
            return Err(BuyerTokenError::BadSubject);
        }
        Ok(sub)
    }

    /// Checks the secret the edge presents, in constant time.
    pub fn check_edge_secret(&self, presented: &str) -> bool {
        same_secret(presented, &self.edge_secret_digest)
    }
}

fn same_secret(given: &str, expected_digest: &[u8; 32]) -> bool {
    let given: [u8; 32] = Sha256::digest(given.as_bytes()).into();
    given.ct_eq(expected_digest).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_edge_secret_is_checked() {
        let keys = Credentials::new("secret", "edge");
        assert!(keys.check_edge_secret("edge"));
        assert!(!keys.check_edge_secret("edgy"));
        assert!(!keys.check_edge_secret(""));
    }
}
