//! Handlers with typed arguments: any `async fn` whose arguments are extractors, optionally
//! preceded by `&Ctx<S>` and followed by the raw `Request`, returning anything that is
//! [`IntoResponse`].
//!
//! Each shape is one `Handler` impl of a wrapper with a marker type of its own, so that the
//! compiler picks the shape from the function's signature (axum's habit); the router stores
//! every handler as the same `dyn Handler<S>`. A handler of today's shape,
//! `async fn(Request, &Ctx<S>) -> Result<Response, Error>`, is a [`Handler`] itself and is
//! called as before, with no extraction in between.
//!
//! A typed handler's answer is rendered in an answering scope (`problem.rs`): the wrapper keeps
//! the request's `Accept` and id before the handler takes the request, so that an
//! [`Error`](crate::Error) or [`Rejection`](crate::extract::Rejection) it returns is answered as
//! HTML to a browser and logged with the request id. A raw handler pays nothing for this: its
//! errors are problem documents, logged without the id.

use std::marker::PhantomData;

use crate::context::Ctx;
use crate::extract::FromRequest;
use crate::h1::Request;
use crate::problem::Answering;
use crate::response::IntoResponse;
use crate::router::{Handler, HandlerFuture};

/// Something the router can turn into a [`Handler`]: a `Handler` itself, or an `async fn`
/// taking extractors (see the [module](crate::extract) for the shapes). `T` is a marker that
/// tells the shapes apart; it is inferred, never written.
pub trait IntoHandler<T, S>: 'static {
    /// The handler the router stores.
    fn into_handler(self) -> Box<dyn Handler<S>>;
}

/// Marker of a [`Handler`] used as it is.
#[doc(hidden)]
pub struct Raw;

impl<S: 'static, H: Handler<S>> IntoHandler<Raw, S> for H {
    fn into_handler(self) -> Box<dyn Handler<S>> {
        Box::new(self)
    }
}

/// An `async fn` of extractors, with the shape `T` it was recognised by.
struct Extracting<F, T> {
    f: F,
    shape: PhantomData<fn() -> T>,
}

/// Marker of an `async fn` of extractors of shape `T` (one of [`Args`], [`CtxArgs`],
/// [`ArgsRequest`], [`CtxArgsRequest`] with the extractor types).
#[doc(hidden)]
pub struct Shaped<T>(PhantomData<fn() -> T>);

/// Every shape at once: `F` is a handler of shape `T` when `Extracting<F, T>` is one of the
/// `Handler` impls below.
// The bound names the private wrapper on purpose: the shapes are this module's business.
#[allow(private_bounds)]
impl<S: 'static, F: 'static, T: 'static> IntoHandler<Shaped<T>, S> for F
where
    Extracting<F, T>: Handler<S>,
{
    fn into_handler(self) -> Box<dyn Handler<S>> {
        Box::new(Extracting::<F, T> {
            f: self,
            shape: PhantomData,
        })
    }
}

/// Marker: extractors only.
#[doc(hidden)]
pub struct Args;
/// Marker: `&Ctx<S>` first, then extractors.
#[doc(hidden)]
pub struct CtxArgs;
/// Marker: extractors, then the raw `Request`.
#[doc(hidden)]
pub struct ArgsRequest;
/// Marker: `&Ctx<S>`, extractors, then the raw `Request`.
#[doc(hidden)]
pub struct CtxArgsRequest;

/// Extracts `$t` from the request or answers with its rejection.
macro_rules! extract_or_answer {
    ($req:ident, $ctx:ident, $($t:ident),*) => {
        ($(
            match $t::from_request(&$req, $ctx) {
                Ok(v) => v,
                Err(rejection) => return Ok(rejection.into_response_for(&$req)),
            },
        )*)
    };
}

/// One shape's `Handler` impl: `$arg` are the function's parameter types, `$call` what it is
/// called with once the extractors `$t` are bound.
macro_rules! shape {
    ($marker:ident, ($($t:ident),*), |$req:ident, $ctx:ident|
        ($($arg:ty),* $(,)?) => ($($call:expr),* $(,)?)) => {
        impl<S: 'static, F, R, $($t,)*> Handler<S> for Extracting<F, ($marker, $($t,)*)>
        where
            F: AsyncFn($($arg),*) -> R + 'static,
            R: IntoResponse,
            $($t: FromRequest<S> + 'static,)*
        {
            #[allow(non_snake_case, unused_variables)]
            fn call<'a>(&'a self, $req: Request, $ctx: &'a Ctx<S>) -> HandlerFuture<'a> {
                Box::pin(async move {
                    let ($($t,)*) = extract_or_answer!($req, $ctx, $($t),*);
                    // Kept before the handler takes the request: an error it returns is
                    // rendered for this client (HTML or problem+json) and logged with this id.
                    let answering = Answering::capture(&$req);
                    let out = (self.f)($($call),*).await;
                    Ok(answering.scope(|| out.into_response()))
                })
            }
        }
    };
}

/// The four shapes for the extractors `$t`.
macro_rules! shapes {
    ($($t:ident),*) => {
        shape!(Args, ($($t),*), |req, ctx| ($($t),*) => ($($t),*));
        shape!(CtxArgs, ($($t),*), |req, ctx| (&Ctx<S>, $($t),*) => (ctx, $($t),*));
        shape!(ArgsRequest, ($($t),*), |req, ctx| ($($t,)* Request) => ($($t,)* req));
        shape!(
            CtxArgsRequest,
            ($($t),*),
            |req, ctx| (&Ctx<S>, $($t,)* Request) => (ctx, $($t,)* req)
        );
    };
}

shapes!();
shapes!(T1);
shapes!(T1, T2);
shapes!(T1, T2, T3);
shapes!(T1, T2, T3, T4);
shapes!(T1, T2, T3, T4, T5);
shapes!(T1, T2, T3, T4, T5, T6);
