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
mod cors;
mod header_block;
mod rate_limit;
mod request_id;
mod security;
mod timing;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::Method;

pub use access_log::AccessLog;
pub use cors::{Cors, CorsConfig};
pub use header_block::HeaderBlock;

pub use rate_limit::RateLimit;
pub use request_id::{RequestId, RequestIdValue};
pub use security::{
    SecurityHeaders, SecurityHeadersConfig, DEFAULT_CSP, DEFAULT_PERMISSIONS_POLICY,
    DEFAULT_REFERRER_POLICY,
};
pub use timing::ServerTiming;

use crate::context::Ctx;
use crate::h1::{Request, Response};
use crate::telemetry::ThreadTelemetry;

/// What a request carries through the chain besides the request itself, which the handler
/// consumes: when it started, where it came from, where it went, and what the `before` steps
/// want the `after` steps to know.
///
/// It borrows the matched route from the router (`'r`) rather than holding counted
/// references: the chain runs for every request, and two `Rc` clones and drops were visible in
/// the plaintext profile.
#[derive(Debug)]
pub struct Exchange<'r> {
    start: Instant,
    elapsed: std::time::Duration,
    method: Method,
    /// The path, kept only when a step asks for it ([`Middleware::needs_path`]).
    path: Option<Bytes>,
    route: Option<&'r RouteInfo>,
    peer: SocketAddr,
    /// The request id, once the request-id middleware has set it.
    pub request_id: Option<RequestIdValue>,
    /// The `Origin` of a CORS request, kept for the response headers.
    pub origin: Option<HeaderValue>,
    /// Header lines a `before` step wants on the response (rate-limit headers), appended
    /// after the handler; see [`push_header`](Self::push_header). A `Vec` costs nothing until
    /// used, which is most requests.
    headers: Vec<u8>,
}

impl<'r> Exchange<'r> {
    pub(crate) fn new(
        start: Instant,
        method: Method,
        path: Option<Bytes>,
        route: Option<&'r RouteInfo>,
        peer: SocketAddr,
    ) -> Exchange<'r> {
        Exchange {
            start,
            elapsed: std::time::Duration::ZERO,
            method,
            path,
            route,
            peer,
            request_id: None,
            origin: None,
            headers: Vec::new(),
        }
    }

    /// When the bytes of the request arrived (the read that completed its head; requests
    /// pipelined in one read share it).
    pub fn start(&self) -> Instant {
        self.start
    }

    /// How long the request took, from [`start`](Self::start) to its response being ready;
    /// measured once, when the `after` steps begin (zero before).
    pub fn elapsed(&self) -> std::time::Duration {
        self.elapsed
    }

    /// The request method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The request path as sent (percent-encoded, without the query), for logs. Empty unless
    /// a step of the chain declares that it needs it ([`Middleware::needs_path`], true by
    /// default).
    pub fn path(&self) -> &str {
        self.path
            .as_deref()
            .and_then(|p| std::str::from_utf8(p).ok())
            .unwrap_or("")
    }

    /// The matched route template (`/users/{id}`), `None` when no route matched. Metrics use
    /// it as a label, so unknown paths cannot multiply series.
    pub fn route(&self) -> Option<&'r str> {
        self.route.map(|r| &*r.template)
    }

    /// The TCP peer (nginx, behind a proxy).
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The rate-limit policy named for this route, if any (see [`RouteOptions`]).
    pub fn rate_policy(&self) -> Option<&'r str> {
        self.route.and_then(|r| r.options.rate_limit.as_deref())
    }

    /// Queues `name: value` for the response, from a `before` step (an `after` step writes to
    /// its [`HeaderBlock`] directly). Queued lines follow the `after` steps' own.
    pub fn push_header(&mut self, name: &HeaderName, value: &HeaderValue) {
        header_block::push_line(&mut self.headers, name.as_str(), value.as_bytes());
    }

    /// What a sampled trace logs once the response is written: the id, the method and the
    /// route (a counted reference: the trace outlives this exchange).
    pub(crate) fn into_trace_parts(self) -> (Option<RequestIdValue>, Method, Option<Rc<str>>) {
        (
            self.request_id,
            self.method,
            self.route.map(|r| Rc::clone(&r.template)),
        )
    }
}

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
    /// Only `before` (a rate limit that queues its headers in [`Exchange::headers`]).
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

