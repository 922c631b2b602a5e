//! One worker VM's view: the configuration, the state snapshot it compiled
//! last (re-read from shared data only when the state's marker changes), when
//! the backend last sent or confirmed that state (so that a stale one stops
//! answering for the backend, see [`crate::sync::is_stale`]), and the bucket
//! keys it charged, so that idle ones can be emptied.
//!
//! Every bucket key a VM creates in shared data is one it tracks, so that it
//! is removed again: shared memory stays bounded by what the VMs track, however
//! many clients pass. The tracked set has a bound ([`MAX_TOUCHED`]); before a
//! request may create keys past it, room is made ([`Engine::decide_facts`]):
//! among a few keys at the front of the round robin, an idle one (refilled
//! completely, so exactly like no bucket) is dropped, or else the one nearest
//! to idle. The buckets of clients that flood are the furthest from idle, so
//! they are never the ones dropped.
//!
//! The charged keys are a hash set plus a round-robin queue, not an ordered
//! map: bucket keys share long prefixes, and an ordered insert compared them
//! byte by byte (wasm's `memcmp`) on every request, ~9 % of the edge's CPU.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use crate::bucket::{self, BucketState, Limit};
use crate::config::Config;
use crate::decision::{self, BucketMemory, Lease, RequestFacts, StateView, Verdict};
use crate::state::{STATE_GEN_KEY, STATE_KEY, Snapshot};
use crate::store::SharedStore;
use crate::sync;

/// At most this many bucket keys are tracked per VM (≈ 12 MB of shared data
/// per VM at most, with IPv6 keys).
pub const MAX_TOUCHED: usize = 200_000;

/// Tracked keys looked at to find one to drop when the tracked set is full.
const EVICTION_SAMPLE: usize = 8;

/// How often a request looks for a new state. The VM that syncs reloads at
/// once and every VM does on its tick; between those, checking the marker on
/// every request cost a host call each for a change that comes once a period.
pub const REFRESH_EVERY_US: u64 = 20_000;

#[derive(Debug)]
pub struct Engine {
    config: Config,
    defaults: Snapshot,
    synced: Option<Snapshot>,
    marker: Option<Vec<u8>>,
    /// When the edge last stored or had confirmed the state (the sync
    /// record's `last_ok_us`, read on every refresh).
    confirmed_at_us: Option<u64>,
    /// When a request last looked for a new state.
    checked_at_us: Option<u64>,
    /// Charged keys and their limits; `sweep_queue` holds each of them once,
    /// in the order the sweep visits them.
    touched: HashMap<String, Limit>,
    sweep_queue: VecDeque<String>,
    max_tracked: usize,
    /// Buckets dropped to make room that were not idle yet.
    evicted_busy: u64,
    /// Between decisions: the keys the last one charged, and recent refusals.
    memory: BucketMemory,
    problem: Option<String>,
}

/// What [`Engine::refresh`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refresh {
    /// The marker did not change.
    Unchanged,
    /// A new state was compiled (its version).
    Loaded(String),
    /// The stored state could not be read; the previous snapshot stays.
    Broken(String),
}

impl Engine {
    pub fn new(config: Config) -> Self {
        let defaults = Snapshot::defaults(config.defaults.clone(), config.default_rules.clone());
        Self {
            config,
            defaults,
            synced: None,
            marker: None,
            confirmed_at_us: None,
            checked_at_us: None,
            touched: HashMap::new(),
            sweep_queue: VecDeque::new(),
            max_tracked: MAX_TOUCHED,
            evicted_busy: 0,
            memory: BucketMemory::default(),
            problem: None,
        }
    }

    /// The same with another bound on tracked bucket keys (tests).
    pub fn with_max_tracked(mut self, max: usize) -> Self {
        self.max_tracked = max.max(1);
        self
    }

