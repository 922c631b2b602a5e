//! Buyers' JWTs, verified at the edge: HS256 over the shared secret, claims
//! `sub` (1–64 of `[A-Za-z0-9_-]`) and `exp` (required, not past).
//!
//! The backend's admin sessions are HS256 JWTs too, carrying
//! `aud: "seckill-admin"`, but signed with a key of the backends' own that the
//! edge never holds: whoever has the buyers' secret (this filter's
//! configuration has it) must not be able to mint an admin session. So the
//! edge passes a token that claims that audience on to the backend, which
//! verifies it, instead of refusing it as forged (an admin reads orders on a
//! buyer route, `GET /api/orders/{id}`). It names no user, so no per-user
//! limit applies to it; per-IP limits do.
//!
//! A buyer sends the same token with every request of a sale (token,
//! purchase, polling its order, retries), and the HMAC in the VM is about
//! half of an authenticated request's filter time; so each VM remembers the
//! tokens it verified, with the second until which each stays valid.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use seckill_api::valid_user_id;
use serde_json::Value;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The audience of the backend's admin sessions.
pub const ADMIN_AUDIENCE: &str = "seckill-admin";

/// Who a valid token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// A buyer, by the `sub` claim.
    User(String),
    /// A token that claims to be an admin session (audience `seckill-admin`).
    /// The edge cannot verify it — admin sessions are signed with a key only
    /// the backends hold, so that nothing holding the buyers' secret (as this
    /// filter's configuration does) can mint one — and passes it on for the
    /// backend to verify; per-IP limits still apply to it.
    Admin,
}

/// Why a token was refused; `Display` is the message sent back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtError {
    /// Not three base64url segments of JSON objects.
    Malformed(&'static str),
    /// `alg` is not `HS256` (this includes `none`).
    Algorithm(String),
    /// The signature does not match.
    Signature,
    /// `exp` is missing or not an integer.
    MissingExp,
    /// `exp` is past.
    Expired,
    /// `sub` is missing or not 1–64 of `[A-Za-z0-9_-]`.
    Subject,
}

impl fmt::Display for JwtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(why) => write!(f, "invalid bearer token: {why}"),
            Self::Algorithm(alg) => write!(f, "invalid bearer token: algorithm `{alg}` is not accepted (HS256 only)"),
            Self::Signature => f.write_str("invalid bearer token: wrong signature"),
            Self::MissingExp => f.write_str("invalid bearer token: the `exp` claim is required (integer seconds)"),
            Self::Expired => f.write_str("invalid bearer token: expired"),
            Self::Subject => {
                f.write_str("invalid bearer token: the `sub` claim must be 1-64 characters of [A-Za-z0-9_-]")
            }
        }
    }
}

impl std::error::Error for JwtError {}

/// Extracts the token from an `Authorization` value: `Bearer <token>`, the
/// scheme in any case, the token of base64url characters and dots.
/// `Err` says what is wrong with the header (a `bad_request`, not a bad token).
pub fn bearer(value: &[u8]) -> Result<&str, &'static str> {
    let value = std::str::from_utf8(value).map_err(|_| "the Authorization header is not valid UTF-8")?;
    let (scheme, token) = value.trim().split_once(' ').ok_or("the Authorization header must be `Bearer <JWT>`")?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err("the Authorization header must use the Bearer scheme");
    }
    let token = token.trim_start();
    if token.is_empty() {
        return Err("the Authorization header has an empty Bearer token");
    }
    if !token.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'=' | b'+' | b'/' | b'~'))
    {
        return Err("the Bearer token contains characters a JWT cannot have");
    }
    Ok(token)
}

/// Verified tokens a VM remembers per generation (see [`Remembered`]).
pub const MAX_REMEMBERED: usize = 4096;

/// Who a verified token names and the last second (unix) it is accepted in.
type Verified = (Identity, i64);

/// Verified tokens in two generations. When the newer one is full it becomes
/// the older one, and the tokens that were in the older one are forgotten; a
/// token found in the older one moves back to the newer one. So the buyers
/// still sending requests stay remembered however large the crowd passing
/// through, where forgetting everything at once would make every one of them
/// pay the HMAC again, and memory stays bounded by two generations.
#[derive(Default)]
struct Remembered {
    newer: HashMap<String, Verified>,
    older: HashMap<String, Verified>,
}

impl Remembered {
    fn get(&mut self, token: &str) -> Option<Verified> {
        if let Some(v) = self.newer.get(token) {
            return Some(v.clone());
        }
        let (token, v) = self.older.remove_entry(token)?;
        self.insert(token, v.clone());
        Some(v)
    }

