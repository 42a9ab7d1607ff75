//! [`Layer`]: code that runs around the handlers of a router, with I/O before and after them
//! (a session loaded before and saved after), which the middleware chain's synchronous
//! `after` step cannot do.

use std::rc::Rc;

use super::{Handler, HandlerFuture};
use crate::context::Ctx;
use crate::h1::Request;

/// Code around a handler: it gets the request (body read, parameters set), may answer in the
/// handler's place, and otherwise calls [`Next::run`] and may change what it returns.
///
/// Added with [`Router::layer`](crate::Router::layer), it wraps the handlers routed *before*
/// it (axum's rule), so an application chooses which routes it covers by where it adds it:
/// the benchmark routes of the demo are routed after the session layer and pay nothing for
/// it. Unlike a [`Middleware`](crate::Middleware), a layer does not run for a 404, a 405 or
/// an answer the chain gave early.
pub trait Layer<S>: 'static {
    /// Answers `req`, usually by calling `next` with it.
    fn call<'a>(&'a self, req: Request, ctx: &'a Ctx<S>, next: Next<'a, S>) -> HandlerFuture<'a>;
}

/// The handler (or the next layer) a [`Layer`] wraps.
pub struct Next<'a, S> {
    handler: &'a dyn Handler<S>,
}

impl<'a, S: 'static> Next<'a, S> {
    /// Runs the wrapped handler on `req`.
    pub fn run(self, req: Request, ctx: &'a Ctx<S>) -> HandlerFuture<'a> {
        self.handler.call(req, ctx)
    }
}

/// A handler with a layer around it; the router stores it like any other handler.
pub(super) struct Layered<S> {
    pub(super) layer: Rc<dyn Layer<S>>,
    pub(super) inner: Box<dyn Handler<S>>,
}

impl<S: 'static> Handler<S> for Layered<S> {
    fn call<'a>(&'a self, req: Request, ctx: &'a Ctx<S>) -> HandlerFuture<'a> {
        self.layer.call(
            req,
            ctx,
            Next {
                handler: &*self.inner,
            },
        )
    }
}
