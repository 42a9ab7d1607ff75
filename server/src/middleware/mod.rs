//! The middleware chain: built once per worker at start-up, run for every request in a fixed,
//! documented order, configurable per route.
//!
//! # Order
//! Before the handler, in this order (each may answer early; later ones are then skipped):
//! 1. **request id** — `X-Request-Id` from a trusted proxy, or generated;
//! 2. **CORS** — answers preflights (`OPTIONS` with `Access-Control-Request-Method`);
//! 3. **rate limiting** — 429 with `Retry-After` and the RateLimit headers;
//! 4. the application's own middleware, in the order added.
//!
//! After the handler (also after an early answer, a 404 or a 405), in reverse order: the
//! application's middleware, rate-limit headers, CORS headers (with `Vary: Origin`), security
//! headers, `Server-Timing`, the request id echo, then telemetry and the access log.
//!
//! # Cost
//! The hot path allocates nothing here: response headers are appended as raw bytes to a
//! per-connection [`HeaderBlock`] (security headers are one pre-rendered block), the
//! [`Exchange`] lives on the connection task's stack, and a middleware that has nothing to do
//! returns [`Before::Continue`] without boxing a future. Only an asynchronous decision (a rate
//! limit kept in PostgreSQL) boxes one.

mod access_log;
mod chain;
mod cors;
mod exchange;
mod header_block;
mod rate_limit;
mod request_id;
mod security;
mod stack;
mod timing;

use std::future::Future;
use std::pin::Pin;

pub use access_log::AccessLog;
pub(crate) use chain::Chain;
pub use cors::{Cors, CorsConfig};
pub use exchange::Exchange;
pub use header_block::HeaderBlock;
pub use rate_limit::RateLimit;
pub use request_id::{RequestId, RequestIdValue};
pub use security::{
    SecurityHeaders, SecurityHeadersConfig, DEFAULT_CSP, DEFAULT_PERMISSIONS_POLICY,
    DEFAULT_REFERRER_POLICY,
};
pub use stack::Stack;
pub use timing::ServerTiming;

use crate::context::Ctx;
use crate::h1::{Request, Response};
pub(crate) use crate::router::RouteInfo;
pub use crate::router::RouteOptions;

/// The outcome of a middleware's `before` step.
pub enum Before<'a> {
    /// Go on to the next step.
    Continue,
    /// Answer now with this response; the handler does not run.
    Respond(Response),
    /// A decision that needs I/O: `Some(response)` answers early, `None` goes on.
    Wait(Pin<Box<dyn Future<Output = Option<Response>> + 'a>>),
}

/// Which steps of a [`Middleware`] do something, so that the chain calls only those.
///
/// A chain of seven middlewares makes 21 virtual calls per request if each is asked at every
/// step; most of them are the empty defaults. Declaring the steps saves those calls. The
/// default, [`Hooks::ALL`], is always correct.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hooks {
    /// Whether [`Middleware::before`] does anything.
    pub before: bool,
    /// Whether [`Middleware::after`] does anything.
    pub after: bool,
    /// Whether [`Middleware::finish`] does anything.
    pub finish: bool,
}

impl Hooks {
    /// Every step: the safe default.
    pub const ALL: Hooks = Hooks {
        before: true,
        after: true,
        finish: true,
    };
    /// Only `before` (a rate limit that queues its headers in [`Exchange::push_header`]).
    pub const BEFORE: Hooks = Hooks {
        before: true,
        after: false,
        finish: false,
    };
    /// Only `after` (response headers).
    pub const AFTER: Hooks = Hooks {
        before: false,
        after: true,
        finish: false,
    };
    /// `before` and `after`.
    pub const AROUND: Hooks = Hooks {
        before: true,
        after: true,
        finish: false,
    };
    /// Only `finish` (telemetry, logs).
    pub const FINISH: Hooks = Hooks {
        before: false,
        after: false,
        finish: true,
    };
}

/// A step of the chain.
///
/// `before` sees the request (and may annotate it, e.g. with its id), `after` sees the
/// response and appends headers to `headers` (raw lines; see [`HeaderBlock`]). A middleware
/// keeps per-route behaviour by looking at [`Exchange::route`].
pub trait Middleware<S>: 'static {
    /// A short name, for logs.
    fn name(&self) -> &'static str;

    /// The steps this middleware implements; the chain skips the others. Default: all.
    fn hooks(&self) -> Hooks {
        Hooks::ALL
    }

    /// Whether [`before`](Self::before) has anything to do for this request (a rate limiter:
    /// whether its route has a policy). Asked synchronously first, so that a request for
    /// which no step has anything to do skips the chain's asynchronous part (its future costs
    /// some twenty instructions a request). Default: yes.
    fn wants_before(&self, _ex: &Exchange) -> bool {
        true
    }

    /// Runs before the handler. The default goes on.
    fn before<'a>(
        &'a self,
        _req: &'a mut Request,
        _ex: &'a mut Exchange,
        _ctx: &'a Ctx<S>,
    ) -> Before<'a> {
        Before::Continue
    }

    /// Runs after the handler (or after an early answer), in reverse order. The default adds
    /// nothing.
    fn after(
        &self,
        _ex: &Exchange,
        _resp: &Response,
        _headers: &mut HeaderBlock<'_>,
        _ctx: &Ctx<S>,
    ) {
    }

    /// Runs once the response is encoded, with its final status: telemetry, access logs.
    fn finish(&self, _ex: &Exchange, _status: u16, _ctx: &Ctx<S>) {}

    /// Whether this step reads [`Exchange::path`]. The path is kept for the chain only when
    /// some step needs it (a reference count per request otherwise). Default: true, which is
    /// always correct; the built-in steps that never look at it say false.
    fn needs_path(&self) -> bool {
        true
    }
}
