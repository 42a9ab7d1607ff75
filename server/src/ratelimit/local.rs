//! The in-process store: every worker thread of one server shares it.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

use super::client::ClientKey;
use super::gcra::{gcra, Decision};
use super::policy::Policy;

/// The default bound on the keys a [`LocalStore`] tracks: at about 100 bytes a key, 10 MiB.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// Shards at most: with 2 to 64 worker threads, two threads rarely want the same lock.
const SHARDS: usize = 32;

/// A key's state is its TAT; the policy name is part of the key so one store serves every
/// policy.
type Key = (Arc<str>, ClientKey);

/// One shard, on its own cache lines so that two threads locking neighbouring shards do not
/// contend for one line.
#[repr(align(128))]
struct Shard {
    /// A `parking_lot` mutex rather than a read-write lock: every decision writes, and the
    /// critical section is one hash lookup and a few integer operations — short enough that
    /// a spinning-then-parking mutex is the cheapest lock there is. Never held across
    /// `.await` (the store has none).
    map: Mutex<HashMap<Key, u64>>,
}

/// GCRA state for every key, in memory, shared by all worker threads of a process.
///
/// Sharded by key hash; a decision takes one shard lock for one lookup and one write. Memory
/// is bounded: at most `max_keys` keys in all. A shard that is full when a new key arrives
/// first drops its idle keys (TAT ≤ now: they carry no state), then, if still full, the
/// eighth of its keys with the earliest TATs — the ones closest to idle, which lose the least
/// by being forgotten — so eviction work is amortized over many insertions. Call
/// [`sweep`](Self::sweep) from a timer to drop idle keys in between.
///
/// Time is nanoseconds since the store was created, on the monotonic clock ([`now`](Self::now)),
/// passed in explicitly so tests control it: `store.decide_at(&policy, key, store.now())`, or
/// [`RateStore::decide`](super::RateStore::decide), which reads the clock itself.
pub struct LocalStore {
    shards: Box<[Shard]>,
    /// Keys one shard may hold: `max_keys / shards`.
    shard_capacity: usize,
    hasher: RandomState,
    origin: Instant,
}

impl LocalStore {
    /// A store for at most `max_keys` keys (at least 1).
    pub fn new(max_keys: usize) -> LocalStore {
        let max_keys = max_keys.max(1);
        // A power of two no larger than max_keys, so every shard holds at least one key and
        // the shards together never exceed max_keys.
        let shards = SHARDS.min(1 << max_keys.ilog2());
        LocalStore {
            shards: (0..shards)
                .map(|_| Shard {
                    map: Mutex::new(HashMap::new()),
                })
                .collect(),
            shard_capacity: max_keys / shards,
            hasher: RandomState::new(),
            origin: Instant::now(),
        }
    }

    /// A store behind an `Arc`, ready to hand to every worker.
    pub fn shared(max_keys: usize) -> Arc<LocalStore> {
        Arc::new(LocalStore::new(max_keys))
    }

    /// Nanoseconds since the store was created (monotonic).
    pub fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Decides for `client` under `policy` at `now` (nanoseconds on this store's clock), and
    /// records the new TAT when the request is allowed.
    pub fn decide_at(&self, policy: &Policy, client: ClientKey, now: u64) -> Decision {
        let key: Key = (Arc::clone(policy.name_arc()), client);
        let shard = self.shard(&key);
        let mut map = shard.map.lock();
        if let Some(tat) = map.get_mut(&key) {
            let decision = gcra(Some(*tat), now, policy);
            *tat = decision.new_tat;
            return decision;
        }
        // A key without state is always allowed.
        let decision = gcra(None, now, policy);
        if map.len() >= self.shard_capacity {
            evict(&mut map, now, self.shard_capacity);
        }
        map.insert(key, decision.new_tat);
        decision
    }

    /// Drops every idle key (TAT ≤ `now`), one shard at a time.
    ///
    /// # Return
    /// How many keys were dropped.
    pub fn sweep(&self, now: u64) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                let mut map = shard.map.lock();
                let before = map.len();
                map.retain(|_, tat| *tat > now);
                before - map.len()
            })
            .sum()
    }

    /// [`sweep`](Self::sweep) at [`now`](Self::now).
    pub fn sweep_now(&self) -> usize {
        self.sweep(self.now())
    }

    /// How many keys are tracked.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.map.lock().len()).sum()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bound given to [`new`](Self::new), rounded down to a multiple of the shard count.
    pub fn capacity(&self) -> usize {
        self.shard_capacity * self.shards.len()
    }

    fn shard(&self, key: &Key) -> &Shard {
        // The high bits: the map inside hashes with its own seed, so they stay independent.
        let h = self.hasher.hash_one(key);
        &self.shards[(h >> 32) as usize & (self.shards.len() - 1)]
    }
}

