//! [`LocMemCache`]: the in-process cache, on `quick_cache`.

use std::sync::Arc;
use std::time::SystemTime;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::counter::Counter;
use crate::store::{Head, Probe, Slot, Store};
use crate::{Cache, CacheOptions, Entry, Error, LocMemConfig, Stamp, Ttl};

/// An in-process cache shared by all threads (`Arc<LocMemCache>`).
///
/// Built on `quick_cache`: sharded, each shard behind a lock, O(1) get and set, CLOCK-Pro
/// eviction once [`LocMemConfig::max_entries`] is reached. Values stay typed
/// ([`Value::new`](crate::Value::new)): a hit clones the `T` under the shard's read lock,
/// nothing is serialized and no reference count is touched. Values of up to 16 bytes without
/// drop glue (a `World`, an integer) that `set` stores are held in the entry itself, so a hit
/// does not follow a pointer; they move into an `Arc` the first time something needs them
/// shared (`get_shared`, `get_entry`, `incr`). Each entry carries its expiry; a read past it
/// is a miss and removes the entry.
///
/// With Django's default key function (and a prefix without `:`), `get`, `get_shared` and
/// `set` never build the real key `"{prefix}:{version}:{key}"`: the store hashes the head
/// once and compares the caller's key in place. Real keys passed to the entry-level methods
/// (by [`TwoTierCache`](crate::TwoTierCache), another key layout, …) find the same entries.
///
/// `add`, `incr`/`decr` and `touch` are atomic: they run under the shard's write lock.
pub struct LocMemCache {
    store: Store,
    /// The hashed `"{prefix}:{version}:"` of `options`' key maker, when its layout is Django's
    /// default (and its prefix has no `:`).
    head: Option<Head>,
    counters: Counters,
    options: CacheOptions,
}

#[derive(Default)]
struct Counters {
    hits: Counter,
    misses: Counter,
    expired: Counter,
}

/// A snapshot of a [`LocMemCache`]'s counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LocMemStats {
    /// Gets that found a live entry.
    pub hits: u64,
    /// Gets that found nothing, or an expired entry.
    pub misses: u64,
    /// Entries evicted to stay within `max_entries` (counted by `quick_cache`'s lifecycle hook).
    pub evictions: u64,
    /// Expired entries removed when read.
    pub expired: u64,
    /// Entries held now (expired ones included until read or evicted).
    pub len: u64,
}

impl LocMemCache {
    /// A cache with `config`, on the system clock.
    pub fn new(config: &LocMemConfig) -> Self {
        LocMemCache::with_options(config.max_entries, CacheOptions::new(&config.cache))
    }

