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

use crate::clock;
use crate::context::Ctx;
use crate::h1::{Request, Response};
use crate::telemetry::{RequestSlot, ThreadTelemetry};

/// What a request carries through the chain besides the request itself, which the handler
/// consumes: when it started, where it came from, where it went, and what the `before` steps
/// want the `after` steps to know.
///
/// It borrows the matched route from the router (`'r`) rather than holding counted
/// references: the chain runs for every request, and two `Rc` clones and drops were visible in
/// the plaintext profile.
#[derive(Debug)]
pub struct Exchange<'r> {
    start: clock::Instant,
    elapsed: std::time::Duration,
    method: Method,
    route: Option<&'r RouteInfo>,
    peer: SocketAddr,
    /// The request id when it was generated here (nearly always): inline and `Copy`, so that
    /// setting it copies 32 bytes and dropping the exchange has nothing to check. A proxy's
    /// id is in `extra`.
    generated_id: Option<[u8; 32]>,
    /// The rarely used part, made on first use: the path (only for a chain that reads it), a
    /// proxy's request id, what CORS and `before` steps leave for the response. One pointer
    /// is cheaper to initialise, move and drop on every request than the fields inline: with
    /// them, building and dropping the exchange cost about 30 instructions more per request
    /// (callgrind, pipelined plaintext).
    extra: Option<Box<Extra>>,
}

/// The rarely used part of an [`Exchange`].
#[derive(Debug, Default)]
struct Extra {
    /// The path, kept only when a step asks for it ([`Middleware::needs_path`]).
    path: Option<Bytes>,
    /// The request id a trusted proxy sent.
    given_id: Option<HeaderValue>,
    /// The `Origin` of a CORS request, kept for the response headers.
    origin: Option<HeaderValue>,
    /// Header lines a `before` step wants on the response (rate-limit headers), appended
    /// after the handler; see [`Exchange::push_header`].
    headers: Vec<u8>,
}

