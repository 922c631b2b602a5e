//! The state sync protocol, as plain functions over [`SharedStore`] so that it
//! is tested natively; the filter's root context only moves bytes.
//!
//! Every worker VM's root context ticks every `sync_period_ms`. On a tick a
//! VM *claims* the sync by compare-and-swapping `claimed_at_us` in the
//! [`SyncRecord`]; a claim is only possible once 90 % of a period has passed
//! since the last one, so the backend sees about one request per period from
//! the whole edge, not one per worker, and never more than a period apart.
//!
//! The claimer sends
//!
//! ```text
//! GET <state_path>
//! :authority: <backend_authority>
//! x-seckill-edge-secret: <edge_secret>
//! x-seckill-edge-id: <edge_id>
//! if-none-match: "<version>"      (when a state is loaded)
//! ```
//!
//! * `200`: the body is an `EdgeState`; it is checked ([`crate::state::validate`]),
//!   and unless its version is the one already held, written to
//!   [`STATE_KEY`] (compare-and-swap) and then the marker [`STATE_GEN_KEY`] is
//!   rewritten, which makes every VM re-read it on its next request.
//! * `304`: nothing changed.
//! * anything else, a timeout or a reset: the last state stays; the failure is
//!   recorded.
//!
//! The state's age is the time since the last `200` that was stored or `304`
//! (or `200` of the version held) that confirmed it: [`SyncRecord::last_ok_us`].
//! Past `state_max_age_ms` the state is *stale* ([`is_stale`]): its activity
//! lists no longer answer token and purchase requests (the backend does, with
//! fresh data), while its rules and blacklist still apply. [`check_freshness`]
//! records the turn to stale and back in the record, so that exactly one VM
//! reports each.

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::state::{self, Repairs, STATE_GEN_KEY, STATE_KEY, SYNC_KEY, Snapshot};
use crate::store::{CAS_RETRIES, SetError, SharedStore};

/// The largest state body accepted.
pub const MAX_STATE_BYTES: usize = 32 << 20;

/// Bookkeeping shared by all VMs under [`SYNC_KEY`] (JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SyncRecord {
    /// When a VM last claimed the sync (µs since the epoch).
    pub claimed_at_us: u64,
    /// Last answer from the backend that was 200 or 304.
    pub last_ok_us: Option<u64>,
    /// Last time a new state was stored.
    pub last_change_us: Option<u64>,
    pub last_failure_us: Option<u64>,
    pub last_error: Option<String>,
    pub consecutive_failures: u32,
    /// Version of the state stored.
    pub version: Option<String>,
    /// When a VM found the state stale ([`check_freshness`]); `None` while fresh.
    pub stale_since_us: Option<u64>,
}

/// Whether a state last applied or confirmed at `confirmed_at_us` is older
/// than `max_age_us` at `now_us` (never confirmed: stale).
pub fn is_stale(confirmed_at_us: Option<u64>, now_us: u64, max_age_us: u64) -> bool {
    confirmed_at_us.is_none_or(|t| now_us.saturating_sub(t) > max_age_us)
}

/// The edge's state as [`check_freshness`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freshness {
    /// The record as it is now.
    pub record: SyncRecord,
    /// µs since the state was last applied or confirmed (`None`: never).
    pub age_us: Option<u64>,
    /// A state is held and is older than the maximum age.
    pub stale: bool,
    /// Set for the one call, edge-wide, that recorded a turn.
    pub turned: Option<Turn>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    Stale,
    /// Fresh again, after being found stale for this long.
    Fresh {
        stale_for_us: u64,
    },
}

