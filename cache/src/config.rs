//! Typed configuration. The binary maps `pinion.toml`/environment settings onto these; this crate
//! never reads files or the environment itself.

use std::time::Duration;

/// Default time to live of an entry set without an explicit [`Ttl`](crate::Ttl): 300 s, as
/// Django's `TIMEOUT` and the `CACHE_TTL` setting.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(300);

/// Default key prefix (Django's `KEY_PREFIX`): none.
pub const DEFAULT_KEY_PREFIX: &str = "";

/// Default key version (Django's `VERSION`).
pub const DEFAULT_VERSION: u32 = 1;

/// Default capacity of a [`LocMemCache`](crate::LocMemCache), in entries.
///
/// Larger than Django's 300: the `world` table of the benchmarks has 10 000 rows, all hot.
pub const DEFAULT_MAX_ENTRIES: usize = 10_000;

/// Default time an entry stays in the L1 of a [`TwoTierCache`](crate::TwoTierCache): 10 s,
/// much shorter than L2's [`DEFAULT_CACHE_TTL`], so hot keys are re-read from L2 regularly.
pub const DEFAULT_L1_TTL: Duration = Duration::from_secs(10);

/// Default XFetch β: 1.0 is the paper's optimum; larger recomputes earlier.
pub const DEFAULT_XFETCH_BETA: f64 = 1.0;

/// Settings every cache has: default time to live and key layout.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheConfig {
    /// Time to live of entries set with [`Ttl::Default`](crate::Ttl::Default).
    ///
    /// Default is [`DEFAULT_CACHE_TTL`] (300 s).
    pub cache_ttl: Duration,
    /// Prefix of every key (Django's `KEY_PREFIX`).
    ///
    /// Default is [`DEFAULT_KEY_PREFIX`] (empty).
    pub key_prefix: String,
    /// Version of every key (Django's `VERSION`); bump it to orphan all entries at once.
    ///
    /// Default is [`DEFAULT_VERSION`] (1).
    pub version: u32,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            cache_ttl: DEFAULT_CACHE_TTL,
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
            version: DEFAULT_VERSION,
        }
    }
}

/// Settings of a [`LocMemCache`](crate::LocMemCache).
#[derive(Debug, Clone, PartialEq)]
pub struct LocMemConfig {
    /// Settings common to every cache.
    pub cache: CacheConfig,
    /// How many entries the cache holds before it evicts (quick_cache's CLOCK-Pro policy).
    /// quick_cache splits the capacity over its shards, so the bound is approximate.
    ///
    /// Default is [`DEFAULT_MAX_ENTRIES`] (10 000).
    pub max_entries: usize,
}

impl Default for LocMemConfig {
    fn default() -> Self {
        LocMemConfig {
            cache: CacheConfig::default(),
            max_entries: DEFAULT_MAX_ENTRIES,
        }
    }
}

/// Settings of a [`TwoTierCache`](crate::TwoTierCache).
#[derive(Debug, Clone, PartialEq)]
pub struct TwoTierConfig {
    /// Settings common to every cache; the tiers' own key layouts are not used.
    pub cache: CacheConfig,
    /// How long an entry stays in L1 after it was written or promoted from L2 (never past the
    /// entry's own expiry).
    ///
    /// Default is [`DEFAULT_L1_TTL`] (10 s).
    pub l1_ttl: Duration,
    /// What an L2 failure does: with `true` it is logged, counted in
    /// [`TwoTierStats::l2_errors`](crate::TwoTierStats::l2_errors) and L1 keeps serving; with
    /// `false` it is returned to the caller.
    ///
    /// Default is `true`.
    pub fail_silently: bool,
}

impl Default for TwoTierConfig {
    fn default() -> Self {
        TwoTierConfig {
            cache: CacheConfig::default(),
            l1_ttl: DEFAULT_L1_TTL,
            fail_silently: true,
        }
    }
}

/// Settings of XFetch early recomputation in
/// [`StampedeProtection`](crate::StampedeProtection).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct XFetchConfig {
    /// β: how early a read may recompute. 0 turns early recomputation off; 1.0 is the paper's
    /// optimum; 2.0 recomputes earlier still.
    ///
    /// Default is [`DEFAULT_XFETCH_BETA`] (1.0).
    pub beta: f64,
}

impl Default for XFetchConfig {
    fn default() -> Self {
        XFetchConfig {
            beta: DEFAULT_XFETCH_BETA,
        }
    }
}
