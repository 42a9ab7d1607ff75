//! The chain one worker runs for every request, built from a [`Stack`](super::Stack).

use std::rc::Rc;

use super::{
    Before, Cors, Exchange, HeaderBlock, Middleware, RequestId, SecurityHeaders, ServerTiming,
    Stack,
};
use crate::clock;
use crate::context::Ctx;
use crate::h1::{Request, Response};
use crate::telemetry::{RequestSlot, ThreadTelemetry};

/// An observer: this worker's telemetry (recorded directly), or any middleware.
pub(super) enum Observer<S> {
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
    pub(super) empty: bool,
    pub(super) needs_path: bool,
    /// Whether no step but the built-in telemetry looks at a request's duration, so that it
    /// can be measured when the response is sent rather than when it is encoded:
    /// [`finish`](Self::finish) then hands back the request's [`RequestSlot`] and the
    /// connection times the batch with one clock read when it issues the write.
    ///
    /// A clock read costs about 9 ns here (`rdtsc` on the benchmark's EPYC), as much as the
    /// rest of the telemetry step; pipelined requests share one. And it is what the client
    /// sees: the responses of a batch leave together, in one write.
    pub(super) times_at_flush: bool,
    pub(super) request_id: Option<RequestId>,
    pub(super) observers_before: Box<[Rc<dyn Middleware<S>>]>,
    pub(super) cors: Option<Cors>,
    pub(super) tail_before: Box<[Rc<dyn Middleware<S>>]>,
    pub(super) tail_after: Box<[Rc<dyn Middleware<S>>]>,
    pub(super) security: Option<SecurityHeaders>,
    pub(super) timing: bool,
    pub(super) observers_after: Box<[Rc<dyn Middleware<S>>]>,
    pub(super) observers_finish: Box<[Observer<S>]>,
    pub(super) tail_finish: Box<[Rc<dyn Middleware<S>>]>,
    pub(super) telemetry: Option<Rc<ThreadTelemetry>>,
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
    pub(crate) fn waits(&self, ex: &Exchange<'_>) -> bool {
        !self.observers_before.is_empty() || self.tail_before.iter().any(|m| m.wants_before(ex))
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
            if !step.wants_before(ex) {
                continue;
            }
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
