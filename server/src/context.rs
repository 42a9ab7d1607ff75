//! The per-thread context every handler receives.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use ipnet::IpNet;

use crate::cookie::CookieKeys;
use crate::h1::Request;

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
    cookie_keys: Arc<CookieKeys>,
}

impl<S> Ctx<S> {
    /// A context for worker `worker`; `cookie_keys` are the process's, shared by every worker.
    pub(crate) fn new(
        state: S,
        worker: usize,
        draining: Rc<Cell<bool>>,
        cookie_keys: Arc<CookieKeys>,
    ) -> Ctx<S> {
        Ctx {
            state,
            worker,
            draining,
            trusted_proxies: Arc::from([]),
            cookie_keys,
        }
    }

    /// The process's cookie keys, for the [`CookieJar`](crate::cookie::CookieJar).
    pub(crate) fn cookie_keys(&self) -> &Arc<CookieKeys> {
        &self.cookie_keys
    }

    /// The signed cookie `name` of `req`, verified under `secret_key` (or one of
    /// `secret_key_fallbacks`), or `None` when it is absent or was changed: for middleware and
    /// routes that read one cookie and set none, without building a
    /// [`CookieJar`](crate::cookie::CookieJar). It does not sign a fallback's cookie again;
    /// the jar does.
    pub fn signed_cookie(
        &self,
        req: &Request,
        name: &str,
    ) -> Option<crate::cookie::Cookie<'static>> {
        crate::cookie::signed_in_request(req, &self.cookie_keys, name)
    }

    /// A 256-bit key for `purpose` derived from `secret_key`, then one from each of
    /// `secret_key_fallbacks`: sign with the first, accept any (so that rotating the secret
    /// does not invalidate what was issued under the old one). For a layer's own HMACs (CSRF
    /// tokens); derive once and keep them, each call computes them again.
    pub fn derived_keys(&self, purpose: &str) -> Vec<[u8; 32]> {
        self.cookie_keys.derived(purpose)
    }

    /// Whether `req` reached us over HTTPS: a trusted proxy sent `X-Forwarded-Proto: https`.
    /// Cookies get `Secure` then; an application may also pick `__Host-` names by it.
    pub fn is_https(&self, req: &Request) -> bool {
        crate::forwarded::is_https(req, &self.trusted_proxies)
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
