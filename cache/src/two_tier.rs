//! [`TwoTierCache`]: a fast per-process L1 in front of a shared L2.

use std::time::{Duration, SystemTime};

use crate::counter::Counter;
use crate::{Cache, CacheOptions, Entry, Error, TwoTierConfig};

/// An L1 cache (usually [`LocMemCache`](crate::LocMemCache)) in front of an L2 (usually the
/// PostgreSQL `DatabaseCache`).
///
/// - **Reads** try L1, then L2; an L2 hit is promoted into L1 for `l1_ttl`.
/// - **Writes** go to both: L1 holds the entry for `l1_ttl` at most
///   ([`Entry::keep_until`]), L2 for the full TTL. The entry's own expiry and Δ are kept in both
///   tiers, so XFetch sees the real expiry whichever tier answers.
/// - **`incr`/`decr`, `add`** are decided by L2 (the shared truth); L1's copy is then dropped
///   (`incr`) or written (`add`).
/// - **L2 failures**: with `fail_silently` (the default) they are logged with `tracing`, counted
///   in [`TwoTierStats::l2_errors`], and the operation carries on with L1 alone; without it they
///   are counted and returned. "No such key", "not an integer" and overflow are answers, not
///   failures: they are always returned.
///
/// The key layout is this cache's own ([`Cache::options`]); the tiers receive real keys and
/// their own prefixes and versions are not applied.
pub struct TwoTierCache<L1, L2> {
    l1: L1,
    l2: L2,
    l1_ttl: Duration,
    fail_silently: bool,
    options: CacheOptions,
    counters: Counters,
}

#[derive(Default)]
struct Counters {
    l1_hits: Counter,
    l2_hits: Counter,
    misses: Counter,
    l2_errors: Counter,
}

/// A snapshot of a [`TwoTierCache`]'s counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TwoTierStats {
    /// Reads answered by L1.
    pub l1_hits: u64,
    /// Reads answered by L2 (and promoted into L1).
    pub l2_hits: u64,
    /// Reads answered by neither (including those whose L2 read failed).
    pub misses: u64,
    /// L2 operations that failed.
    pub l2_errors: u64,
}

/// Whether an L2 error is a failure of L2 (rather than an answer about the key).
fn is_failure(err: &Error) -> bool {
    !(err.is_missing_key() || err.is_not_integer() || err.is_overflow() || err.is_type_mismatch())
}

impl<L1: Cache, L2: Cache> TwoTierCache<L1, L2> {
    /// Composes `l1` and `l2` with `config`, on the system clock.
    pub fn new(l1: L1, l2: L2, config: &TwoTierConfig) -> Self {
        TwoTierCache::with_options(l1, l2, config, CacheOptions::new(&config.cache))
    }

    /// Composes `l1` and `l2` with explicit options (a manual clock, a key function).
    pub fn with_options(l1: L1, l2: L2, config: &TwoTierConfig, options: CacheOptions) -> Self {
        TwoTierCache {
            l1,
            l2,
            l1_ttl: config.l1_ttl,
            fail_silently: config.fail_silently,
            options,
            counters: Counters::default(),
        }
    }

    /// The L1 tier.
    pub fn l1(&self) -> &L1 {
        &self.l1
    }

    /// The L2 tier.
    pub fn l2(&self) -> &L2 {
        &self.l2
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> TwoTierStats {
        TwoTierStats {
            l1_hits: self.counters.l1_hits.get(),
            l2_hits: self.counters.l2_hits.get(),
            misses: self.counters.misses.get(),
            l2_errors: self.counters.l2_errors.get(),
        }
    }

    /// `entry` as L1 holds it: at most `l1_ttl` from now.
    fn for_l1(&self, entry: Entry) -> Entry {
        let cap = self.options.clock().now().checked_add(self.l1_ttl);
        let keep_until = match (entry.keep_until(), cap) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        entry.with_keep_until(keep_until)
    }

    /// Handles an L2 result: a failure is counted, then logged and replaced by `fallback` when
    /// failing silently, or returned otherwise.
    async fn on_l2<T>(
        &self,
        op: &'static str,
        result: Result<T, Error>,
        fallback: impl AsyncFnOnce() -> Result<T, Error>,
    ) -> Result<T, Error> {
        match result {
            Err(err) if is_failure(&err) => {
                self.counters.l2_errors.incr();
                if !self.fail_silently {
                    return Err(err);
                }
                tracing::warn!(op, error = %err, "cache L2 failed; serving from L1");
                fallback().await
            }
            other => other,
        }
    }
}

impl<L1, L2> std::fmt::Debug for TwoTierCache<L1, L2> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwoTierCache")
            .field("l1_ttl", &self.l1_ttl)
            .field("fail_silently", &self.fail_silently)
            .finish_non_exhaustive()
    }
}

