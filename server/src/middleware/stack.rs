//! [`Stack`]: the builder of a worker's chain, with the built-in steps in their fixed order.

use std::rc::Rc;

use super::chain::{Chain, Observer};
use super::{Cors, Hooks, Middleware, RequestId, SecurityHeaders, ServerTiming};
use crate::telemetry::ThreadTelemetry;

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
