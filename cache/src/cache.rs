//! The [`Cache`] trait: the few entry-level methods a backend implements, and Django's typed
//! operations built on them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{CacheConfig, Clock, Entry, Error, KeyMaker, Stamp, Ttl, Value};

/// What every cache needs besides its storage: key layout, default TTL and clock.
///
/// A backend keeps one and returns it from [`Cache::options`].
#[derive(Debug, Clone, Default)]
pub struct CacheOptions {
    keys: KeyMaker,
    default_ttl: Duration,
    clock: Clock,
}

impl CacheOptions {
    /// Options from typed settings, on the system clock.
    pub fn new(config: &CacheConfig) -> Self {
        CacheOptions {
            keys: KeyMaker::new(&config.key_prefix, config.version),
            default_ttl: config.cache_ttl,
            clock: Clock::system(),
        }
    }

    /// Replaces the clock (a [`Clock::manual`] one in tests).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Replaces the key maker (for a custom [`KeyFunction`](crate::KeyFunction)).
    pub fn with_keys(mut self, keys: KeyMaker) -> Self {
        self.keys = keys;
        self
    }

    /// The key maker.
    pub fn keys(&self) -> &KeyMaker {
        &self.keys
    }

    /// The TTL of [`Ttl::Default`].
    pub fn default_ttl(&self) -> Duration {
        self.default_ttl
    }

    /// The clock expiry is computed and checked with.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The expiry of a value written now with `ttl`.
    pub fn expires_at(&self, ttl: Ttl) -> Option<SystemTime> {
        ttl.expires_at(self.clock.now(), self.default_ttl)
    }
}

/// A cache with Django's operations.
///
/// # Implementing a backend
///
/// A backend implements four entry-level methods, [`get_entry`](Cache::get_entry),
/// [`set_entry`](Cache::set_entry), [`delete_entry`](Cache::delete_entry) and
/// [`clear`](Cache::clear), plus [`options`](Cache::options). They take the *real* key (prefix
/// and version already applied) and move [`Entry`]s: a value with its expiry and recompute time
/// Δ. An in-process backend stores the entry as it is (typed, no serialization); a remote one
/// stores [`Value::to_bytes`], [`Entry::deadline`] and [`Entry::delta`], and rebuilds the entry
/// with [`Value::from_bytes`]. `get_entry` must not return an entry whose deadline has passed.
///
/// Everything else is provided: the typed operations, and defaults for `add_entry`,
/// `touch_entry`, `has_entry`, `incr_entry` and the `*_entries` batches. The defaults are
/// read-then-write, so **not atomic**: a backend that can do better overrides them
/// ([`LocMemCache`](crate::LocMemCache) under its shard lock, the PostgreSQL cache with one
/// upsert for `incr` and one query for `get_entries`). Such a backend then plugs into
/// [`TwoTierCache`](crate::TwoTierCache) (as either tier),
/// [`StampedeProtection`](crate::StampedeProtection) (single-flight and XFetch, which only
/// need Δ and the expiry round-tripped) and [`ConsistentHashRing`](crate::ConsistentHashRing)
/// routing.
///
/// Futures are not required to be `Send`: pinion runs one runtime per core.
#[allow(
    async_fn_in_trait,
    reason = "pinion is thread-per-core: callers never need the futures to be Send"
)]
pub trait Cache {
    /// Key layout, default TTL and clock.
    fn options(&self) -> &CacheOptions;

    /// The live entry under the real key `key`, if any.
    ///
    /// # Errors
    ///
    /// A backend failure ([`Error::backend`]).
    async fn get_entry(&self, key: &str) -> Result<Option<Entry>, Error>;

    /// Stores `entry` under the real key `key`, replacing any entry.
    ///
    /// # Errors
    ///
    /// A backend failure, or [`Error::is_encode`] for a remote backend.
    async fn set_entry(&self, key: &str, entry: Entry) -> Result<(), Error>;

    /// Deletes the real key `key`.
    ///
    /// # Return
    ///
    /// Whether there was an entry.
    ///
    /// # Errors
    ///
    /// A backend failure.
    async fn delete_entry(&self, key: &str) -> Result<bool, Error>;

    /// Deletes every entry (of every prefix and version).
    ///
    /// # Errors
    ///
    /// A backend failure.
    async fn clear(&self) -> Result<(), Error>;

    /// Stores `entry` only if no live entry is under `key`.
    ///
    /// The default reads then writes; override it where the backend can do it atomically.
    ///
    /// # Return
    ///
    /// Whether it stored.
    ///
    /// # Errors
    ///
    /// As [`Cache::set_entry`].
    async fn add_entry(&self, key: &str, entry: Entry) -> Result<bool, Error> {
        if self.get_entry(key).await?.is_some() {
            return Ok(false);
        }
        self.set_entry(key, entry).await?;
        Ok(true)
    }