impl<L1: Cache, L2: Cache> Cache for TwoTierCache<L1, L2> {
    fn options(&self) -> &CacheOptions {
        &self.options
    }

    async fn get_entry(&self, key: &str) -> Result<Option<Entry>, Error> {
        if let Some(entry) = self.l1.get_entry(key).await? {
            self.counters.l1_hits.incr();
            return Ok(Some(entry));
        }
        let found = self.l2.get_entry(key).await;
        match self.on_l2("get", found, async || Ok(None)).await? {
            Some(entry) => {
                self.counters.l2_hits.incr();
                // Promotion shares the value: an encoded one decoded by the caller is decoded
                // once for every later L1 hit (see `Value`).
                self.l1.set_entry(key, self.for_l1(entry.clone())).await?;
                Ok(Some(entry))
            }
            None => {
                self.counters.misses.incr();
                Ok(None)
            }
        }
    }

    async fn set_entry(&self, key: &str, entry: Entry) -> Result<(), Error> {
        self.l1.set_entry(key, self.for_l1(entry.clone())).await?;
        let stored = self.l2.set_entry(key, entry).await;
        self.on_l2("set", stored, async || Ok(())).await
    }

    async fn delete_entry(&self, key: &str) -> Result<bool, Error> {
        let in_l1 = self.l1.delete_entry(key).await?;
        let in_l2 = self.l2.delete_entry(key).await;
        Ok(self.on_l2("delete", in_l2, async || Ok(false)).await? || in_l1)
    }

    async fn clear(&self) -> Result<(), Error> {
        self.l1.clear().await?;
        let cleared = self.l2.clear().await;
        self.on_l2("clear", cleared, async || Ok(())).await
    }

    async fn add_entry(&self, key: &str, entry: Entry) -> Result<bool, Error> {
        let added = self.l2.add_entry(key, entry.clone()).await;
        let l1_entry = self.for_l1(entry);
        let fallback = async || self.l1.add_entry(key, l1_entry.clone()).await;
        let added = self.on_l2("add", added, fallback).await?;
        if added {
            self.l1.set_entry(key, l1_entry).await?;
        }
        Ok(added)
    }

    async fn touch_entry(&self, key: &str, expires_at: Option<SystemTime>) -> Result<bool, Error> {
        let in_l1 = self.l1.touch_entry(key, expires_at).await?;
        let in_l2 = self.l2.touch_entry(key, expires_at).await;
        self.on_l2("touch", in_l2, async || Ok(in_l1)).await
    }

    async fn incr_entry(&self, key: &str, delta: i64) -> Result<i64, Error> {
        let result = self.l2.incr_entry(key, delta).await;
        if result.is_ok() {
            self.l1.delete_entry(key).await?;
        }
        self.on_l2("incr", result, async || {
            self.l1.incr_entry(key, delta).await
        })
        .await
    }

    async fn get_entries(&self, keys: &[String]) -> Result<Vec<Option<Entry>>, Error> {
        let mut found = self.l1.get_entries(keys).await?;
        let missing: Vec<usize> = (0..keys.len()).filter(|&i| found[i].is_none()).collect();
        self.counters.l1_hits.add(keys.len() - missing.len());
        if missing.is_empty() {
            return Ok(found);
        }
        let missing_keys: Vec<String> = missing.iter().map(|&i| keys[i].clone()).collect();
        let from_l2 = self.l2.get_entries(&missing_keys).await;
        let none = || vec![None; missing_keys.len()];
        let from_l2 = self.on_l2("get_many", from_l2, async || Ok(none())).await?;
        let mut promote = Vec::new();
        for (i, entry) in missing.into_iter().zip(from_l2) {
            match entry {
                Some(entry) => {
                    self.counters.l2_hits.incr();
                    promote.push((keys[i].clone(), self.for_l1(entry.clone())));
                    found[i] = Some(entry);
                }
                None => self.counters.misses.incr(),
            }
        }
        self.l1.set_entries(promote).await?;
        Ok(found)
    }

    async fn set_entries(&self, entries: Vec<(String, Entry)>) -> Result<(), Error> {
        let l1_entries = entries
            .iter()
            .map(|(k, e)| (k.clone(), self.for_l1(e.clone())))
            .collect();
        self.l1.set_entries(l1_entries).await?;
        let stored = self.l2.set_entries(entries).await;
        self.on_l2("set_many", stored, async || Ok(())).await
    }

    async fn delete_entries(&self, keys: &[String]) -> Result<(), Error> {
        self.l1.delete_entries(keys).await?;
        let deleted = self.l2.delete_entries(keys).await;
        self.on_l2("delete_many", deleted, async || Ok(())).await
    }
}
