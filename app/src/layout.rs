//! What every full page hands `templates/base.html`: the asset URLs, the CSRF token and the
//! flash messages, in one [`Layout`] field so that a page struct adds one field, not three.
//!
//! A page is a struct with a `layout` field and the page's own, and a template that extends
//! `base.html` (`templates/hello.html` would hold this source); the handler fills the layout
//! from the worker's state:
//!
//! ```
//! use askama::Template;
//! use pinion_app::layout::Layout;
//! use pinion_app::AppState;
//! use pinion_server::{Ctx, Html, Request};
//!
//! #[derive(Template)]
//! #[template(ext = "html", source = r#"{% extends "base.html" %}
//! {% import "macros/forms.html" as forms %}
//! {% block title %}Hello{% endblock %}
//! {% block content %}
//! <form method="post" action="/hello">
//! {% call forms::csrf_field(layout.csrf_token) %}{% endcall %}
//! {% call forms::field("name", "Your name", value = self.name, error = self.error, required = true) %}{% endcall %}
//! <button>Greet</button>
//! </form>
//! {% endblock %}"#)]
//! struct Hello<'a> {
//!     layout: Layout<'a>,
//!     name: &'a str,
//!     error: &'a str,
//! }
//!
//! async fn hello(ctx: &Ctx<AppState>, _req: Request) -> pinion_web::Result<Html<String>> {
//!     let page = Hello { layout: ctx.state().layout(), name: "", error: "" };
//!     Ok(Html(page.render()?))
//! }
//!
//! // The same page as the form comes back: the value kept, the error next to its field.
//! let assets = pinion_app::assets::Assets::empty();
//! let html = Hello { layout: Layout::new(&assets), name: "Ada", error: "Taken" }
//!     .render()
//!     .expect("renders");
//! assert!(html.contains(r#"value="Ada" required aria-invalid="true""#), "{html}");
//! assert!(html.contains(r#"<p id="field-name-error" class="field-error">Taken</p>"#));
//! ```

use std::borrow::Cow;
use std::fmt;

use crate::assets::{Assets, PREFIX};

/// The part of a page that `base.html` renders around its blocks.
#[derive(Debug, Clone, Copy)]
pub struct Layout<'a> {
    /// The process's static files, for [`asset`](Self::asset).
    pub assets: &'a Assets,
    /// The request's CSRF token: sent by htmx on every request (`hx-headers` on the page's wrapper, which a boosted
    /// navigation swaps with the page, so a rotated token follows) and
    /// by forms in a hidden field (`partials/csrf_field.html`); `""` until sessions give one.
    pub csrf_token: &'a str,
    /// Messages for the user, shown above the content (`partials/flashes.html`).
    pub flashes: &'a [Flash],
    /// Whether someone is signed in: the navigation shows their orders and a log-out button
    /// instead of the sign-up and log-in links.
    pub signed_in: bool,
}

impl<'a> Layout<'a> {
    /// A layout with no CSRF token and no messages.
    pub fn new(assets: &'a Assets) -> Layout<'a> {
        Layout {
            assets,
            csrf_token: "",
            flashes: &[],
            signed_in: false,
        }
    }

    /// With the navigation of a signed-in user (or not).
    pub fn signed_in(self, signed_in: bool) -> Layout<'a> {
        Layout { signed_in, ..self }
    }

    /// With this CSRF token.
    pub fn csrf_token(self, csrf_token: &'a str) -> Layout<'a> {
        Layout { csrf_token, ..self }
    }

    /// With these messages.
    pub fn flashes(self, flashes: &'a [Flash]) -> Layout<'a> {
        Layout { flashes, ..self }
    }

    /// The content-hashed URL of the static file `logical` (`{{ layout.asset("app.css") }}`).
    /// A name the folder does not have gives its unhashed URL, which answers 404: the page
    /// still renders, and the browser's console names the missing file.
    pub fn asset(&self, logical: &str) -> Cow<'a, str> {
        match self.assets.url(logical) {
            Some(url) => Cow::Borrowed(url),
            None => Cow::Owned(format!("{PREFIX}{logical}")),
        }
    }
}

/// A message for the user, shown once on the next page ("Saved.", "Wrong password.").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    /// How it is shown.
    pub kind: FlashKind,
    /// The text, HTML-escaped when rendered.
    pub text: String,
}

impl Flash {
    /// A message of `kind`.
    pub fn new(kind: FlashKind, text: impl Into<String>) -> Flash {
        Flash {
            kind,
            text: text.into(),
        }
    }
}

/// The kind of a [`Flash`], rendered as its CSS class (`flash-success`) and choosing its ARIA
/// role: errors are announced at once (`alert`), the others politely (`status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashKind {
    /// Neutral information.
    Info,
    /// Something the user did worked.
    Success,
    /// Something the user did failed.
    Error,
}

impl FlashKind {
    /// The name used in the CSS class.
    pub fn as_str(self) -> &'static str {
        match self {
            FlashKind::Info => "info",
            FlashKind::Success => "success",
            FlashKind::Error => "error",
        }
    }

    /// The ARIA role of a message of this kind.
    pub fn role(self) -> &'static str {
        match self {
            FlashKind::Error => "alert",
            FlashKind::Info | FlashKind::Success => "status",
        }
    }
}

impl fmt::Display for FlashKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
