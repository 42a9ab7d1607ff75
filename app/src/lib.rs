//! # pinion-app
//!
//! The reference application served by the `pinion` binary: the TechEmpower endpoints
//! (`/plaintext`, `/json`) plus `/echo` and an index page. [`router`] builds the routes for one
//! worker thread; the binary hands it to [`pinion_server::start`].
//!
//! # Layout
//! - [`routes`]: one module per endpoint;
//! - [`AppState`]: what each worker thread's handlers share.

pub mod routes;

use pinion_server::Router;

/// Per-thread state of the application, built on the worker thread that uses it.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Number of worker threads in this process (shown on the index page).
    pub threads: usize,
}

/// The application's routes, for one worker thread.
pub fn router() -> Router<AppState> {
    Router::new()
        .get("/", routes::index::index)
        .get("/plaintext", routes::plaintext::plaintext)
        .get("/json", routes::json::json)
        .any("/echo", routes::echo::echo)
}
