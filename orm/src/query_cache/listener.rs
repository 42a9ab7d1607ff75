//! The process's one listening connection to the primary: it receives the version bumps other
//! processes' commits send (`NOTIFY pinion_query_cache, 'origin:table,table'`), reads the
//! primary's WAL position after them, and bumps the versions here. Its own process's
//! notifications are skipped: those writes bumped their tables at commit. It runs on a thread of its own, so
//! that no worker's load delays an invalidation.

use std::cell::RefCell;
use std::rc::Rc;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_postgres::types::PgLsn;
use tokio_postgres::{Client, Statement};

use super::{QueryCache, CHANNEL};
use crate::dial::{self, ConnectOptions};
use crate::error::Error;
use crate::pinned::{BACKOFF_MAX, BACKOFF_START};

/// How often the listener looks whether it was asked to stop while it waits.
const STOP_CHECK: Duration = Duration::from_millis(100);

/// The running listener; dropping it stops it (within [`STOP_CHECK`]).
pub struct Listener {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener").finish_non_exhaustive()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts listening for version bumps on the primary at `url`, on a thread of its own. Until
/// the connection is up (and whenever it is down) `cache` is bypassed; each time it comes
/// back, every version is bumped.
///
/// # Errors
/// A configuration error for a URL that does not parse; an error when the thread cannot be
/// started.
pub fn listen(cache: Arc<QueryCache>, url: &str, opts: ConnectOptions) -> Result<Listener, Error> {
    let config = tokio_postgres::Config::from_str(url)
        .map_err(|e| Error::config(format!("invalid database URL: {e}")))?;
    cache.set_in_sync(false);
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("pinion-listener".into())
        .spawn(move || {
            let runtime = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
                .enable_timer()
                .build();
            match runtime {
                Ok(mut rt) => rt.block_on(run(cache, config, opts, stopping)),
                Err(e) => tracing::error!(error = %e, "the query cache listener cannot start"),
            }
        })
        .map_err(|e| Error::config(format!("cannot start the listener thread: {e}")))?;
    Ok(Listener {
        stop,
        thread: Some(thread),
    })
}

/// The primary's current WAL position, through `stmt` (`SELECT pg_current_wal_lsn()`,
/// prepared once per connection: by text, every read would be a Parse and a Describe too).
async fn current_lsn(client: &Client, stmt: &Statement) -> Result<u64, Error> {
    let row = client.query_one(stmt, &[]).await.map_err(Error::from_pg)?;
    let lsn: PgLsn = row.try_get(0).map_err(Error::from_pg)?;
    Ok(u64::from(lsn))
}

async fn run(
    cache: Arc<QueryCache>,
    config: tokio_postgres::Config,
    opts: ConnectOptions,
    stop: Arc<AtomicBool>,
) {
    let mut backoff = BACKOFF_START;
    let mut was_up = false;
    while !stop.load(Ordering::Acquire) {
        let queue: Rc<RefCell<Vec<String>>> = Rc::default();
        let arrived = Rc::new(Notify::new());
        let on_notify = {
            let (queue, arrived, cache) =
                (Rc::clone(&queue), Rc::clone(&arrived), Arc::clone(&cache));
            Rc::new(move |payload: &str| {
                if let Some(tables) = cache.foreign_tables(payload) {
                    queue.borrow_mut().push(tables.to_string());
                    arrived.notify_one();
                }
            }) as Rc<dyn Fn(&str)>
        };
        let conn = match dial::connect_listening(&config, &opts, on_notify).await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "query cache listener cannot connect; reads bypass the query cache");
                monoio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        backoff = BACKOFF_START;
        let listening = conn
            .client
            .batch_execute(&format!("LISTEN {CHANNEL}"))
            .await
            .map_err(Error::from_pg);
        let prepared = match listening {
            Ok(()) => conn
                .client
                .prepare("SELECT pg_current_wal_lsn()")
                .await
                .map_err(Error::from_pg),
            Err(e) => Err(e),
        };
        let lsn = match prepared {
            Ok(stmt) => current_lsn(&conn.client, &stmt)
                .await
                .map(|lsn| (lsn, stmt)),
            Err(e) => Err(e),
        };
        let (lsn, lsn_stmt) = match lsn {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "query cache listener cannot listen; retrying");
                monoio::time::sleep(backoff).await;
                continue;
            }
        };
        if was_up {
            cache.bump_all(lsn);
            tracing::info!("query cache listener re-established; every cached query invalidated");
        } else {
            // Writes committed before this first connection were notified to other
            // processes, never to this one, and a lagging replica may not have replayed them
            // yet: a fill from it would cache rows they replaced, under versions no bump will
            // ever change. Every fill must come from a database that has replayed `lsn`.
            cache.raise_floor(lsn);
            tracing::debug!("query cache listener up");
        }
        was_up = true;
        cache.set_in_sync(true);
        while !conn.closed.is_closed() && !stop.load(Ordering::Acquire) {
            let _ = monoio::time::timeout(STOP_CHECK, arrived.notified()).await;
            let payloads = std::mem::take(&mut *queue.borrow_mut());
            if payloads.is_empty() {
                continue;
            }
            let mut tables: Vec<&str> = payloads.iter().flat_map(|p| p.split(',')).collect();
            tables.sort_unstable();
            tables.dedup();
            // The WAL position after the commits notified: read before bumping, so that no
            // bumped table is ever without the position replicas must reach.
            match current_lsn(&conn.client, &lsn_stmt).await {
                Ok(lsn) => cache.bump(&tables, lsn),
                // The connection is going: the cache is bypassed from here, and bumped whole
                // when the connection is back.
                Err(_) => break,
            }
        }
        cache.set_in_sync(false);
        if !stop.load(Ordering::Acquire) {
            tracing::warn!(
                "query cache listener lost; reads bypass the query cache until it is back"
            );
        }
    }
}