impl<'r> Exchange<'r> {
    pub(crate) fn new(
        start: clock::Instant,
        method: Method,
        path: Option<Bytes>,
        route: Option<&'r RouteInfo>,
        peer: SocketAddr,
    ) -> Exchange<'r> {
        Exchange {
            start,
            elapsed: std::time::Duration::ZERO,
            method,
            route,
            peer,
            generated_id: None,
            extra: path.map(|path| {
                Box::new(Extra {
                    path: Some(path),
                    ..Extra::default()
                })
            }),
        }
    }

    /// When the bytes of the request arrived (the read that completed its head; requests
    /// pipelined in one read share it).
    ///
    /// Durations are measured on the TSC (see `elapsed`); this converts the start to the OS
    /// clock, exact to tens of nanoseconds, so call it when you need a `std` instant rather
    /// than to time things.
    pub fn start(&self) -> Instant {
        clock::to_std(self.start)
    }

    /// How long the request took, from [`start`](Self::start) to its response being ready;
    /// measured once, when the `after` steps begin (zero before). When the chain has no
    /// `after` or `finish` step that could read it (only the built-in ones, `Server-Timing`
    /// off), it is not measured here: the telemetry times a pipelined batch once, when its
    /// write is issued.
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
        std::str::from_utf8(self.path_bytes()).unwrap_or("")
    }

    /// The request path's bytes as sent, which may be anything but controls and spaces:
    /// HTTP admits bytes 0x80–0xFF in a request target. Empty as for [`path`](Self::path).
    pub fn path_bytes(&self) -> &[u8] {
        self.extra
            .as_ref()
            .and_then(|e| e.path.as_deref())
            .unwrap_or_default()
    }

    /// The request id, once the request-id step has set it (the same as
    /// [`Request::request_id`]).
    pub fn request_id(&self) -> Option<&str> {
        self.request_id_bytes()
            .map(|b| std::str::from_utf8(b).unwrap_or(""))
    }

    /// The request id's bytes (visible ASCII).
    fn request_id_bytes(&self) -> Option<&[u8]> {
        match &self.generated_id {
            Some(id) => Some(id),
            None => self
                .extra
                .as_ref()
                .and_then(|e| e.given_id.as_ref())
                .map(HeaderValue::as_bytes),
        }
    }

    /// The request id as a value to keep after the exchange (a log record).
    pub fn request_id_value(&self) -> Option<RequestIdValue> {
        match &self.generated_id {
            Some(id) => Some(RequestIdValue::Generated(*id)),
            None => self
                .extra
                .as_ref()
                .and_then(|e| e.given_id.clone())
                .map(RequestIdValue::Given),
        }
    }

    /// Sets a request id made here.
    pub(crate) fn set_generated_id(&mut self, id: [u8; 32]) {
        self.generated_id = Some(id);
    }

    /// Sets the request id a trusted proxy sent.
    pub(crate) fn set_given_id(&mut self, id: HeaderValue) {
        self.generated_id = None;
        self.extra.get_or_insert_with(Box::default).given_id = Some(id);
    }

    /// The generated request id, for the step that echoes it.
    pub(crate) fn generated_id(&self) -> Option<&[u8; 32]> {
        self.generated_id.as_ref()
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
        let headers = &mut self.extra.get_or_insert_with(Box::default).headers;
        header_block::push_line(headers, name.as_str(), value.as_bytes());
    }

    /// The `Origin` of a CORS request from an origin the CORS step saw, kept for the response
    /// headers; `None` for a same-origin request or without CORS.
    pub fn origin(&self) -> Option<&HeaderValue> {
        self.extra.as_ref().and_then(|e| e.origin.as_ref())
    }

    /// Keeps the request's `Origin` for the `after` steps (the CORS step does).
    pub fn set_origin(&mut self, origin: HeaderValue) {
        self.extra.get_or_insert_with(Box::default).origin = Some(origin);
    }

    /// What a sampled trace logs once the response is written: the id, the method and the
    /// route (a counted reference: the trace outlives this exchange).
    pub(crate) fn into_trace_parts(self) -> (Option<RequestIdValue>, Method, Option<Rc<str>>) {
        (
            self.request_id_value(),
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
    request_id: Option<RequestId>,
    cors: Option<Cors>,
    rate_limit: Option<Box<dyn Middleware<S>>>,
    security: Option<SecurityHeaders>,
    timing: bool,
    observers: Vec<Observer<S>>,
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
            timing: false,
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
        self.request_id = Some(m);
        self
    }

    /// Sets the CORS step.
    pub fn cors(mut self, m: Cors) -> Stack<S> {
        self.cors = Some(m);
        self
    }

    /// Sets the rate-limiting step.
    pub fn rate_limit(mut self, m: impl Middleware<S>) -> Stack<S> {
        self.rate_limit = Some(Box::new(m));
        self
    }

    /// Sets the security-headers step.
    pub fn security_headers(mut self, m: SecurityHeaders) -> Stack<S> {
        self.security = Some(m);
        self
    }

    /// Sets the `Server-Timing` step.
    pub fn server_timing(mut self, _m: ServerTiming) -> Stack<S> {
        self.timing = true;
        self
    }

    /// Adds an observer (telemetry, access log): it sees every request, first in and last out,
    /// early answers and 404s included.
    pub fn observe(mut self, m: impl Middleware<S>) -> Stack<S> {
        self.observers.push(Observer::Step(Rc::new(m)));
        self
    }

    /// Records every request (method, route template, status, duration) and every
    /// connection in this worker's telemetry.
    pub fn telemetry(mut self, telemetry: Rc<ThreadTelemetry>) -> Stack<S> {
        self.observers
            .push(Observer::Telemetry(Rc::clone(&telemetry)));
        self.telemetry = Some(telemetry);
        self
    }

    /// Adds an application step, after the built-in ones.
    pub fn layer(mut self, m: impl Middleware<S>) -> Stack<S> {
        self.custom.push(Box::new(m));
        self
    }

    /// The steps in running order: the built-in ones as themselves, called directly, the
    /// others (the application's layers, an observer, the rate limit with its store type)
    /// through the trait object.
    pub(crate) fn into_chain(self) -> Chain<S> {
        let empty = self.request_id.is_none()
            && self.cors.is_none()
            && self.rate_limit.is_none()
            && self.security.is_none()
            && !self.timing
            && self.observers.is_empty()
            && self.custom.is_empty();
        let tail: Vec<Rc<dyn Middleware<S>>> = self
            .rate_limit
            .into_iter()
            .chain(self.custom)
            .map(Rc::from)
            .collect();
        let observer_steps: Vec<Rc<dyn Middleware<S>>> = self
            .observers
            .iter()
            .filter_map(|o| match o {
                Observer::Step(m) => Some(Rc::clone(m)),
                Observer::Telemetry(_) => None,
            })
            .collect();
        let with = |steps: &[Rc<dyn Middleware<S>>], pick: fn(Hooks) -> bool| {
            steps
                .iter()
                .filter(|m| pick(m.hooks()))
                .cloned()
                .collect::<Box<[_]>>()
        };
        let reversed = |mut v: Box<[Rc<dyn Middleware<S>>]>| {
            v.reverse();
            v
        };
        let needs_path = tail.iter().chain(&observer_steps).any(|m| m.needs_path());
        // Only `after` and `finish` steps can see the elapsed time; the connection times for
        // one telemetry.
        let telemetries = self
            .observers
            .iter()
            .filter(|o| matches!(o, Observer::Telemetry(_)))
            .count();
        let times_at_flush = !self.timing
            && telemetries <= 1
            && !tail
                .iter()
                .chain(&observer_steps)
                .any(|m| m.hooks().after || m.hooks().finish);
        // Observers finish in the order they were added; a dynamic observer's finish step is
        // kept only if it has one.
        let observers_finish: Box<[Observer<S>]> = self
            .observers
            .into_iter()
            .filter(|o| match o {
                Observer::Step(m) => m.hooks().finish,
                Observer::Telemetry(_) => true,
            })
            .collect();
        Chain {
            empty,
            needs_path,
            times_at_flush,
            request_id: self.request_id,
            observers_before: with(&observer_steps, |h| h.before),
            cors: self.cors,
            tail_before: with(&tail, |h| h.before),
            tail_after: reversed(with(&tail, |h| h.after)),
            security: self.security,
            timing: self.timing,
            observers_after: reversed(with(&observer_steps, |h| h.after)),
            observers_finish,
            tail_finish: with(&tail, |h| h.finish),
            telemetry: self.telemetry,
        }
    }
}

