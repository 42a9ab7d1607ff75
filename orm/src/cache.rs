//! DatabaseCache: a [`Cache`] in a PostgreSQL UNLOGGED table, shared by every instance.
//!
//! UNLOGGED: no WAL, so writes are cheap and the table is not replicated — it lives on the
//! primary only (a standby cannot read it), and every statement here goes to the primary. Its
//! content is lost on a crash of PostgreSQL, which a cache can afford.
//!
//! Values are stored as the JSON bytes [`Value::to_bytes`] gives, with the entry's deadline and
//! its recompute time Δ, so XFetch works across instances. `incr` is one atomic `UPDATE …
//! RETURNING` on the stored integer (no read-modify-write), `get_many` one query, and expired
//! rows are never returned and are deleted in the background.

use std::rc::{Rc, Weak};
use std::time::{Duration, SystemTime};

use pinion_cache::{Cache, CacheOptions, Entry, Error as CacheError, Value};

use crate::manager::ConnectionManager;

/// The table DatabaseCache uses; listed in [`DEFAULT_PRIMARY_ONLY_TABLES`](crate::DEFAULT_PRIMARY_ONLY_TABLES).
pub const CACHE_TABLE: &str = "pinion_cache";

const CREATE: &str = "CREATE UNLOGGED TABLE IF NOT EXISTS pinion_cache (
    key text PRIMARY KEY,
    value bytea NOT NULL,
    expires_at timestamptz,
    delta_us bigint NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS pinion_cache_expires_at ON pinion_cache (expires_at)
    WHERE expires_at IS NOT NULL";

/// A cache whose entries live in PostgreSQL.
pub struct DatabaseCache {
    db: Rc<ConnectionManager>,
    options: CacheOptions,
}

fn backend(e: crate::Error) -> CacheError {
    CacheError::backend(e)
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn entry_from(value: Vec<u8>, expires_at: Option<SystemTime>, delta_us: i64) -> Entry {
    Entry::new(Value::from_bytes(value), expires_at)
        .with_delta(Duration::from_micros(u64::try_from(delta_us).unwrap_or(0)))
}

impl DatabaseCache {
    /// A cache over `db`'s primary, with key layout, default TTL and clock from `options`.
    /// Call [`ensure_table`](Self::ensure_table) once before use.
    pub fn new(db: Rc<ConnectionManager>, options: CacheOptions) -> DatabaseCache {
        DatabaseCache { db, options }
    }

    /// Creates the UNLOGGED table and its expiry index if they are missing.
    ///
    /// # Errors
    /// A backend error when the primary refuses or is unreachable.
    pub async fn ensure_table(&self) -> Result<(), CacheError> {
        self.db
            .primary()
            .batch_execute(CREATE)
            .await
            .map_err(backend)
    }

    /// Deletes expired rows now.
    ///
    /// # Return
    /// How many rows were deleted.
    ///
    /// # Errors
    /// A backend error.
    pub async fn purge_expired(&self) -> Result<u64, CacheError> {
        self.db
            .primary()
            .execute(
                "DELETE FROM pinion_cache WHERE expires_at IS NOT NULL AND expires_at <= now()",
                &[],
            )
            .await
            .map_err(backend)
    }

    /// Deletes expired rows every `interval` in the background, until the cache is dropped.
    /// Reads never return an expired row whether or not this runs; it only reclaims space.
    pub fn spawn_purger(self: &Rc<Self>, interval: Duration) {
        let weak: Weak<Self> = Rc::downgrade(self);
        monoio::spawn(async move {
            loop {
                monoio::time::sleep(interval).await;
                let Some(cache) = weak.upgrade() else { return };
                match cache.purge_expired().await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(rows = n, "expired cache rows deleted"),
                    Err(e) => tracing::warn!(error = %e, "cannot delete expired cache rows"),
                }
            }
        });
    }
}

impl Cache for DatabaseCache {
    fn options(&self) -> &CacheOptions {
        &self.options
    }

    async fn get_entry(&self, key: &str) -> Result<Option<Entry>, CacheError> {
        let row = self
            .db
            .primary()
            .query_opt(
                "SELECT value, expires_at, delta_us FROM pinion_cache WHERE key = $1 AND (expires_at IS NULL OR expires_at > now())",
                &[&key],
            )
            .await
            .map_err(backend)?;
        Ok(row.map(|r| entry_from(r.get(0), r.get(1), r.get(2))))
    }