    /// Creates the shared keys every request uses, so that their updates are
    /// compare-and-swap from the first request on.
    pub fn prepare<S: SharedStore + ?Sized>(store: &S) {
        crate::store::ensure_exists(store, crate::state::INFLIGHT_TOTAL_KEY);
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether a state from the backend has been loaded.
    pub fn has_state(&self) -> bool {
        self.synced.is_some()
    }

    /// The snapshot requests are judged against: the synced state, or the
    /// defaults when none arrived yet and the edge fails open.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        match &self.synced {
            Some(s) => Some(s),
            None if self.config.fail_open => Some(&self.defaults),
            None => None,
        }
    }

    /// The synced state, or the defaults.
    pub fn current(&self) -> &Snapshot {
        self.synced.as_ref().unwrap_or(&self.defaults)
    }

    /// Whether the synced state is older than `state_max_age_ms` at `now_us`,
    /// as of the last [`Engine::refresh`]. The defaults are never stale:
    /// they list no activity.
    pub fn is_stale(&self, now_us: u64) -> bool {
        self.synced.is_some()
            && sync::is_stale(self.confirmed_at_us, now_us, self.config.state_max_age_ms.saturating_mul(1000))
    }

    /// Re-reads the state if its marker changed since the last call, and
    /// when it was last confirmed (which a `304` moves without a new marker).
    pub fn refresh<S: SharedStore + ?Sized>(&mut self, store: &S) -> Refresh {
        self.confirmed_at_us = sync::read_record(store).0.last_ok_us;
        let (marker, _) = store.get(STATE_GEN_KEY);
        if marker.is_none() || marker == self.marker {
            return Refresh::Unchanged;
        }
        self.marker = marker;
        let (bytes, _) = store.get(STATE_KEY);
        let Some(bytes) = bytes else {
            return Refresh::Broken("the state marker is set but the state is empty".into());
        };
        match Snapshot::parse(&bytes) {
            Ok(s) => {
                let version = s.version.clone().unwrap_or_default();
                self.synced = Some(s);
                Refresh::Loaded(version)
            }
            Err(e) => {
                self.problem = Some(e.clone());
                Refresh::Broken(e)
            }
        }
    }

    /// The last problem reading the shared state, once (for the log).
    pub fn take_problem(&mut self) -> Option<String> {
        self.problem.take()
    }

    /// Picks up a new state if there is one, reads a request's headers and
    /// decides it.
    pub fn decide<S, N, V>(&mut self, store: &S, headers: &[(N, V)], peer: Option<IpAddr>, now_us: u64) -> Verdict
    where
        S: SharedStore + ?Sized,
        N: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        if self.checked_at_us.is_none_or(|t| now_us < t || now_us - t >= REFRESH_EVERY_US) {
            self.checked_at_us = Some(now_us);
            self.refresh(store);
        }
        let req = match decision::parse_request(headers, self.config.max_header_bytes) {
            Ok(r) => r,
            Err(reply) => return Verdict::Reject(reply),
        };
        self.decide_facts(store, &req, peer, now_us)
    }

    /// Decides a request whose headers are already read.
    pub fn decide_facts<S: SharedStore + ?Sized>(
        &mut self,
        store: &S,
        req: &RequestFacts,
        peer: Option<IpAddr>,
        now_us: u64,
    ) -> Verdict {
        // The most bucket keys this request can create: per IP and per user,
        // plus both for every route.
        let routes = self.snapshot().map_or(0, |s| s.rules.routes.len());
        self.make_room(store, now_us, 2 + 2 * routes);
        let stale = self.is_stale(now_us);
        let view = match &self.synced {
            Some(s) => Some(StateView { snapshot: s, stale }),
            None if self.config.fail_open => Some(StateView { snapshot: &self.defaults, stale }),
            None => None,
        };
        let verdict = decision::decide(&self.config, view, store, req, peer, now_us, &mut self.memory);
        for (key, limit) in self.memory.charged.drain(..) {
            if let Some(known) = self.touched.get_mut(&key) {
                *known = limit;
            } else {
                self.touched.insert(key.clone(), limit);
                self.sweep_queue.push_back(key);
            }
        }
        verdict
    }

    /// Drops tracked keys until `needed` more fit under the bound (a few
    /// attempts at most: a key that keeps being charged while we look is hot,
    /// and a request is never held up for long).
    fn make_room<S: SharedStore + ?Sized>(&mut self, store: &S, now_us: u64, needed: usize) {
        let mut attempts = 2 * needed;
        while self.touched.len() + needed > self.max_tracked && attempts > 0 {
            attempts -= 1;
            self.evict_one(store, now_us);
        }
    }

    /// Drops one tracked key: the first idle one among [`EVICTION_SAMPLE`]
    /// at the front of the round robin, else the one of them nearest to
    /// idle. Dropping a bucket that is not idle forgives its client what it
    /// still owes (its next request starts afresh); the one nearest to idle
    /// owes least, and a client flooding at its limit owes most, so it is
    /// never the one dropped. The only other way to stay bounded would be to
    /// refuse new clients. `false` if nothing was dropped.
    fn evict_one<S: SharedStore + ?Sized>(&mut self, store: &S, now_us: u64) -> bool {
        let mut nearest: Option<(u64, String, Option<u32>)> = None;
        for _ in 0..EVICTION_SAMPLE.min(self.sweep_queue.len()) {
            let Some(key) = self.sweep_queue.pop_front() else { break };
            let Some(&limit) = self.touched.get(&key) else { continue };
            let (value, cas) = store.get(&key);
            let state = value.as_deref().and_then(BucketState::decode);
            if state.is_none() {
                self.touched.remove(&key);
                return true;
            }
            let idle_in = bucket::idle_in_us(limit, state, now_us);
            if idle_in == 0 && store.set(&key, &[], cas).is_ok() {
                self.touched.remove(&key);
                return true;
            }
            match &nearest {
                Some((best, ..)) if *best <= idle_in => self.sweep_queue.push_back(key),
                _ => {
                    if let Some((_, further, _)) = nearest.replace((idle_in, key, cas)) {
                        self.sweep_queue.push_back(further);
                    }
                }
            }
        }
        let Some((_, key, cas)) = nearest else { return false };
        if store.set(&key, &[], cas).is_ok() {
            self.touched.remove(&key);
            self.evicted_busy += 1;
            return true;
        }
        // Charged while we looked: not the one to drop after all.
        self.sweep_queue.push_back(key);
        false
    }

    /// Buckets dropped to make room before they were idle, since the VM started.
    pub fn evicted_busy(&self) -> u64 {
        self.evicted_busy
    }

    /// Gives an admitted request's in-flight slot back.
    pub fn release<S: SharedStore + ?Sized>(store: &S, lease: Lease) -> bool {
        decision::release(store, lease)
    }

    /// Buckets this VM remembers as refusing (see [`decision::Refusals`]).
    pub fn refusals_len(&self) -> usize {
        self.memory.refusals.len()
    }

    /// Bucket keys this VM charged and has not emptied yet.
    pub fn touched_len(&self) -> usize {
        self.touched.len()
    }

    /// Looks at up to `max` remembered bucket keys (round robin) and empties
    /// those that are back to full, so that the host may drop them. Returns
    /// how many were emptied.
    pub fn sweep<S: SharedStore + ?Sized>(&mut self, store: &S, now_us: u64, max: usize) -> usize {
        let batch = max.min(self.sweep_queue.len());
        let mut emptied = 0;
        for _ in 0..batch {
            let Some(key) = self.sweep_queue.pop_front() else { break };
            let Some(&limit) = self.touched.get(&key) else { continue };
            let (value, cas) = store.get(&key);
            let state = value.as_deref().and_then(BucketState::decode);
            // A lost race means someone charged it since: keep watching it.
            let forget = match state {
                None => true,
                Some(_) if bucket::is_idle(limit, state, now_us) => {
                    let done = store.set(&key, &[], cas).is_ok();
                    emptied += usize::from(done);
                    done
                }
                Some(_) => false,
            };
            if forget {
                self.touched.remove(&key);
            } else {
                self.sweep_queue.push_back(key);
            }
        }
        emptied
    }
}
