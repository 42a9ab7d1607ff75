//! The process's one listening connection to the primary, shared by everything that waits for
//! `NOTIFY`: the query cache's version bumps, the job queue's wake-ups, published events.
//!
//! Each [`Subscriber`] names its channel; the listener `LISTEN`s on all of them, hands each
//! subscriber the payloads of its channel that arrived together, and tells every subscriber
//! when the connection comes up, comes back (notifications sent meanwhile are gone: each
//! subscriber makes up for them its own way) and goes down. It runs on a thread of its own,
//! so that no worker's load delays a notification. One connection for the process rather than
//! one per subscriber: PostgreSQL's connections are the scarce resource (`pinion check`
//! counts them).

use std::cell::RefCell;
use std::rc::Rc;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use tokio::sync::Notify;
use tokio_postgres::Client;

use crate::dial::{self, ConnectOptions};
use crate::error::Error;
use crate::pinned::{BACKOFF_MAX, BACKOFF_START};

/// How often the listener looks whether it was asked to stop while it waits.
const STOP_CHECK: Duration = Duration::from_millis(100);

/// What waits for the notifications of one channel. Its methods run on the listener's thread,
/// one at a time; `conn` is the listening connection, for the queries a notification calls
/// for (the query cache reads the WAL position, the event log fetches a large payload).
pub trait Subscriber: Send + Sync + 'static {
    /// The channel to `LISTEN` on: an identifier, quoted by the listener.
    fn channel(&self) -> &str;

    /// The payloads of this channel that arrived together, in the order they were sent.
    ///
    /// # Errors
    /// A query on `conn` that failed: the connection is taken as lost.
    fn received<'a>(
        &'a self,
        payloads: Vec<String>,
        conn: &'a Client,
    ) -> LocalBoxFuture<'a, Result<(), Error>>;

    /// The connection is up and listening: the first time (`reconnected` false), or again
    /// after it was lost, when what was sent meanwhile must be made up for.
    ///
    /// # Errors
    /// As [`received`](Subscriber::received).
    fn up<'a>(
        &'a self,
        reconnected: bool,
        conn: &'a Client,
    ) -> LocalBoxFuture<'a, Result<(), Error>>;

    /// The connection is down: notifications do not arrive until the next [`up`](Subscriber::up).
    fn down(&self);
}

/// The running listener; dropping it stops it (within [`STOP_CHECK`]).
pub struct Listener {
    stop: Arc<AtomicBool>,
    up: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("up", &self.is_up())
            .finish_non_exhaustive()
    }
}

