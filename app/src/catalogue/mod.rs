//! The demo application: a catalogue of products with live search, inline editing through
//! htmx and orders placed in one transaction, behind accounts with sessions and CSRF.
//!
//! Routes by resource: [`products`] (the home page is the catalogue), [`accounts`] (sign up,
//! log in, log out), [`orders`] and [`events`] (their live updates). Every route here sits under the
//! [`SessionLayer`](pinion_web::session::SessionLayer); the private ones under
//! [`RequireLogin`](pinion_web::auth::RequireLogin) too.

pub mod accounts;
pub mod events;
pub mod forms;
pub mod orders;
pub mod products;

use pinion_server::cookie::CookieJar;
use pinion_server::Ctx;
use pinion_web::session::Session;
use pinion_web::Result;

use crate::layout::{Flash, FlashKind, Layout};
use crate::AppState;

/// What a full page needs from the request's session: its CSRF token and the messages left
/// for it. Kept in the handler while the page borrows it.
pub struct PageParts {
    csrf_token: String,
    flashes: Vec<Flash>,
    signed_in: bool,
}

impl PageParts {
    /// The parts for a page of `session`. A page with a form (`form`) or for a signed-in
    /// user gets a CSRF token; an anonymous visitor browsing gets none, so that browsing
    /// creates no session.
    ///
    /// # Errors
    /// A 500 when the OS gives no randomness for a new session id.
    pub fn of(session: &Session, form: bool) -> Result<PageParts> {
        let csrf_token = if form || session.user_id().is_some() {
            session.csrf_token()?
        } else {
            String::new()
        };
        let flashes = session
            .take_flashes()
            .into_iter()
            .map(|f| {
                let kind = match f.kind.as_str() {
                    "success" => FlashKind::Success,
                    "error" => FlashKind::Error,
                    _ => FlashKind::Info,
                };
                Flash::new(kind, f.text)
            })
            .collect();
        Ok(PageParts {
            csrf_token,
            flashes,
            signed_in: session.user_id().is_some(),
        })
    }

    /// The layout of a page with these parts.
    pub fn layout<'a>(&'a self, ctx: &'a Ctx<AppState>) -> Layout<'a> {
        ctx.state()
            .layout()
            .csrf_token(&self.csrf_token)
            .flashes(&self.flashes)
            .signed_in(self.signed_in)
    }
}

/// `jar` with the sticky cookie, after a write: the redirect that follows reads from the
/// primary, so it sees the write whatever the replicas' lag.
pub fn sticky(ctx: &Ctx<AppState>, mut jar: CookieJar) -> CookieJar {
    if let Some(cookie) = ctx.state().sticky_cookie() {
        jar.signed().add(cookie);
    }
    jar
}