    /// A cache of `max_entries` with explicit options (a manual clock, a key function).
    pub fn with_options(max_entries: usize, options: CacheOptions) -> Self {
        let store = Store::new(max_entries);
        let head = options.keys().default_head().and_then(|h| store.head(h));
        LocMemCache {
            store,
            head,
            counters: Counters::default(),
            options,
        }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> LocMemStats {
        LocMemStats {
            hits: self.counters.hits.get(),
            misses: self.counters.misses.get(),
            evictions: self.store.evictions(),
            expired: self.counters.expired.get(),
            len: self.store.len() as u64,
        }
    }

    fn now_nanos(&self) -> u64 {
        self.options.clock().now_nanos()
    }

    /// Runs `f` on the probe for the caller's `key`: built from the hashed head when the key
    /// layout is the default one, from the real key otherwise.
    #[inline]
    fn with_probe<R>(&self, key: &str, f: impl FnOnce(&Probe<'_>) -> R) -> R {
        match &self.head {
            Some(head) => f(&self.store.probe_in(head, key)),
            None => {
                let real = self.options.keys().make(key);
                f(&self.store.probe(&real))
            }
        }
    }

    /// `read` of the live slot under `probe`, counting the hit or miss; an expired slot is
    /// removed. `read` runs under the shard's read lock.
    #[inline]
    fn lookup<R>(&self, probe: &Probe<'_>, read: impl FnOnce(&Slot) -> R) -> Option<R> {
        // The clock is read before the shard's lock is taken, not under it: at two threads a
        // longer critical section is more often overlapped by the other core's, and the lock's
        // cache line travels more (`benches/locmem.rs`, `get/2t/locmem`).
        let now = self.now_nanos();
        match self
            .store
            .get(probe, |slot| slot.is_live_at(now).then(|| read(slot)))
        {
            Some(Some(found)) => {
                self.counters.hits.incr();
                Some(found)
            }
            Some(None) => {
                self.remove_expired(probe);
                self.counters.misses.incr();
                None
            }
            None => {
                self.counters.misses.incr();
                None
            }
        }
    }

    /// `read` of the live slot under `probe` once its value is shared ([`Slot::share`]),
    /// under the shard's write lock: for the reads that hand the value out while it is held
    /// in place. `None` if the slot expired or went in the meantime.
    #[cold]
    fn share<R>(&self, probe: &Probe<'_>, read: impl FnOnce(&Slot) -> R) -> Option<R> {
        let now = self.now_nanos();
        self.store.write(probe, |map| {
            let mut slot = map.peek_mut(probe)?;
            if !slot.is_live_at(now) {
                return None;
            }
            slot.share();
            Some(read(&slot))
        })
    }

    #[cold]
    fn remove_expired(&self, probe: &Probe<'_>) {
        // Only remove it if it is still expired: a concurrent set may have replaced it.
        let now = self.now_nanos();
        if self
            .store
            .remove_if(probe, |slot| !slot.is_live_at(now))
            .is_some()
        {
            self.counters.expired.incr();
        }
    }
}

impl std::fmt::Debug for LocMemCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocMemCache")
            .field("capacity", &self.store.capacity())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Cache for LocMemCache {
    fn options(&self) -> &CacheOptions {
        &self.options
    }

    async fn get_entry(&self, key: &str) -> Result<Option<Entry>, Error> {
        let probe = self.store.probe(key);
        Ok(match self.lookup(&probe, Slot::to_entry) {
            Some(Some(entry)) => Some(entry),
            Some(None) => self.share(&probe, |slot| slot.to_entry()).flatten(),
            None => None,
        })
    }

    /// Overrides the provided `get` to look the key up without building it and to clone the
    /// `T` under the shard's read lock (`benches/locmem.rs`, `get/*/locmem`); same behaviour.
    #[inline]
    async fn get<T>(&self, key: &str) -> Result<Option<T>, Error>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        self.with_probe(key, |probe| self.lookup(probe, Slot::get::<T>))
            .transpose()
    }

    /// Overrides the provided `get_stamped` as `get` is: no key built, the `T` cloned under
    /// the read lock, the stamp read from the slot; same behaviour.
    #[inline]
    async fn get_stamped<T>(&self, key: &str) -> Result<Option<(T, Stamp)>, Error>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        self.with_probe(key, |probe| {
            self.lookup(probe, |slot| slot.get::<T>().map(|v| (v, slot.stamp())))
        })
        .transpose()
    }

