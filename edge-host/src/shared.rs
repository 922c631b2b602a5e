//! What every VM of the process shares: the key-value store with
//! compare-and-swap (`proxy_{get,set}_shared_data`) and the shared queues.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const SHARDS: usize = 16;

/// Why a [`SharedData::set`] did not store the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetError {
    /// The `cas` given was not the key's current one (or the key is gone).
    CasMismatch,
    /// Storing it would pass the store's byte budget; nothing changed.
    Full,
}

struct Slot {
    value: Arc<[u8]>,
    cas: u32,
}

/// A `cas` that creates a key only if it is still missing. Not reachable
/// through the ABI: a missing key answers `NOT_FOUND` there, as in Envoy,
/// so a filter's first write is unconditional (two VMs can both "create" a
/// counter, in Envoy as here); the host's own callers may use it.
pub const ABSENT_CAS: u32 = u32::MAX;

/// The process-wide key-value store, with Envoy's compare-and-swap rules:
/// every successful write gives the key a new `cas` (never 0 nor
/// [`ABSENT_CAS`]); a write with `cas == 0` is unconditional; a write with
/// another `cas` succeeds only if it is the key's current one, and a write
/// with [`ABSENT_CAS`] only if the key does not exist. Writing an empty value
/// deletes the key (the ABI has no delete, and this keeps memory bounded by
/// live keys).
pub struct SharedData {
    shards: Vec<Mutex<Shard>>,
    bytes: AtomicUsize,
    keys: AtomicUsize,
    max_bytes: usize,
}

#[derive(Default)]
struct Shard {
    /// foldhash: randomly seeded like SipHash, so keys cannot be chosen to
    /// collide, and several times faster on the short keys the filter uses.
    map: HashMap<Box<[u8]>, Slot, foldhash::fast::RandomState>,
    next_cas: u32,
}

/// The next cas from a shard's counter: never 0, [`ABSENT_CAS`] nor `old`.
fn next_cas(counter: &mut u32, old: u32) -> u32 {
    loop {
        *counter = counter.wrapping_add(1);
        if *counter != 0 && *counter != ABSENT_CAS && *counter != old {
            return *counter;
        }
    }
}

