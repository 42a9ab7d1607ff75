//! The query cache: results of query-set reads kept in a [`pinion_cache::Cache`] under a key
//! made of the SQL, its parameters and the current version of every table the query reads.
//!
//! Correctness rests on three rules:
//! - **Versions are read before the query runs**, and the result is stored under them: a
//!   write committed while the query runs bumps the version, so whatever the query saw is
//!   stored under a version no later read asks for.
//! - **Versions are bumped after commit**, by every write path, in this process at once and
//!   in every other process through `NOTIFY` sent in the writing transaction (delivered only
//!   if it commits) to the process's one [listening connection](listen). While that
//!   connection is down the cache is bypassed; when it is back, every version is bumped
//!   (notifications sent meanwhile are gone).
//! - **Replicas never fill the cache with what a bump made stale**: each bump records the
//!   primary's WAL position after the commit, and a read that fills the cache for a bumped
//!   table goes to a replica only once that replica has replayed past it, else to the primary.
//!
//! A key names the statement by its process-wide id, the epoch and versions by how far they
//! are past the process's start, and the parameters by their `Debug` text: short enough for
//! the LocMemCache to keep inline. Over any other store (a remote tier that processes share)
//! every key also starts with the process's random base, so two processes never mean
//! different data by the same key.

mod listener;
mod rows;

use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use pinion_cache::{Cache, LocMemCache, Ttl};
use rustc_hash::FxHashMap;

use crate::pipeline::PipelineStatement;

pub use crate::listener::Listener;
pub use listener::{listen, subscriber};
pub(crate) use rows::CachedRows;

/// The channel that carries version bumps between processes. A payload is
/// `origin:table,table`: the sending process's [`QueryCache`] tag (16 hex digits), so that a
/// process skips the notifications of its own writes (it bumped them at their commit), and
/// the tables written. A payload without the tag is taken as a list of tables.
pub const CHANNEL: &str = "pinion_query_cache";

/// The length of the origin tag that starts a payload of [`CHANNEL`].
const ORIGIN_LEN: usize = 16;

/// A boxed future of the store: the cache trait's futures are not object-safe, and the
/// backend is chosen at start-up.
type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// The cache backend, type-erased.
trait Store: Send + Sync {
    fn get<'a>(&'a self, key: &'a str) -> Boxed<'a, Option<Arc<CachedRows>>>;
    fn set<'a>(&'a self, key: &'a str, rows: CachedRows, ttl: Ttl) -> Boxed<'a, ()>;
}

/// A cache as the query cache reads it: a failed read is a miss, a failed write is logged.
async fn read_from<C: Cache>(cache: &C, key: &str) -> Option<Arc<CachedRows>> {
    match cache.get_shared::<CachedRows>(key).await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(error = %e, "query cache read failed; the query runs instead");
            None
        }
    }
}

async fn write_to<C: Cache>(cache: &C, key: &str, rows: CachedRows, ttl: Ttl) {
    if let Err(e) = Cache::set(cache, key, rows, ttl).await {
        tracing::warn!(error = %e, "query cache write failed");
    }
}

/// Any store but the LocMemCache, behind the type-erased trait. (`None` never happens: the
/// slot the constructor takes a LocMemCache out of; it would be an empty store.)
impl<C: Cache + Send + Sync + 'static> Store for Option<C> {
    fn get<'a>(&'a self, key: &'a str) -> Boxed<'a, Option<Arc<CachedRows>>> {
        Box::pin(async move {
            match self {
                Some(cache) => read_from(cache, key).await,
                None => None,
            }
        })
    }

    fn set<'a>(&'a self, key: &'a str, rows: CachedRows, ttl: Ttl) -> Boxed<'a, ()> {
        Box::pin(async move {
            if let Some(cache) = self {
                write_to(cache, key, rows, ttl).await;
            }
        })
    }
}

/// Where the entries live: the default LocMemCache, called directly (no boxed future per
/// read: it answers without waiting), or another store through [`Store`].
enum Backend {
    Local(LocMemCache),
    Other(Box<dyn Store>),
}

impl Backend {
    fn of<C: Cache + Send + Sync + 'static>(store: C) -> Backend {
        let mut slot = Some(store);
        let local = (&mut slot as &mut dyn std::any::Any)
            .downcast_mut::<Option<LocMemCache>>()
            .and_then(Option::take);
        match local {
            Some(local) => Backend::Local(local),
            None => Backend::Other(Box::new(slot)),
        }
    }

    async fn get(&self, key: &str) -> Option<Arc<CachedRows>> {
        match self {
            Backend::Local(cache) => read_from(cache, key).await,
            Backend::Other(store) => store.get(key).await,
        }
    }

    async fn set(&self, key: &str, rows: CachedRows, ttl: Ttl) {
        match self {
            Backend::Local(cache) => write_to(cache, key, rows, ttl).await,
            Backend::Other(store) => store.set(key, rows, ttl).await,
        }
    }

    fn is_local(&self) -> bool {
        matches!(self, Backend::Local(_))
    }
}

