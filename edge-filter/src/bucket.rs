//! A token bucket with nginx `limit_req ... burst=B nodelay` semantics.
//!
//! nginx keeps, per key, the *excess* (requests above the rate, in
//! milli-requests) and the time of the last accepted request. A request at
//! time `t` computes `excess' = max(0, excess - rate × (t - last) + 1)`; it is
//! refused when `excess' > burst`, otherwise accepted and stored. A key it has
//! never seen starts at `excess' = 0`. So from a fresh key `1 + burst`
//! requests pass back to back, then one more every `1 / rate` seconds.
//!
//! This module does the same in integer fixed point — one request is
//! [`TOKEN`] nano-tokens, times are microseconds — so that the arithmetic is
//! exact and every rounding errs on the strict side:
//!
//! * the rate is stored as `⌊rate × 10⁹⌋` nano-tokens per second (never above
//!   the configured rate), and
//! * the refill over `Δ` µs is `⌊rate_nano × Δ / 10⁶⌋` (never above the true
//!   refill).
//!
//! **The bound.** Let requests `t₁ ≤ … ≤ tₙ` be the ones accepted inside a
//! window of length `W = tₙ − t₁`. For `i ≥ 2` the stored excess obeys
//! `eᵢ ≥ eᵢ₋₁ + TOKEN − refill(tᵢ − tᵢ₋₁)` (refused requests change nothing, and
//! `last` is the previous accepted request), `e₁ ≥ 0`, and `eₙ ≤ burst × TOKEN`.
//! Summing, `(n − 1) × TOKEN ≤ burst × TOKEN + Σ refill ≤ burst × TOKEN +
//! rate_nano × W / 10⁶`, hence
//!
//! ```text
//! n ≤ 1 + burst + ⌊rate_nano × W_µs / 10¹⁵⌋ ≤ 1 + burst + rate × W
//! ```
//!
//! The property tests in this module check exactly that, for every sub-window
//! of random arrival sequences. It is tight: `1 + burst` requests at one
//! instant all pass.
//!
//! The state is 16 bytes (see [`BucketState::encode`]) so that it can live in
//! proxy-wasm shared data and be updated with compare-and-swap.

/// One request, in nano-tokens.
pub const TOKEN: u64 = 1_000_000_000;
const MICROS_PER_SEC: u128 = 1_000_000;

/// Highest rate accepted (requests per second), as the backend validates it.
pub const MAX_RATE: f64 = 1_000_000.0;
/// Highest burst accepted, as the backend validates it.
pub const MAX_BURST: u32 = 1_000_000;

/// A validated rate limit: `rate` requests per second with `burst` extra.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limit {
    rate_nano: u64,
    burst: u32,
}

impl Limit {
    /// `None` unless `0 < rate_per_sec ≤ 10⁶` (finite) and `burst ≤ 10⁶`.
    /// Rates below one nano-request per second are raised to that.
    pub fn new(rate_per_sec: f64, burst: u32) -> Option<Self> {
        if !rate_per_sec.is_finite() || rate_per_sec <= 0.0 || rate_per_sec > MAX_RATE || burst > MAX_BURST {
            return None;
        }
        let rate_nano = ((rate_per_sec * TOKEN as f64).floor() as u64).max(1);
        Some(Self { rate_nano, burst })
    }

    /// Requests per second (after fixed-point rounding).
    pub fn rate_per_sec(&self) -> f64 {
        self.rate_nano as f64 / TOKEN as f64
    }

    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Nano-tokens per second.
    pub fn rate_nano(&self) -> u64 {
        self.rate_nano
    }

    /// How many requests a fresh key lets through back to back: `1 + burst`.
    pub fn capacity(&self) -> u64 {
        1 + u64::from(self.burst)
    }

    fn max_excess(&self) -> u64 {
        u64::from(self.burst) * TOKEN
    }