    /// Gives the entry under `key` a new expiry.
    ///
    /// # Return
    ///
    /// Whether there was an entry.
    ///
    /// # Errors
    ///
    /// As [`Cache::set_entry`].
    async fn touch_entry(&self, key: &str, expires_at: Option<SystemTime>) -> Result<bool, Error> {
        match self.get_entry(key).await? {
            Some(entry) => {
                self.set_entry(key, entry.with_expires_at(expires_at))
                    .await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Whether a live entry is under `key`.
    ///
    /// # Errors
    ///
    /// As [`Cache::get_entry`].
    async fn has_entry(&self, key: &str) -> Result<bool, Error> {
        Ok(self.get_entry(key).await?.is_some())
    }

    /// Adds `delta` to the integer under `key`, keeping its expiry.
    ///
    /// The default reads then writes; override it where the backend can do it atomically.
    ///
    /// # Return
    ///
    /// The new value.
    ///
    /// # Errors
    ///
    /// [`Error::is_missing_key`] if there is no entry (Django's `ValueError`),
    /// [`Error::is_not_integer`], [`Error::is_overflow`], or a backend failure.
    async fn incr_entry(&self, key: &str, delta: i64) -> Result<i64, Error> {
        let entry = self.get_entry(key).await?.ok_or_else(Error::missing_key)?;
        let (value, n) = entry.value().incr(delta)?;
        let updated = Entry::new(value, entry.expires_at())
            .with_delta(entry.delta())
            .with_keep_until(entry.keep_until());
        self.set_entry(key, updated).await?;
        Ok(n)
    }

    /// The live entries under `keys`, in order.
    ///
    /// # Errors
    ///
    /// As [`Cache::get_entry`].
    async fn get_entries(&self, keys: &[String]) -> Result<Vec<Option<Entry>>, Error> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(self.get_entry(key).await?);
        }
        Ok(out)
    }

    /// Stores every `(key, entry)`.
    ///
    /// # Errors
    ///
    /// As [`Cache::set_entry`]; entries before the failing one are stored.
    async fn set_entries(&self, entries: Vec<(String, Entry)>) -> Result<(), Error> {
        for (key, entry) in entries {
            self.set_entry(&key, entry).await?;
        }
        Ok(())
    }

    /// Deletes every key in `keys`.
    ///
    /// # Errors
    ///
    /// As [`Cache::delete_entry`].
    async fn delete_entries(&self, keys: &[String]) -> Result<(), Error> {
        for key in keys {
            self.delete_entry(key).await?;
        }
        Ok(())
    }

    /// The value under `key` as a `T`, cloned.
    ///
    /// # Errors
    ///
    /// [`Error::is_type_mismatch`] if it was stored as another type, [`Error::is_decode`] if a
    /// remote tier's bytes don't deserialize into `T`, or a backend failure.
    #[inline]
    async fn get<T>(&self, key: &str) -> Result<Option<T>, Error>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let key = self.options().keys().make(key);
        match self.get_entry(&key).await? {
            Some(entry) => entry.value().get::<T>().map(Some),
            None => Ok(None),
        }
    }