/// Per-route choices, set with [`Router::configure`](crate::Router::configure).
#[derive(Debug, Clone)]
pub struct RouteOptions {
    pub(crate) middleware: bool,
    pub(crate) rate_limit: Option<Rc<str>>,
}

impl Default for RouteOptions {
    fn default() -> Self {
        RouteOptions {
            middleware: true,
            rate_limit: None,
        }
    }
}

impl RouteOptions {
    /// Every middleware on, no rate-limit policy.
    pub fn new() -> RouteOptions {
        RouteOptions::default()
    }

    /// Limits this route with the named policy.
    pub fn rate_limit(mut self, policy: &str) -> RouteOptions {
        self.rate_limit = Some(policy.into());
        self
    }

    /// Skips the whole chain for this route (health probes: cheap, never rate limited).
    pub fn bare(mut self) -> RouteOptions {
        self.middleware = false;
        self.rate_limit = None;
        self
    }
}

/// A route as the chain sees it: its template and options.
#[derive(Debug, Clone)]
pub(crate) struct RouteInfo {
    pub(crate) template: Rc<str>,
    pub(crate) options: RouteOptions,
}

/// Builds a worker's chain with the built-in steps in their fixed order (see the module doc):
/// whatever order the setters are called in, the chain runs request id, CORS, rate limiting,
/// then the application's steps; telemetry and the access log see every response.
pub struct Stack<S> {
    request_id: Option<Box<dyn Middleware<S>>>,
    cors: Option<Box<dyn Middleware<S>>>,
    rate_limit: Option<Box<dyn Middleware<S>>>,
    security: Option<Box<dyn Middleware<S>>>,
    timing: Option<Box<dyn Middleware<S>>>,
    observers: Vec<Box<dyn Middleware<S>>>,
    custom: Vec<Box<dyn Middleware<S>>>,
    telemetry: Option<Rc<ThreadTelemetry>>,
}

impl<S: 'static> Default for Stack<S> {
    fn default() -> Self {
        Stack {
            request_id: None,
            cors: None,
            rate_limit: None,
            security: None,
            timing: None,
            observers: Vec::new(),
            custom: Vec::new(),
            telemetry: None,
        }
    }
}

impl<S: 'static> Stack<S> {
    /// An empty stack: no middleware at all.
    pub fn new() -> Stack<S> {
        Stack::default()
    }

    /// Sets the request-id step.
    pub fn request_id(mut self, m: RequestId) -> Stack<S> {
        self.request_id = Some(Box::new(m));
        self
    }

    /// Sets the CORS step.
    pub fn cors(mut self, m: Cors) -> Stack<S> {
        self.cors = Some(Box::new(m));
        self
    }

    /// Sets the rate-limiting step.
    pub fn rate_limit(mut self, m: impl Middleware<S>) -> Stack<S> {
        self.rate_limit = Some(Box::new(m));
        self
    }

    /// Sets the security-headers step.
    pub fn security_headers(mut self, m: SecurityHeaders) -> Stack<S> {
        self.security = Some(Box::new(m));
        self
    }

    /// Sets the `Server-Timing` step.
    pub fn server_timing(mut self, m: ServerTiming) -> Stack<S> {
        self.timing = Some(Box::new(m));
        self
    }

    /// Adds an observer (telemetry, access log): it sees every request, first in and last out,
    /// early answers and 404s included.
    pub fn observe(mut self, m: impl Middleware<S>) -> Stack<S> {
        self.observers.push(Box::new(m));
        self
    }

    /// Records every request (method, route template, status, duration) and every
    /// connection in this worker's telemetry.
    pub fn telemetry(mut self, telemetry: Rc<ThreadTelemetry>) -> Stack<S> {
        self.observers
            .push(Box::new(Observe(Rc::clone(&telemetry))));
        self.telemetry = Some(telemetry);
        self
    }

    /// Adds an application step, after the built-in ones.
    pub fn layer(mut self, m: impl Middleware<S>) -> Stack<S> {
        self.custom.push(Box::new(m));
        self
    }

    /// The steps in running order.
    pub(crate) fn into_chain(self) -> Chain<S> {
        let mut steps: Vec<Rc<dyn Middleware<S>>> = Vec::new();
        let all = self
            .request_id
            .into_iter()
            .chain(self.observers)
            .chain(self.timing)
            .chain(self.security)
            .chain(self.cors)
            .chain(self.rate_limit)
            .chain(self.custom);
        for step in all {
            steps.push(Rc::from(step));
        }
        let with = |pick: fn(Hooks) -> bool| -> Box<[Rc<dyn Middleware<S>>]> {
            steps.iter().filter(|m| pick(m.hooks())).cloned().collect()
        };
        let before = with(|h| h.before);
        let mut after = with(|h| h.after);
        after.reverse();
        let finish = with(|h| h.finish);
        Chain {
            empty: steps.is_empty(),
            needs_path: steps.iter().any(|m| m.needs_path()),
            before,
            after,
            finish,
            telemetry: self.telemetry,
        }
    }
}

