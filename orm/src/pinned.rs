//! The pinned connection: one per database per worker thread, shared by every request on that
//! thread for autocommit statements, so tokio-postgres pipelines concurrent queries on it.
//!
//! A supervisor task owns its life: it dials, and when the connection ends it marks it lost
//! (in-flight queries fail with "connection lost") and re-dials with exponential backoff until
//! it is back. Queries meanwhile wait up to the connect timeout, then fail as unavailable.

use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_postgres::{Config, Statement};

use crate::dial::{self, ConnectOptions, Dialed};
use crate::error::Error;

/// First wait before re-dialing a lost connection; doubled per failure up to [`BACKOFF_MAX`].
pub(crate) const BACKOFF_START: Duration = Duration::from_millis(50);
/// Longest wait between two dials.
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// A live connection with its prepared statements (dropped with it on reconnect).
pub(crate) struct Live {
    pub(crate) conn: Dialed,
}

impl Live {
    fn new(conn: Dialed) -> Rc<Live> {
        Rc::new(Live { conn })
    }

    /// Whether the socket is still up.
    pub(crate) fn is_open(&self) -> bool {
        !self.conn.closed.is_closed() && !self.conn.client.is_closed()
    }

    /// The prepared statement for `sql`, preparing it on first use.
    pub(crate) async fn statement(&self, sql: &str) -> Result<Statement, Error> {
        self.conn.statement(sql).await
    }
}

/// What `live` returns: at once if it has it, otherwise once `up` is notified and it has it
/// then; `None` after `limit`. The pinned connection and the pipeline wait for their
/// supervisor's next connection this way.
pub(crate) async fn wait_live<T>(
    up: &Notify,
    limit: Duration,
    live: impl Fn() -> Option<T>,
) -> Option<T> {
    if let Some(found) = live() {
        return Some(found);
    }
    let wait = async {
        loop {
            // Registered before the check, so a notification in between is not missed.
            let notified = up.notified();
            if let Some(found) = live() {
                return found;
            }
            notified.await;
        }
    };
    monoio::time::timeout(limit, wait).await.ok()
}

enum State {
    Live(Rc<Live>),
    Connecting,
}

/// A connection that re-establishes itself.
pub(crate) struct Pinned {
    name: Rc<str>,
    config: Config,
    opts: ConnectOptions,
    state: RefCell<State>,
    /// Woken when a connection becomes live.
    up: Notify,
}

impl Pinned {
    /// Starts the supervisor, which dials right away; never fails (a database that is down at
    /// start-up is dialed until it comes up).
    pub(crate) fn start(name: Rc<str>, config: Config, opts: ConnectOptions) -> Rc<Pinned> {
        let pinned = Rc::new(Pinned {
            name,
            config,
            opts,
            state: RefCell::new(State::Connecting),
            up: Notify::new(),
        });
        monoio::spawn(Pinned::supervise(Rc::downgrade(&pinned)));
        pinned
    }

    /// Whether a live connection is in place right now.
    pub(crate) fn is_live(&self) -> bool {
        matches!(&*self.state.borrow(), State::Live(l) if l.is_open())
    }

    /// The live connection, waiting up to the connect timeout while one is being dialed.
    ///
    /// # Errors
    /// Unavailable when none came up in time.
    pub(crate) async fn get(&self) -> Result<Rc<Live>, Error> {
        let live = || match &*self.state.borrow() {
            State::Live(live) if live.is_open() => Some(Rc::clone(live)),
            _ => None,
        };
        wait_live(&self.up, self.opts.connect_timeout, live)
            .await
            .ok_or_else(|| Error::unavailable("reconnecting").on(&self.name))
    }

    /// Dials, waits for the connection to end, re-dials: until the `Pinned` is dropped. It
    /// holds only a weak reference while it waits, so dropping the last handle ends it.
    async fn supervise(weak: Weak<Pinned>) {
        let mut backoff = BACKOFF_START;
        let mut was_up = false;
        loop {
            let Some(this) = weak.upgrade() else { return };
            match dial::connect(&this.config, &this.opts).await {
                Ok(dialed) => {
                    backoff = BACKOFF_START;
                    let live = Live::new(dialed);
                    let closed = Rc::clone(&live.conn.closed);
                    *this.state.borrow_mut() = State::Live(live);
                    if was_up {
                        tracing::info!(database = %this.name, "database connection re-established");
                    } else {
                        tracing::debug!(database = %this.name, "database connected");
                    }
                    was_up = true;
                    this.up.notify_waiters();
                    drop(this);
                    closed.wait().await;
                    let Some(this) = weak.upgrade() else { return };
                    *this.state.borrow_mut() = State::Connecting;
                    tracing::warn!(database = %this.name, "database connection lost, reconnecting");
                }
                Err(e) => {
                    tracing::warn!(database = %this.name, error = %e, retry_in = ?backoff, "cannot connect to database");
                    drop(this);
                    monoio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }
}