impl SharedData {
    /// A store that refuses writes beyond `max_bytes` of keys and values.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            bytes: AtomicUsize::new(0),
            keys: AtomicUsize::new(0),
            max_bytes,
        }
    }

    fn shard(&self, key: &[u8]) -> &Mutex<Shard> {
        // FNV-1a picks the shard; the map inside is seeded against collisions.
        let h = key.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ *b as u64).wrapping_mul(0x0100_0000_01b3));
        &self.shards[(h >> 32) as usize % SHARDS]
    }

    /// The value and its `cas`, if the key exists.
    pub fn get(&self, key: &[u8]) -> Option<(Arc<[u8]>, u32)> {
        let shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        shard.map.get(key).map(|s| (s.value.clone(), s.cas))
    }

    /// Stores `value` under `key` (see the type docs for `cas` and empty values).
    pub fn set(&self, key: &[u8], value: &[u8], cas: u32) -> Result<(), SetError> {
        let mut guard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        let Shard { map, next_cas: counter } = &mut *guard;
        if let Some(slot) = map.get_mut(key) {
            if cas != 0 && cas != slot.cas {
                return Err(SetError::CasMismatch);
            }
            let old = slot.value.len();
            if value.is_empty() {
                map.remove(key);
                self.bytes.fetch_sub(old + key.len(), Ordering::Relaxed);
                self.keys.fetch_sub(1, Ordering::Relaxed);
                return Ok(());
            }
            if value.len() > old {
                if self.bytes.load(Ordering::Relaxed) + value.len() - old > self.max_bytes {
                    return Err(SetError::Full);
                }
                self.bytes.fetch_add(value.len() - old, Ordering::Relaxed);
            } else if value.len() < old {
                self.bytes.fetch_sub(old - value.len(), Ordering::Relaxed);
            }
            if value.len() == old && Arc::strong_count(&slot.value) == 1 {
                // Same size and nobody reading it: overwrite in place.
                if let Some(v) = Arc::get_mut(&mut slot.value) {
                    v.copy_from_slice(value);
                }
            } else {
                slot.value = value.into();
            }
            slot.cas = next_cas(counter, slot.cas);
            return Ok(());
        }
        if cas != 0 && cas != ABSENT_CAS {
            // The key the caller read is gone (deleted): its cas cannot match.
            return Err(SetError::CasMismatch);
        }
        if value.is_empty() {
            return Ok(());
        }
        let size = key.len() + value.len();
        if self.bytes.load(Ordering::Relaxed) + size > self.max_bytes {
            return Err(SetError::Full);
        }
        self.bytes.fetch_add(size, Ordering::Relaxed);
        self.keys.fetch_add(1, Ordering::Relaxed);
        let cas = next_cas(counter, 0);
        map.insert(key.into(), Slot { value: value.into(), cas });
        Ok(())
    }

    /// Number of keys stored.
    pub fn len(&self) -> usize {
        self.keys.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of keys and values stored.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// Where a queue's `proxy_on_queue_ready` goes: the root context of the VM
/// that registered it.
#[derive(Default)]
pub struct QueueNotifier {
    ready: Mutex<Vec<(u32, u32)>>,
    /// Woken when something is enqueued for this VM.
    pub notify: tokio::sync::Notify,
}

impl QueueNotifier {
    pub(crate) fn push(&self, root_context: u32, queue: u32) {
        self.ready.lock().unwrap_or_else(|e| e.into_inner()).push((root_context, queue));
        self.notify.notify_one();
    }

    pub(crate) fn take(&self) -> Vec<(u32, u32)> {
        std::mem::take(&mut *self.ready.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

struct Queue {
    items: VecDeque<Vec<u8>>,
    owner: Option<(Arc<QueueNotifier>, u32)>,
}

/// Named FIFO queues shared by all VMs (`proxy_*_shared_queue`).
#[derive(Default)]
pub struct SharedQueues {
    inner: Mutex<QueuesInner>,
}

#[derive(Default)]
struct QueuesInner {
    by_name: HashMap<(Vec<u8>, Vec<u8>), u32>,
    queues: HashMap<u32, Queue>,
    next_id: u32,
}

/// Most items a queue holds; enqueueing beyond drops the oldest.
const QUEUE_CAPACITY: usize = 10_000;

impl SharedQueues {
    /// Creates or opens `(vm_id, name)`; the caller becomes the one notified.
    pub fn register(&self, vm_id: &[u8], name: &[u8], owner: Arc<QueueNotifier>, root_context: u32) -> u32 {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let key = (vm_id.to_vec(), name.to_vec());
        let id = match inner.by_name.get(&key) {
            Some(id) => *id,
            None => {
                inner.next_id += 1;
                let id = inner.next_id;
                inner.by_name.insert(key, id);
                inner.queues.insert(id, Queue { items: VecDeque::new(), owner: None });
                id
            }
        };
        if let Some(q) = inner.queues.get_mut(&id) {
            q.owner = Some((owner, root_context));
        }
        id
    }

    pub fn resolve(&self, vm_id: &[u8], name: &[u8]) -> Option<u32> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.by_name.get(&(vm_id.to_vec(), name.to_vec())).copied()
    }

    /// `false` when the queue does not exist.
    pub fn enqueue(&self, id: u32, value: Vec<u8>) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(q) = inner.queues.get_mut(&id) else { return false };
        if q.items.len() >= QUEUE_CAPACITY {
            q.items.pop_front();
        }
        q.items.push_back(value);
        if let Some((notifier, root)) = &q.owner {
            notifier.push(*root, id);
        }
        true
    }

    /// `Err(())` when the queue does not exist, `Ok(None)` when it is empty.
    #[allow(clippy::result_unit_err)]
    pub fn dequeue(&self, id: u32) -> Result<Option<Vec<u8>>, ()> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let q = inner.queues.get_mut(&id).ok_or(())?;
        Ok(q.items.pop_front())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_follows_envoy() {
        let s = SharedData::new(1 << 20);
        assert!(s.get(b"k").is_none());
        s.set(b"k", b"v1", 0).unwrap();
        let (v, cas1) = s.get(b"k").unwrap();
        assert_eq!(&v[..], b"v1");
        assert_ne!(cas1, 0);
        // A write with the current cas wins and changes the cas.
        s.set(b"k", b"v2", cas1).unwrap();
        let (_, cas2) = s.get(b"k").unwrap();
        assert_ne!(cas2, cas1);
        // A stale cas loses and changes nothing.
        assert_eq!(s.set(b"k", b"v3", cas1), Err(SetError::CasMismatch));
        assert_eq!(s.get(b"k").unwrap(), (Arc::from(&b"v2"[..]), cas2));
        // cas 0 is unconditional.
        s.set(b"k", b"v4", 0).unwrap();
        assert_eq!(&s.get(b"k").unwrap().0[..], b"v4");
    }

    #[test]
    fn empty_value_deletes_and_a_deleted_key_fails_cas() {
        let s = SharedData::new(1 << 20);
        s.set(b"k", b"value", 0).unwrap();
        let (_, cas) = s.get(b"k").unwrap();
        assert_eq!((s.len(), s.bytes()), (1, 6));
        s.set(b"k", b"", cas).unwrap();
        assert!(s.get(b"k").is_none());
        assert_eq!((s.len(), s.bytes()), (0, 0));
        assert_eq!(s.set(b"k", b"again", cas), Err(SetError::CasMismatch));
        s.set(b"never", b"", 0).unwrap();
        assert!(s.is_empty());
    }

    #[test]
    fn the_absent_cas_creates_only_a_missing_key() {
        let s = SharedData::new(1 << 20);
        s.set(b"k", b"first", ABSENT_CAS).unwrap();
        assert_eq!(s.set(b"k", b"second", ABSENT_CAS), Err(SetError::CasMismatch));
        assert_eq!(&s.get(b"k").unwrap().0[..], b"first");
        assert_ne!(s.get(b"k").unwrap().1, ABSENT_CAS);
    }

    #[test]
    fn byte_budget_is_enforced() {
        let s = SharedData::new(10);
        s.set(b"ab", b"12345678", 0).unwrap();
        assert_eq!(s.set(b"c", b"1", 0), Err(SetError::Full));
        assert_eq!(s.set(b"ab", b"123456789", 0), Err(SetError::Full));
        s.set(b"ab", b"1", 0).unwrap();
        s.set(b"c", b"1", 0).unwrap();
        assert_eq!(s.bytes(), 5);
    }

    /// Counters that go back to zero are deleted (as the edge filter's
    /// in-flight counters are); re-creating them must not lose updates.
    #[test]
    fn concurrent_counters_through_zero_lose_nothing() {
        fn add(s: &SharedData, delta: i64) {
            loop {
                let (n, cas) = s
                    .get(b"n")
                    .map(|(v, c)| (std::str::from_utf8(&v).unwrap().parse::<i64>().unwrap(), c))
                    .unwrap_or((0, ABSENT_CAS));
                let next = n + delta;
                assert!(next >= 0, "the counter went negative: an update was lost");
                let value = if next == 0 { String::new() } else { next.to_string() };
                match s.set(b"n", value.as_bytes(), cas) {
                    Ok(()) => return,
                    Err(SetError::CasMismatch) => continue,
                    Err(e) => panic!("{e:?}"),
                }
            }
        }
        let s = Arc::new(SharedData::new(1 << 20));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for _ in 0..2000 {
                        add(&s, 1);
                        add(&s, -1);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(s.get(b"n").is_none(), "back to zero, so deleted");
        assert_eq!((s.len(), s.bytes()), (0, 0));
    }

    #[test]
    fn queues_notify_their_owner() {
        let q = SharedQueues::default();
        let owner = Arc::new(QueueNotifier::default());
        let id = q.register(b"vm", b"events", owner.clone(), 1);
        assert_eq!(q.register(b"vm", b"events", owner.clone(), 1), id);
        assert_eq!(q.resolve(b"vm", b"events"), Some(id));
        assert_eq!(q.resolve(b"vm", b"other"), None);
        assert_eq!(q.dequeue(id), Ok(None));
        assert!(q.enqueue(id, b"a".to_vec()));
        assert!(!q.enqueue(id + 100, b"a".to_vec()));
        assert_eq!(owner.take(), vec![(1, id)]);
        assert_eq!(q.dequeue(id), Ok(Some(b"a".to_vec())));
        assert_eq!(q.dequeue(id + 100), Err(()));
    }
}