/// The telemetry observer.
struct Observe(Rc<ThreadTelemetry>);

impl<S: 'static> Middleware<S> for Observe {
    fn name(&self) -> &'static str {
        "telemetry"
    }

    fn hooks(&self) -> Hooks {
        Hooks::FINISH
    }

    fn needs_path(&self) -> bool {
        false
    }

    fn finish(&self, ex: &Exchange, status: u16, _ctx: &Ctx<S>) {
        self.0
            .record_request(ex.method(), ex.route(), status, ex.elapsed());
    }
}

/// The chain of one worker: for each step, the middlewares that implement it, in the order
/// that step runs (`after` is reversed).
pub(crate) struct Chain<S> {
    empty: bool,
    needs_path: bool,
    before: Box<[Rc<dyn Middleware<S>>]>,
    after: Box<[Rc<dyn Middleware<S>>]>,
    finish: Box<[Rc<dyn Middleware<S>>]>,
    telemetry: Option<Rc<ThreadTelemetry>>,
}

impl<S: 'static> Chain<S> {
    pub(crate) fn empty() -> Chain<S> {
        Chain {
            empty: true,
            needs_path: false,
            before: Box::new([]),
            after: Box::new([]),
            finish: Box::new([]),
            telemetry: None,
        }
    }

    /// The worker's telemetry, for connection counts.
    pub(crate) fn telemetry(&self) -> Option<&Rc<ThreadTelemetry>> {
        self.telemetry.as_ref()
    }

    /// Whether a step reads [`Exchange::path`].
    pub(crate) fn needs_path(&self) -> bool {
        self.needs_path
    }

    /// Whether the chain has nothing to do (the benchmark's "middleware off").
    pub(crate) fn is_empty(&self) -> bool {
        self.empty
    }

    /// Runs the `before` steps; `Some` is an early answer.
    pub(crate) async fn before(
        &self,
        req: &mut Request,
        ex: &mut Exchange<'_>,
        ctx: &Ctx<S>,
    ) -> Option<Response> {
        for step in &self.before {
            match step.before(req, ex, ctx) {
                Before::Continue => {}
                Before::Respond(resp) => return Some(resp),
                Before::Wait(fut) => {
                    if let Some(resp) = fut.await {
                        return Some(resp);
                    }
                }
            }
        }
        None
    }

    /// Measures the request's duration (one clock read), runs the `after` steps in reverse
    /// order, then appends what `before` steps queued.
    pub(crate) fn after(
        &self,
        ex: &mut Exchange,
        resp: &Response,
        out: &mut HeaderBlock<'_>,
        ctx: &Ctx<S>,
    ) {
        ex.elapsed = ex.start.elapsed();
        for step in &self.after {
            step.after(ex, resp, out, ctx);
        }
        if !ex.headers.is_empty() {
            out.push_block(&ex.headers);
        }
    }

    /// Runs the `finish` steps.
    pub(crate) fn finish(&self, ex: &Exchange, status: u16, ctx: &Ctx<S>) {
        for step in &self.finish {
            step.finish(ex, status, ctx);
        }
    }
}