    fn insert(&mut self, token: String, v: Verified) {
        if self.newer.len() >= MAX_REMEMBERED {
            // The older generation's table, emptied, is the next newer one:
            // no regrowing it from nothing every generation.
            std::mem::swap(&mut self.newer, &mut self.older);
            self.newer.clear();
        }
        self.newer.insert(token, v);
    }

    fn remove(&mut self, token: &str) {
        self.newer.remove(token);
        self.older.remove(token);
    }

    #[cfg(test)]
    fn contains(&self, token: &str) -> bool {
        self.newer.contains_key(token) || self.older.contains_key(token)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.newer.len() + self.older.len()
    }
}

/// The keys, each HMAC keyed once and cloned per verification, and the
/// tokens verified with them.
pub struct JwtKeys {
    buyer: HmacSha256,
    leeway_secs: i64,
    verified: Mutex<Remembered>,
}

impl Clone for JwtKeys {
    /// The same keys; the copy remembers nothing yet.
    fn clone(&self) -> Self {
        Self { buyer: self.buyer.clone(), leeway_secs: self.leeway_secs, verified: Mutex::default() }
    }
}

impl fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKeys").field("leeway_secs", &self.leeway_secs).finish_non_exhaustive()
    }
}

impl JwtKeys {
    /// `leeway_secs` is how far past `exp` a buyer token is still accepted
    /// (the backend allows 5 s); claimed admin sessions get none, as in the backend.
    pub fn new(secret: &[u8], leeway_secs: u32) -> Self {
        Self {
            buyer: HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length"),
            leeway_secs: i64::from(leeway_secs),
            verified: Mutex::default(),
        }
    }

    /// Verifies `token` at `now_secs` (unix seconds); a token verified before
    /// is only checked for expiry.
    pub fn verify(&self, token: &str, now_secs: i64) -> Result<Identity, JwtError> {
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((identity, last_second)) = verified.get(token) {
            if now_secs <= last_second {
                return Ok(identity);
            }
            verified.remove(token);
            return Err(JwtError::Expired);
        }
        let (identity, last_second) = self.verify_signed(token, now_secs)?;
        verified.insert(token.to_owned(), (identity.clone(), last_second));
        Ok(identity)
    }

    /// Verifies `token` at `now_secs` from scratch: who it names and the last
    /// second it is accepted in.
    fn verify_signed(&self, token: &str, now_secs: i64) -> Result<(Identity, i64), JwtError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(JwtError::Malformed("a JWT has three dot-separated parts"));
        };
        let header = json_object(h, "the header is not base64url JSON")?;
        let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
        if alg != "HS256" {
            return Err(JwtError::Algorithm(alg.chars().take(16).collect()));
        }
        if header.get("crit").is_some() {
            return Err(JwtError::Malformed("critical header extensions are not supported"));
        }
        let signature = URL_SAFE_NO_PAD.decode(s).map_err(|_| JwtError::Malformed("the signature is not base64url"))?;
        let signed_len = h.len() + 1 + p.len();
        let signed = &token.as_bytes()[..signed_len];
        let claims = json_object(p, "the claims are not base64url JSON")?;
        if verify_mac(&self.buyer, signed, &signature) {
            let until = exp(&claims)?.saturating_add(self.leeway_secs);
            if until <= now_secs {
                return Err(JwtError::Expired);
            }
            return match claims.get("sub").and_then(Value::as_str) {
                Some(sub) if valid_user_id(sub) => Ok((Identity::User(sub.to_owned()), until - 1)),
                _ => Err(JwtError::Subject),
            };
        }
        let claims_admin = match claims.get("aud") {
            Some(Value::String(a)) => a == ADMIN_AUDIENCE,
            Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(ADMIN_AUDIENCE)),
            _ => false,
        };
        if claims_admin {
            let until = exp(&claims)?;
            if until <= now_secs {
                return Err(JwtError::Expired);
            }
            return Ok((Identity::Admin, until - 1));
        }
        Err(JwtError::Signature)
    }
}

fn verify_mac(key: &HmacSha256, signed: &[u8], signature: &[u8]) -> bool {
    let mut mac = key.clone();
    mac.update(signed);
    // Constant-time comparison.
    mac.verify_slice(signature).is_ok()
}

fn json_object(segment: &str, why: &'static str) -> Result<serde_json::Map<String, Value>, JwtError> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).map_err(|_| JwtError::Malformed(why))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(JwtError::Malformed(why)),
    }
}

