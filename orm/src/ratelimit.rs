//! PgRateStore: GCRA state in a PostgreSQL UNLOGGED table, shared by every instance.
//!
//! One row per key: its theoretical arrival time (TAT) in nanoseconds since 1970 on the
//! **database's** clock, so instances whose own clocks disagree still enforce one limit. Each
//! decision is one `INSERT … ON CONFLICT DO UPDATE … RETURNING`: PostgreSQL locks the row,
//! reads the TAT, decides and writes inside the statement, so concurrent decisions for a key
//! — from any number of connections and instances — are serialized, and none is lost.
//!
//! UNLOGGED, like the cache table: no WAL, not replicated, emptied by a PostgreSQL crash
//! (every client then starts with a full burst, which a rate limiter can afford); every
//! statement goes to the primary. A row whose TAT is in the past carries no state, so
//! [`purge_expired`](PgRateStore::purge_expired) may delete it at any time. The table has no
//! index on `tat`: the TAT changes on every decision, and an index on it would rule out HOT
//! updates, which matter more than a fast purge (a sequential scan, run rarely).
//!
//! This crate does not know `pinion_server`'s `Policy`: [`decide`](PgRateStore::decide) takes
//! the two GCRA parameters, and returns what `pinion_server::ratelimit::Decision::from_tat`
//! needs.

use std::rc::{Rc, Weak};
use std::time::Duration;

use crate::error::Error;
use crate::manager::ConnectionManager;

/// The table PgRateStore uses; UNLOGGED, so it belongs on the primary only.
pub const RATE_LIMIT_TABLE: &str = "pinion_rate_limits";

const CREATE: &str = "CREATE UNLOGGED TABLE IF NOT EXISTS pinion_rate_limits (
    key text PRIMARY KEY,
    tat bigint NOT NULL,
    allowed boolean NOT NULL
) WITH (fillfactor = 70)";

/// One GCRA decision. `$1` key, `$2` emission interval T (ns), `$3` tolerance τ (ns).
///
/// `now` is read once from `clock_timestamp()` (microsecond resolution) in the CTE. A new key
/// is always allowed (τ ≥ 0) and gets `now + T`. An existing one follows GCRA with
/// `tat = greatest(stored, now)`; the SET expressions all see the stored row, so `allowed`
/// and the new `tat` agree. `allowed` is written only to be returned: before PostgreSQL 18,
/// RETURNING cannot see the old row, and the new TAT alone does not tell an allowed request
/// from a denied one.
const DECIDE: &str = "WITH c AS (
    SELECT (extract(epoch FROM clock_timestamp()) * 1000000000)::bigint AS now
)
INSERT INTO pinion_rate_limits AS r (key, tat, allowed)
SELECT $1, c.now + $2, true FROM c
ON CONFLICT (key) DO UPDATE SET
    allowed = greatest(r.tat, (SELECT now FROM c)) - (SELECT now FROM c) <= $3,
    tat = CASE WHEN greatest(r.tat, (SELECT now FROM c)) - (SELECT now FROM c) <= $3
               THEN greatest(r.tat, (SELECT now FROM c)) + $2
               ELSE r.tat END
RETURNING r.allowed, r.tat, (SELECT now FROM c)";

const PURGE: &str = "DELETE FROM pinion_rate_limits
    WHERE tat <= (extract(epoch FROM clock_timestamp()) * 1000000000)::bigint";

/// What one decision in PostgreSQL reached, on the database's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcraState {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The key's TAT after the decision, in nanoseconds since 1970.
    pub tat: u64,
    /// The database's `clock_timestamp()` the decision used, in nanoseconds since 1970.
    pub now: u64,
}

/// GCRA rate-limit state in PostgreSQL, shared by every instance that uses the same database.
pub struct PgRateStore {
    db: Rc<ConnectionManager>,
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

impl PgRateStore {
    /// A store over `db`'s primary. Call [`ensure_table`](Self::ensure_table) once before use.
    pub fn new(db: Rc<ConnectionManager>) -> PgRateStore {
        PgRateStore { db }
    }

    /// Creates the UNLOGGED table if it is missing.
    ///
    /// # Errors
    /// When the primary refuses or is unreachable.
    pub async fn ensure_table(&self) -> Result<(), Error> {
        self.db.primary().batch_execute(CREATE).await
    }

    /// Decides for `key` with emission interval `interval` (T) and tolerance `tolerance` (τ),
    /// and records the new TAT when the request is allowed — one atomic statement.
    ///
    /// `key` should name the policy as well as the client (`Policy::store_key` does), since
    /// every policy shares the table.
    ///
    /// # Return
    /// Whether the request is allowed, the TAT the key now has and the database time the
    /// decision was made at.
    ///
    /// # Errors
    /// When the primary is unreachable or the statement fails.
    pub async fn decide(
        &self,
        key: &str,
        interval: Duration,
        tolerance: Duration,
    ) -> Result<GcraState, Error> {
        let row = self
            .db
            .primary()
            .query_one(DECIDE, &[&key, &nanos(interval), &nanos(tolerance)])
            .await?;
        let tat: i64 = row.get(1);
        let now: i64 = row.get(2);
        Ok(GcraState {
            allowed: row.get(0),
            tat: u64::try_from(tat).unwrap_or(0),
            now: u64::try_from(now).unwrap_or(0),
        })
    }

    /// Deletes the rows of idle keys (TAT in the past) now.
    ///
    /// # Return
    /// How many rows were deleted.
    ///
    /// # Errors
    /// When the primary is unreachable or the statement fails.
    pub async fn purge_expired(&self) -> Result<u64, Error> {
        self.db.primary().execute(PURGE, &[]).await
    }

    /// Deletes idle rows every `interval` in the background, until the store is dropped.
    /// Decisions are right whether or not this runs; it only reclaims space.
    pub fn spawn_purger(self: &Rc<Self>, interval: Duration) {
        let weak: Weak<Self> = Rc::downgrade(self);
        monoio::spawn(async move {
            loop {
                monoio::time::sleep(interval).await;
                let Some(store) = weak.upgrade() else { return };
                match store.purge_expired().await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(rows = n, "idle rate-limit rows deleted"),
                    Err(e) => tracing::warn!(error = %e, "cannot delete idle rate-limit rows"),
                }
            }
        });
    }
}
