//! [`LocMemCache`]: the in-process cache, on `quick_cache`.

use std::sync::Arc;
use std::time::SystemTime;

use quick_cache::sync::{EntryAction, EntryResult};
use quick_cache::{DefaultHashBuilder, Lifecycle, UnitWeighter};

use crate::counter::Counter;
use crate::{Cache, CacheOptions, Entry, Error, LocMemConfig};

/// The store: real key → entry, expiry kept with the value. `String` keys (not `Box<str>`)
/// because `quick_cache`'s `entry` API needs `str: ToOwned<Owned = Key>`.
type Store = quick_cache::sync::Cache<String, Entry, UnitWeighter, DefaultHashBuilder, Evictions>;

/// An in-process cache shared by all threads (`Arc<LocMemCache>`).
///
/// Built on `quick_cache::sync::Cache`: sharded, each shard behind a `parking_lot` lock, O(1)
/// get and set, CLOCK-Pro eviction once [`LocMemConfig::max_entries`] is reached. Values stay
/// typed ([`Value::new`](crate::Value::new)): a hit clones an `Arc` and the `T`, nothing is
/// serialized. Each entry carries its expiry; a read past it is a miss and removes the entry.
///
/// `add`, `incr`/`decr` and `touch` are atomic: they run under the shard's write lock through
/// `quick_cache`'s `entry` API.
pub struct LocMemCache {
    store: Store,
    counters: Arc<Counters>,
    options: CacheOptions,
}

#[derive(Default)]
struct Counters {
    hits: Counter,
    misses: Counter,
    evictions: Counter,
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

/// `quick_cache` lifecycle hook: counts evictions and holds evicted entries until the shard
/// lock is released, so dropping a large value never happens under the lock.
#[derive(Clone)]
struct Evictions(Arc<Counters>);

impl Lifecycle<String, Entry> for Evictions {
    type RequestState = [Option<(String, Entry)>; 2];

    fn begin_request(&self) -> Self::RequestState {
        [None, None]
    }

    fn on_evict(&self, state: &mut Self::RequestState, key: String, val: Entry) {
        self.0.evictions.incr();
        if let Some(slot) = state.iter_mut().find(|s| s.is_none()) {
            *slot = Some((key, val));
        }
    }
}

impl LocMemCache {
    /// A cache with `config`, on the system clock.
    pub fn new(config: &LocMemConfig) -> Self {
        LocMemCache::with_options(config.max_entries, CacheOptions::new(&config.cache))
    }

    /// A cache of `max_entries` with explicit options (a manual clock, a key function).
    pub fn with_options(max_entries: usize, options: CacheOptions) -> Self {
        let counters = Arc::new(Counters::default());
        let capacity = max_entries.max(1);
        let store = Store::with(
            capacity,
            capacity as u64,
            UnitWeighter,
            DefaultHashBuilder::default(),
            Evictions(Arc::clone(&counters)),
        );
        LocMemCache {
            store,
            counters,
            options,
        }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> LocMemStats {
        LocMemStats {
            hits: self.counters.hits.get(),
            misses: self.counters.misses.get(),
            evictions: self.counters.evictions.get(),
            expired: self.counters.expired.get(),
            len: self.store.len() as u64,
        }
    }

    fn now(&self) -> SystemTime {
        self.options.clock().now()
    }

    /// Whether `entry` is live, reading the clock only when it has a deadline (every hit of a
    /// `Ttl::Forever` entry saves the clock read).
    #[inline]
    fn is_live(&self, entry: &Entry) -> bool {
        match entry.deadline() {
            Some(deadline) => self.now() < deadline,
            None => true,
        }
    }

    /// The lookup behind `get_entry`, synchronous.
    #[inline]
    fn lookup(&self, key: &str) -> Option<Entry> {
        match self.store.get(key) {
            Some(entry) if self.is_live(&entry) => {
                self.counters.hits.incr();
                Some(entry)
            }
            Some(_) => {
                // Only remove it if it is still expired: a concurrent set may have replaced it.
                let now = self.now();
                if self.store.remove_if(key, |e| !e.is_live(now)).is_some() {
                    self.counters.expired.incr();
                }
                self.counters.misses.incr();
                None
            }
            None => {
                self.counters.misses.incr();
                None
            }
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

    #[inline]
    async fn get_entry(&self, key: &str) -> Result<Option<Entry>, Error> {
        Ok(self.lookup(key))
    }

    /// Overrides the provided `get` only to skip a layer of futures on the hot path
    /// (`benches/locmem.rs`, `get/1t/locmem`); same behaviour.
    #[inline]
    async fn get<T>(&self, key: &str) -> Result<Option<T>, Error>
    where
        T: serde::de::DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let key = self.options.keys().make(key);
        match self.lookup(&key) {
            Some(entry) => entry.value().get::<T>().map(Some),
            None => Ok(None),
        }
    }

    async fn set_entry(&self, key: &str, entry: Entry) -> Result<(), Error> {
        self.store.insert(key.to_owned(), entry);
        Ok(())
    }

    async fn delete_entry(&self, key: &str) -> Result<bool, Error> {
        let now = self.now();
        Ok(self.store.remove(key).is_some_and(|(_, e)| e.is_live(now)))
    }

    async fn clear(&self) -> Result<(), Error> {
        self.store.clear();
        Ok(())
    }

    async fn add_entry(&self, key: &str, entry: Entry) -> Result<bool, Error> {
        let now = self.now();
        let found = self.store.entry(key, None, |_, e| {
            if e.is_live(now) {
                EntryAction::Retain(())
            } else {
                EntryAction::ReplaceWithGuard
            }
        });
        Ok(match found {
            EntryResult::Vacant(guard) | EntryResult::Replaced(guard, _) => {
                guard.insert(entry).is_ok()
            }
            EntryResult::Retained(()) | EntryResult::Removed(..) | EntryResult::Timeout => false,
        })
    }

    async fn touch_entry(&self, key: &str, expires_at: Option<SystemTime>) -> Result<bool, Error> {
        let now = self.now();
        let found = self.store.entry(key, None, |_, e| {
            if e.is_live(now) {
                *e = e.clone().with_expires_at(expires_at);
                EntryAction::Retain(())
            } else {
                EntryAction::Remove
            }
        });
        // A vacant guard dropped without a value just removes its placeholder.
        Ok(matches!(found, EntryResult::Retained(())))
    }

    async fn has_entry(&self, key: &str) -> Result<bool, Error> {
        Ok(self.store.peek(key).is_some_and(|e| self.is_live(&e)))
    }

    async fn incr_entry(&self, key: &str, delta: i64) -> Result<i64, Error> {
        let now = self.now();
        let found = self.store.entry(key, None, |_, e| {
            if !e.is_live(now) {
                return EntryAction::Remove;
            }
            match e.value().incr(delta) {
                Ok((value, n)) => {
                    *e = Entry::new(value, e.expires_at())
                        .with_delta(e.delta())
                        .with_keep_until(e.keep_until());
                    EntryAction::Retain(Ok(n))
                }
                Err(err) => EntryAction::Retain(Err(err)),
            }
        });
        match found {
            EntryResult::Retained(result) => result,
            EntryResult::Removed(..) | EntryResult::Vacant(_) | EntryResult::Timeout => {
                Err(Error::missing_key())
            }
            EntryResult::Replaced(..) => Err(Error::missing_key()),
        }
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