impl Listener {
    /// Whether the connection is up and listening now: readiness and `/metrics` report it.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// A handle on the state [`is_up`](Listener::is_up) reads, for a probe that outlives
    /// this borrow.
    pub fn state(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.up)
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

/// Starts listening on the primary at `url` for every subscriber's channel, on a thread of
/// its own. It reconnects (with backoff) whenever the connection is lost.
///
/// # Errors
/// A configuration error for a URL that does not parse, or for no subscriber; an error when
/// the thread cannot be started.
pub fn listen_all(
    url: &str,
    opts: ConnectOptions,
    subscribers: Vec<Arc<dyn Subscriber>>,
) -> Result<Listener, Error> {
    let config = tokio_postgres::Config::from_str(url)
        .map_err(|e| Error::config(format!("invalid database URL: {e}")))?;
    if subscribers.is_empty() {
        return Err(Error::config("a listener needs at least one subscriber"));
    }
    for s in &subscribers {
        s.down();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let up = Arc::new(AtomicBool::new(false));
    let (stopping, state) = (Arc::clone(&stop), Arc::clone(&up));
    let thread = std::thread::Builder::new()
        .name("pinion-listener".into())
        .spawn(move || {
            let runtime = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
                .enable_timer()
                .build();
            match runtime {
                Ok(mut rt) => rt.block_on(run(subscribers, config, opts, stopping, state)),
                Err(e) => tracing::error!(error = %e, "the listening connection cannot start"),
            }
        })
        .map_err(|e| Error::config(format!("cannot start the listener thread: {e}")))?;
    Ok(Listener {
        stop,
        up,
        thread: Some(thread),
    })
}

/// The `LISTEN` statements for every channel, each quoted as an identifier.
fn listen_sql(subscribers: &[Arc<dyn Subscriber>]) -> String {
    let mut sql = String::new();
    for s in subscribers {
        sql.push_str("LISTEN \"");
        sql.push_str(&s.channel().replace('"', "\"\""));
        sql.push_str("\";");
    }
    sql
}

async fn run(
    subscribers: Vec<Arc<dyn Subscriber>>,
    config: tokio_postgres::Config,
    opts: ConnectOptions,
    stop: Arc<AtomicBool>,
    up: Arc<AtomicBool>,
) {
    let mut backoff = BACKOFF_START;
    let mut was_up = false;
    let listen = listen_sql(&subscribers);
    while !stop.load(Ordering::Acquire) {
        let queue: Rc<RefCell<Vec<(String, String)>>> = Rc::default();
        let arrived = Rc::new(Notify::new());
        let on_notify = {
            let (queue, arrived) = (Rc::clone(&queue), Rc::clone(&arrived));
            Rc::new(move |channel: &str, payload: &str| {
                queue
                    .borrow_mut()
                    .push((channel.to_owned(), payload.to_owned()));
                arrived.notify_one();
            }) as dial::OnNotify
        };
        let conn = match dial::connect_listening(&config, &opts, on_notify).await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "listening connection cannot connect; the query cache is bypassed and events wait");
                monoio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        backoff = BACKOFF_START;
        let mut ready = conn
            .client
            .batch_execute(&listen)
            .await
            .map_err(Error::from_pg);
        for s in &subscribers {
            if ready.is_ok() {
                ready = s.up(was_up, &conn.client).await;
            }
        }
        if let Err(e) = ready {
            tracing::warn!(error = %e, "listening connection cannot listen; retrying");
            for s in &subscribers {
                s.down();
            }
            monoio::time::sleep(backoff).await;
            continue;
        }
        if was_up {
            tracing::info!("listening connection re-established");
        } else {
            tracing::debug!("listening connection up");
        }
        was_up = true;
        up.store(true, Ordering::Release);
        'listening: while !conn.closed.is_closed() && !stop.load(Ordering::Acquire) {
            let _ = monoio::time::timeout(STOP_CHECK, arrived.notified()).await;
            let arrivals = std::mem::take(&mut *queue.borrow_mut());
            if arrivals.is_empty() {
                continue;
            }
            for s in &subscribers {
                let payloads: Vec<String> = arrivals
                    .iter()
                    .filter(|(channel, _)| channel == s.channel())
                    .map(|(_, payload)| payload.clone())
                    .collect();
                if payloads.is_empty() {
                    continue;
                }
                if s.received(payloads, &conn.client).await.is_err() {
                    // The connection is going: each subscriber makes up for it once the
                    // connection is back.
                    break 'listening;
                }
            }
        }
        up.store(false, Ordering::Release);
        for s in &subscribers {
            s.down();
        }
        if !stop.load(Ordering::Acquire) {
            tracing::warn!(
                "listening connection lost; the query cache is bypassed and events wait until it is back"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn channels_are_quoted_as_identifiers() {
        struct Named(&'static str);
        impl super::Subscriber for Named {
            fn channel(&self) -> &str {
                self.0
            }
            fn received<'a>(
                &'a self,
                _: Vec<String>,
                _: &'a tokio_postgres::Client,
            ) -> futures_util::future::LocalBoxFuture<'a, Result<(), crate::Error>> {
                Box::pin(async { Ok(()) })
            }
            fn up<'a>(
                &'a self,
                _: bool,
                _: &'a tokio_postgres::Client,
            ) -> futures_util::future::LocalBoxFuture<'a, Result<(), crate::Error>> {
                Box::pin(async { Ok(()) })
            }
            fn down(&self) {}
        }
        let subs: Vec<std::sync::Arc<dyn super::Subscriber>> = vec![
            std::sync::Arc::new(Named("pinion_jobs")),
            std::sync::Arc::new(Named("we\"ird")),
        ];
        assert_eq!(
            super::listen_sql(&subs),
            "LISTEN \"pinion_jobs\";LISTEN \"we\"\"ird\";"
        );
    }
}
