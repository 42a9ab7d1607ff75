//! Pages for signed-in users only: [`RequireLogin`] around their routes, [`SignedIn`] in
//! their handlers, and [`safe_next`] for the page to return to after the login.

use pinion_server::extract::{FromRequest, Rejection};
use pinion_server::{
    header, Ctx, HandlerFuture, HeaderName, HeaderValue, Layer, Next, Request, Response, StatusCode,
};

use crate::session::Session;

/// Answers for the routes it wraps when nobody is signed in: a `303` to the login page with
/// `?next=` the page asked for, or, for an htmx request, `401` with `HX-Redirect` to it (htmx
/// then loads the login page in full). Must sit inside a
/// [`SessionLayer`](crate::session::SessionLayer): add it first.
///
/// ```no_run
/// # use std::rc::Rc;
/// # use pinion_server::Router;
/// # use pinion_web::session::{Sessions, SessionLayer};
/// # use pinion_web::auth::{RequireLogin, SignedIn};
/// # fn r(sessions: &Sessions, db: Rc<pinion_orm::ConnectionManager>) -> Router<()> {
/// async fn orders(SignedIn(user): SignedIn) -> String {
///     format!("orders of user {user}")
/// }
/// Router::new()
///     .get("/orders", orders)
///     .layer(RequireLogin::new("/login"))
///     .layer(SessionLayer::new(sessions, db))
/// # }
/// ```
pub struct RequireLogin {
    login: &'static str,
}

impl RequireLogin {
    /// Sends anonymous visitors to the page at `login`.
    pub fn new(login: &'static str) -> RequireLogin {
        RequireLogin { login }
    }

    fn to_login(&self, req: &Request) -> Response {
        let asked = match req.query() {
            Some(q) => format!("{}?{q}", req.path()),
            None => req.path().to_string(),
        };
        let location = format!("{}?next={}", self.login, percent_encode(&asked));
        let value = HeaderValue::from_str(&location).unwrap_or(HeaderValue::from_static("/"));
        if req
            .header_str("hx-request")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        {
            Response::new(StatusCode::UNAUTHORIZED)
                .header(HeaderName::from_static("hx-redirect"), value)
        } else {
            Response::new(StatusCode::SEE_OTHER).header(header::LOCATION, value)
        }
    }
}

/// `text` percent-encoded for a query value (everything but unreserved characters and `/`).
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl<S: 'static> Layer<S> for RequireLogin {
    fn call<'a>(&'a self, req: Request, ctx: &'a Ctx<S>, next: Next<'a, S>) -> HandlerFuture<'a> {
        let signed_in = req
            .extensions()
            .get::<Session>()
            .is_some_and(|s| s.user_id().is_some());
        if signed_in {
            next.run(req, ctx)
        } else {
            let resp = self.to_login(&req);
            Box::pin(async move { Ok(resp) })
        }
    }
}

/// The signed-in user's id; refused with 401 for an anonymous visitor (use it under
/// [`RequireLogin`], which answers those first with a redirect).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedIn(pub i64);

impl<S> FromRequest<S> for SignedIn {
    fn from_request(req: &Request, _ctx: &Ctx<S>) -> Result<SignedIn, Rejection> {
        req.extensions()
            .get::<Session>()
            .and_then(Session::user_id)
            .map(SignedIn)
            .ok_or_else(|| Rejection::new(StatusCode::UNAUTHORIZED, "sign in to see this page"))
    }
}

/// `next` if it is a path on this site, else `/`: a login form's `?next=` must not send the
/// user to another site (an open redirect).
pub fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n,
        _ => "/",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/orders?page=2")), "/orders?page=2");
        for bad in [
            "//evil.example",
            "https://evil.example",
            "evil",
            "/\\evil.example",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_next(None), "/");
        assert_eq!(percent_encode("/a b?c=d&e"), "/a%20b%3Fc%3Dd%26e");
    }
}
