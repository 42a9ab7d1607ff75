//! htmx: what an htmx request asks for ([`Htmx`]), a page or its fragment from one handler
//! ([`Htmx::render`]), and redirects htmx follows ([`redirect`]).

use askama::Template;
use pinion_server::extract::{FromRequest, Rejection};
use pinion_server::{header, Ctx, HeaderName, HeaderValue, Request, Response, StatusCode};

use crate::Result;

/// What the choice between a page and its fragment depends on ([`Htmx::wants_fragment`]): a
/// page and its fragment share a URL, so caches must key on these. `HX-Request` alone would
/// let a cache answer a history restore (which also sends `HX-Request`) with the fragment.
const VARY_HX: HeaderValue =
    HeaderValue::from_static("HX-Request, HX-History-Restore-Request, HX-Boosted");

/// What htmx says about the request (its `HX-*` headers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Htmx {
    /// `HX-Request: true`: htmx sent it, and swaps the answer into the page.
    pub request: bool,
    /// `HX-History-Restore-Request: true`: htmx restores a page missing from its history
    /// cache, and needs the whole page.
    pub history_restore: bool,
    /// `HX-Target`: the id of the element the answer goes into.
    pub target: Option<String>,
    /// `HX-Trigger`: the id of the element that sent it.
    pub trigger: Option<String>,
    /// `HX-Boosted: true`: a boosted link or form (the answer is still a whole page).
    pub boosted: bool,
}

impl Htmx {
    /// Whether the answer should be the fragment: an htmx request that is neither a history
    /// restore nor a boosted navigation.
    pub fn wants_fragment(&self) -> bool {
        self.request && !self.history_restore && !self.boosted
    }

    /// `fragment` rendered for an htmx request, else `page` (which includes the same partial);
    /// both with `Vary: HX-Request` (and the other headers the choice reads) and `text/html`.
    ///
    /// # Errors
    /// A template that fails to render (500).
    pub fn render(&self, page: &impl Template, fragment: &impl Template) -> Result<Response> {
        let body = if self.wants_fragment() {
            fragment.render()?
        } else {
            page.render()?
        };
        Ok(vary(Response::html(body)))
    }
}

/// `resp` with `Vary: HX-Request, HX-History-Restore-Request, HX-Boosted`, for any answer
/// that differs between htmx and the rest.
pub fn vary(resp: Response) -> Response {
    resp.header(header::VARY, VARY_HX)
}

fn flag(req: &Request, name: &str) -> bool {
    req.header_str(name)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

impl<S> FromRequest<S> for Htmx {
    fn from_request(req: &Request, _ctx: &Ctx<S>) -> std::result::Result<Htmx, Rejection> {
        Ok(Htmx {
            request: flag(req, "hx-request"),
            history_restore: flag(req, "hx-history-restore-request"),
            target: req.header_str("hx-target").map(str::to_string),
            trigger: req.header_str("hx-trigger").map(str::to_string),
            boosted: flag(req, "hx-boosted"),
        })
    }
}

/// Sends the browser to `location` after a form: `303 See Other` for a page (the
/// POST-redirect-GET pattern), or, for an htmx request, `200` with `HX-Redirect` (htmx does
/// not follow a 303 into a full navigation).
///
/// # Errors
/// A `location` that is not a valid header value (500).
pub fn redirect(htmx: &Htmx, location: &str) -> Result<Response> {
    let value = HeaderValue::from_str(location).map_err(|_| {
        crate::Error::internal(format!("redirect to an invalid location: {location:?}"))
    })?;
    if htmx.request {
        Ok(Response::new(StatusCode::OK).header(HeaderName::from_static("hx-redirect"), value))
    } else {
        Ok(Response::new(StatusCode::SEE_OTHER).header(header::LOCATION, value))
    }
}