    /// The value under `key` as a `T`, with its [`Stamp`] (expiry and recompute time): what a
    /// read-through with XFetch ([`StampedeProtection`](crate::StampedeProtection)) needs on a
    /// hit, in one lookup. A backend may override it to skip building the [`Entry`].
    ///
    /// # Errors
    ///
    /// As [`Cache::get`].
    async fn get_stamped<T>(&self, key: &str) -> Result<Option<(T, Stamp)>, Error>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let key = self.options().keys().make(key);
        match self.get_entry(&key).await? {
            Some(entry) => Ok(Some((entry.value().get::<T>()?, Stamp::of(&entry)))),
            None => Ok(None),
        }
    }

    /// The value under `key` as a shared `T`: no clone of the `T` (for large values).
    ///
    /// # Errors
    ///
    /// As [`Cache::get`].
    async fn get_shared<T>(&self, key: &str) -> Result<Option<Arc<T>>, Error>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        let key = self.options().keys().make(key);
        match self.get_entry(&key).await? {
            Some(entry) => entry.value().get_shared::<T>().map(Some),
            None => Ok(None),
        }
    }

    /// Stores `value` under `key` for `ttl` ([`Ttl::Default`], [`Ttl::Forever`], or a
    /// `Duration`). A zero duration deletes the key instead, as Django's `timeout=0`.
    ///
    /// # Errors
    ///
    /// As [`Cache::set_entry`].
    async fn set<T>(&self, key: &str, value: T, ttl: impl Into<Ttl>) -> Result<(), Error>
    where
        T: Serialize + Send + Sync + 'static,
    {
        let ttl = ttl.into();
        let key = self.options().keys().make(key);
        if ttl.is_zero() {
            self.delete_entry(&key).await?;
            return Ok(());
        }
        let entry = Entry::new(Value::new(value), self.options().expires_at(ttl));
        self.set_entry(&key, entry).await
    }

    /// Stores `value` under `key` only if the key holds no live value.
    ///
    /// # Return
    ///
    /// Whether it stored. With a zero TTL nothing is stored and the result says whether it
    /// would have been.
    ///
    /// # Errors
    ///
    /// As [`Cache::set_entry`].
    async fn add<T>(&self, key: &str, value: T, ttl: impl Into<Ttl>) -> Result<bool, Error>
    where
        T: Serialize + Send + Sync + 'static,
    {
        let ttl = ttl.into();
        let key = self.options().keys().make(key);
        if ttl.is_zero() {
            return Ok(!self.has_entry(&key).await?);
        }
        let entry = Entry::new(Value::new(value), self.options().expires_at(ttl));
        self.add_entry(&key, entry).await
    }

    /// Deletes `key`.
    ///
    /// # Return
    ///
    /// Whether it held a value.
    ///
    /// # Errors
    ///
    /// As [`Cache::delete_entry`].
    async fn delete(&self, key: &str) -> Result<bool, Error> {
        let key = self.options().keys().make(key);
        self.delete_entry(&key).await
    }

    /// Gives `key` a new TTL, counted from now (a zero duration deletes it).
    ///
    /// # Return
    ///
    /// Whether it held a value.
    ///
    /// # Errors
    ///
    /// As [`Cache::set_entry`].
    async fn touch(&self, key: &str, ttl: impl Into<Ttl>) -> Result<bool, Error> {
        let ttl = ttl.into();
        let key = self.options().keys().make(key);
        if ttl.is_zero() {
            return self.delete_entry(&key).await;
        }
        let expires_at = self.options().expires_at(ttl);
        self.touch_entry(&key, expires_at).await
    }

    /// Whether `key` holds a live value.
    ///
    /// # Errors
    ///
    /// As [`Cache::get_entry`].
    async fn has(&self, key: &str) -> Result<bool, Error> {
        let key = self.options().keys().make(key);
        self.has_entry(&key).await
    }

    /// The values under `keys` that are present, keyed by the caller's key.
    ///
    /// # Errors
    ///
    /// As [`Cache::get`], for any of the keys.
    async fn get_many<T>(&self, keys: &[&str]) -> Result<HashMap<String, T>, Error>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let real: Vec<String> = keys
            .iter()
            .map(|k| self.options().keys().make_key(k))
            .collect();
        let entries = self.get_entries(&real).await?;
        let mut out = HashMap::with_capacity(entries.len());
        for (key, entry) in keys.iter().zip(entries) {
            if let Some(entry) = entry {
                out.insert((*key).to_owned(), entry.value().get::<T>()?);
            }
        }
        Ok(out)
    }

    /// Stores every `(key, value)` with one `ttl`.
    ///
    /// # Errors
    ///
    /// As [`Cache::set_entries`].
    async fn set_many<K, T>(
        &self,
        items: impl IntoIterator<Item = (K, T)>,
        ttl: impl Into<Ttl>,
    ) -> Result<(), Error>
    where
        K: AsRef<str>,
        T: Serialize + Send + Sync + 'static,
    {
        let ttl = ttl.into();
        let keys = self.options().keys();
        if ttl.is_zero() {
            let real: Vec<String> = items
                .into_iter()
                .map(|(k, _)| keys.make_key(k.as_ref()))
                .collect();
            return self.delete_entries(&real).await;
        }
        let expires_at = self.options().expires_at(ttl);
        let entries = items
            .into_iter()
            .map(|(k, v)| {
                (
                    keys.make_key(k.as_ref()),
                    Entry::new(Value::new(v), expires_at),
                )
            })
            .collect();
        self.set_entries(entries).await
    }

    /// Deletes every key in `keys`.
    ///
    /// # Errors
    ///
    /// As [`Cache::delete_entries`].
    async fn delete_many(&self, keys: &[&str]) -> Result<(), Error> {
        let real: Vec<String> = keys
            .iter()
            .map(|k| self.options().keys().make_key(k))
            .collect();
        self.delete_entries(&real).await
    }

    /// Adds `delta` to the integer under `key`, keeping its TTL.
    ///
    /// # Return
    ///
    /// The new value.
    ///
    /// # Errors
    ///
    /// As Django: a missing key is an error ([`Error::is_missing_key`]), not a fresh counter
    /// (use [`Cache::add`] first); [`Error::is_not_integer`] for another value;
    /// [`Error::is_overflow`] past the stored integer type's range.
    async fn incr(&self, key: &str, delta: i64) -> Result<i64, Error> {
        let key = self.options().keys().make(key);
        self.incr_entry(&key, delta).await
    }

    /// Subtracts `delta` from the integer under `key`.
    ///
    /// # Errors
    ///
    /// As [`Cache::incr`].
    async fn decr(&self, key: &str, delta: i64) -> Result<i64, Error> {
        let negated = delta.checked_neg().ok_or_else(Error::overflow)?;
        self.incr(key, negated).await
    }
}