/// Finds whether the state the edge holds is stale, and records a change
/// (compare-and-swap on the record), so that of all the VMs that notice it,
/// one reports it. Before any state is stored nothing is stale: there is no
/// list to distrust.
pub fn check_freshness<S: SharedStore + ?Sized>(store: &S, now_us: u64, max_age_us: u64) -> Freshness {
    let mut last = Freshness { record: SyncRecord::default(), age_us: None, stale: false, turned: None };
    for _ in 0..CAS_RETRIES {
        let (mut record, cas) = read_record(store);
        let age_us = record.last_ok_us.map(|t| now_us.saturating_sub(t));
        let stale = record.version.is_some() && is_stale(record.last_ok_us, now_us, max_age_us);
        let turned = match (stale, record.stale_since_us) {
            (true, None) => {
                record.stale_since_us = Some(now_us);
                Turn::Stale
            }
            (false, Some(since)) => {
                record.stale_since_us = None;
                Turn::Fresh { stale_for_us: now_us.saturating_sub(since) }
            }
            _ => return Freshness { record, age_us, stale, turned: None },
        };
        let bytes = serde_json::to_vec(&record).unwrap_or_default();
        let found = Freshness { record, age_us, stale, turned: None };
        match store.set(SYNC_KEY, &bytes, cas) {
            Ok(()) => return Freshness { turned: Some(turned), ..found },
            // Not recorded, so not reported: the gauge still shows it, and
            // whichever VM records the turn later reports it.
            Err(SetError::Full) => return found,
            Err(SetError::CasMismatch) => last = found,
        }
    }
    last
}

/// Reads the record (a missing or unreadable one is the default).
pub fn read_record<S: SharedStore + ?Sized>(store: &S) -> (SyncRecord, Option<u32>) {
    let (value, cas) = store.get(SYNC_KEY);
    let record = value.and_then(|v| serde_json::from_slice(&v).ok()).unwrap_or_default();
    (record, cas)
}

fn update_record<S: SharedStore + ?Sized>(store: &S, mut f: impl FnMut(&mut SyncRecord)) -> bool {
    for _ in 0..CAS_RETRIES {
        let (mut record, cas) = read_record(store);
        f(&mut record);
        let bytes = serde_json::to_vec(&record).unwrap_or_default();
        if store.set(SYNC_KEY, &bytes, cas).is_ok() {
            return true;
        }
    }
    false
}

/// Claims this period's sync for the calling VM.
pub fn try_claim<S: SharedStore + ?Sized>(store: &S, now_us: u64, period_us: u64) -> bool {
    let gap = period_us / 10 * 9;
    for _ in 0..CAS_RETRIES {
        let (mut record, cas) = read_record(store);
        let since = now_us.abs_diff(record.claimed_at_us);
        if record.claimed_at_us != 0 && since < gap {
            return false;
        }
        record.claimed_at_us = now_us;
        let bytes = serde_json::to_vec(&record).unwrap_or_default();
        if store.set(SYNC_KEY, &bytes, cas).is_ok() {
            return true;
        }
    }
    false
}

/// The headers of the state request.
pub fn request_headers(config: &Config, version: Option<&str>) -> Vec<(&'static str, String)> {
    let mut h = vec![
        (":method", "GET".to_owned()),
        (":path", config.state_path.clone()),
        (":authority", config.backend_authority.clone()),
        (":scheme", "http".to_owned()),
        ("accept", "application/json".to_owned()),
        ("x-seckill-edge-secret", config.edge_secret.clone()),
        ("x-seckill-edge-id", config.edge_id.clone()),
    ];
    if let Some(v) = version {
        h.push(("if-none-match", format!("\"{v}\"")));
    }
    h
}

/// What a sync answer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncOutcome {
    /// A new state was stored (with what had to be repaired in it).
    Updated { version: String, repairs: Repairs },
    /// `304`, or a `200` carrying the version already held.
    NotModified,
    /// The backend could not be reached or refused; the last state stays.
    Failed(String),
    /// The backend answered `200` with something that is not a state.
    Invalid(String),
}

impl SyncOutcome {
    /// The counter's name.
    pub fn metric_name(&self) -> &'static str {
        match self {
            SyncOutcome::Updated { .. } => "seckill_edge_sync_updated",
            SyncOutcome::NotModified => "seckill_edge_sync_not_modified",
            SyncOutcome::Failed(_) => "seckill_edge_sync_failed",
            SyncOutcome::Invalid(_) => "seckill_edge_sync_invalid",
        }
    }

    pub const METRICS: [&'static str; 4] = [
        "seckill_edge_sync_updated",
        "seckill_edge_sync_not_modified",
        "seckill_edge_sync_failed",
        "seckill_edge_sync_invalid",
    ];
}

