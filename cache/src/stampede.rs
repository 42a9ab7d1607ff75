//! [`StampedeProtection`]: read-through `get_or_compute` with a per-process single-flight
//! guard and XFetch early recomputation.

use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use crate::counter::Counter;
use crate::{Cache, CacheOptions, Entry, Error, Stamp, Ttl, Value, XFetchConfig};

/// A source of random numbers in `(0, 1]` for XFetch. Injectable so tests are deterministic.
pub type RandomSource = Arc<dyn Fn() -> f64 + Send + Sync>;

/// A cache wrapped with stampede protection (Vattani, Chierichetti, Lowenstein, "Optimal
/// Probabilistic Cache Stampede Prevention", VLDB 2015).
///
/// [`get_or_compute`](StampedeProtection::get_or_compute) reads through the cache and:
///
/// - **single-flight**: when many tasks (on any threads) miss the same key at once, one runs the
///   computation and the others wait for its result, without blocking their threads (a
///   `tokio::sync::Mutex` per key in flight; no tokio runtime needed). If the computation fails or
///   is cancelled, a waiter takes over.
/// - **XFetch**: each entry stores the computation's duration Δ beside its expiry, in every
///   tier. A read recomputes early when `now − Δ·β·ln(rand()) ≥ expiry`; since `ln(rand()) < 0`
///   this fires with a probability that rises towards 1 as expiry nears, and sooner for slow
///   computations. Only one early recomputation runs per key; other readers keep getting the
///   current value meanwhile.
///
/// The wrapper is itself a [`Cache`] (every operation delegated, atomic ones included), so it
/// composes with [`TwoTierCache`](crate::TwoTierCache) and any backend. Cache failures inside
/// `get_or_compute` are logged and counted, never returned: the computed value is still served.
pub struct StampedeProtection<C> {
    inner: C,
    beta: f64,
    random: RandomSource,
    flights: Flights,
    counters: Counters,
}

#[derive(Default)]
struct Counters {
    computations: Counter,
    early_refreshes: Counter,
    coalesced: Counter,
    cache_errors: Counter,
}

/// A snapshot of a [`StampedeProtection`]'s counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StampedeStats {
    /// Computations run (misses plus early refreshes).
    pub computations: u64,
    /// Computations started early by XFetch, before expiry.
    pub early_refreshes: u64,
    /// Calls that waited for another call's computation instead of running their own.
    pub coalesced: u64,
    /// Cache reads or writes that failed inside `get_or_compute` (logged, then ignored).
    pub cache_errors: u64,
}

impl<C: Cache> StampedeProtection<C> {
    /// Wraps `inner` with `config`'s β and the default random source.
    pub fn new(inner: C, config: &XFetchConfig) -> Self {
        StampedeProtection {
            inner,
            beta: config.beta,
            random: Arc::new(default_random),
            flights: Flights::default(),
            counters: Counters::default(),
        }
    }

    /// Replaces the random source; it must return numbers in `(0, 1]`.
    pub fn with_random(mut self, random: impl Fn() -> f64 + Send + Sync + 'static) -> Self {
        self.random = Arc::new(random);
        self
    }

    /// The wrapped cache.
    pub fn inner(&self) -> &C {
        &self.inner
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> StampedeStats {
        StampedeStats {
            computations: self.counters.computations.get(),
            early_refreshes: self.counters.early_refreshes.get(),
            coalesced: self.counters.coalesced.get(),
            cache_errors: self.counters.cache_errors.get(),
        }
    }

    /// The value under `key`, computed by `compute` and cached for `ttl` when absent (or when
    /// XFetch decides to refresh it early). Wrap an async function as
    /// `cache.get_or_compute(&key, ttl, || load_stats(org_id))`.
    ///
    /// A cached value of another type than `T` is treated as a miss and overwritten.
    ///
    /// # Errors
    ///
    /// Only `compute`'s: cache failures are logged and counted in
    /// [`StampedeStats::cache_errors`].
    pub async fn get_or_compute<T, E, F, Fut>(
        &self,
        key: &str,
        ttl: impl Into<Ttl>,
        compute: F,
    ) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let ttl = ttl.into();
        // A hit needs neither the real key nor the entry: the value and its stamp, in one
        // lookup (`get_stamped`; LocMemCache clones the `T` under its read lock).
        let hit = match self.read_stamped::<T>(key).await {
            Some((value, stamp)) if !self.refresh_early(&stamp) => return Ok(value),
            other => other,
        };
        // A miss or an early refresh: the single-flight table is keyed by the real key.
        let key = self.inner.options().keys().make_key(key);
        if let Some((value, _)) = hit {
            return match self.flights.try_lead(&key) {
                Some(leader) => {
                    self.counters.early_refreshes.incr();
                    self.compute(leader, &key, ttl, compute).await
                }
                // Another call is already refreshing: keep serving the current value.
                None => Ok(value),
            };
        }
        let leader = match self.flights.join(&key) {
            Role::Leader(leader) => leader,
            Role::Follower(flight) => {
                self.counters.coalesced.incr();
                let guard = flight.lock_owned().await;
                if let Some(value) = guard.as_ref().and_then(|v| v.get::<T>().ok()) {
                    return Ok(value);
                }
                // The leader failed or was cancelled: this call takes over.
                Leader::new(&self.flights, key.clone(), guard)
            }
        };
        // A flight that finished between our read and our join has stored the value.
        if let Some((value, entry)) = self.read::<T>(&key).await {
            leader.publish(entry.into_value());
            return Ok(value);
        }
        self.compute(leader, &key, ttl, compute).await
    }