/// An observer: this worker's telemetry (recorded directly), or any middleware.
enum Observer<S> {
    Telemetry(Rc<ThreadTelemetry>),
    Step(Rc<dyn Middleware<S>>),
}

/// The chain of one worker.
///
/// The built-in steps are fields called directly rather than trait objects in a list: the
/// default chain (request id, `Server-Timing`, security headers, telemetry) made five
/// indirect calls per request that could not be inlined (22 instructions per request fewer
/// without them, callgrind on pipelined plaintext). The steps that are trait objects keep a
/// list per hook (`after` lists reversed), so that a step is only called for the hooks it has.
pub(crate) struct Chain<S> {
    empty: bool,
    needs_path: bool,
    /// Whether no step but the built-in telemetry looks at a request's duration, so that it
    /// can be measured when the response is sent rather than when it is encoded:
    /// [`finish`](Self::finish) then hands back the request's [`RequestSlot`] and the
    /// connection times the batch with one clock read when it issues the write.
    ///
    /// A clock read costs about 9 ns here (`rdtsc` on the benchmark's EPYC), as much as the
    /// rest of the telemetry step; pipelined requests share one. And it is what the client
    /// sees: the responses of a batch leave together, in one write.
    times_at_flush: bool,
    request_id: Option<RequestId>,
    observers_before: Box<[Rc<dyn Middleware<S>>]>,
    cors: Option<Cors>,
    tail_before: Box<[Rc<dyn Middleware<S>>]>,
    tail_after: Box<[Rc<dyn Middleware<S>>]>,
    security: Option<SecurityHeaders>,
    timing: bool,
    observers_after: Box<[Rc<dyn Middleware<S>>]>,
    observers_finish: Box<[Observer<S>]>,
    tail_finish: Box<[Rc<dyn Middleware<S>>]>,
    telemetry: Option<Rc<ThreadTelemetry>>,
}

