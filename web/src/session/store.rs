//! [`Store`]: the sessions' rows in `pinion_sessions` on the primary, and the per-process L1
//! in front of them.
//!
//! The L1 is kept correct by the query cache's machinery: each row belongs to one of
//! [`BUCKETS`] pseudo-tables (`pinion_sessions#2a`), every write of a row (through the ORM,
//! which bumps the bucket here and notifies every other instance in the same transaction)
//! changes its bucket's stamp, and an L1 entry is trusted only under the stamp it was filled
//! with. A bucket, not the whole table, so that one user's write evicts a sixty-fourth of the
//! entries. Without a query cache (or while its listener is down) the L1 is bypassed, since
//! no other instance's writes would reach it.
//!
//! Writes that change nothing another instance could have cached are not notified: the time
//! of the last request (touch) and the purge of expired rows. An entry whose stored times
//! say it has expired is read again from the row before the session is called over, so a
//! touch written by another instance is never missed.

use std::rc::Rc;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use pinion_cache::{Cache, LocMemCache, Ttl};
use pinion_orm::{raw, ConnectionManager};

use super::id::Key;
use super::record::{Record, Timeouts};
use crate::Result;

/// How many invalidation buckets the rows are spread over.
const BUCKET_COUNT: usize = 64;

/// The bucket pseudo-tables' names, made once (`&'static str`, as the ORM declares tables).
static BUCKETS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    (0..BUCKET_COUNT)
        .map(|i| &*Box::leak(format!("pinion_sessions#{i:02x}").into_boxed_str()))
        .collect()
});

/// The table; primary-only in the ORM's default settings (UNLOGGED, never on a replica).
const TABLE: &str = "pinion_sessions";

/// How long an L1 entry may live at most, whatever its session's timeouts: a bound on what a
/// missed notification could cost, not a freshness rule (the stamps are).
const L1_TTL: Duration = Duration::from_secs(300);

fn bucket(key: &Key) -> &'static str {
    BUCKETS[usize::from(key[0]) % BUCKET_COUNT]
}

/// An L1 entry: the record, under the stamp of its bucket when it was read.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Cached {
    stamp: (u64, u64),
    record: Record,
}

/// A row as it is read.
type Row = (String, Option<i64>, i64, i64);

/// The sessions' storage, shared by every worker thread of the process.
pub(crate) struct Store {
    l1: LocMemCache,
    pub(crate) timeouts: Timeouts,
}

impl Store {
    pub(crate) fn new(timeouts: Timeouts, l1_entries: usize) -> Arc<Store> {
        let options = pinion_cache::CacheOptions::default();
        Arc::new(Store {
            l1: LocMemCache::with_options(l1_entries, options),
            timeouts,
        })
    }

    /// The L1's counters.
    pub(crate) fn l1_stats(&self) -> pinion_cache::LocMemStats {
        self.l1.stats()
    }

    fn l1_key(key: &Key) -> String {
        let mut text = String::with_capacity(2 + 64);
        text.push_str("s:");
        for b in key {
            text.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
            text.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
        }
        text
    }

    /// The live session stored under `key` at `now`, from the L1 when its bucket has not
    /// changed since, else from the row (and then kept in the L1).
    pub(crate) async fn load(
        &self,
        db: &Rc<ConnectionManager>,
        key: &Key,
        now: i64,
    ) -> Result<Option<Record>> {
        let stamp = db.query_cache().and_then(|qc| qc.stamp(bucket(key)));
        let l1_key = Store::l1_key(key);
        if let Some(stamp) = stamp {
            if let Ok(Some(hit)) = self.l1.get_shared::<Cached>(&l1_key).await {
                if hit.stamp == stamp && !self.timeouts.expired(&hit.record, now) {
                    return Ok(Some(hit.record.clone()));
                }
            }
        }
        let row: Option<Row> = raw(
            "SELECT data::text, user_id, created_at, seen_at FROM pinion_sessions WHERE key = $1",
        )
        .bind(key.to_vec())
        .reads(TABLE)
        .cache(false)
        .first(&**db)
        .await?;
        let Some((data, user_id, created, seen)) = row else {
            return Ok(None);
        };
        let record = Record {
            data: serde_json::from_str(&data)?,
            user_id,
            created,
            seen,
        };
        if self.timeouts.expired(&record, now) {
            return Ok(None);
        }
        if let Some(stamp) = stamp {
            self.remember(&l1_key, stamp, &record).await;
        }
        Ok(Some(record))
    }

