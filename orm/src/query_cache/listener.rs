//! The query cache's part of the process's [listening connection](crate::listener): it
//! receives the version bumps other processes' commits send (`NOTIFY pinion_query_cache,
//! 'origin:table,table'`), reads the primary's WAL position after them, and bumps the
//! versions here. Its own process's notifications are skipped: those writes bumped their
//! tables at commit.

use std::sync::Arc;

use futures_util::future::LocalBoxFuture;
use tokio_postgres::types::PgLsn;
use tokio_postgres::Client;

use super::{QueryCache, CHANNEL};
use crate::dial::ConnectOptions;
use crate::error::Error;
use crate::listener::{listen_all, Listener, Subscriber};

/// Starts a listening connection for `cache` alone (see [`subscriber`] to share one with
/// other subscribers). Until the connection is up (and whenever it is down) `cache` is
/// bypassed; each time it comes back, every version is bumped.
///
/// # Errors
/// As [`listen_all`].
pub fn listen(cache: Arc<QueryCache>, url: &str, opts: ConnectOptions) -> Result<Listener, Error> {
    listen_all(url, opts, vec![subscriber(cache)])
}

/// The query cache as a subscriber of the process's listening connection.
pub fn subscriber(cache: Arc<QueryCache>) -> Arc<dyn Subscriber> {
    Arc::new(Bumps { cache })
}

struct Bumps {
    cache: Arc<QueryCache>,
}

/// The primary's current WAL position, by the simple protocol: one round trip, where a
/// statement by text would be a Parse and a Describe first.
async fn current_lsn(client: &Client) -> Result<u64, Error> {
    let messages = client
        .simple_query("SELECT pg_current_wal_lsn()")
        .await
        .map_err(Error::from_pg)?;
    let text = messages.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0),
        _ => None,
    });
    let lsn: PgLsn = text
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| Error::unavailable("pg_current_wal_lsn() gave no position"))?;
    Ok(u64::from(lsn))
}

impl Subscriber for Bumps {
    fn channel(&self) -> &str {
        CHANNEL
    }

    fn received<'a>(
        &'a self,
        payloads: Vec<String>,
        conn: &'a Client,
    ) -> LocalBoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let mut tables: Vec<&str> = payloads
                .iter()
                .filter_map(|p| self.cache.foreign_tables(p))
                .flat_map(|t| t.split(','))
                .collect();
            if tables.is_empty() {
                return Ok(());
            }
            tables.sort_unstable();
            tables.dedup();
            // The WAL position after the commits notified: read before bumping, so that no
            // bumped table is ever without the position replicas must reach.
            let lsn = current_lsn(conn).await?;
            self.cache.bump(&tables, lsn);
            Ok(())
        })
    }

    fn up<'a>(
        &'a self,
        reconnected: bool,
        conn: &'a Client,
    ) -> LocalBoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let lsn = current_lsn(conn).await?;
            if reconnected {
                self.cache.bump_all(lsn);
                tracing::info!("query cache resynchronised: every cached query invalidated");
            } else {
                // Writes committed before this first connection were notified to other
                // processes, never to this one, and a lagging replica may not have replayed
                // them yet: a fill from it would cache rows they replaced, under versions no
                // bump will ever change. Every fill must come from a database that has
                // replayed `lsn`.
                self.cache.raise_floor(lsn);
            }
            self.cache.set_in_sync(true);
            Ok(())
        })
    }

    fn down(&self) {
        self.cache.set_in_sync(false);
    }
}
