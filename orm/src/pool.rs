//! The per-thread pool for transactions: a transaction needs a connection of its own, so it
//! cannot use the shared pinned one.
//!
//! No pool crate fits: deadpool, bb8 and sqlx all need tokio's runtime. This one is a
//! semaphore (its waiters queue fairly) over a stack of idle connections, all on one thread.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::{Client, Config};

use crate::dial::{self, ConnectOptions, Dialed};
use crate::error::{Deadline, Error};

/// A bounded set of connections to one database, for one worker thread.
pub(crate) struct Pool {
    name: Rc<str>,
    config: Config,
    opts: ConnectOptions,
    size: usize,
    permits: Arc<Semaphore>,
    idle: RefCell<Vec<Dialed>>,
    waiters: Cell<usize>,
    acquire_timeout: Duration,
}

impl Pool {
    pub(crate) fn new(
        name: Rc<str>,
        config: Config,
        opts: ConnectOptions,
        size: usize,
        acquire_timeout: Duration,
    ) -> Rc<Pool> {
        let size = size.max(1);
        Rc::new(Pool {
            name,
            config,
            opts,
            size,
            permits: Arc::new(Semaphore::new(size)),
            idle: RefCell::new(Vec::new()),
            waiters: Cell::new(0),
            acquire_timeout,
        })
    }

    /// Connections that can be handed out right now without waiting (idle ones plus those not
    /// yet dialed).
    pub(crate) fn available(&self) -> usize {
        self.permits.available_permits()
    }

    /// Tasks waiting for a connection.
    pub(crate) fn waiters(&self) -> usize {
        self.waiters.get()
    }

    /// Most connections this pool opens.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// A connection of its own for the caller, dialing one if none is idle; waits (in order)
    /// while all are in use, up to the acquire timeout.
    ///
    /// # Errors
    /// A timeout when none frees up in time; a connect error when dialing fails.
    pub(crate) async fn get(self: &Rc<Self>) -> Result<PooledClient, Error> {
        let permit = match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                self.waiters.set(self.waiters.get() + 1);
                let waited = monoio::time::timeout(
                    self.acquire_timeout,
                    Arc::clone(&self.permits).acquire_owned(),
                )
                .await;
                self.waiters.set(self.waiters.get() - 1);
                match waited {
                    Ok(Ok(p)) => p,
                    Ok(Err(_)) => return Err(Error::unavailable("pool closed").on(&self.name)),
                    Err(_) => return Err(Error::timeout(Deadline::PoolWait).on(&self.name)),
                }
            }
        };
        let reused = loop {
            let Some(d) = self.idle.borrow_mut().pop() else {
                break None;
            };
            if d.closed.is_closed() || d.client.is_closed() {
                continue;
            }
            if d.needs_rollback.get() {
                // A transaction was dropped unfinished on it: end it here, in the runtime,
                // rather than in a destructor that cannot wait.
                if d.client.batch_execute("ROLLBACK").await.is_err() {
                    continue;
                }
                d.needs_rollback.set(false);
            }
            break Some(d);
        };
        let dialed = match reused {
            Some(d) => d,
            None => dial::connect(&self.config, &self.opts)
                .await
                .map_err(|e| e.on(&self.name))?,
        };
        Ok(PooledClient {
            pool: Rc::clone(self),
            conn: Some(dialed),
            _permit: permit,
        })
    }
}

/// A connection borrowed from the pool; it goes back when dropped (unless it broke).
pub struct PooledClient {
    pool: Rc<Pool>,
    conn: Option<Dialed>,
    _permit: OwnedSemaphorePermit,
}

impl PooledClient {
    /// The tokio-postgres client, e.g. to start a transaction with
    /// `client_mut().transaction()`.
    pub fn client(&self) -> &Client {
        // Only `Drop` takes the connection out.
        &self.conn.as_ref().expect("present until drop").client
    }

    /// The client, mutably (`Client::transaction` needs `&mut`).
    pub fn client_mut(&mut self) -> &mut Client {
        &mut self.conn.as_mut().expect("present until drop").client
    }

    /// The connection with its statement cache.
    pub(crate) fn dialed(&self) -> &Dialed {
        self.conn.as_ref().expect("present until drop")
    }

    /// Closes the connection instead of returning it: it may be mid-statement.
    pub(crate) fn discard(mut self) {
        drop(self.conn.take());
    }

    /// Returns the connection with its transaction still open, for the pool to roll back
    /// before its next use.
    pub(crate) fn release_unfinished(self) {
        if let Some(conn) = &self.conn {
            conn.needs_rollback.set(true);
        }
    }
}

impl Drop for PooledClient {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if !conn.closed.is_closed() && !conn.client.is_closed() {
                self.pool.idle.borrow_mut().push(conn);
            }
        }
    }
}
