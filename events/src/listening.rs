//! The events' part of the process's [listening connection](pinion_orm::listener): it turns
//! the notifications of [`CHANNEL`] into events in the [`Log`], fetching the rows of those
//! too large for `NOTIFY`, and catches up from the table on what was published while the
//! connection was down.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures_util::future::LocalBoxFuture;
use pinion_orm::listener::Subscriber;
use pinion_orm::tokio_postgres::Client;
use pinion_orm::Error;

use crate::log::Log;
use crate::payload::{self, Payload, Published};
use crate::publish::CHANNEL;

/// The subscriber [`Events::subscriber`](crate::Events::subscriber) returns.
pub(crate) struct Listening {
    pub(crate) log: Arc<Log>,
    /// Whether notifications arrive now (the connection is up and caught up).
    pub(crate) up: Arc<AtomicBool>,
}

/// Reads events by id (those whose notification carried only the id).
const BY_ID_SQL: &str = "SELECT id, channel, event, data FROM pinion_events WHERE id = ANY($1)";

/// Reads what was published after an id, for a catch-up; `$2` bounds it.
const AFTER_SQL: &str =
    "SELECT id, channel, event, data FROM pinion_events WHERE id > $1 ORDER BY id LIMIT $2";

fn published(row: &pinion_orm::tokio_postgres::Row) -> Result<Published, Error> {
    Ok(Published {
        id: row.try_get(0)?,
        channel: row.try_get::<_, String>(1)?.into(),
        event: row.try_get::<_, String>(2)?.into(),
        data: row.try_get::<_, String>(3)?.into(),
    })
}

impl Listening {
    /// Events published after `from`, at most `limit`, in id order.
    async fn after(&self, conn: &Client, from: i64, limit: i64) -> Result<Vec<Published>, Error> {
        let rows = conn.query(AFTER_SQL, &[&from, &limit]).await?;
        rows.iter().map(published).collect()
    }
}

impl Subscriber for Listening {
    fn channel(&self) -> &str {
        CHANNEL
    }

    fn received<'a>(
        &'a self,
        payloads: Vec<String>,
        conn: &'a Client,
    ) -> LocalBoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let parsed: Vec<Payload> = payloads
                .iter()
                .filter_map(|p| {
                    let parsed = payload::parse(p);
                    if parsed.is_none() {
                        tracing::debug!(payload = %p, "a notification on pinion_events that no publish sent; ignored");
                    }
                    parsed
                })
                .collect();
            let large: Vec<i64> = parsed
                .iter()
                .filter_map(|p| match p {
                    Payload::IdOnly(id) => Some(*id),
                    Payload::Whole(_) => None,
                })
                .collect();
            let mut fetched: HashMap<i64, Published> = HashMap::new();
            if !large.is_empty() {
                for row in conn.query(BY_ID_SQL, &[&large]).await? {
                    let event = published(&row)?;
                    fetched.insert(event.id, event);
                }
            }
            // In the order the commits were notified.
            let events = parsed
                .into_iter()
                .filter_map(|p| match p {
                    Payload::Whole(event) => Some(event),
                    Payload::IdOnly(id) => {
                        let event = fetched.remove(&id);
                        if event.is_none() {
                            tracing::warn!(id, "a published event was pruned before it was read");
                        }
                        event
                    }
                })
                .collect();
            self.log.append(events);
            Ok(())
        })
    }

    fn up<'a>(
        &'a self,
        reconnected: bool,
        conn: &'a Client,
    ) -> LocalBoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            if reconnected {
                // What was published while the connection was down, and what the log
                // already has (the catch-up starts at its oldest event: a commit notified
                // late may have an id lower than the last one seen), added in id order.
                // Room for the log's own events and as many missed ones: past that, more
                // was missed than any reader could still be handed.
                let limit = 2 * self.log.capacity() as i64;
                let missed = self
                    .after(conn, self.log.catch_up_from(), limit + 1)
                    .await?;
                let too_many = missed.len() as i64 > limit;
                let added = self.log.append(missed);
                if too_many {
                    tracing::warn!("more events were missed than the log holds: every subscriber resynchronises");
                    self.log.resync_all();
                }
                tracing::info!(
                    added,
                    "events caught up after the listening connection came back"
                );
            } else {
                // Clients that connect from now on start from now; what was published
                // before is replayed from the table to those that name an earlier id.
                let rows = conn
                    .query("SELECT coalesce(max(id), 0) FROM pinion_events", &[])
                    .await?;
                if let Some(row) = rows.first() {
                    self.log.seen_up_to(row.try_get(0)?);
                }
            }
            self.up.store(true, Ordering::Release);
            Ok(())
        })
    }

    fn down(&self) {
        self.up.store(false, Ordering::Release);
    }
}
