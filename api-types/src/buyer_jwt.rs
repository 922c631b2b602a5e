//! Minting buyers' JWTs as the contract defines them (`CONTRACT.md`,
//! "Identity"): HS256 over the shared secret, claims `sub` (the user id) and
//! `exp` (unix seconds).
//!
//! seckill only verifies buyers' tokens (the backend and the edge filter);
//! the ones minted here are for the tests, the benches, the load tool and the
//! demo token the launcher prints. One implementation, so that they all send
//! what those verifiers check. [`sign_hs256`] is the lower
//! level, for tokens with other headers or claims (a test's odd token).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// A buyer's token for `user`, accepted until `exp_secs` (unix seconds),
/// signed with `secret`. `user` is not checked against the contract, so that
/// a test can mint a token naming a user the backend refuses.
pub fn mint(secret: impl AsRef<[u8]>, user: &str, exp_secs: i64) -> String {
    sign_hs256(secret, &json!({"alg": "HS256", "typ": "JWT"}), &json!({"sub": user, "exp": exp_secs}))
}

/// `header.claims.signature`, each base64url without padding, the signature
/// HMAC-SHA256 with `secret` over the first two, whatever `header` says.
pub fn sign_hs256(secret: impl AsRef<[u8]>, header: &Value, claims: &Value) -> String {
    let h = URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).expect("JSON values serialise"));
    let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("JSON values serialise"));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_ref()).expect("HMAC takes keys of any length");
    mac.update(h.as_bytes());
    mac.update(b".");
    mac.update(p.as_bytes());
    let s = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{h}.{p}.{s}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};

    /// Verifies like the backend: HS256, `exp` and `sub` required.
    fn verify(token: &str, secret: &[u8]) -> Result<Value, jsonwebtoken::errors::Error> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        jsonwebtoken::decode::<Value>(token, &DecodingKey::from_secret(secret), &validation).map(|d| d.claims)
    }

    fn in_an_hour() -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp() + 3600
    }

    #[test]
    fn a_minted_token_verifies_with_jsonwebtoken() {
        let exp = in_an_hour();
        let t = mint("s3cret", "alice_01-x", exp);
        assert_eq!(verify(&t, b"s3cret").unwrap(), json!({"sub": "alice_01-x", "exp": exp}));
        let header = jsonwebtoken::decode_header(&t).unwrap();
        assert_eq!((header.alg, header.typ.as_deref()), (Algorithm::HS256, Some("JWT")));
    }

    #[test]
    fn the_secret_may_be_text_or_bytes() {
        let exp = in_an_hour();
        assert_eq!(mint("s3cret", "bob", exp), mint(b"s3cret", "bob", exp));
    }

    #[test]
    fn another_secret_or_a_past_exp_does_not_verify() {
        let t = mint("another-secret", "alice", in_an_hour());
        assert_eq!(*verify(&t, b"s3cret").unwrap_err().kind(), jsonwebtoken::errors::ErrorKind::InvalidSignature);
        let t = mint("s3cret", "alice", in_an_hour() - 7200);
        assert_eq!(*verify(&t, b"s3cret").unwrap_err().kind(), jsonwebtoken::errors::ErrorKind::ExpiredSignature);
    }

    #[test]
    fn sign_hs256_signs_whatever_it_is_given() {
        let claims = json!({"sub": "admin", "aud": "seckill-admin", "exp": in_an_hour(), "jti": "x"});
        let t = sign_hs256("k", &json!({"alg": "HS256"}), &claims);
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&["seckill-admin"]);
        let decoded = jsonwebtoken::decode::<Value>(&t, &DecodingKey::from_secret(b"k"), &validation).unwrap();
        assert_eq!(decoded.claims, claims);
        // No `exp`: signed all the same, refused by a verifier that needs it.
        let t = sign_hs256("k", &json!({"alg": "HS256", "typ": "JWT"}), &json!({"sub": "alice"}));
        assert_eq!(
            *verify(&t, b"k").unwrap_err().kind(),
            jsonwebtoken::errors::ErrorKind::MissingRequiredClaim("exp".into())
        );
        // Segments are base64url without padding.
        assert!(!t.contains(['=', '+', '/']));
        assert_eq!(t.split('.').count(), 3);
    }
}
