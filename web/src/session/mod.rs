//! HTTP sessions: server-side rows every instance shares, a per-process L1, signed cookies,
//! rotation, idle and absolute timeouts, and the CSRF protection bound to them.
//!
//! ```no_run
//! use std::rc::Rc;
//!
//! use pinion_orm::ConnectionManager;
//! use pinion_server::extract::Form;
//! use pinion_server::{Response, Router, StatusCode};
//! use pinion_web::auth::{RequireLogin, SignedIn};
//! use pinion_web::session::{Session, SessionLayer, Sessions};
//! use pinion_web::Result;
//! use serde::Deserialize;
//!
//! // A value kept across requests: written (one statement) only when it changed.
//! async fn visits(session: Session) -> Result<String> {
//!     let n: u32 = session.get("visits").unwrap_or(0) + 1;
//!     session.insert("visits", n)?;
//!     Ok(format!("visit {n}"))
//! }
//!
//! #[derive(Deserialize)]
//! struct Login {
//!     user: i64,
//! }
//!
//! // The form posted here carried `csrf_token` (from `session.csrf_token()?`), or the
//! // layer answered 403 before this ran.
//! async fn login(session: Session, Form(form): Form<Login>) -> Result<Response> {
//!     // (check the password with pinion_web::password::verify_async first)
//!     session.login(form.user)?; // a new session id: the one before stops working
//!     session.flash("success", "Welcome back.")?;
//!     Ok(Response::redirect(StatusCode::SEE_OTHER, "/orders")?)
//! }
//!
//! async fn orders(SignedIn(user): SignedIn) -> String {
//!     format!("the orders of user {user}")
//! }
//!
//! // `sessions` is made once per process (Sessions::from_settings), the layer once per
//! // worker; a layer wraps the routes added before it.
//! fn router(sessions: &Sessions, db: Rc<ConnectionManager>) -> Router<()> {
//!     Router::new()
//!         .get("/orders", orders)
//!         .layer(RequireLogin::new("/login"))
//!         .get("/visits", visits)
//!         .post("/login", login)
//!         .layer(SessionLayer::new(sessions, db))
//! }
//! ```
//!
//! Rows live in `pinion_sessions` (`migrations/0002_sessions.sql`), an UNLOGGED table on the
//! primary, keyed by the SHA-256 of the id; the cookie carries the id itself (256 random bits
//! from the OS), signed with `secret_key`. See [`SessionLayer`] for what runs on each request
//! and [`Session`] for what a handler can do.

mod handle;
pub(crate) mod id;
mod layer;
mod record;
mod store;

pub use handle::{Flash, Session};
pub use layer::{Clock, SessionLayer, Sessions, COOKIE, HOST_COOKIE};
