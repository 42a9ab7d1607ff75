//! [`publish`]: one event to every subscriber of a channel on every instance.

use std::sync::atomic::{AtomicU64, Ordering};

use pinion_orm::{raw, Error, Executor};

use crate::payload;

/// The `LISTEN`/`NOTIFY` channel every publish notifies on (one for all event channels: the
/// process's listener then needs one `LISTEN`, whatever the pages subscribe to).
pub const CHANNEL: &str = "pinion_events";

/// The table events are kept in (`migrations/0005_events.sql`).
pub const TABLE: &str = "pinion_events";

/// Events this process published (committed or not: a transaction's outcome is not seen
/// here). A process-wide count rather than a handle's, since [`publish`] is a free function
/// that jobs call with whatever executor they hold; read by [`published`].
static PUBLISHED: AtomicU64 = AtomicU64::new(0);

/// How many events this process has published (`pinion_events_published_total`).
pub fn published() -> u64 {
    PUBLISHED.load(Ordering::Relaxed)
}

/// The insert and its notification in one statement (one round trip, and one implicit
/// transaction outside an explicit one). `$4` says whether the whole event fits in the
/// payload (`$5` is then the lengths header, see `payload`), else only the id is sent.
const PUBLISH_SQL: &str = "WITH e AS (INSERT INTO pinion_events (channel, event, data) \
     VALUES ($1, $2, $3) RETURNING id) \
     SELECT e.id FROM e, pg_notify('pinion_events', \
     CASE WHEN $4::bool THEN e.id::text || $5::text || $1 || $2 || $3 ELSE e.id::text END)";

/// Publishes `data` as event `event` on `channel`: every subscriber of `channel` on every
/// instance receives it, as SSE `event: {event}`, `id: {id}`, `data: {data}`.
///
/// The event is a row of [`TABLE`] (kept for the retention, so that a client reconnecting
/// with `Last-Event-ID` gets what it missed) and a `NOTIFY` carrying it, or only its id when
/// it is too large for `NOTIFY` (8000 bytes). `db` is whatever the caller holds: a
/// `ConnectionManager`, an `Rc` of one, a request's `Routing` (it runs where writes go) or a
/// `Transaction`, in which case it is delivered only if the transaction commits, when it
/// commits. It bumps no query-cache version: no cached read reads the event log.
///
/// ```no_run
/// # async fn f(db: &pinion_orm::ConnectionManager) -> Result<(), pinion_orm::Error> {
/// let id = pinion_events::publish(db, "order-42", "progress", "<p>Packed</p>").await?;
/// # let _ = id; Ok(()) }
/// ```
///
/// # Return
/// The event's id.
///
/// # Errors
/// The database's: the primary unreachable, the table missing (migrations not run).
pub async fn publish(
    db: &impl Executor,
    channel: &str,
    event: &str,
    data: &str,
) -> Result<i64, Error> {
    let header = payload::header(channel, event, data);
    let row: Option<(i64,)> = raw(PUBLISH_SQL)
        .bind(channel.to_owned())
        .bind(event.to_owned())
        .bind(data.to_owned())
        .bind(header.is_some())
        .bind(header.unwrap_or_default())
        .writes(TABLE)
        .invalidates(false)
        .first(db)
        .await?;
    PUBLISHED.fetch_add(1, Ordering::Relaxed);
    // The INSERT returns its row: an empty answer cannot happen, but is no panic.
    Ok(row.map_or(0, |(id,)| id))
}
