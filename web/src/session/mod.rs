//! HTTP sessions: server-side rows every instance shares, a per-process L1, signed cookies,
//! rotation, idle and absolute timeouts, and the CSRF protection bound to them.
//!
//! ```no_run
//! use std::rc::Rc;
//! use pinion_orm::ConnectionManager;
//! use pinion_server::{Ctx, Response, Router};
//! use pinion_web::session::{Session, SessionLayer, Sessions};
//! use pinion_web::Result;
//!
//! async fn visits(session: Session) -> Result<String> {
//!     let n: u32 = session.get("visits").unwrap_or(0) + 1;
//!     session.insert("visits", n)?;
//!     Ok(format!("visit {n}"))
//! }
//!
//! fn router(sessions: &Sessions, db: Rc<ConnectionManager>) -> Router<()> {
//!     Router::new()
//!         .get("/visits", visits)
//!         // Wraps the routes above it: they get their Session and CSRF checks.
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
