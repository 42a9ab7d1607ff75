//! [`Exchange`]: what a request carries through the chain besides the request itself.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::Method;

use super::header_block;
use super::{RequestIdValue, RouteInfo};
use crate::clock;

/// What a request carries through the chain besides the request itself, which the handler
/// consumes: when it started, where it came from, where it went, and what the `before` steps
/// want the `after` steps to know.
///
/// It borrows the matched route from the router (`'r`) rather than holding counted
/// references: the chain runs for every request, and two `Rc` clones and drops were visible in
/// the plaintext profile.
#[derive(Debug)]
pub struct Exchange<'r> {
    pub(super) start: clock::Instant,
    pub(super) elapsed: std::time::Duration,
    pub(super) method: Method,
    pub(super) route: Option<&'r RouteInfo>,
    pub(super) peer: SocketAddr,
    /// The request id when it was generated here (nearly always): inline and `Copy`, so that
    /// setting it copies 32 bytes and dropping the exchange has nothing to check. A proxy's
    /// id is in `extra`.
    pub(super) generated_id: Option<[u8; 32]>,
    /// The rarely used part, made on first use: the path (only for a chain that reads it), a
    /// proxy's request id, what CORS and `before` steps leave for the response. One pointer
    /// is cheaper to initialise, move and drop on every request than the fields inline: with
    /// them, building and dropping the exchange cost about 30 instructions more per request
    /// (callgrind, pipelined plaintext).
    pub(super) extra: Option<Box<Extra>>,
}

/// The rarely used part of an [`Exchange`].
#[derive(Debug, Default)]
pub(super) struct Extra {
    /// The path, kept only when a step asks for it ([`Middleware::needs_path`](super::Middleware::needs_path)).
    pub(super) path: Option<Bytes>,
    /// The request id a trusted proxy sent.
    pub(super) given_id: Option<HeaderValue>,
    /// The `Origin` of a CORS request, kept for the response headers.
    pub(super) origin: Option<HeaderValue>,
    /// Header lines a `before` step wants on the response (rate-limit headers), appended
    /// after the handler; see [`Exchange::push_header`].
    pub(super) headers: Vec<u8>,
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
    /// a step of the chain declares that it needs it ([`Middleware::needs_path`](super::Middleware::needs_path), true by
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
        let options = &self.route?.options;
        let policy = options.rate_limit.as_deref()?;
        let counted = options.rate_limit_safe
            || !matches!(
                *self.method(),
                Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
            );
        counted.then_some(policy)
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