/// What a table's entry in the version table holds.
#[derive(Debug, Clone, Copy)]
struct TableVersion {
    version: u64,
    /// The primary's WAL position after the last bump: a replica that has not replayed this
    /// far may still return the rows that bump invalidated.
    lsn: u64,
}

/// The versions a read saw, before it ran.
pub(crate) struct Seen {
    pub(crate) key: String,
    /// The highest WAL position among the tables read.
    pub(crate) lsn: u64,
}

/// Counts for `/metrics` (`pinion_query_cache_*_total`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct QueryCacheStats {
    /// Reads answered from the cache.
    pub hits: u64,
    /// Cacheable reads that ran and filled the cache.
    pub misses: u64,
    /// Cacheable reads that skipped the cache: inside a transaction, forced onto a database
    /// by name (`.using`), or while the listening connection is down. (`.cache(false)` reads
    /// opted out and are not counted.)
    pub bypasses: u64,
    /// Table versions bumped (by a write here, or a notification from another process).
    pub invalidations: u64,
}

/// The process's query cache; one, shared by every worker thread (the versions and the
/// backend are lock-protected inside).
pub struct QueryCache {
    store: Backend,
    versions: RwLock<FxHashMap<Box<str>, TableVersion>>,
    /// Where new tables' versions start: random per process.
    base: u64,
    /// What every key starts with: nothing over a LocMemCache (this process's alone), else
    /// the base, so that processes sharing the store never share a key.
    scope: Box<str>,
    /// Part of every key; bumped to invalidate everything at once.
    epoch: AtomicU64,
    /// The WAL position every fill must have replayed, whatever its tables (set when the
    /// listening connection first came up, and each time it came back).
    floor: AtomicU64,
    /// Whether another process's writes reach us: false while the listening connection is
    /// down (then the cache is bypassed). True without a listener (a single process).
    in_sync: AtomicBool,
    hits: AtomicU64,
    misses: AtomicU64,
    bypasses: AtomicU64,
    invalidations: AtomicU64,
}

impl std::fmt::Debug for QueryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryCache")
            .field("stats", &self.stats())
            .field("in_sync", &self.is_in_sync())
            .finish_non_exhaustive()
    }
}

