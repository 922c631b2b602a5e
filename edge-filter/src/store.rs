//! The shared data every worker VM sees, behind a trait so that the decision
//! logic runs natively in tests against [`MemoryStore`] and in the filter
//! against proxy-wasm's `get_shared_data` / `set_shared_data`.
//!
//! Semantics are Envoy's: every value has a CAS token (never 0); a write with
//! `Some(cas)` fails with [`SetError::CasMismatch`] unless the key still has
//! that token; a write with `None` is unconditional. Keys are never removed
//! through the ABI: an empty value stands for "nothing here", and a host may
//! drop it.
//!
//! A host with a byte budget may also refuse a write that does not fit
//! ([`SetError::Full`]; `seckill-edge` answers `INTERNAL_FAILURE`, Envoy's
//! store has no budget). Nothing was stored then, and the filter must not act
//! as if it had been: a limit whose state cannot be kept refuses (see
//! [`crate::decision`]), a state that cannot be stored is not applied.

use std::cell::RefCell;
use std::collections::HashMap;

/// Why a write was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetError {
    /// A compare-and-swap write lost a race: read again and retry.
    CasMismatch,
    /// The host's shared memory is full: retrying will not help until
    /// something is removed.
    Full,
}

/// Shared key-value data with compare-and-swap.
pub trait SharedStore {
    /// The value (`None` if absent or empty) and its CAS token (`None` if absent).
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>);
    /// Writes `value` if `cas` is `None` or still the key's token.
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), SetError>;
}

/// How many times a read-modify-write is retried after losing a CAS race.
pub const CAS_RETRIES: usize = 32;

/// In-memory [`SharedStore`] with Envoy's semantics, for tests and benches;
/// optionally with a byte budget as `seckill-edge` has one.
#[derive(Debug, Default)]
pub struct MemoryStore {
    map: RefCell<HashMap<String, (Vec<u8>, u32)>>,
    next_cas: RefCell<u32>,
    /// Most bytes of keys and non-empty values held (`None`: no limit).
    budget: Option<usize>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store that refuses ([`SetError::Full`]) writes that would make its
    /// keys and non-empty values exceed `bytes`.
    pub fn with_budget(bytes: usize) -> Self {
        Self { budget: Some(bytes), ..Self::default() }
    }

    /// Bytes of keys and non-empty values held.
    pub fn bytes(&self) -> usize {
        self.map.borrow().iter().filter(|(_, (v, _))| !v.is_empty()).map(|(k, (v, _))| k.len() + v.len()).sum()
    }

    /// The raw value of `key` (tests).
    pub fn raw(&self, key: &str) -> Option<Vec<u8>> {
        self.map.borrow().get(key).map(|(v, _)| v.clone())
    }

    /// Keys whose value is not empty (tests).
    pub fn live_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> =
            self.map.borrow().iter().filter(|(_, (v, _))| !v.is_empty()).map(|(k, _)| k.clone()).collect();
        keys.sort();
        keys
    }
}

impl SharedStore for MemoryStore {
    fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        match self.map.borrow().get(key) {
            Some((v, cas)) => ((!v.is_empty()).then(|| v.clone()), Some(*cas)),
            None => (None, None),
        }
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), SetError> {
        if let Some(budget) = self.budget {
            let old = self.map.borrow().get(key).filter(|(v, _)| !v.is_empty()).map_or(0, |(v, _)| key.len() + v.len());
            let new = if value.is_empty() { 0 } else { key.len() + value.len() };
            if new > old && self.bytes() - old + new > budget {
                return Err(SetError::Full);
            }
        }
        let mut map = self.map.borrow_mut();
        if let (Some(expected), Some((_, current))) = (cas, map.get(key))
            && expected != *current
        {
            return Err(SetError::CasMismatch);
        }
        let mut next = self.next_cas.borrow_mut();
        *next = next.wrapping_add(1).max(1);
        map.insert(key.to_owned(), (value.to_vec(), *next));
        Ok(())
    }
}

/// Makes sure `key` exists (with an empty value) without touching a value
/// already there. Compare-and-swap only protects keys that exist: Envoy
/// inserts an absent key unconditionally, so two workers creating one key at
/// the same instant can lose one update.
pub fn ensure_exists<S: SharedStore + ?Sized>(store: &S, key: &str) {
    if store.get(key).1.is_none() {
        let _ = store.set(key, &[], None);
    }
}

/// Decodes a counter (little-endian `u32`; empty or garbage is 0).
pub fn decode_count(value: Option<&[u8]>) -> u32 {
    value.and_then(|v| <[u8; 4]>::try_from(v).ok()).map_or(0, u32::from_le_bytes)
}

/// Encodes a counter; 0 is the empty value so that the key can be dropped.
pub fn encode_count(n: u32) -> Vec<u8> {
    if n == 0 { Vec::new() } else { n.to_le_bytes().to_vec() }
}

