//! # pinion-server
//!
//! A thread-per-core HTTP/1.1 server on monoio. One worker thread per core, each pinned to its
//! core, each with its own monoio runtime (io_uring, or epoll where io_uring is unavailable)
//! and its own `SO_REUSEPORT` listener: a request is read, routed, handled and answered on the
//! thread that accepted its connection, so handlers and their state may be `!Send`.
//!
//! ```no_run
//! use pinion_server::{Ctx, Error, Request, Response, Router};
//!
//! async fn hello(_req: Request, _ctx: &Ctx<()>) -> Result<Response, Error> {
//!     Ok(Response::text("Hello, World!"))
//! }
//!
//! let settings = pinion_config::Settings::default();
//! let server = pinion_server::start(&settings, |_worker| (Router::new().get("/", hello), ()))?;
//! server.join()?;
//! # Ok::<(), Error>(())
//! ```
//!
//! # Layout
//! Modules follow a request's path:
//! - [`runtime`](start): threads, pinning, listeners, drivers, shutdown and signals;
//! - `connection`: the per-connection loop — read, parse, route, handle, encode, one write per
//!   pipelined batch;
//! - `h1`: the codec — request heads on httparse plus the RFC 9112 rules, body framing, a
//!   strict chunked decoder, response encoding, the cached `Date`;
//! - [`Router`]: matchit paths, method dispatch, 404/405;
//! - [`extract`]: typed handler arguments (`Path`, `Query`, `Form`, `Json`, `ClientAddr`,
//!   `Headers`) and their [`Rejection`](extract::Rejection)s; [`IntoResponse`]: what a handler
//!   may return;
//! - [`Request`], [`Response`], [`Ctx`], [`Error`]: what handlers see;
//! - `problem`: the one renderer of error answers (RFC 9457 problem+json, or HTML for a
//!   browser), shared by [`Error`] and [`Rejection`](extract::Rejection).
//!
//! # Limits and answers
//! Head too large or too many headers: 431. Target too long: 414. Body over `max_body_size`:
//! 413 (before reading when `Content-Length` says so). Head not received within
//! `header_read_timeout`: 408. Framing errors (`Transfer-Encoding` with `Content-Length`, bad
//! lengths, bad chunks): 400; unknown transfer codings: 501; other versions: 505. Every one of
//! these closes the connection.
//!
//! Release builds use `panic = "abort"`: a panicking handler takes the process down, and the
//! supervisor (systemd) restarts it. Handlers return [`Error`] instead.

mod clock;
mod connection;
mod context;
pub mod cookie;
mod deadline;
mod error;
pub mod extract;
mod forwarded;
mod h1;
mod handler;
pub mod middleware;
mod problem;
pub mod ratelimit;
mod response;
mod router;
mod runtime;
pub mod sse;
pub mod stream;
pub mod telemetry;
pub mod testing;

pub use context::Ctx;
pub use error::Error;
pub use h1::{Extensions, Request, Response};
pub use handler::IntoHandler;
/// The marker types that tell handler shapes apart: inferred by the compiler, never written.
#[doc(hidden)]
pub mod handler_shape {
    pub use crate::handler::{Args, ArgsRequest, CtxArgs, CtxArgsRequest, Raw, Shaped};
}
pub use middleware::{Middleware, RouteOptions, Stack};
pub use response::{Html, IntoResponse};
pub use router::{Handler, HandlerFuture, Layer, Next, Router};
pub use runtime::signal::install as install_signal_handlers;
pub use runtime::signal::{watch as watch_signals, SignalWatch};
pub use runtime::{start, Driver, ServerHandle, ShutdownTrigger};

/// Re-exported so applications name status codes, methods and headers with the same types.
pub use ::http::{header, HeaderName, HeaderValue, Method, StatusCode};
/// Re-exported: request and response bodies are `Bytes`.
pub use bytes::Bytes;
