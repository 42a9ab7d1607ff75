//! A test client that needs no port: requests go through the same connection loop, middleware
//! chain, router and handlers as on a socket, over an in-memory transport (axum's `oneshot`
//! habit, with the real codec on both sides).
//!
//! ```
//! use pinion_server::testing::{block_on, TestClient};
//! use pinion_server::extract::Path;
//! use pinion_server::{Router, StatusCode};
//!
//! async fn hello(Path(name): Path<String>) -> String {
//!     format!("Hello, {name}!")
//! }
//!
//! block_on(async {
//!     let router = Router::new().get("/hello/{name}", hello);
//!     let client = TestClient::new(&pinion_config::Settings::default(), router, ());
//!     let resp = client.get("/hello/Ada").send().await;
//!     assert_eq!(resp.status(), StatusCode::OK);
//!     assert_eq!(resp.text(), "Hello, Ada!");
//! });
//! ```
//!
//! Everything between the bytes of a request and the bytes of its response is the server's own
//! code: limits answer 413 or 431, a body of the wrong type 415, pipelined requests are
//! answered in order. Only the socket is missing, so timeouts that wait for a slow client and
//! the worker's accept loop are left to the socket tests.

mod memory;
mod request;
mod response;

use std::cell::RefCell;
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use http::Method;

use crate::connection::{self, Shared};
use crate::deadline::Sweeper;
use crate::h1::date;
use crate::router::Router;
use crate::runtime::shutdown::LocalShutdown;

pub use request::TestRequest;
pub use response::TestResponse;

/// The address requests come from unless [`TestRequest::peer`] says otherwise.
pub const DEFAULT_PEER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 40000);

/// Sends requests to a router and its state as one worker thread would serve them.
///
/// Made (and used) inside a monoio runtime, since handlers run on one: [`block_on`] makes one
/// for a test.
pub struct TestClient<S: 'static> {
    shared: Rc<Shared<S>>,
}

impl<S: 'static> TestClient<S> {
    /// A client for `router` with `state`, under the connection settings of `settings`
    /// (limits, timeouts, trusted proxies, server name).
    ///
    /// # Panics
    /// Outside a monoio runtime (it starts the worker's deadline sweeper).
    pub fn new(settings: &pinion_config::Settings, router: Router<S>, state: S) -> TestClient<S> {
        let cfg = crate::runtime::conn_config(settings);
        let shutdown = Rc::new(LocalShutdown::default());
        let sweeper = Sweeper::new(Sweeper::tick_for(crate::runtime::shortest_timeout(&cfg)));
        monoio::spawn(Rc::clone(&sweeper).run());
        TestClient {
            shared: Rc::new(Shared::new(router, state, 0, cfg, shutdown, sweeper)),
        }
    }

    /// A request with `method` for `target` (a path with an optional query string).
    pub fn request(&self, method: Method, target: &str) -> TestRequest<'_, S> {
        TestRequest::new(self, method, target)
    }

    /// A `GET` for `target`.
    pub fn get(&self, target: &str) -> TestRequest<'_, S> {
        self.request(Method::GET, target)
    }

    /// A `HEAD` for `target`.
    pub fn head(&self, target: &str) -> TestRequest<'_, S> {
        self.request(Method::HEAD, target)
    }

    /// A `POST` to `target`.
    pub fn post(&self, target: &str) -> TestRequest<'_, S> {
        self.request(Method::POST, target)
    }

    /// A `PUT` to `target`.
    pub fn put(&self, target: &str) -> TestRequest<'_, S> {
        self.request(Method::PUT, target)
    }

    /// A `DELETE` of `target`.
    pub fn delete(&self, target: &str) -> TestRequest<'_, S> {
        self.request(Method::DELETE, target)
    }

    /// The worker's application state, as handlers see it through `Ctx::state`.
    pub fn state(&self) -> &S {
        self.shared.ctx.state()
    }

    /// Sends raw request bytes (one request, several pipelined ones, or malformed ones) from
    /// `peer` and returns every byte the server wrote until it closed or went idle.
    pub async fn send_raw(&self, bytes: impl Into<Bytes>, peer: SocketAddr) -> Bytes {
        let output = Rc::new(RefCell::new(BytesMut::new()));
        date::refresh();
        let transport = memory::Memory::new(bytes.into(), Rc::clone(&output));
        connection::serve(transport, peer, Rc::clone(&self.shared)).await;
        let out = std::mem::take(&mut *output.borrow_mut());
        out.freeze()
    }
}

/// Runs `fut` to completion on a fresh single-thread monoio runtime (epoll driver, timers on):
/// what a handler test needs around a [`TestClient`].
///
/// # Panics
/// When the runtime cannot be built (the process is out of file descriptors).
pub fn block_on<F: Future>(fut: F) -> F::Output {
    #[allow(clippy::expect_used)]
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("a monoio runtime for the test");
    rt.block_on(fut)
}