impl QueryCache {
    /// A query cache over `store`: a `LocMemCache` by default, or any cache every thread can
    /// share (`Send + Sync`, a `TwoTierCache` of two such tiers). The versions are this
    /// process's, so a tier shared with other processes keeps each process's entries apart
    /// (their keys start with its random base). The `DatabaseCache` is a thread's own (it
    /// holds the thread's connections) and cannot be the store. Reads default to the store's
    /// `cache_ttl`, or the model's.
    pub fn new<C: Cache + Send + Sync + 'static>(store: C) -> Arc<QueryCache> {
        let base = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ u64::from(std::process::id()) << 32;
        let store = Backend::of(store);
        let local = store.is_local();
        Arc::new(QueryCache {
            store,
            versions: RwLock::new(FxHashMap::default()),
            base,
            scope: if local {
                "".into()
            } else {
                format!("{base:x}.").into()
            },
            epoch: AtomicU64::new(base),
            floor: AtomicU64::new(0),
            in_sync: AtomicBool::new(true),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            bypasses: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
        })
    }

    /// The payload that announces a commit writing `tables` on [`CHANNEL`].
    pub(crate) fn notify_payload(&self, tables: &[&str]) -> String {
        let mut payload = String::with_capacity(ORIGIN_LEN + 1 + tables.len() * 16);
        let _ = write!(payload, "{:016x}:", self.base);
        for (i, t) in tables.iter().enumerate() {
            if i > 0 {
                payload.push(',');
            }
            payload.push_str(t);
        }
        payload
    }

    /// The tables a notification's `payload` names, or `None` when this cache sent it (its
    /// writes bumped their tables at commit: a second bump would only throw away entries).
    pub(crate) fn foreign_tables<'p>(&self, payload: &'p str) -> Option<&'p str> {
        let tagged = payload.as_bytes().get(ORIGIN_LEN) == Some(&b':')
            && payload.as_bytes()[..ORIGIN_LEN]
                .iter()
                .all(u8::is_ascii_hexdigit);
        if !tagged {
            return Some(payload);
        }
        let (origin, tables) = (&payload[..ORIGIN_LEN], &payload[ORIGIN_LEN + 1..]);
        match u64::from_str_radix(origin, 16) {
            Ok(tag) if tag == self.base => None,
            _ => Some(tables),
        }
    }

    /// The counters.
    pub fn stats(&self) -> QueryCacheStats {
        QueryCacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            bypasses: self.bypasses.load(Ordering::Relaxed),
            invalidations: self.invalidations.load(Ordering::Relaxed),
        }
    }

    /// Whether other processes' writes reach this one (its listening connection is up, or it
    /// has none): while not, reads bypass the cache.
    pub fn is_in_sync(&self) -> bool {
        self.in_sync.load(Ordering::Acquire)
    }

    /// Where `table` stands now: the cache's epoch and the table's version, which change on
    /// every bump of it here or notified from another process, and on every reconnection of
    /// the listener. `None` while the cache must be bypassed (the listener is down). For a
    /// cache of one's own kept correct by the same notifications (the sessions' L1): store
    /// the stamp with an entry, and trust the entry only while the stamp is unchanged.
    pub fn stamp(&self, table: &str) -> Option<(u64, u64)> {
        if !self.is_in_sync() {
            return None;
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        let version = self
            .versions
            .read()
            .get(table)
            .map_or(self.base, |v| v.version);
        Some((epoch, version))
    }

    pub(crate) fn set_in_sync(&self, up: bool) {
        self.in_sync.store(up, Ordering::Release);
    }

    pub(crate) fn count_bypass(&self) {
        self.bypasses.fetch_add(1, Ordering::Relaxed);
    }

    /// The key of statement `stmt` (its process-wide id, [`PipelineStatement::id`]) with
    /// `params` over `tables`, at their current versions; `None` when the cache must be
    /// bypassed now.
    pub(crate) fn key(
        &self,
        tables: &[&str],
        stmt: &PipelineStatement,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Option<Seen> {
        if !self.is_in_sync() {
            self.count_bypass();
            return None;
        }
        let mut n = itoa::Buffer::new();
        let mut key = String::with_capacity(24 + self.scope.len() + 8 * params.len());
        key.push_str(&self.scope);
        key.push('q');
        let epoch = self.epoch.load(Ordering::Acquire).wrapping_sub(self.base);
        key.push_str(n.format(epoch));
        let mut lsn = self.floor.load(Ordering::Acquire);
        {
            let versions = self.versions.read();
            for t in tables {
                let v = versions.get(*t).map_or(
                    TableVersion {
                        version: self.base,
                        lsn: 0,
                    },
                    |v| *v,
                );
                lsn = lsn.max(v.lsn);
                key.push(':');
                key.push_str(n.format(v.version.wrapping_sub(self.base)));
            }
        }
        key.push('#');
        key.push_str(n.format(stmt.id()));
        for p in params {
            let _ = write!(key, "\u{1f}{p:?}");
        }
        Some(Seen { key, lsn })
    }

    pub(crate) async fn get(&self, seen: &Seen) -> Option<Arc<CachedRows>> {
        let found = self.store.get(&seen.key).await;
        if found.is_some() {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        found
    }

    pub(crate) async fn fill(&self, seen: &Seen, rows: CachedRows, ttl: Option<Duration>) {
        self.misses.fetch_add(1, Ordering::Relaxed);
        let ttl = ttl.map_or(Ttl::Default, Ttl::After);
        self.store.set(&seen.key, rows, ttl).await;
    }

    /// Bumps the versions of `tables`, after a commit; `lsn` is the primary's WAL position
    /// read after it (0 when the write went to a database without replicas).
    pub fn bump(&self, tables: &[&str], lsn: u64) {
        if tables.is_empty() {
            return;
        }
        let mut versions = self.versions.write();
        for t in tables {
            let entry = versions.entry((*t).into()).or_insert(TableVersion {
                version: self.base,
                lsn: 0,
            });
            entry.version = entry.version.wrapping_add(1);
            entry.lsn = entry.lsn.max(lsn);
        }
        self.invalidations
            .fetch_add(tables.len() as u64, Ordering::Relaxed);
    }

    /// Makes every later fill, whatever its tables, come from a database that has replayed
    /// `lsn` (the primary's WAL position when the listening connection first came up: writes
    /// committed before it were never notified here).
    pub(crate) fn raise_floor(&self, lsn: u64) {
        self.floor.fetch_max(lsn, Ordering::AcqRel);
    }

    /// Invalidates every entry at once (the listening connection was lost: notifications
    /// sent meanwhile are gone); `lsn` is the primary's WAL position read once it was back,
    /// which every write missed meanwhile lies behind.
    pub(crate) fn bump_all(&self, lsn: u64) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        let mut versions = self.versions.write();
        for v in versions.values_mut() {
            v.version = v.version.wrapping_add(1);
            // An unknown position (`u64::MAX`) lies behind this one: it was a commit before
            // the reconnection.
            v.lsn = if v.lsn == u64::MAX {
                lsn
            } else {
                v.lsn.max(lsn)
            };
        }
        // Tables not seen yet: none of their entries exist under the new epoch.
        self.floor.fetch_max(lsn, Ordering::AcqRel);
        self.invalidations.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_skips_its_own_notifications_and_reads_the_others() {
        let store = || LocMemCache::new(&pinion_cache::LocMemConfig::default());
        let (a, b) = (QueryCache::new(store()), QueryCache::new(store()));
        let payload = a.notify_payload(&["world", "fortune"]);
        assert_eq!(a.foreign_tables(&payload), None);
        assert_eq!(b.foreign_tables(&payload), Some("world,fortune"));
        // A payload without the tag (a sender that does not write one) names tables only.
        assert_eq!(a.foreign_tables("world"), Some("world"));
        assert_eq!(
            a.foreign_tables("not-hex-digits-x:world"),
            Some("not-hex-digits-x:world")
        );
    }
}
