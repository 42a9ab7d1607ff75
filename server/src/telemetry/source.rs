//! Sources: callbacks through which other crates' objects (pools, caches) report their values.

use std::collections::HashMap;
use std::sync::Arc;

/// A process-wide source, as [`super::Telemetry::add_source`] keeps it.
pub(super) type ProcessSource = Arc<dyn Fn(&mut SourceSink) + Send + Sync>;

/// The metrics a source may report; the server owns their names, the sources only the values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum SourceMetric {
    PoolAvailable,
    PoolWaiters,
    CacheHits,
    CacheMisses,
    QueryCacheHits,
    QueryCacheMisses,
    QueryCacheBypasses,
    QueryCacheInvalidations,
    QueryCacheInSync,
}

impl SourceMetric {
    pub(super) const ALL: [SourceMetric; 9] = [
        SourceMetric::PoolAvailable,
        SourceMetric::PoolWaiters,
        SourceMetric::CacheHits,
        SourceMetric::CacheMisses,
        SourceMetric::QueryCacheHits,
        SourceMetric::QueryCacheMisses,
        SourceMetric::QueryCacheBypasses,
        SourceMetric::QueryCacheInvalidations,
        SourceMetric::QueryCacheInSync,
    ];

    /// Whether the value is a cumulative count (kept when its reporter goes away) rather than
    /// a level (dropped with it).
    pub(super) fn is_counter(self) -> bool {
        matches!(
            self,
            SourceMetric::CacheHits
                | SourceMetric::CacheMisses
                | SourceMetric::QueryCacheHits
                | SourceMetric::QueryCacheMisses
                | SourceMetric::QueryCacheBypasses
                | SourceMetric::QueryCacheInvalidations
        )
    }
}

/// One reporter's values: `(metric, label value) → value`.
pub(super) type SourceValues = HashMap<(SourceMetric, Box<str>), u64>;

/// Adds `from` into `into`, series by series.
pub(super) fn add_values(into: &mut SourceValues, from: &SourceValues) {
    for (key, v) in from {
        match into.get_mut(key) {
            Some(total) => *total = total.saturating_add(*v),
            None => {
                into.insert(key.clone(), *v);
            }
        }
    }
}

/// Where a source writes the current values of the objects it describes.
///
/// A source is called with an empty sink each time it is read (each fold for a thread's
/// sources, each scrape for process-wide ones) and reports *current* values: levels for the
/// pool gauges, running totals since the object was created for the cache counters. Reporting
/// the same series twice in one call adds the two values (two pools on one database). Series a
/// source stops reporting disappear from its contribution.
#[derive(Debug, Default)]
pub struct SourceSink {
    values: SourceValues,
}

impl SourceSink {
    /// Reports a connection pool of `database`: `available` connections usable without waiting
    /// (`pinion_pool_available`) and `waiters` tasks waiting for one (`pinion_pool_waiters`).
    pub fn pool(&mut self, database: &str, available: usize, waiters: usize) {
        self.add(SourceMetric::PoolAvailable, database, available as u64);
        self.add(SourceMetric::PoolWaiters, database, waiters as u64);
    }

    /// Reports the running hit and miss totals of `cache` (`pinion_cache_hits_total`,
    /// `pinion_cache_misses_total`). A total lower than the last one reported reads as a counter
    /// reset, which Prometheus' `rate()` handles.
    pub fn cache(&mut self, cache: &str, hits: u64, misses: u64) {
        self.add(SourceMetric::CacheHits, cache, hits);
        self.add(SourceMetric::CacheMisses, cache, misses);
    }

    /// Reports the ORM's query cache: running totals of reads answered from it
    /// (`pinion_query_cache_hits_total`), reads that filled it (`…_misses_total`), cacheable
    /// reads that skipped it (`…_bypasses_total`), table versions bumped
    /// (`…_invalidations_total`), and whether other instances' writes reach it
    /// (`pinion_query_cache_in_sync`, 1 or 0: its listening connection is up).
    pub fn query_cache(
        &mut self,
        hits: u64,
        misses: u64,
        bypasses: u64,
        invalidations: u64,
        in_sync: bool,
    ) {
        self.add(SourceMetric::QueryCacheHits, "", hits);
        self.add(SourceMetric::QueryCacheMisses, "", misses);
        self.add(SourceMetric::QueryCacheBypasses, "", bypasses);
        self.add(SourceMetric::QueryCacheInvalidations, "", invalidations);
        self.add(SourceMetric::QueryCacheInSync, "", u64::from(in_sync));
    }

    fn add(&mut self, metric: SourceMetric, label: &str, value: u64) {
        let v = self.values.entry((metric, Box::from(label))).or_insert(0);
        *v = v.saturating_add(value);
    }

    pub(super) fn into_values(self) -> SourceValues {
        self.values
    }
}
