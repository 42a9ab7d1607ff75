//! The per-thread context every handler receives.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use ipnet::IpNet;

/// What a handler can reach besides its request: the application's per-thread state and a few
/// facts about the worker it runs on.
///
/// One `Ctx` exists per worker thread, built by the application's factory on that thread, so
/// `S` may hold `!Send` things such as pinned database connections.
pub struct Ctx<S> {
    state: S,
    worker: usize,
    draining: Rc<Cell<bool>>,
    trusted_proxies: Arc<[IpNet]>,
}

impl<S> Ctx<S> {
    pub(crate) fn new(state: S, worker: usize, draining: Rc<Cell<bool>>) -> Ctx<S> {
        Ctx {
            state,
            worker,
            draining,
            trusted_proxies: Arc::from([]),
        }
    }

    pub(crate) fn with_trusted_proxies(mut self, trusted: Arc<[IpNet]>) -> Ctx<S> {
        self.trusted_proxies = trusted;
        self
    }

    /// The application's state for this thread.
    #[inline]
    pub fn state(&self) -> &S {
        &self.state
    }

    /// Index of the worker thread (0-based), e.g. to spread work or label logs.
    pub fn worker(&self) -> usize {
        self.worker
    }

    /// The peers whose `X-Forwarded-For` is believed (the `trusted_proxies` setting), as the
    /// [`ClientAddr`](crate::extract::ClientAddr) extractor and the rate limiter read them.
    pub fn trusted_proxies(&self) -> &[IpNet] {
        &self.trusted_proxies
    }

    /// Whether the server is shutting down (readiness probes answer 503 then).
    pub fn is_draining(&self) -> bool {
        self.draining.get()
    }
}