    async fn set_entry(&self, key: &str, entry: Entry) -> Result<(), CacheError> {
        let bytes = entry.value().to_bytes()?;
        self.db
            .primary()
            .execute(
                "INSERT INTO pinion_cache (key, value, expires_at, delta_us) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value,
                     expires_at = EXCLUDED.expires_at, delta_us = EXCLUDED.delta_us",
                &[&key, &bytes.as_ref(), &entry.deadline(), &micros(entry.delta())],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn delete_entry(&self, key: &str) -> Result<bool, CacheError> {
        let n = self
            .db
            .primary()
            .execute("DELETE FROM pinion_cache WHERE key = $1", &[&key])
            .await
            .map_err(backend)?;
        Ok(n > 0)
    }

    async fn clear(&self) -> Result<(), CacheError> {
        self.db
            .primary()
            .batch_execute("TRUNCATE pinion_cache")
            .await
            .map_err(backend)
    }

    /// One statement: inserts, or replaces only an expired row.
    async fn add_entry(&self, key: &str, entry: Entry) -> Result<bool, CacheError> {
        let bytes = entry.value().to_bytes()?;
        let n = self
            .db
            .primary()
            .execute(
                "INSERT INTO pinion_cache (key, value, expires_at, delta_us) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value,
                     expires_at = EXCLUDED.expires_at, delta_us = EXCLUDED.delta_us
                 WHERE pinion_cache.expires_at IS NOT NULL AND pinion_cache.expires_at <= now()",
                &[&key, &bytes.as_ref(), &entry.deadline(), &micros(entry.delta())],
            )
            .await
            .map_err(backend)?;
        Ok(n > 0)
    }

    /// One statement on a live row.
    async fn touch_entry(
        &self,
        key: &str,
        expires_at: Option<SystemTime>,
    ) -> Result<bool, CacheError> {
        let n = self
            .db
            .primary()
            .execute(
                "UPDATE pinion_cache SET expires_at = $2 WHERE key = $1 AND (expires_at IS NULL OR expires_at > now())",
                &[&key, &expires_at],
            )
            .await
            .map_err(backend)?;
        Ok(n > 0)
    }

    async fn has_entry(&self, key: &str) -> Result<bool, CacheError> {
        let row = self
            .db
            .primary()
            .query_opt(
                "SELECT 1 FROM pinion_cache WHERE key = $1 AND (expires_at IS NULL OR expires_at > now())",
                &[&key],
            )
            .await
            .map_err(backend)?;
        Ok(row.is_some())
    }

    /// One atomic statement: the integer is read, checked and rewritten inside PostgreSQL, so
    /// concurrent increments from any number of instances never lose an update.
    async fn incr_entry(&self, key: &str, delta: i64) -> Result<i64, CacheError> {
        // A non-integer value is left alone and reported; an overflow raises in SQL.
        let row = self
            .db
            .primary()
            .query_opt(
                "UPDATE pinion_cache
                 SET value = convert_to((convert_from(value, 'UTF8')::bigint + $2)::text, 'UTF8')
                 WHERE key = $1 AND (expires_at IS NULL OR expires_at > now())
                   AND convert_from(value, 'UTF8') ~ '^-?[0-9]{1,19}$'
                 RETURNING convert_from(value, 'UTF8')::bigint",
                &[&key, &delta],
            )
            .await;
        match row {
            Ok(Some(r)) => Ok(r.get(0)),
            Ok(None) => {
                // Missing, or not an integer: tell which, as the trait promises.
                if self.has_entry(key).await? {
                    Err(CacheError::not_integer())
                } else {
                    Err(CacheError::missing_key())
                }
            }
            Err(e) if e.as_db_error().is_some_and(|d| d.code().code() == "22003") => {
                Err(CacheError::overflow())
            }
            Err(e) => Err(backend(e)),
        }
    }

    /// One query for all keys.
    async fn get_entries(&self, keys: &[String]) -> Result<Vec<Option<Entry>>, CacheError> {
        let rows = self
            .db
            .primary()
            .query(
                "SELECT key, value, expires_at, delta_us FROM pinion_cache WHERE key = ANY($1) AND (expires_at IS NULL OR expires_at > now())",
                &[&keys],
            )
            .await
            .map_err(backend)?;
        let found: std::collections::HashMap<String, Entry> = rows
            .into_iter()
            .map(|r| {
                (
                    r.get::<_, String>(0),
                    entry_from(r.get(1), r.get(2), r.get(3)),
                )
            })
            .collect();
        // A key asked for twice gets its entry twice.
        Ok(keys.iter().map(|k| found.get(k).cloned()).collect())
    }

    async fn delete_entries(&self, keys: &[String]) -> Result<(), CacheError> {
        self.db
            .primary()
            .execute("DELETE FROM pinion_cache WHERE key = ANY($1)", &[&keys])
            .await
            .map_err(backend)?;
        Ok(())
    }
}