fn exp(claims: &serde_json::Map<String, Value>) -> Result<i64, JwtError> {
    claims.get("exp").and_then(Value::as_i64).ok_or(JwtError::MissingExp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use seckill_api::buyer_jwt::{self, sign_hs256};
    use serde_json::json;

    const SECRET: &[u8] = b"test-secret";
    const NOW: i64 = 1_800_000_000;

    fn keys() -> JwtKeys {
        JwtKeys::new(SECRET, 5)
    }

    #[test]
    fn a_valid_token_names_its_user() {
        let t = buyer_jwt::mint(SECRET, "alice_01-x", NOW + 60);
        assert_eq!(keys().verify(&t, NOW), Ok(Identity::User("alice_01-x".into())));
    }

    #[test]
    fn expired_tokens_are_refused_after_the_leeway() {
        let t = buyer_jwt::mint(SECRET, "alice", NOW);
        assert_eq!(keys().verify(&t, NOW + 4), Ok(Identity::User("alice".into())));
        assert_eq!(keys().verify(&t, NOW + 5), Err(JwtError::Expired));
        assert_eq!(JwtKeys::new(SECRET, 0).verify(&t, NOW), Err(JwtError::Expired));
    }

    #[test]
    fn a_remembered_token_still_expires_and_a_refused_one_is_not_remembered() {
        let k = keys();
        let t = buyer_jwt::mint(SECRET, "alice", NOW);
        assert_eq!(k.verify(&t, NOW + 4), Ok(Identity::User("alice".into())));
        assert_eq!(k.verify(&t, NOW + 4), Ok(Identity::User("alice".into())), "remembered");
        assert_eq!(k.verify(&t, NOW + 5), Err(JwtError::Expired), "the leeway ends for a remembered token too");
        assert_eq!(k.verify(&t, NOW + 4), Ok(Identity::User("alice".into())), "forgotten once expired, checked afresh");

        let forged = buyer_jwt::mint(b"another-secret", "alice", NOW + 60);
        assert_eq!(k.verify(&forged, NOW), Err(JwtError::Signature));
        assert_eq!(k.verify(&forged, NOW), Err(JwtError::Signature), "a refusal is not remembered");
        assert_eq!(k.clone().verified.lock().unwrap().len(), 0, "a copy starts empty");

        for i in 0..3 * MAX_REMEMBERED {
            k.verify(&buyer_jwt::mint(SECRET, &format!("u{i}"), NOW + 60), NOW).unwrap();
        }
        assert!(k.verified.lock().unwrap().len() <= 2 * MAX_REMEMBERED, "bounded");
    }

    #[test]
    fn a_token_in_use_stays_remembered_through_a_crowd_and_an_idle_one_is_forgotten() {
        let k = keys();
        let regular = buyer_jwt::mint(SECRET, "regular", NOW + 60);
        let idle = buyer_jwt::mint(SECRET, "idle", NOW + 60);
        k.verify(&regular, NOW).unwrap();
        k.verify(&idle, NOW).unwrap();
        // A crowd of one-off buyers, several generations of them; the regular
        // buyer sends a request after every generation's worth of others.
        for round in 0..4 {
            for i in 0..MAX_REMEMBERED {
                k.verify(&buyer_jwt::mint(SECRET, &format!("r{round}u{i}"), NOW + 60), NOW).unwrap();
            }
            assert!(k.verified.lock().unwrap().contains(&regular), "round {round}: forgotten while in use");
            assert_eq!(k.verify(&regular, NOW), Ok(Identity::User("regular".into())));
        }
        assert!(!k.verified.lock().unwrap().contains(&idle), "an idle token is forgotten after two generations");
        assert_eq!(k.verify(&idle, NOW), Ok(Identity::User("idle".into())), "and verified afresh");
        assert!(k.verified.lock().unwrap().contains(&idle));
    }

    #[test]
    fn wrong_signatures_are_refused() {
        let t = buyer_jwt::mint(b"another-secret", "alice", NOW + 60);
        assert_eq!(keys().verify(&t, NOW), Err(JwtError::Signature));
        // Tampered claims under the original signature.
        let good = buyer_jwt::mint(SECRET, "alice", NOW + 60);
        let evil = buyer_jwt::mint(SECRET, "mallory", NOW + 60);
        let forged = format!(
            "{}.{}.{}",
            good.split('.').next().unwrap(),
            evil.split('.').nth(1).unwrap(),
            good.split('.').nth(2).unwrap()
        );
        assert_eq!(keys().verify(&forged, NOW), Err(JwtError::Signature));
    }

    #[test]
    fn alg_none_and_other_algorithms_are_refused() {
        let claims = json!({"sub": "alice", "exp": NOW + 60});
        let unsigned = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        assert_eq!(keys().verify(&unsigned, NOW), Err(JwtError::Algorithm("none".into())));
        let hs512 = sign_hs256(SECRET, &json!({"alg": "HS512"}), &claims);
        assert_eq!(keys().verify(&hs512, NOW), Err(JwtError::Algorithm("HS512".into())));
        let no_alg = sign_hs256(SECRET, &json!({"typ": "JWT"}), &claims);
        assert!(matches!(keys().verify(&no_alg, NOW), Err(JwtError::Algorithm(_))));
        let crit = sign_hs256(SECRET, &json!({"alg": "HS256", "crit": ["b64"]}), &claims);
        assert!(matches!(keys().verify(&crit, NOW), Err(JwtError::Malformed(_))));
    }

    #[test]
    fn bad_subjects_and_missing_exp_are_refused() {
        let h = json!({"alg": "HS256"});
        for sub in [json!(""), json!("a".repeat(65)), json!("al ice"), json!("bob:1"), json!(42), json!(null)] {
            let t = sign_hs256(SECRET, &h, &json!({"sub": sub, "exp": NOW + 60}));
            assert_eq!(keys().verify(&t, NOW), Err(JwtError::Subject), "{sub}");
        }
        let t = sign_hs256(SECRET, &h, &json!({"sub": "alice"}));
        assert_eq!(keys().verify(&t, NOW), Err(JwtError::MissingExp));
        let t = sign_hs256(SECRET, &h, &json!({"sub": "alice", "exp": "tomorrow"}));
        assert_eq!(keys().verify(&t, NOW), Err(JwtError::MissingExp));
        let t = sign_hs256(SECRET, &h, &json!({"sub": "alice", "exp": 1.8e9}));
        assert_eq!(keys().verify(&t, NOW), Err(JwtError::MissingExp));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for t in ["", "a", "a.b", "a.b.c.d", "!!.??.**", "e30.e30.", "W10.e30.AAAA"] {
            assert!(matches!(keys().verify(t, NOW), Err(JwtError::Malformed(_) | JwtError::Algorithm(_))), "{t}");
        }
        // Padding is not base64url as JWTs use it.
        let good = buyer_jwt::mint(SECRET, "alice", NOW + 60);
        assert!(keys().verify(&format!("{good}="), NOW).is_err());
    }

    #[test]
    fn admin_sessions_are_passed_on_unverified_and_never_name_a_user() {
        // Signed with the backend's own key, which the edge does not have.
        let h = json!({"alg": "HS256", "typ": "JWT"});
        let t = sign_hs256(
            b"the backend's admin key",
            &h,
            &json!({"sub": "admin", "aud": ADMIN_AUDIENCE, "exp": NOW + 60}),
        );
        assert_eq!(keys().verify(&t, NOW), Ok(Identity::Admin));
        let t = sign_hs256(b"anything", &h, &json!({"sub": "admin", "aud": [ADMIN_AUDIENCE], "exp": NOW}));
        assert_eq!(keys().verify(&t, NOW), Err(JwtError::Expired));
        let t = sign_hs256(b"anything", &h, &json!({"sub": "alice", "aud": "other", "exp": NOW + 60}));
        assert_eq!(keys().verify(&t, NOW), Err(JwtError::Signature), "a forged buyer token is still refused");
    }

    #[test]
    fn authorization_headers_are_parsed_strictly() {
        assert_eq!(bearer(b"Bearer abc.def.ghi"), Ok("abc.def.ghi"));
        assert_eq!(bearer(b"bearer   abc.def.ghi "), Ok("abc.def.ghi"));
        assert!(bearer(b"Basic dXNlcjpwYXNz").unwrap_err().contains("Bearer scheme"));
        assert!(bearer(b"Bearer").unwrap_err().contains("Bearer <JWT>"));
        assert!(bearer(b"Bearer ").is_err());
        assert!(bearer(b"Bearer a b").unwrap_err().contains("characters"));
        assert!(bearer(b"Bearer \xff\xfe").unwrap_err().contains("UTF-8"));
        assert!(bearer(b"").is_err());
    }

    #[test]
    fn error_messages_say_what_is_wrong() {
        assert_eq!(JwtError::Expired.to_string(), "invalid bearer token: expired");
        assert!(JwtError::Algorithm("none".into()).to_string().contains("`none`"));
    }
}