    /// Nano-tokens given back over `elapsed_us` (rounded down).
    fn refill(&self, elapsed_us: u64) -> u64 {
        let r = u128::from(self.rate_nano) * u128::from(elapsed_us) / MICROS_PER_SEC;
        u64::try_from(r).unwrap_or(u64::MAX)
    }

    /// The least `Δ` (µs) with `refill(Δ) ≥ need`.
    fn time_to_refill(&self, need: u64) -> u64 {
        let t = (u128::from(need) * MICROS_PER_SEC).div_ceil(u128::from(self.rate_nano));
        u64::try_from(t).unwrap_or(u64::MAX)
    }
}

/// What is kept per key: nginx's `excess` (nano-tokens) and `last` (µs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BucketState {
    pub excess: u64,
    pub last_us: u64,
}

impl BucketState {
    /// Encoded size in bytes.
    pub const LEN: usize = 16;

    /// `excess` then `last_us`, both little-endian `u64`.
    pub fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..8].copy_from_slice(&self.excess.to_le_bytes());
        out[8..].copy_from_slice(&self.last_us.to_le_bytes());
        out
    }

    /// `None` for an empty value (a fresh or emptied key) or one that is not
    /// 16 bytes long (treated as fresh rather than trusted).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != Self::LEN {
            return None;
        }
        let (a, b) = bytes.split_at(8);
        Some(Self { excess: u64::from_le_bytes(a.try_into().ok()?), last_us: u64::from_le_bytes(b.try_into().ok()?) })
    }
}

/// The outcome of one request against one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Accepted: store `next`. `remaining` more requests would pass right now;
    /// the bucket is back to full `reset_us` from now.
    Allow { next: BucketState, remaining: u64, reset_us: u64 },
    /// Refused: nothing to store. A request `retry_after_us` from now passes;
    /// the bucket is back to full `reset_us` from now.
    Deny { retry_after_us: u64, reset_us: u64 },
}

impl Check {
    pub fn is_allow(&self) -> bool {
        matches!(self, Check::Allow { .. })
    }
}

/// One request at `now_us` against `state` (`None`: a fresh key).
pub fn check(limit: Limit, state: Option<BucketState>, now_us: u64) -> Check {
    let Some(state) = state else {
        let next = BucketState { excess: 0, last_us: now_us };
        return Check::Allow { next, remaining: u64::from(limit.burst), reset_us: limit.time_to_refill(TOKEN) };
    };
    // A clock that stepped back (another worker's slightly earlier reading)
    // refills nothing, and `last` never moves backwards, so no time is
    // counted twice.
    let elapsed = now_us.saturating_sub(state.last_us);
    let refill = limit.refill(elapsed);
    let owed = state.excess.saturating_add(TOKEN);
    let excess = owed.saturating_sub(refill);
    if excess > limit.max_excess() {
        // Passes once refill(elapsed + wait) ≥ owed - max_excess.
        let need = owed - limit.max_excess();
        let retry_after_us = limit.time_to_refill(need).saturating_sub(elapsed).max(1);
        let reset_us = limit.time_to_refill(owed).saturating_sub(elapsed);
        return Check::Deny { retry_after_us, reset_us };
    }
    let next = BucketState { excess, last_us: state.last_us.max(now_us) };
    let remaining = (limit.max_excess() - excess) / TOKEN;
    let reset_us = limit.time_to_refill(excess.saturating_add(TOKEN));
    Check::Allow { next, remaining, reset_us }
}

/// Whether `state` behaves exactly like a fresh key at `now_us`, so that its
/// shared-data value can be emptied without changing any decision.
pub fn is_idle(limit: Limit, state: Option<BucketState>, now_us: u64) -> bool {
    match state {
        None => true,
        Some(s) => limit.refill(now_us.saturating_sub(s.last_us)) >= s.excess.saturating_add(TOKEN),
    }
}