    /// Overrides the provided `get_shared` to look the key up without building it; same
    /// behaviour.
    async fn get_shared<T>(&self, key: &str) -> Result<Option<Arc<T>>, Error>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        self.with_probe(key, |probe| {
            match self.lookup(probe, Slot::get_shared::<T>) {
                Some(Some(found)) => Some(found),
                Some(None) => self.share(probe, |slot| slot.get_shared::<T>()).flatten(),
                None => None,
            }
        })
        .transpose()
    }

    /// Overrides the provided `set` to store under the key without building it twice
    /// (`benches/locmem.rs`, `set/*/locmem`); same behaviour.
    async fn set<T>(&self, key: &str, value: T, ttl: impl Into<Ttl>) -> Result<(), Error>
    where
        T: Serialize + Send + Sync + 'static,
    {
        let ttl = ttl.into();
        if ttl.is_zero() {
            drop(self.with_probe(key, |probe| self.store.remove(probe)));
            return Ok(());
        }
        let slot = Slot::typed(value, self.options.expires_at(ttl));
        self.with_probe(key, |probe| self.store.insert(probe, slot));
        Ok(())
    }

    async fn set_entry(&self, key: &str, entry: Entry) -> Result<(), Error> {
        self.store
            .insert(&self.store.probe(key), Slot::from_entry(entry));
        Ok(())
    }

    async fn delete_entry(&self, key: &str) -> Result<bool, Error> {
        let now = self.now_nanos();
        let removed = self.store.remove(&self.store.probe(key));
        Ok(removed.is_some_and(|slot| slot.is_live_at(now)))
    }

    async fn clear(&self) -> Result<(), Error> {
        self.store.clear();
        Ok(())
    }

    async fn add_entry(&self, key: &str, entry: Entry) -> Result<bool, Error> {
        let now = self.now_nanos();
        let probe = self.store.probe(key);
        let evicted = self.store.write(&probe, |map| {
            if map.peek(&probe).is_some_and(|slot| slot.is_live_at(now)) {
                return None;
            }
            Some(map.insert_with_lifecycle(probe.to_key(), Slot::from_entry(entry)))
        });
        Ok(evicted.is_some())
    }

    async fn touch_entry(&self, key: &str, expires_at: Option<SystemTime>) -> Result<bool, Error> {
        let now = self.now_nanos();
        let probe = self.store.probe(key);
        let (touched, removed) = self.store.write(&probe, |map| {
            if let Some(mut slot) = map.peek_mut(&probe) {
                if slot.is_live_at(now) {
                    slot.set_expires_at(expires_at);
                    return (true, None);
                }
            }
            (false, map.remove(&probe))
        });
        drop(removed);
        Ok(touched)
    }

    async fn has_entry(&self, key: &str) -> Result<bool, Error> {
        let now = self.now_nanos();
        Ok(self
            .store
            .peek(&self.store.probe(key), |slot| slot.is_live_at(now))
            .unwrap_or(false))
    }

    async fn incr_entry(&self, key: &str, delta: i64) -> Result<i64, Error> {
        let now = self.now_nanos();
        let probe = self.store.probe(key);
        let (result, removed) = self.store.write(&probe, |map| {
            if let Some(mut slot) = map.get_mut(&probe) {
                if slot.is_live_at(now) {
                    let result = slot.share().incr(delta).map(|(value, n)| {
                        slot.set_value(value);
                        n
                    });
                    return (result, None);
                }
            }
            (Err(Error::missing_key()), map.remove(&probe))
        });
        drop(removed);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{block_on, View};
    use crate::{CacheConfig, Clock, ManualClock, Ttl};
    use std::time::{Duration, UNIX_EPOCH};

    fn cache_with_clock(max_entries: usize) -> (LocMemCache, ManualClock) {
        let (clock, hand) = Clock::manual(UNIX_EPOCH + Duration::from_secs(1_000_000));
        let options = CacheOptions::new(&CacheConfig::default()).with_clock(clock);
        (LocMemCache::with_options(max_entries, options), hand)
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn get_set_delete_has() {
        block_on(async {
            let (c, _) = cache_with_clock(100);
            assert_eq!(c.get::<String>("k").await.unwrap(), None);
            c.set("k", "v".to_owned(), Ttl::Default).await.unwrap();
            assert_eq!(c.get::<String>("k").await.unwrap().as_deref(), Some("v"));
            assert!(c.has("k").await.unwrap());
            assert!(c.delete("k").await.unwrap());
            assert!(!c.delete("k").await.unwrap());
            assert!(!c.has("k").await.unwrap());
            let stats = c.stats();
            assert_eq!((stats.hits, stats.misses), (1, 1));
        });
    }

    #[test]
    fn get_stamped_gives_the_value_with_the_entry_s_expiry_and_delta() {
        block_on(async {
            let (c, hand) = cache_with_clock(100);
            assert_eq!(c.get_stamped::<u32>("s").await.unwrap(), None);
            c.set("s", 7u32, secs(60)).await.unwrap();
            let real = c.options().keys().make("s");
            let entry = c.get_entry(&real).await.unwrap().unwrap();
            let (v, stamp) = c.get_stamped::<u32>("s").await.unwrap().unwrap();
            assert_eq!(v, 7);
            assert_eq!(stamp, Stamp::of(&entry));
            let now = c.options().clock().now();
            assert_eq!(stamp.expires_at, Some(now + secs(60)));
            // A recompute time stored with the entry comes back too.
            let with_delta = Entry::new(crate::Value::new(8u32), Some(now + secs(5)))
                .with_delta(Duration::from_millis(40));
            c.set_entry(&real, with_delta).await.unwrap();
            let (v, stamp) = c.get_stamped::<u32>("s").await.unwrap().unwrap();
            assert_eq!((v, stamp.delta), (8, Duration::from_millis(40)));
            assert!(c
                .get_stamped::<String>("s")
                .await
                .unwrap_err()
                .is_type_mismatch());
            hand.advance(secs(6));
            assert_eq!(c.get_stamped::<u32>("s").await.unwrap(), None, "expired");
        });
    }

    #[test]
    fn typed_values_are_shared_not_serialized() {
        block_on(async {
            let (c, _) = cache_with_clock(100);
            c.set("v", vec![1u8; 1000], Ttl::Forever).await.unwrap();
            let a = c.get_shared::<Vec<u8>>("v").await.unwrap().unwrap();
            let b = c.get_shared::<Vec<u8>>("v").await.unwrap().unwrap();
            assert!(Arc::ptr_eq(&a, &b));
            assert!(c.get::<Vec<u16>>("v").await.unwrap_err().is_type_mismatch());
        });
    }

    #[test]
    fn default_ttl_is_cache_ttl() {
        block_on(async {
            let (c, hand) = cache_with_clock(100);
            c.set("k", 1u32, Ttl::Default).await.unwrap();
            hand.advance(secs(299));
            assert_eq!(c.get::<u32>("k").await.unwrap(), Some(1));
            hand.advance(secs(1));
            assert_eq!(
                c.get::<u32>("k").await.unwrap(),
                None,
                "expired at exactly 300 s"
            );
            assert_eq!(c.stats().expired, 1);
            assert_eq!(c.stats().len, 0, "an expired read removes the entry");
        });
    }

    #[test]
    fn explicit_and_forever_ttls() {
        block_on(async {
            let (c, hand) = cache_with_clock(100);
            c.set("short", 1u32, secs(5)).await.unwrap();
            c.set("forever", 2u32, Ttl::Forever).await.unwrap();
            hand.advance(secs(5));
            assert_eq!(c.get::<u32>("short").await.unwrap(), None);
            hand.advance(secs(365 * 24 * 3600));
            assert_eq!(c.get::<u32>("forever").await.unwrap(), Some(2));
        });
    }

    #[test]
    fn zero_ttl_deletes() {
        block_on(async {
            let (c, _) = cache_with_clock(100);
            c.set("k", 1u32, Ttl::Forever).await.unwrap();
            c.set("k", 2u32, Duration::ZERO).await.unwrap();
            assert!(!c.has("k").await.unwrap());
        });
    }

    #[test]
    fn add_only_when_absent_or_expired() {
        block_on(async {
            let (c, hand) = cache_with_clock(100);
            assert!(c.add("k", 1u32, secs(10)).await.unwrap());
            assert!(!c.add("k", 2u32, secs(10)).await.unwrap());
            assert_eq!(c.get::<u32>("k").await.unwrap(), Some(1));
            hand.advance(secs(10));
            assert!(
                c.add("k", 3u32, secs(10)).await.unwrap(),
                "an expired entry counts as absent"
            );
            assert_eq!(c.get::<u32>("k").await.unwrap(), Some(3));
        });
    }

    #[test]
    fn touch_sets_a_new_ttl() {
        block_on(async {
            let (c, hand) = cache_with_clock(100);
            assert!(!c.touch("missing", secs(10)).await.unwrap());
            c.set("k", 1u32, secs(10)).await.unwrap();
            hand.advance(secs(8));
            assert!(c.touch("k", secs(10)).await.unwrap());
            hand.advance(secs(8));
            assert_eq!(
                c.get::<u32>("k").await.unwrap(),
                Some(1),
                "alive 16 s after the set"
            );
            assert!(c.touch("k", Ttl::Forever).await.unwrap());
            hand.advance(secs(1_000_000));
            assert_eq!(c.get::<u32>("k").await.unwrap(), Some(1));
            assert!(c.touch("k", Duration::ZERO).await.unwrap());
            assert!(!c.has("k").await.unwrap());
        });
    }

    #[test]
    fn incr_decr_semantics() {
        block_on(async {
            let (c, hand) = cache_with_clock(100);
            assert!(c.incr("n", 1).await.unwrap_err().is_missing_key());
            c.set("n", 10i64, secs(10)).await.unwrap();
            assert_eq!(c.incr("n", 1).await.unwrap(), 11);
            assert_eq!(c.incr("n", 5).await.unwrap(), 16);
            assert_eq!(c.decr("n", 20).await.unwrap(), -4);
            assert_eq!(c.get::<i64>("n").await.unwrap(), Some(-4));
            c.set("small", 255u8, Ttl::Default).await.unwrap();
            assert!(c.incr("small", 1).await.unwrap_err().is_overflow());
            assert_eq!(
                c.get::<u8>("small").await.unwrap(),
                Some(255),
                "unchanged on overflow"
            );
            c.set("s", "text".to_owned(), Ttl::Default).await.unwrap();
            assert!(c.incr("s", 1).await.unwrap_err().is_not_integer());
            assert!(c.decr("n", i64::MIN).await.unwrap_err().is_overflow());
            hand.advance(secs(10));
            assert!(
                c.incr("n", 1).await.unwrap_err().is_missing_key(),
                "incr keeps the TTL"
            );
        });
    }

    #[test]
    fn many_operations() {
        block_on(async {
            let (c, _) = cache_with_clock(100);
            c.set_many([("a", 1u32), ("b", 2)], Ttl::Default)
                .await
                .unwrap();
            let got = c.get_many::<u32>(&["a", "b", "c"]).await.unwrap();
            assert_eq!(got.len(), 2);
            assert_eq!((got["a"], got["b"]), (1, 2));
            c.delete_many(&["a", "c"]).await.unwrap();
            assert_eq!(c.get_many::<u32>(&["a", "b"]).await.unwrap().len(), 1);
            c.clear().await.unwrap();
            assert!(!c.has("b").await.unwrap());
        });
    }

    #[test]
    fn prefix_and_version_isolate_keys() {
        block_on(async {
            let store = LocMemCache::new(&LocMemConfig::default());
            let view = |prefix: &str, version| View {
                store: &store,
                options: CacheOptions::new(&CacheConfig {
                    key_prefix: prefix.to_owned(),
                    version,
                    ..CacheConfig::default()
                }),
            };
            let (v1, v2, site) = (view("", 1), view("", 2), view("site", 1));
            v1.set("k", 1u32, Ttl::Default).await.unwrap();
            v2.set("k", 2u32, Ttl::Default).await.unwrap();
            assert_eq!(site.get::<u32>("k").await.unwrap(), None);
            site.set("k", 3u32, Ttl::Default).await.unwrap();
            assert_eq!(v1.get::<u32>("k").await.unwrap(), Some(1));
            assert_eq!(v2.get::<u32>("k").await.unwrap(), Some(2));
            assert_eq!(site.get::<u32>("k").await.unwrap(), Some(3));
            assert!(v2.delete("k").await.unwrap());
            assert_eq!(v1.get::<u32>("k").await.unwrap(), Some(1));
            assert!(
                store.get_entry("site:1:k").await.unwrap().is_some(),
                "real key layout"
            );
        });
    }

    #[test]
    fn small_values_are_shared_on_demand() {
        block_on(async {
            let (c, hand) = cache_with_clock(100);
            c.set("w", (1i32, 2i32), secs(10)).await.unwrap();
            let entry = c.get_entry(":1:w").await.unwrap().unwrap();
            assert_eq!(entry.value().get::<(i32, i32)>().unwrap(), (1, 2));
            let a = c.get_shared::<(i32, i32)>("w").await.unwrap().unwrap();
            let b = c.get_shared::<(i32, i32)>("w").await.unwrap().unwrap();
            assert!(Arc::ptr_eq(&a, &b));
            assert_eq!(c.get::<(i32, i32)>("w").await.unwrap(), Some((1, 2)));
            assert!(c.get::<u64>("w").await.unwrap_err().is_type_mismatch());
            hand.advance(secs(10));
            assert_eq!(c.get_shared::<(i32, i32)>("w").await.unwrap(), None);
            assert_eq!(c.stats().expired, 1);
        });
    }

    #[test]
    fn custom_key_functions_and_colon_prefixes_take_the_slow_path() {
        fn flat(_: &str, _: u32, key: &str, out: &mut String) {
            out.push_str("flat/");
            out.push_str(key);
        }
        block_on(async {
            let options = CacheOptions::new(&CacheConfig::default())
                .with_keys(crate::KeyMaker::new("", 1).with_function(flat));
            let c = LocMemCache::with_options(100, options);
            c.set("k", 7u8, Ttl::Default).await.unwrap();
            assert_eq!(c.get::<u8>("k").await.unwrap(), Some(7));
            assert!(c.get_entry("flat/k").await.unwrap().is_some());

            let colon = CacheOptions::new(&CacheConfig {
                key_prefix: "a:b".to_owned(),
                ..CacheConfig::default()
            });
            let c = LocMemCache::with_options(100, colon);
            c.set("k", 8u8, Ttl::Default).await.unwrap();
            assert_eq!(c.get::<u8>("k").await.unwrap(), Some(8));
            assert!(c.get_entry("a:b:1:k").await.unwrap().is_some());
        });
    }

    #[test]
    fn evictions_are_counted() {
        block_on(async {
            let (c, _) = cache_with_clock(10);
            for i in 0..1000u32 {
                c.set(&i.to_string(), i, Ttl::Forever).await.unwrap();
            }
            let stats = c.stats();
            assert!(stats.len <= 20, "{stats:?}");
            assert_eq!(stats.evictions + stats.len, 1000, "{stats:?}");
        });
    }
}
