//! Caches for pinion, with Django's cache API.
//!
//! One async [`Cache`] trait carries Django's operations (`get`, `set`, `add`, `delete`,
//! `touch`, `has`, `get_many`, `set_many`, `delete_many`, `incr`, `decr`, `clear`), with
//! Django's key layout (`"{prefix}:{version}:{key}"`, replaceable key function) and TTLs
//! ([`Ttl::Default`] is `cache_ttl`, 300 s). Values are typed through serde.
//!
//! ```
//! use pinion_cache::{Cache, LocMemCache, LocMemConfig, Ttl};
//! # futures_util::FutureExt::now_or_never(async {
//! let cache = LocMemCache::new(&LocMemConfig::default());
//! cache.set("greeting", "hello".to_owned(), Ttl::Default).await?;
//! assert_eq!(cache.get::<String>("greeting").await?.as_deref(), Some("hello"));
//! cache.set("views", 0u64, std::time::Duration::from_secs(60)).await?;
//! assert_eq!(cache.incr("views", 1).await?, 1);
//! # Ok::<(), pinion_cache::Error>(())
//! # }).unwrap().unwrap();
//! ```
//!
//! # Values: typed in process, bytes on the wire
//!
//! In-process tiers store a [`Value`] **typed** (an `Arc<T>` behind `dyn Any`): a hit is a
//! downcast and a clone, never a deserialization, which is what lets `/cached-queries` read
//! 100 entries a request cheaply. Remote tiers (the PostgreSQL `DatabaseCache` in
//! `pinion-orm`) store [`Value::to_bytes`] (JSON), the [`Entry`]'s deadline and its recompute
//! time Δ; an encoded value decodes once and remembers the result, so promotion into L1 costs
//! one deserialization, not one per hit.
//!
//! # Expiry
//!
//! In-process tiers check expiry against the kernel's coarse real-time clock
//! (`CLOCK_REALTIME_COARSE` on Linux: a few nanoseconds to read, a few milliseconds of
//! resolution), so an entry may be served up to one clock tick past its expiry. TTLs are
//! seconds to minutes; tests use [`Clock::manual`] and see exact expiry.
//!
//! # Composition
//!
//! A backend implements four entry-level methods (see [`Cache`]); everything else is
//! provided, and composes:
//!
//! - [`LocMemCache`]: in-process, on `quick_cache` (sharded, lock-protected, O(1)), shared by
//!   all threads through an `Arc`; a hit clones the value under the shard's read lock (small
//!   values are held in the entry itself), without building the real key; hits, misses and
//!   evictions counted.
//! - [`TwoTierCache`]: L1 + L2, promotion on L2 hits, `fail_silently` degradation.
//! - [`StampedeProtection`]: `get_or_compute` with a per-process single-flight guard and XFetch
//!   early recomputation.
//! - [`ConsistentHashRing`]: ketama-compatible node choice for sharding keys over backends.
//!
//! Settings are typed ([`CacheConfig`], [`LocMemConfig`], [`TwoTierConfig`],
//! [`XFetchConfig`]) with `DEFAULT_*` constants; the binary maps its settings onto them.
//!
//! # Layout
//!
//! The modules follow a value from the caller to storage:
//!
//! - `config`: typed settings and their defaults.
//! - `key`: prefix, version and key function → the real key.
//! - `clock`: wall-clock time for expiry (coarse system clock, or manual for tests).
//! - `entry`: [`Ttl`], [`Value`] and [`Entry`]: what a key holds in any tier.
//! - `cache`: the [`Cache`] trait: required entry-level methods, provided typed operations.
//! - `store`: the sharded map behind [`LocMemCache`]: compact entries, keys hashed in two
//!   halves.
//! - `locmem`: [`LocMemCache`].
//! - `two_tier`: [`TwoTierCache`].
//! - `stampede`: [`StampedeProtection`]: single-flight and XFetch.
//! - `ring`: [`ConsistentHashRing`].
//! - `counter`: per-thread striped counters behind the stats.
//! - `error`: the crate's [`Error`].

mod cache;
mod clock;
mod config;
mod counter;
mod entry;
mod error;
mod key;
mod locmem;
mod ring;
mod stampede;
mod store;
mod two_tier;

#[cfg(test)]
mod test_util;

pub use cache::{Cache, CacheOptions};
pub use clock::{Clock, ManualClock};
pub use config::{
    CacheConfig, LocMemConfig, TwoTierConfig, XFetchConfig, DEFAULT_CACHE_TTL, DEFAULT_KEY_PREFIX,
    DEFAULT_L1_TTL, DEFAULT_MAX_ENTRIES, DEFAULT_VERSION, DEFAULT_XFETCH_BETA,
};
pub use entry::{Entry, Stamp, Ttl, Value};
pub use error::Error;
pub use key::{default_key_function, KeyFunction, KeyMaker};
pub use locmem::{LocMemCache, LocMemStats};
pub use ring::{hashi, ConsistentHashRing, DEFAULT_VNODES};
pub use stampede::{RandomSource, StampedeProtection, StampedeStats};
pub use two_tier::{TwoTierCache, TwoTierStats};