/// Records that the request could not even be sent.
pub fn record_failure<S: SharedStore + ?Sized>(store: &S, now_us: u64, why: &str) -> SyncOutcome {
    update_record(store, |r| {
        r.last_failure_us = Some(now_us);
        r.last_error = Some(why.to_owned());
        r.consecutive_failures = r.consecutive_failures.saturating_add(1);
    });
    SyncOutcome::Failed(why.to_owned())
}

/// Handles the backend's answer. `status` is `None` when there was none
/// (timeout, reset, unreachable); `current` is the state this VM holds.
pub fn handle_response<S: SharedStore + ?Sized>(
    store: &S,
    current: &Snapshot,
    status: Option<u16>,
    body: Option<&[u8]>,
    now_us: u64,
) -> SyncOutcome {
    match status {
        Some(304) => {
            mark_ok(store, now_us, None);
            SyncOutcome::NotModified
        }
        Some(200) => {
            let body = body.unwrap_or_default();
            if body.len() > MAX_STATE_BYTES {
                return invalid(
                    store,
                    now_us,
                    format!("the state is {} bytes, more than {MAX_STATE_BYTES}", body.len()),
                );
            }
            let (state, repairs) = match state::validate(body, current) {
                Ok(x) => x,
                Err(why) => return invalid(store, now_us, why),
            };
            if current.version.as_deref() == Some(state.version.as_str()) && repairs == Repairs::default() {
                mark_ok(store, now_us, None);
                return SyncOutcome::NotModified;
            }
            let bytes = match serde_json::to_vec(&state) {
                Ok(b) => b,
                Err(e) => return invalid(store, now_us, e.to_string()),
            };
            // Not stored is not applied: the failure is recorded, this VM keeps
            // (and names in its next `if-none-match`) the version it had.
            if let Err(why) = write_state(store, &bytes, &state.version, now_us) {
                return record_failure(store, now_us, why);
            }
            mark_ok(store, now_us, Some(&state.version));
            SyncOutcome::Updated { version: state.version, repairs }
        }
        Some(other) => record_failure(store, now_us, &format!("the backend answered {other}")),
        None => record_failure(store, now_us, "no answer from the backend (timeout, reset or unreachable)"),
    }
}

fn invalid<S: SharedStore + ?Sized>(store: &S, now_us: u64, why: String) -> SyncOutcome {
    record_failure(store, now_us, &why);
    SyncOutcome::Invalid(why)
}

fn mark_ok<S: SharedStore + ?Sized>(store: &S, now_us: u64, new_version: Option<&str>) {
    update_record(store, |r| {
        r.last_ok_us = Some(now_us);
        r.consecutive_failures = 0;
        r.last_error = None;
        if let Some(v) = new_version {
            r.version = Some(v.to_owned());
            r.last_change_us = Some(now_us);
        }
    });
}

/// Writes the state (compare-and-swap), then the marker that tells every VM
/// to re-read it. Since each writer writes the state before its marker, the
/// state a VM reads after seeing the final marker is the final state. `Err`
/// says why it was not applied.
fn write_state<S: SharedStore + ?Sized>(
    store: &S,
    bytes: &[u8],
    version: &str,
    now_us: u64,
) -> Result<(), &'static str> {
    const FULL: &str = "shared data is full: the state could not be stored";
    for _ in 0..CAS_RETRIES {
        let (_, cas) = store.get(STATE_KEY);
        match store.set(STATE_KEY, bytes, cas) {
            Ok(()) => {
                let marker = format!("{version}@{now_us}");
                return match store.set(STATE_GEN_KEY, marker.as_bytes(), None) {
                    Ok(()) => Ok(()),
                    Err(SetError::Full) => Err(FULL),
                    Err(SetError::CasMismatch) => Err("the state's marker could not be written"),
                };
            }
            Err(SetError::Full) => return Err(FULL),
            Err(SetError::CasMismatch) => {}
        }
    }
    Err("lost every compare-and-swap race writing the state")
}
