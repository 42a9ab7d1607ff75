//! # pinion-app
//!
//! The reference application served by the `pinion` binary: a catalogue with accounts and
//! orders (server-rendered, htmx, sessions and CSRF), the TechEmpower endpoints (`/plaintext`,
//! `/json`, `/db`, `/queries`, `/fortunes`, `/updates`, `/cached-queries`), health probes, a
//! read-your-writes demo (`/worlds/{id}`), `/echo`, an endpoint list (`/about`) and the static
//! files (`/static/…`). [`router`] builds the routes for one worker thread; the binary
//! hands it to [`pinion_server::start`].
//!
//! # Layout
//! - [`catalogue`]: the demo app's routes by resource (products, accounts, orders) and their
//!   forms;
//! - [`models`]: the ORM models, one module each;
//! - [`techempower`]: the TechEmpower test types, together;
//! - [`routes`]: the other endpoints (health, metrics, static files, the endpoint list);
//! - [`startup`]: the database configuration and each worker's routes and state;
//! - [`budget`]: the connections a deployment may open to its primary, against the
//!   primary's `max_connections`;
//! - [`state`]: what each worker thread's handlers share ([`AppState`]), routing sessions and
//!   the sticky cookie;
//! - [`layout`]: what a full page hands `templates/base.html` (asset URLs, CSRF token, flash
//!   messages);
//! - [`assets`]: the static files, content-hashed at start-up and served from memory.

pub mod assets;
pub mod budget;
pub mod catalogue;
pub mod jobs;
pub mod layout;
pub mod live;
pub mod middleware;
pub mod models;
pub mod monitoring;
pub mod routes;
pub mod startup;
pub mod state;
pub mod techempower;

use catalogue::{accounts, orders, products};
use pinion_server::{RouteOptions, Router};
use pinion_web::auth::RequireLogin;
use pinion_web::response_cache::ResponseCache;
use pinion_web::session::SessionLayer;
pub use state::AppState;

/// How long the catalogue's public pages (for visitors without a session) are kept whole.
pub const PUBLIC_PAGE_TTL: std::time::Duration = std::time::Duration::from_secs(10);

/// What the demo's routes need besides the worker's state: its session layer, and the
/// process's store of whole public pages.
pub struct Demo {
    /// Sessions and CSRF for the demo's routes.
    pub sessions: SessionLayer,
    /// Whole public pages, shared by the workers.
    pub pages: ResponseCache<pinion_cache::LocMemCache>,
}

/// The application's routes, for one worker thread. With `demo` (a database is configured)
/// the home page is the catalogue demo, under sessions and CSRF, and the page of endpoints
/// moves to `/about`; the TechEmpower routes come after the session layer and pay nothing for
/// it.
pub fn router(demo: Option<Demo>) -> Router<AppState> {
    let router = match demo {
        Some(Demo {
            sessions: layer,
            pages,
        }) => Router::new()
            .get("/products/new", products::new)
            .post("/products", products::create)
            .get("/products/{id}/edit", products::edit)
            .get("/products/{id}/row", products::row)
            .post("/products/{id}", products::update)
            .delete("/products/{id}", products::delete)
            .post("/products/{id}/order", products::order)
            .get("/orders", orders::list)
            .get("/orders/{id}", orders::show)
            .layer(RequireLogin::new("/login"))
            // Each channel's own rule decides (catalogue::events), signed in or not.
            .get("/events/{channel}", catalogue::events::stream)
            .get("/", pages.ttl(PUBLIC_PAGE_TTL, products::list))
            .get("/products/{id}", pages.ttl(PUBLIC_PAGE_TTL, products::show))
            .get("/signup", accounts::signup_form)
            .post("/signup", accounts::signup)
            .get("/login", accounts::login_form)
            .post("/login", accounts::login)
            .post("/logout", accounts::logout)
            .layer(layer)
            .configure(
                "/login",
                RouteOptions::new().rate_limit_unsafe(middleware::LOGIN_POLICY),
            ),
        None => Router::new().get("/", routes::index::index),
    };
    router
        .get("/about", routes::index::index)
        .get("/plaintext", techempower::plaintext::plaintext)
        .get("/json", techempower::json::json)
        .any("/echo", routes::echo::echo)
        .get("/db", techempower::world::db)
        .get("/queries", techempower::world::queries)
        .get("/updates", techempower::world::updates)
        .get("/cached-queries", techempower::world::cached_queries)
        .get("/fortunes", techempower::fortunes::fortunes)
        .get("/worlds/live", routes::demo::live)
        .get("/worlds/{id}", routes::demo::show)
        .post("/worlds/{id}", routes::demo::update)
        .get("/health", routes::health::live)
        .get("/health/ready", routes::health::ready)
        .get("/metrics", routes::metrics::metrics)
        .get("/static/{*path}", routes::static_files::serve)
        // Probes and scrapes are cheap and never rate limited: they skip the chain.
        .configure("/health", RouteOptions::new().bare())
        .configure("/health/ready", RouteOptions::new().bare())
        .configure("/metrics", RouteOptions::new().bare())
}