    /// Reads the caller's `key` as a `T` with its stamp; failures and mismatched types are
    /// logged and read as a miss.
    async fn read_stamped<T>(&self, key: &str) -> Option<(T, Stamp)>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        match self.inner.get_stamped::<T>(key).await {
            Ok(found) => found,
            Err(err) => {
                self.cache_failed("get", &err);
                None
            }
        }
    }

    /// Reads `key` as a `T`; failures and mismatched types are logged and read as a miss.
    async fn read<T>(&self, key: &str) -> Option<(T, Entry)>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let entry = match self.inner.get_entry(key).await {
            Ok(entry) => entry?,
            Err(err) => {
                self.cache_failed("get", &err);
                return None;
            }
        };
        match entry.value().get::<T>() {
            Ok(value) => Some((value, entry)),
            Err(err) => {
                self.cache_failed("get", &err);
                None
            }
        }
    }

    fn cache_failed(&self, op: &'static str, err: &Error) {
        self.counters.cache_errors.incr();
        tracing::warn!(op, error = %err, "cache failed in get_or_compute; computing anyway");
    }

    /// XFetch: whether a read at the clock's now recomputes `entry` early.
    fn refresh_early(&self, stamp: &Stamp) -> bool {
        let Some(expiry) = stamp.expires_at else {
            return false;
        };
        let delta = stamp.delta;
        if delta.is_zero() || self.beta <= 0.0 {
            return false;
        }
        let now = self.inner.options().clock().now();
        xfetch(now, delta, self.beta, (self.random)(), expiry)
    }

    /// Runs `compute` as `leader`: measures Δ, stores the entry, hands the value to waiters.
    async fn compute<T, E, F, Fut>(
        &self,
        leader: Leader<'_>,
        key: &str,
        ttl: Ttl,
        compute: F,
    ) -> Result<T, E>
    where
        T: Serialize + Clone + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let started = Instant::now();
        // On error (or cancellation) `leader` drops unpublished and a waiter takes over.
        let value = compute().await?;
        let delta = started.elapsed();
        self.counters.computations.incr();
        let shared = Value::new(value.clone());
        if !ttl.is_zero() {
            let expires_at = self.inner.options().expires_at(ttl);
            let entry = Entry::new(shared.clone(), expires_at).with_delta(delta);
            if let Err(err) = self.inner.set_entry(key, entry).await {
                self.cache_failed("set", &err);
            }
        }
        leader.publish(shared);
        Ok(value)
    }
}

/// XFetch's test: `now − Δ·β·ln(r) ≥ expiry`, with `r` in `(0, 1]`.
fn xfetch(now: SystemTime, delta: Duration, beta: f64, r: f64, expiry: SystemTime) -> bool {
    // −ln(r) ≥ 0; r = 0 (or NaN) gives an infinite gap: recompute.
    let gap = delta.as_secs_f64() * beta * -r.ln();
    match Duration::try_from_secs_f64(gap) {
        Ok(gap) => now.checked_add(gap).is_none_or(|t| t >= expiry),
        Err(_) => true,
    }
}

/// The default random source: a per-thread xorshift64*, seeded from std's random hasher keys.
/// Statistical quality is ample for a coin flip per read; no dependency, no lock.
fn default_random() -> f64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new(RandomState::new().hash_one(std::thread::current().id()) | 1);
    }
    STATE
        .try_with(|s| {
            let mut x = s.get();
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            s.set(x);
            let bits = x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
            // (0, 1]: never 0, whose logarithm is −∞.
            (bits + 1) as f64 / (1u64 << 53) as f64
        })
        .unwrap_or(0.5)
}

/// The computation in flight for a key: its result once published, behind an async lock the
/// leader holds while computing.
type Flight = AsyncMutex<Option<Value>>;