impl<S: 'static> Chain<S> {
    pub(crate) fn empty() -> Chain<S> {
        Stack::new().into_chain()
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

    /// Runs the `before` steps that never wait — the request id and CORS — when no other
    /// step comes between them; `Some` is an early answer. [`before`](Self::before) runs the
    /// rest afterwards, if [`waits`](Self::waits) says there is any.
    ///
    /// The split keeps the common chain out of an `async fn`: creating, polling and dropping
    /// its future cost about twenty instructions per request (callgrind, pipelined plaintext).
    pub(crate) fn before_now(
        &self,
        req: &mut Request,
        ex: &mut Exchange<'_>,
    ) -> Option<Box<Response>> {
        if !self.observers_before.is_empty() {
            return None; // they run between the two: `before` does it all
        }
        if let Some(m) = &self.request_id {
            m.assign(req, ex);
        }
        self.cors
            .as_ref()
            .and_then(|m| m.check(req, ex))
            .map(Box::new)
    }

    /// Whether [`before`](Self::before) has anything left to run after
    /// [`before_now`](Self::before_now): steps that are trait objects (which may wait on
    /// I/O, like a rate limit kept in PostgreSQL).
    pub(crate) fn waits(&self) -> bool {
        !self.observers_before.is_empty() || !self.tail_before.is_empty()
    }

    /// Runs the `before` steps that [`before_now`](Self::before_now) did not; `Some` is an
    /// early answer.
    pub(crate) async fn before(
        &self,
        req: &mut Request,
        ex: &mut Exchange<'_>,
        ctx: &Ctx<S>,
    ) -> Option<Box<Response>> {
        if !self.observers_before.is_empty() {
            if let Some(m) = &self.request_id {
                m.assign(req, ex);
            }
            for step in &self.observers_before {
                if let Some(resp) = decide(step.before(req, ex, ctx)).await {
                    return Some(resp);
                }
            }
            if let Some(resp) = self.cors.as_ref().and_then(|m| m.check(req, ex)) {
                return Some(Box::new(resp));
            }
        }
        for step in &self.tail_before {
            if let Some(resp) = decide(step.before(req, ex, ctx)).await {
                return Some(resp);
            }
        }
        None
    }

    /// Adjusts the response before it is encoded, for steps that must change what the
    /// handler set rather than add to it (CORS adds `Origin` to the handler's `Vary`).
    #[inline]
    pub(crate) fn prepare(&self, resp: &mut Response) {
        if let Some(m) = &self.cors {
            m.merge_vary(resp);
        }
    }

    /// Measures the request's duration (one clock read, unless the chain
    /// times it at the flush (`times_at_flush`)), runs the `after` steps in reverse
    /// order, then appends what `before` steps queued.
    pub(crate) fn after(
        &self,
        ex: &mut Exchange,
        resp: &Response,
        out: &mut HeaderBlock<'_>,
        ctx: &Ctx<S>,
    ) {
        if !self.times_at_flush {
            ex.elapsed = clock::now().saturating_duration_since(ex.start);
        }
        for step in &self.tail_after {
            step.after(ex, resp, out, ctx);
        }
        if let Some(m) = &self.cors {
            Middleware::<S>::after(m, ex, resp, out, ctx);
        }
        if let Some(m) = &self.security {
            Middleware::<S>::after(m, ex, resp, out, ctx);
        }
        if self.timing {
            Middleware::<S>::after(&ServerTiming, ex, resp, out, ctx);
        }
        for step in &self.observers_after {
            step.after(ex, resp, out, ctx);
        }
        if let Some(m) = &self.request_id {
            Middleware::<S>::after(m, ex, resp, out, ctx);
        }
        if let Some(extra) = &ex.extra {
            out.push_block(&extra.headers);
        }
    }

    /// Runs the `finish` steps: the observers in the order added, then the others.
    ///
    /// # Return
    /// When the chain times at the flush (`times_at_flush`), the request's telemetry
    /// slot, for the caller to time with [`ThreadTelemetry::observe_requests`] once the
    /// response is sent (`None` with telemetry off); otherwise `None`, the request recorded.
    pub(crate) fn finish(&self, ex: &Exchange, status: u16, ctx: &Ctx<S>) -> Option<RequestSlot> {
        if self.times_at_flush {
            // No other step has a `finish`: telemetry is the only observer left.
            return self
                .telemetry
                .as_ref()
                .and_then(|t| t.template_slot(ex.method(), ex.route.map(|r| &r.template), status));
        }
        for observer in &self.observers_finish {
            match observer {
                Observer::Telemetry(t) => {
                    let template = ex.route.map(|r| &r.template);
                    if let Some(slot) = t.template_slot(ex.method(), template, status) {
                        t.observe_requests(slot, 1, ex.elapsed());
                    }
                }
                Observer::Step(step) => step.finish(ex, status, ctx),
            }
        }
        for step in &self.tail_finish {
            step.finish(ex, status, ctx);
        }
        None
    }
}

/// Resolves a `before` step's outcome: `Some` answers early. The answer is boxed: early
/// answers are rare, and an unboxed `Option<Response>` was moved three times on every request
/// (callgrind, pipelined plaintext).
async fn decide(before: Before<'_>) -> Option<Box<Response>> {
    match before {
        Before::Continue => None,
        Before::Respond(resp) => Some(Box::new(resp)),
        Before::Wait(fut) => fut.await.map(Box::new),
    }
}
