//! Handlers with typed arguments: any `async fn` whose arguments are extractors, optionally
//! preceded by `&Ctx<S>` and followed by the raw `Request`, returning anything that is
//! [`IntoResponse`].
//!
//! Each shape is one impl of [`IntoHandler`] with a marker type of its own, so that the
//! compiler picks the shape from the function's signature (axum's habit); the router stores
//! every handler as the same `dyn Handler<S>`. A handler of today's shape,
//! `async fn(Request, &Ctx<S>) -> Result<Response, Error>`, is a [`Handler`] itself and is
//! called as before, with no extraction in between.

use std::marker::PhantomData;

use crate::context::Ctx;
use crate::extract::FromRequest;
use crate::h1::Request;
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

macro_rules! shapes {
    ($($t:ident),*) => {
        impl<S: 'static, F, R, $($t,)*> Handler<S> for Extracting<F, (Args, $($t,)*)>
        where
            F: AsyncFn($($t),*) -> R + 'static,
            R: IntoResponse,
            $($t: FromRequest<S> + 'static,)*
        {
            #[allow(non_snake_case, unused_variables)]
            fn call<'a>(&'a self, req: Request, ctx: &'a Ctx<S>) -> HandlerFuture<'a> {
                Box::pin(async move {
                    let ($($t,)*) = extract_or_answer!(req, ctx, $($t),*);
                    Ok((self.f)($($t),*).await.into_response())
                })
            }
        }

        impl<S: 'static, F, R, $($t,)*> IntoHandler<(Args, $($t,)*), S> for F
        where
            F: AsyncFn($($t),*) -> R + 'static,
            R: IntoResponse,
            $($t: FromRequest<S> + 'static,)*
        {
            fn into_handler(self) -> Box<dyn Handler<S>> {
                Box::new(Extracting::<F, (Args, $($t,)*)> { f: self, shape: PhantomData })
            }
        }

        impl<S: 'static, F, R, $($t,)*> Handler<S> for Extracting<F, (CtxArgs, $($t,)*)>
        where
            F: AsyncFn(&Ctx<S>, $($t),*) -> R + 'static,
            R: IntoResponse,
            $($t: FromRequest<S> + 'static,)*
        {
            #[allow(non_snake_case, unused_variables)]
            fn call<'a>(&'a self, req: Request, ctx: &'a Ctx<S>) -> HandlerFuture<'a> {
                Box::pin(async move {
                    let ($($t,)*) = extract_or_answer!(req, ctx, $($t),*);
                    Ok((self.f)(ctx, $($t),*).await.into_response())
                })
            }
        }

        impl<S: 'static, F, R, $($t,)*> IntoHandler<(CtxArgs, $($t,)*), S> for F
        where
            F: AsyncFn(&Ctx<S>, $($t),*) -> R + 'static,
            R: IntoResponse,
            $($t: FromRequest<S> + 'static,)*
        {
            fn into_handler(self) -> Box<dyn Handler<S>> {
                Box::new(Extracting::<F, (CtxArgs, $($t,)*)> { f: self, shape: PhantomData })
            }
        }

        impl<S: 'static, F, R, $($t,)*> Handler<S> for Extracting<F, (ArgsRequest, $($t,)*)>
        where
            F: AsyncFn($($t,)* Request) -> R + 'static,
            R: IntoResponse,
            $($t: FromRequest<S> + 'static,)*
        {
            #[allow(non_snake_case, unused_variables)]
            fn call<'a>(&'a self, req: Request, ctx: &'a Ctx<S>) -> HandlerFuture<'a> {
                Box::pin(async move {
                    let ($($t,)*) = extract_or_answer!(req, ctx, $($t),*);
                    Ok((self.f)($($t,)* req).await.into_response())
                })
            }
        }

        impl<S: 'static, F, R, $($t,)*> IntoHandler<(ArgsRequest, $($t,)*), S> for F
        where
            F: AsyncFn($($t,)* Request) -> R + 'static,
            R: IntoResponse,
            $($t: FromRequest<S> + 'static,)*
        {
            fn into_handler(self) -> Box<dyn Handler<S>> {
                Box::new(Extracting::<F, (ArgsRequest, $($t,)*)> { f: self, shape: PhantomData })
            }
        }

        impl<S: 'static, F, R, $($t,)*> Handler<S> for Extracting<F, (CtxArgsRequest, $($t,)*)>
        where
            F: AsyncFn(&Ctx<S>, $($t,)* Request) -> R + 'static,
            R: IntoResponse,
            $($t: FromRequest<S> + 'static,)*
        {
            #[allow(non_snake_case, unused_variables)]
            fn call<'a>(&'a self, req: Request, ctx: &'a Ctx<S>) -> HandlerFuture<'a> {
                Box::pin(async move {
                    let ($($t,)*) = extract_or_answer!(req, ctx, $($t),*);
                    Ok((self.f)(ctx, $($t,)* req).await.into_response())
                })
            }
        }

        impl<S: 'static, F, R, $($t,)*> IntoHandler<(CtxArgsRequest, $($t,)*), S> for F
        where
            F: AsyncFn(&Ctx<S>, $($t,)* Request) -> R + 'static,
            R: IntoResponse,
            $($t: FromRequest<S> + 'static,)*
        {
            fn into_handler(self) -> Box<dyn Handler<S>> {
                Box::new(Extracting::<F, (CtxArgsRequest, $($t,)*)> {
                    f: self,
                    shape: PhantomData,
                })
            }
        }
    };
}

shapes!();
shapes!(T1);
shapes!(T1, T2);
shapes!(T1, T2, T3);
shapes!(T1, T2, T3, T4);
shapes!(T1, T2, T3, T4, T5);
shapes!(T1, T2, T3, T4, T5, T6);