/// The flights in progress, by real key.
#[derive(Default)]
struct Flights {
    /// A sync lock is right here: it is taken only on a miss, for one hash-map operation, and
    /// never held across an `.await` (the per-key async lock is what callers wait on).
    map: Mutex<HashMap<String, Arc<Flight>>>,
}

enum Role<'a> {
    Leader(Leader<'a>),
    Follower(Arc<Flight>),
}

impl Flights {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Flight>>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Joins the flight for `key`, starting one if none is running.
    fn join(&self, key: &str) -> Role<'_> {
        let mut map = self.lock();
        if let Some(flight) = map.get(key) {
            // Unlocked: its leader failed and nobody waited. Lead it.
            return match Arc::clone(flight).try_lock_owned() {
                Ok(guard) => Role::Leader(Leader::new(self, key.to_owned(), guard)),
                Err(_) => Role::Follower(Arc::clone(flight)),
            };
        }
        let flight = Arc::new(AsyncMutex::new(None));
        match Arc::clone(&flight).try_lock_owned() {
            Ok(guard) => {
                map.insert(key.to_owned(), flight);
                Role::Leader(Leader::new(self, key.to_owned(), guard))
            }
            // A fresh lock is always free; were it not, waiting on it is still correct.
            Err(_) => Role::Follower(flight),
        }
    }

    /// Starts a flight for `key` only if none is running (early refresh).
    fn try_lead(&self, key: &str) -> Option<Leader<'_>> {
        match self.join(key) {
            Role::Leader(leader) => Some(leader),
            Role::Follower(_) => None,
        }
    }
}

/// The right to compute a key. Dropping it publishes nothing; the first waiter then leads.
struct Leader<'a> {
    flights: &'a Flights,
    key: String,
    guard: Option<OwnedMutexGuard<Option<Value>>>,
}

impl<'a> Leader<'a> {
    fn new(flights: &'a Flights, key: String, guard: OwnedMutexGuard<Option<Value>>) -> Self {
        Leader {
            flights,
            key,
            guard: Some(guard),
        }
    }

    /// Hands `value` to every waiter and ends the flight.
    fn publish(mut self, value: Value) {
        if let Some(guard) = self.guard.as_mut() {
            **guard = Some(value);
        }
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        let Some(guard) = self.guard.take() else {
            return;
        };
        let flight = OwnedMutexGuard::mutex(&guard);
        let mut map = self.flights.lock();
        if let Some(current) = map.get(&self.key) {
            // The map and this guard hold the only references when nobody waits. New waiters
            // need the map lock, which we hold, so the count cannot grow under us.
            let unwaited = Arc::strong_count(flight) <= 2;
            if Arc::ptr_eq(current, flight) && (guard.is_some() || unwaited) {
                map.remove(&self.key);
            }
        }
        drop(map);
        // Releasing the async lock wakes the waiters, who read the published value.
        drop(guard);
    }
}

impl<C> std::fmt::Debug for StampedeProtection<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StampedeProtection")
            .field("beta", &self.beta)
            .finish_non_exhaustive()
    }
}

impl<C: Cache> Cache for StampedeProtection<C> {
    fn options(&self) -> &CacheOptions {
        self.inner.options()
    }

    async fn get_entry(&self, key: &str) -> Result<Option<Entry>, Error> {
        self.inner.get_entry(key).await
    }

    async fn set_entry(&self, key: &str, entry: Entry) -> Result<(), Error> {
        self.inner.set_entry(key, entry).await
    }

    async fn delete_entry(&self, key: &str) -> Result<bool, Error> {
        self.inner.delete_entry(key).await
    }

    async fn clear(&self) -> Result<(), Error> {
        self.inner.clear().await
    }

    async fn add_entry(&self, key: &str, entry: Entry) -> Result<bool, Error> {
        self.inner.add_entry(key, entry).await
    }

    async fn touch_entry(&self, key: &str, expires_at: Option<SystemTime>) -> Result<bool, Error> {
        self.inner.touch_entry(key, expires_at).await
    }

    async fn has_entry(&self, key: &str) -> Result<bool, Error> {
        self.inner.has_entry(key).await
    }

    async fn incr_entry(&self, key: &str, delta: i64) -> Result<i64, Error> {
        self.inner.incr_entry(key, delta).await
    }

    async fn get_entries(&self, keys: &[String]) -> Result<Vec<Option<Entry>>, Error> {
        self.inner.get_entries(keys).await
    }

    async fn set_entries(&self, entries: Vec<(String, Entry)>) -> Result<(), Error> {
        self.inner.set_entries(entries).await
    }

    async fn delete_entries(&self, keys: &[String]) -> Result<(), Error> {
        self.inner.delete_entries(keys).await
    }
}