/// How long until `state` is [`is_idle`] (0: it is), in µs: what dropping
/// it now would forgive. A client flooding at its limit owes the most.
pub fn idle_in_us(limit: Limit, state: Option<BucketState>, now_us: u64) -> u64 {
    match state {
        None => 0,
        Some(s) => {
            let elapsed = now_us.saturating_sub(s.last_us);
            limit.time_to_refill(s.excess.saturating_add(TOKEN)).saturating_sub(elapsed)
        }
    }
}

/// Whole seconds for a header, rounded up.
pub fn secs_ceil(us: u64) -> u64 {
    us.div_ceil(1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: u64 = 1_000;

    fn run(limit: Limit, times: &[u64]) -> Vec<bool> {
        let mut state = None;
        times
            .iter()
            .map(|&t| match check(limit, state, t) {
                Check::Allow { next, .. } => {
                    state = Some(next);
                    true
                }
                Check::Deny { .. } => false,
            })
            .collect()
    }

    #[test]
    fn nginx_edge_burst_20_at_10_per_second() {
        let limit = Limit::new(10.0, 20).unwrap();
        let t0 = 1_700_000_000_000_000;
        let mut state = None;
        for i in 0..21 {
            match check(limit, state, t0) {
                Check::Allow { next, remaining, .. } => {
                    assert_eq!(remaining, 20 - i, "request {}", i + 1);
                    state = Some(next);
                }
                Check::Deny { .. } => panic!("request {} of 21 refused", i + 1),
            }
        }
        // The 22nd at the same instant is refused, and told to come back in 100 ms.
        match check(limit, state, t0) {
            Check::Deny { retry_after_us, .. } => assert_eq!(retry_after_us, 100 * MS),
            other => panic!("22nd passed: {other:?}"),
        }
        // 99.999 ms later: still refused.
        assert!(!check(limit, state, t0 + 100 * MS - 1).is_allow());
        // After 100 ms at 10 r/s exactly one more passes…
        let Check::Allow { next, remaining, .. } = check(limit, state, t0 + 100 * MS) else {
            panic!("refused after 100 ms")
        };
        assert_eq!(remaining, 0);
        // …and not two.
        assert!(!check(limit, Some(next), t0 + 100 * MS).is_allow());
    }

    #[test]
    fn burst_zero_is_one_per_period() {
        let limit = Limit::new(2.0, 0).unwrap();
        assert_eq!(run(limit, &[0, 0, 499_999, 500_000, 500_001, 1_000_000]), [true, false, false, true, false, true]);
    }

    #[test]
    fn idle_keys_are_fresh_again() {
        let limit = Limit::new(10.0, 2).unwrap();
        let Check::Allow { next, reset_us, .. } = check(limit, None, 0) else { panic!() };
        assert_eq!(reset_us, 100 * MS);
        assert!(!is_idle(limit, Some(next), 99 * MS));
        assert!(is_idle(limit, Some(next), 100 * MS));
        // Idle means: the next answer is the same as for a fresh key.
        assert_eq!(check(limit, Some(next), 100 * MS), check(limit, None, 100 * MS));
    }

    #[test]
    fn clock_steps_back_refill_nothing() {
        let limit = Limit::new(10.0, 0).unwrap();
        let Check::Allow { next, .. } = check(limit, None, 1_000 * MS) else { panic!() };
        assert!(!check(limit, Some(next), 500 * MS).is_allow());
        assert!(check(limit, Some(next), 1_100 * MS).is_allow());
    }

    #[test]
    fn encoding_round_trips_and_rejects_garbage() {
        let s = BucketState { excess: 123_456_789_012, last_us: u64::MAX - 7 };
        assert_eq!(BucketState::decode(&s.encode()), Some(s));
        assert_eq!(BucketState::decode(&[]), None);
        assert_eq!(BucketState::decode(&[1, 2, 3]), None);
    }

    #[test]
    fn limits_are_validated() {
        assert!(Limit::new(0.0, 1).is_none());
        assert!(Limit::new(-1.0, 1).is_none());
        assert!(Limit::new(f64::NAN, 1).is_none());
        assert!(Limit::new(f64::INFINITY, 1).is_none());
        assert!(Limit::new(1_000_001.0, 1).is_none());
        assert!(Limit::new(1.0, MAX_BURST + 1).is_none());
        assert_eq!(Limit::new(1e-12, 0).unwrap().rate_nano(), 1);
        assert_eq!(Limit::new(MAX_RATE, MAX_BURST).unwrap().capacity(), 1_000_001);
    }

    #[test]
    fn huge_gaps_do_not_overflow() {
        let limit = Limit::new(MAX_RATE, MAX_BURST).unwrap();
        let state = Some(BucketState { excess: u64::from(MAX_BURST) * TOKEN, last_us: 0 });
        assert!(check(limit, state, u64::MAX).is_allow());
        let slow = Limit::new(1e-9, MAX_BURST).unwrap();
        let full = Some(BucketState { excess: u64::from(MAX_BURST) * TOKEN, last_us: 0 });
        let Check::Deny { retry_after_us, .. } = check(slow, full, 0) else { panic!() };
        assert!(retry_after_us > 0);
    }

    fn arrivals() -> impl Strategy<Value = Vec<u64>> {
        // Gaps from 0 (bursts at one instant) to 2 s, as µs.
        prop::collection::vec(prop_oneof![Just(0u64), 0u64..2_000, 0u64..2_000_000], 1..250).prop_map(|gaps| {
            let mut t = 1_000_000u64;
            gaps.into_iter()
                .map(|g| {
                    t += g;
                    t
                })
                .collect()
        })
    }

    fn limits() -> impl Strategy<Value = Limit> {
        (prop_oneof![0.01f64..1.0, 1.0f64..100.0, 100.0f64..100_000.0], 0u32..40)
            .prop_map(|(rate, burst)| Limit::new(rate, burst).unwrap())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// Over every window [tᵢ, tⱼ] between two accepted requests, at most
        /// 1 + burst + ⌊rate × W⌋ requests are accepted (in exact fixed point,
        /// and therefore also with the configured float rate).
        #[test]
        fn never_more_than_burst_plus_one_plus_rate_times_window(limit in limits(), times in arrivals()) {
            let verdicts = run(limit, &times);
            let allowed: Vec<u64> = times.iter().zip(&verdicts).filter(|(_, ok)| **ok).map(|(t, _)| *t).collect();
            for i in 0..allowed.len() {
                for j in i..allowed.len() {
                    let n = (j - i + 1) as u128;
                    let w = u128::from(allowed[j] - allowed[i]);
                    let bound = 1 + u128::from(limit.burst()) + u128::from(limit.rate_nano()) * w / 1_000_000_000_000_000;
                    prop_assert!(n <= bound, "{n} accepted in {w} µs, bound {bound}");
                    let float_bound = 1.0 + f64::from(limit.burst()) + limit.rate_per_sec() * (w as f64 / 1e6);
                    prop_assert!(n as f64 <= float_bound + 1e-9);
                }
            }
        }

        /// A refused request is told the truth: it passes `retry_after` later
        /// and not a microsecond earlier.
        #[test]
        fn retry_after_is_exact(limit in limits(), times in arrivals()) {
            let mut state = None;
            for &t in &times {
                match check(limit, state, t) {
                    Check::Allow { next, .. } => state = Some(next),
                    Check::Deny { retry_after_us, .. } => {
                        prop_assert!(check(limit, state, t + retry_after_us).is_allow());
                        if retry_after_us > 1 {
                            prop_assert!(!check(limit, state, t + retry_after_us - 1).is_allow());
                        }
                    }
                }
            }
        }

        /// From a fresh or idle key, exactly 1 + burst requests pass at one instant.
        #[test]
        fn fresh_keys_pass_exactly_capacity(limit in limits(), t in 0u64..1u64 << 50) {
            let same = vec![t; limit.capacity() as usize + 3];
            let passed = run(limit, &same).iter().filter(|ok| **ok).count() as u64;
            prop_assert_eq!(passed, limit.capacity());
        }
    }
}
