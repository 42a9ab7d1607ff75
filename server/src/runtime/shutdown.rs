//! Graceful shutdown: the process-wide trigger and each worker's view of it.
//!
//! The trigger is a `tokio::sync::watch` (tokio comes with tokio-postgres anyway, and its sync
//! primitives run on any executor); a worker turns it into a thread-local [`LocalShutdown`], so
//! that the hot path only reads a `Cell`.

use std::cell::Cell;
use std::rc::Rc;

use tokio::sync::futures::Notified;
use tokio::sync::{watch, Notify};

/// The process-wide shutdown trigger: cheap to clone, safe to fire from any thread, idempotent.
#[derive(Clone, Debug)]
pub struct ShutdownTrigger {
    tx: std::sync::Arc<watch::Sender<bool>>,
}

impl ShutdownTrigger {
    pub(crate) fn new() -> (ShutdownTrigger, watch::Receiver<bool>) {
        let (tx, rx) = watch::channel(false);
        (
            ShutdownTrigger {
                tx: std::sync::Arc::new(tx),
            },
            rx,
        )
    }

    /// Starts a graceful shutdown: listeners close, requests in flight finish with
    /// `Connection: close`, idle connections close, workers exit by the drain deadline.
    pub fn shutdown(&self) {
        self.tx.send_replace(true);
    }

    /// Whether shutdown has been triggered.
    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }

    /// A trigger of its own, for a process that runs no server (`pinion worker`): signals
    /// ([`SignalWatch::install`](crate::SignalWatch::install)) fire it as they fire a
    /// server's.
    pub fn detached() -> ShutdownTrigger {
        ShutdownTrigger::new().0
    }

    /// Waits until shutdown is triggered (at once when it already is): for work beside the
    /// server, such as background jobs, that must drain when the server does.
    pub async fn triggered(&self) {
        let mut rx = self.tx.subscribe();
        // An error means every sender is gone, which cannot be while `self` holds one.
        let _ = rx.wait_for(|stopping| *stopping).await;
    }
}

/// One worker's view of shutdown: a flag its connections read, a notification that wakes
/// the idle ones, and the grace during which an idle keep-alive connection still gets its next
/// request answered (with `Connection: close`) instead of being closed under it.
#[derive(Debug, Default)]
pub(crate) struct LocalShutdown {
    draining: Rc<Cell<bool>>,
    notify: Notify,
    grace: std::time::Duration,
    began: Cell<Option<std::time::Instant>>,
}

impl LocalShutdown {
    /// A worker's shutdown state with `grace` (`drain_grace`) for its idle connections.
    pub(crate) fn new(grace: std::time::Duration) -> LocalShutdown {
        LocalShutdown {
            grace,
            ..LocalShutdown::default()
        }
    }

    /// When idle connections stop waiting for a next request: the drain's start plus the
    /// grace. HTTP/1.1 has no way to announce a close, so a client that sends as the server
    /// closes loses that request; answering it with `Connection: close` instead ends the
    /// connection where the client expects it.
    pub(crate) fn grace_end(&self) -> std::time::Instant {
        self.began.get().unwrap_or_else(std::time::Instant::now) + self.grace
    }

    /// The grace itself, for a connection that learns of the drain while it waits.
    pub(crate) fn grace(&self) -> std::time::Duration {
        self.grace
    }
    /// The flag, shared with the handler context.
    pub(crate) fn flag(&self) -> Rc<Cell<bool>> {
        Rc::clone(&self.draining)
    }

    /// Whether this worker is draining.
    #[inline]
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.get()
    }

    /// A future that completes when draining begins. Create it *before* checking
    /// [`is_draining`](Self::is_draining): a notification between the two is still seen.
    pub(crate) fn notified(&self) -> Notified<'_> {
        self.notify.notified()
    }

    /// Marks the worker as draining and wakes every idle connection.
    pub(crate) fn begin(&self) {
        self.began.set(Some(std::time::Instant::now()));
        self.draining.set(true);
        self.notify.notify_waiters();
    }
}

/// Waits until the process-wide trigger fires (or its sender is gone).
pub(crate) async fn triggered(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|&v| v).await;
}