    async fn remember(&self, l1_key: &str, stamp: (u64, u64), record: &Record) {
        let entry = Cached {
            stamp,
            record: record.clone(),
        };
        // An L1 that refuses an entry only costs the next request a read.
        let _ = self.l1.set(l1_key, entry, Ttl::After(L1_TTL)).await;
    }

    /// Writes `record` as the session stored under `key`: a new row (`existed` false), or the
    /// row replaced; `previous` is the key it was stored under before a rotation.
    pub(crate) async fn save(
        &self,
        db: &Rc<ConnectionManager>,
        key: &Key,
        previous: Option<&Key>,
        record: &Record,
    ) -> Result<()> {
        let data = serde_json::to_string(&record.data)?;
        let expires = self.timeouts.expires_at(record);
        let from = previous.unwrap_or(key);
        let mut stmt = raw(
            "UPDATE pinion_sessions SET key = $2, data = $3::text::jsonb, user_id = $4, \
             created_at = $5, seen_at = $6, expires_at = $7 WHERE key = $1",
        )
        .bind(from.to_vec())
        .bind(key.to_vec())
        .bind(data.clone())
        .bind(record.user_id)
        .bind(record.created)
        .bind(record.seen)
        .bind(expires)
        .writes(bucket(key));
        if previous.is_some_and(|p| bucket(p) != bucket(key)) {
            stmt = stmt.writes(bucket(from));
        }
        let updated = stmt.execute(&**db).await?;
        if updated == 0 {
            raw(
                "INSERT INTO pinion_sessions (key, data, user_id, created_at, seen_at, expires_at) \
                 VALUES ($1, $2::text::jsonb, $3, $4, $5, $6)",
            )
            .bind(key.to_vec())
            .bind(data)
            .bind(record.user_id)
            .bind(record.created)
            .bind(record.seen)
            .bind(expires)
            .writes(bucket(key))
            .execute(&**db)
            .await?;
        }
        let l1_key = Store::l1_key(key);
        if let Some(stamp) = db.query_cache().and_then(|qc| qc.stamp(bucket(key))) {
            self.remember(&l1_key, stamp, record).await;
        }
        if let Some(previous) = previous {
            let _ = self.l1.delete_entry(&Store::l1_key(previous)).await;
        }
        Ok(())
    }

    /// Writes the time of the request at `record.seen` (already set by the caller) without a
    /// notification: nothing cached elsewhere becomes wrong by it (see the module docs).
    pub(crate) async fn touch(
        &self,
        db: &Rc<ConnectionManager>,
        key: &Key,
        record: &Record,
    ) -> Result<()> {
        let expires = self.timeouts.expires_at(record);
        db.primary()
            .execute(
                "UPDATE pinion_sessions SET seen_at = $2, expires_at = $3 WHERE key = $1",
                &[&key.as_slice(), &record.seen, &expires],
            )
            .await?;
        if let Some(stamp) = db.query_cache().and_then(|qc| qc.stamp(bucket(key))) {
            self.remember(&Store::l1_key(key), stamp, record).await;
        }
        Ok(())
    }

    /// Deletes the session stored under `key`, here and (through the notification) from
    /// every instance's L1.
    pub(crate) async fn delete(&self, db: &Rc<ConnectionManager>, key: &Key) -> Result<()> {
        raw("DELETE FROM pinion_sessions WHERE key = $1")
            .bind(key.to_vec())
            .writes(bucket(key))
            .execute(&**db)
            .await?;
        let _ = self.l1.delete_entry(&Store::l1_key(key)).await;
        Ok(())
    }

    /// Deletes every session of `user_id` (a password change, "log out everywhere").
    pub(crate) async fn delete_user(
        &self,
        db: &Rc<ConnectionManager>,
        user_id: i64,
    ) -> Result<u64> {
        let mut stmt = raw("DELETE FROM pinion_sessions WHERE user_id = $1").bind(user_id);
        for b in BUCKETS.iter() {
            stmt = stmt.writes(b);
        }
        Ok(stmt.execute(&**db).await?)
    }

    /// Deletes the rows that have expired by `now`; no notification (see the module docs).
    pub(crate) async fn purge(&self, db: &Rc<ConnectionManager>, now: i64) -> Result<u64> {
        Ok(db
            .primary()
            .execute(
                "DELETE FROM pinion_sessions WHERE expires_at <= $1",
                &[&now],
            )
            .await?)
    }
}
