//! [`Authorize`]: who may subscribe to which channel.

use futures_util::future::LocalBoxFuture;
use pinion_server::Request;

/// Decides whether the client making `req` may subscribe to `channel`; registered for a
/// channel prefix with [`Live::authorize`](crate::Live::authorize).
///
/// Asynchronous, since the answer often needs the database (does this order belong to the
/// signed-in user?). A closure `Fn(&Request, &str) -> bool` is one, for checks that need
/// only the request (its session, its headers).
pub trait Authorize: 'static {
    /// Whether the subscription is allowed.
    fn allows<'a>(&'a self, req: &'a Request, channel: &'a str) -> LocalBoxFuture<'a, bool>;
}

impl<F> Authorize for F
where
    F: Fn(&Request, &str) -> bool + 'static,
{
    fn allows<'a>(&'a self, req: &'a Request, channel: &'a str) -> LocalBoxFuture<'a, bool> {
        let allowed = self(req, channel);
        Box::pin(std::future::ready(allowed))
    }
}

/// Every client may subscribe: for channels of public data.
#[derive(Debug, Clone, Copy)]
pub struct Public;

impl Authorize for Public {
    fn allows<'a>(&'a self, _: &'a Request, _: &'a str) -> LocalBoxFuture<'a, bool> {
        Box::pin(std::future::ready(true))
    }
}
