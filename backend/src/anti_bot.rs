//! 接口防刷 beyond the one-time token: a proof of work an operator can
//! require on the token step (`seckill_api::pow`), switched on and off from
//! the dashboard (`seckill:anti_bot`, field `pow_bits`).
//!
//! The purchase itself needs no hiding: it takes a one-time token bound to
//! the buyer and the activity, issued only while the activity is live, which
//! is what the seed's hidden, per-user purchase path was for. What bots still
//! do cheaply is ask for tokens; the proof of work makes each ask cost CPU.
//!
//! Challenges are stateless: an HMAC (with a key derived from the JWT
//! secret) of the activity, the user and the current minute, so any backend
//! checks any other's, and one is good for the minute it was issued in and
//! the next. The switch is read from Redis once a second per process, not
//! per token request.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use hmac::{Hmac, Mac};
use seckill_api::TokenChallenge;
use seckill_api::pow::{self, MAX_BITS};
use sha2::Sha256;

use crate::clock::from_ms;
use crate::store::{Store, StoreError, keys};

/// How long one challenge window lasts.
const WINDOW_MS: i64 = 60_000;
/// How often each process rereads the switch.
const POLL: Duration = Duration::from_secs(1);

/// The switch, cached, and the key challenges are made with.
#[derive(Clone)]
pub struct AntiBot {
    bits: Arc<AtomicU32>,
    key: Arc<[u8; 32]>,
}

#[derive(Debug, thiserror::Error)]
pub enum AntiBotError {
    #[error("pow_bits: at most {MAX_BITS}")]
    TooHard,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a token request's proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PowRefusal {
    #[error(
        "proof of work required: GET /api/activities/{activity}/challenge, then send {header}: <challenge>:<nonce>",
        header = pow::POW_HEADER
    )]
    Missing { activity: u64 },
    #[error("the challenge is not this activity's and user's, or it expired; ask for a new one")]
    WrongChallenge,
    #[error("the nonce does not meet {0} zero bits")]
    TooWeak(u32),
}

impl AntiBot {
    pub fn new(jwt_secret: &str) -> Self {
        let mut mac = Hmac::<Sha256>::new_from_slice(jwt_secret.as_bytes()).expect("HMAC takes keys of any length");
        mac.update(b"seckill token challenge key");
        Self { bits: Arc::new(AtomicU32::new(0)), key: Arc::new(mac.finalize().into_bytes().into()) }
    }

    /// Zero bits asked of a token request now (0: no proof asked).
    pub fn bits(&self) -> u32 {
        self.bits.load(Ordering::Relaxed)
    }

    /// Switches the proof of work to `bits` for every backend (0 turns it off).
    pub async fn set(&self, store: &Store, bits: u32) -> Result<(), AntiBotError> {
        if bits > MAX_BITS {
            return Err(AntiBotError::TooHard);
        }
        store.hset(keys::ANTI_BOT, "pow_bits", &bits.to_string()).await?;
        self.bits.store(bits, Ordering::Relaxed);
        tracing::info!(bits, "token proof of work set");
        Ok(())
    }

    /// Rereads the switch.
    pub async fn refresh(&self, store: &Store) -> Result<(), StoreError> {
        let bits = store.hgetall(keys::ANTI_BOT).await?.get("pow_bits").and_then(|v| v.parse().ok()).unwrap_or(0);
        self.bits.store(u32::min(bits, MAX_BITS), Ordering::Relaxed);
        Ok(())
    }

    /// Rereads the switch every second until aborted.
    pub fn spawn_refresher(&self, store: Store) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(POLL);
            loop {
                tick.tick().await;
                if let Err(e) = this.refresh(&store).await {
                    tracing::debug!(error = %e, "anti-bot switch not reread");
                }
            }
        })
    }

    fn challenge_in(&self, activity: u64, user: &str, window: i64) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key[..]).expect("HMAC takes keys of any length");
        mac.update(format!("{activity}:{user}:{window}").as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// The challenge `user` solves for a token of `activity` now.
    pub fn challenge(&self, activity: u64, user: &str, now_ms: i64) -> TokenChallenge {
        let window = now_ms.div_euclid(WINDOW_MS);
        TokenChallenge {
            challenge: self.challenge_in(activity, user, window),
            bits: self.bits(),
            expires_at: from_ms((window + 2) * WINDOW_MS),
        }
    }

    /// Checks a token request's proof (`<challenge>:<nonce>`), if one is asked.
    pub fn check(&self, activity: u64, user: &str, proof: Option<&str>, now_ms: i64) -> Result<(), PowRefusal> {
        let bits = self.bits();
        if bits == 0 {
            return Ok(());
        }
        let (challenge, nonce) = proof
            .and_then(|p| p.split_once(':'))
            .filter(|(_, nonce)| (1..=64).contains(&nonce.len()))
            .ok_or(PowRefusal::Missing { activity })?;
        let window = now_ms.div_euclid(WINDOW_MS);
        if ![window, window - 1].iter().any(|w| self.challenge_in(activity, user, *w) == challenge) {
            return Err(PowRefusal::WrongChallenge);
        }
        if pow::zero_bits(challenge, nonce) < bits {
            return Err(PowRefusal::TooWeak(bits));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_000_000_000;

    fn on(bits: u32) -> AntiBot {
        let guard = AntiBot::new("jwt-secret");
        guard.bits.store(bits, Ordering::Relaxed);
        guard
    }

    #[test]
    fn off_asks_nothing() {
        assert_eq!(on(0).check(7, "alice", None, NOW), Ok(()));
    }

    #[test]
    fn a_solved_challenge_passes_for_its_activity_user_and_two_minutes() {
        let guard = on(10);
        let c = guard.challenge(7, "alice", NOW);
        let proof = format!("{}:{}", c.challenge, pow::solve(&c.challenge, 10));
        assert_eq!(guard.check(7, "alice", Some(&proof), NOW), Ok(()));
        assert_eq!(guard.check(7, "alice", Some(&proof), NOW + WINDOW_MS), Ok(()), "the next minute too");
        assert_eq!(guard.check(7, "alice", Some(&proof), NOW + 2 * WINDOW_MS), Err(PowRefusal::WrongChallenge));
        assert_eq!(guard.check(7, "bob", Some(&proof), NOW), Err(PowRefusal::WrongChallenge));
        assert_eq!(guard.check(8, "alice", Some(&proof), NOW), Err(PowRefusal::WrongChallenge));
        let other_key = AntiBot::new("another-secret");
        other_key.bits.store(10, Ordering::Relaxed);
        assert_eq!(other_key.check(7, "alice", Some(&proof), NOW), Err(PowRefusal::WrongChallenge));
    }

    #[test]
    fn a_missing_malformed_or_weak_proof_is_refused() {
        let guard = on(16);
        assert_eq!(guard.check(7, "alice", None, NOW), Err(PowRefusal::Missing { activity: 7 }));
        assert_eq!(guard.check(7, "alice", Some("no-colon"), NOW), Err(PowRefusal::Missing { activity: 7 }));
        let c = guard.challenge(7, "alice", NOW);
        let weak = (0u64..).map(|n| n.to_string()).find(|n| pow::zero_bits(&c.challenge, n) < 16).unwrap();
        assert_eq!(
            guard.check(7, "alice", Some(&format!("{}:{weak}", c.challenge)), NOW),
            Err(PowRefusal::TooWeak(16))
        );
    }
}