impl std::fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStore")
            .field("shards", &self.shards.len())
            .field("capacity", &self.capacity())
            .finish_non_exhaustive()
    }
}

/// Makes room in a full shard: idle keys first, then the earliest TATs, down to 7/8 of
/// `capacity` (so the next insertions find room without scanning again).
fn evict(map: &mut HashMap<Key, u64>, now: u64, capacity: usize) {
    map.retain(|_, tat| *tat > now);
    let target = capacity - capacity / 8 - 1;
    if map.len() <= target {
        return;
    }
    let mut tats: Vec<u64> = map.values().copied().collect();
    let excess = map.len() - target;
    let (_, &mut cut, _) = tats.select_nth_unstable(excess - 1);
    // Every key before the cut goes, and as many at the cut as make up `excess`: keys often
    // share a TAT (a burst of new clients within one clock tick), and dropping all of them
    // would empty the shard.
    let before = tats.iter().filter(|&&t| t < cut).count();
    let mut ties = excess - before;
    map.retain(|_, tat| {
        if *tat < cut {
            false
        } else if *tat == cut && ties > 0 {
            ties -= 1;
            false
        } else {
            true
        }
    });
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::Duration;

    use super::*;

    fn ip(n: u32) -> ClientKey {
        ClientKey::Ip(IpAddr::V4(Ipv4Addr::from(n)))
    }

    #[test]
    fn shard_count_never_exceeds_the_bound() {
        for max in [1, 2, 3, 31, 32, 33, 100, 1000] {
            let store = LocalStore::new(max);
            assert!(store.capacity() <= max, "{max}");
            assert!(store.capacity() >= 1);
        }
        assert_eq!(LocalStore::new(0).capacity(), 1);
    }

    #[test]
    fn policies_do_not_share_state() {
        let store = LocalStore::new(100);
        let a = Policy::new("a", 1, Duration::from_secs(60)).expect("valid");
        let b = Policy::new("b", 1, Duration::from_secs(60)).expect("valid");
        assert!(store.decide_at(&a, ip(1), 0).allowed);
        assert!(!store.decide_at(&a, ip(1), 0).allowed);
        assert!(store.decide_at(&b, ip(1), 0).allowed);
        assert!(store.decide_at(&a, ip(2), 0).allowed);
        assert_eq!(store.len(), 3);
    }

    #[test]
    fn eviction_prefers_idle_then_earliest() {
        let p = Policy::new("p", 1, Duration::from_secs(1)).expect("valid");
        let store = LocalStore::new(1);
        assert!(store.decide_at(&p, ip(1), 0).allowed);
        assert!(!store.decide_at(&p, ip(1), 0).allowed);
        // A new key evicts the only one; the bound holds.
        assert!(store.decide_at(&p, ip(2), 0).allowed);
        assert_eq!(store.len(), 1);
        assert!(!store.decide_at(&p, ip(2), 0).allowed);
    }

    #[test]
    fn evict_drops_idle_keys_first_then_the_earliest() {
        let p: Arc<str> = "p".into();
        let mut map: HashMap<Key, u64> = (0..16u32)
            .map(|n| ((p.clone(), ip(n)), 100 + u64::from(n)))
            .collect();
        map.insert((p.clone(), ip(99)), 5);
        // The idle key (TAT 5 ≤ now 10) goes first, then the earliest TATs, down to 7/8 of
        // the capacity less one: 17 - 2 - 1 = 14.
        evict(&mut map, 10, 17);
        assert_eq!(map.len(), 14);
        assert!(!map.contains_key(&(p.clone(), ip(99))));
        evict(&mut map, 10, 16);
        assert_eq!(map.len(), 13);
        let mut kept: Vec<u64> = map.values().copied().collect();
        kept.sort_unstable();
        assert_eq!(kept, (103..116).collect::<Vec<u64>>());
    }

    #[test]
    fn evict_removes_exactly_the_excess_among_equal_tats() {
        let p: Arc<str> = "p".into();
        let mut map: HashMap<Key, u64> = (0..32u32).map(|n| ((p.clone(), ip(n)), 50)).collect();
        evict(&mut map, 10, 32);
        assert_eq!(map.len(), 32 - 4 - 1);
        // And when the idle keys alone make enough room, no live key goes.
        let mut map: HashMap<Key, u64> = (0..32u32)
            .map(|n| ((p.clone(), ip(n)), if n < 8 { 1 } else { 50 }))
            .collect();
        evict(&mut map, 10, 32);
        assert_eq!(map.len(), 24);
    }

    #[test]
    fn clock_moves_forward() {
        let store = LocalStore::new(1);
        let a = store.now();
        assert!(store.now() >= a);
    }
}
