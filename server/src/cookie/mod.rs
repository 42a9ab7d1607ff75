//! Cookies: a [`CookieJar`] extractor read from the request's `Cookie` headers and written back
//! as `Set-Cookie` headers, with signed and private (encrypted) cookies under `secret_key`.
//!
//! ```no_run
//! use pinion_server::cookie::{Cookie, CookieJar};
//! use pinion_server::{Response, Router};
//!
//! // Plain, signed and private cookies; `(jar, response)` sends what the handler set.
//! async fn visit(mut jar: CookieJar) -> (CookieJar, String) {
//!     let theme = jar.get("theme").map_or("light", |c| c.value()).to_string();
//!     let visits: u32 = jar
//!         .signed()
//!         .get("visits")
//!         .and_then(|c| c.value().parse().ok())
//!         .unwrap_or(0);
//!     jar.signed().add(("visits", (visits + 1).to_string()));
//!     jar.private().add(
//!         Cookie::build(("cart", "3 items"))
//!             .max_age(pinion_server::cookie::time::Duration::days(7)),
//!     );
//!     (jar, format!("visit {} in the {theme} theme", visits + 1))
//! }
//!
//! async fn logout(mut jar: CookieJar) -> (CookieJar, Response) {
//!     jar.remove("cart");
//!     (jar, Response::text("bye"))
//! }
//!
//! let router: Router<()> = Router::new().get("/", visit).post("/logout", logout);
//! ```
//!
//! Every cookie set through the jar is `HttpOnly`, `SameSite=Lax` and `Path=/` unless it says
//! otherwise, and `Secure` when the request came over HTTPS through a trusted proxy. Signing
//! and encryption come from the `cookie` crate, with keys derived by HKDF from `secret_key`;
//! `secret_key_fallbacks` lets a key be rotated without logging everybody out.

mod jar;
mod keys;

pub use cookie::{time, Cookie, CookieBuilder, Expiration, SameSite};
pub(crate) use jar::signed_in_request;
pub use jar::{CookieJar, Sealed};
pub(crate) use keys::CookieKeys;