/// Why [`try_increment`] did not count one more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotCounted {
    /// The counter is at its maximum (the count), or every retry lost its
    /// race (reported as at the maximum: refusing is the safe side).
    AtMax(u32),
    /// The store could not hold the counter.
    StoreFull,
}

/// Adds one to the counter at `key` unless it is already at `max`.
pub fn try_increment<S: SharedStore + ?Sized>(store: &S, key: &str, max: u32) -> Result<u32, NotCounted> {
    let mut last = 0;
    for _ in 0..CAS_RETRIES {
        let (value, cas) = store.get(key);
        let n = decode_count(value.as_deref());
        last = n;
        if n >= max {
            return Err(NotCounted::AtMax(n));
        }
        match store.set(key, &encode_count(n + 1), cas) {
            Ok(()) => return Ok(n + 1),
            Err(SetError::Full) => return Err(NotCounted::StoreFull),
            Err(SetError::CasMismatch) => {}
        }
    }
    Err(NotCounted::AtMax(last))
}

/// Takes one from the counter at `key` (never below 0). Retries far longer
/// than an increment: a lost decrement would leak a slot for good.
/// Returns the new count, or `None` if every retry lost its race.
pub fn decrement<S: SharedStore + ?Sized>(store: &S, key: &str) -> Option<u32> {
    for _ in 0..CAS_RETRIES * 32 {
        let (value, cas) = store.get(key);
        let n = decode_count(value.as_deref()).saturating_sub(1);
        if store.set(key, &encode_count(n), cas).is_ok() {
            return Some(n);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_follows_envoy() {
        let s = MemoryStore::new();
        assert_eq!(s.get("k"), (None, None));
        s.set("k", b"a", None).unwrap();
        let (v, cas) = s.get("k");
        assert_eq!(v.as_deref(), Some(&b"a"[..]));
        s.set("k", b"b", cas).unwrap();
        assert_eq!(s.set("k", b"c", cas), Err(SetError::CasMismatch));
        s.set("k", b"", None).unwrap();
        let (v, cas) = s.get("k");
        assert_eq!(v, None);
        assert!(cas.is_some(), "an emptied key still has a token");
    }

    #[test]
    fn counters_stop_at_max_and_empty_at_zero() {
        let s = MemoryStore::new();
        assert_eq!(try_increment(&s, "c", 2), Ok(1));
        assert_eq!(try_increment(&s, "c", 2), Ok(2));
        assert_eq!(try_increment(&s, "c", 2), Err(NotCounted::AtMax(2)));
        assert_eq!(decrement(&s, "c"), Some(1));
        assert_eq!(decrement(&s, "c"), Some(0));
        assert_eq!(s.raw("c"), Some(vec![]));
        assert_eq!(decrement(&s, "c"), Some(0), "never below zero");
        assert!(s.live_keys().is_empty());
    }

    /// A store where another worker writes between every read and write.
    struct Contended<'a> {
        inner: &'a MemoryStore,
        races_left: RefCell<u32>,
    }

    impl SharedStore for Contended<'_> {
        fn get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
            self.inner.get(key)
        }
        fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), SetError> {
            let mut left = self.races_left.borrow_mut();
            if *left > 0 {
                *left -= 1;
                // The other worker's increment lands first.
                let (v, _) = self.inner.get(key);
                self.inner.set(key, &encode_count(decode_count(v.as_deref()) + 1), None).unwrap();
            }
            self.inner.set(key, value, cas)
        }
    }

    #[test]
    fn a_full_store_refuses_growth_but_not_shrinking() {
        let s = MemoryStore::with_budget(10);
        s.set("ab", b"12345678", None).unwrap();
        assert_eq!(s.set("c", b"1", None), Err(SetError::Full));
        assert_eq!(try_increment(&s, "c", 10), Err(NotCounted::StoreFull), "a full store is not a full counter");
        s.set("ab", b"12", None).unwrap();
        assert_eq!(try_increment(&s, "c", 10), Ok(1));
        s.set("ab", b"", None).unwrap();
        assert_eq!(s.bytes(), 5);
    }

    #[test]
    fn lost_races_are_retried_not_lost() {
        let inner = MemoryStore::new();
        // Compare-and-swap needs the key to exist: Envoy inserts an absent key
        // unconditionally (see the README on first use of a key).
        inner.set("c", &[], None).unwrap();
        let s = Contended { inner: &inner, races_left: RefCell::new(3) };
        assert_eq!(try_increment(&s, "c", 100), Ok(4), "three racing increments, then ours");
        let s = Contended { inner: &inner, races_left: RefCell::new(1000) };
        assert_eq!(
            try_increment(&s, "c", 100_000),
            Err(NotCounted::AtMax(4 + CAS_RETRIES as u32 - 1)),
            "gives up, refusing"
        );
    }
}
