//! Extractors: what a handler declares in its signature and gets typed, with a rejection of
//! its own status when the request does not fit.
//!
//! ```no_run
//! use pinion_server::extract::{ClientAddr, Form, Headers, Json, Path, Query};
//! use pinion_server::{Ctx, Error, Request, Response, Router};
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct Search {
//!     q: String,
//!     #[serde(default)]
//!     page: u32,
//! }
//!
//! #[derive(Deserialize)]
//! struct NewTag {
//!     name: String,
//!     // `colour=red&colour=blue`
//!     #[serde(default)]
//!     colour: Vec<String>,
//! }
//!
//! async fn search(Query(s): Query<Search>) -> String {
//!     format!("{} (page {})", s.q, s.page)
//! }
//!
//! async fn create(ctx: &Ctx<()>, Form(tag): Form<NewTag>) -> Result<Response, Error> {
//!     let _worker = ctx.worker();
//!     Ok(Response::text(format!("{}: {}", tag.name, tag.colour.join(", "))))
//! }
//!
//! async fn echo(Json(v): Json<serde_json::Value>) -> Json<serde_json::Value> {
//!     Json(v)
//! }
//!
//! // `/tags/{id}`; a struct takes the parameters by name, a tuple by position.
//! async fn tag(Path(id): Path<u32>) -> String {
//!     format!("tag {id}")
//! }
//!
//! // The client behind trusted proxies, and every header.
//! async fn whoami(ClientAddr(ip): ClientAddr, Headers(h): Headers) -> String {
//!     let agent = h.get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or("?");
//!     format!("{ip} with {agent}")
//! }
//!
//! // The raw request, last, for what no extractor covers.
//! async fn raw(Query(s): Query<Search>, req: Request) -> String {
//!     format!("{} {} for {}", req.method(), req.path(), s.q)
//! }
//!
//! let router: Router<()> = Router::new()
//!     .get("/search", search)
//!     .post("/tags", create)
//!     .post("/echo", echo)
//!     .get("/tags/{id}", tag)
//!     .get("/whoami", whoami)
//!     .get("/raw", raw);
//! ```
//!
//! Every extractor reads the request that the connection has already parsed, body included
//! (read in full, up to `max_body_size`, before the handler runs: a larger body got 413
//! without being read), so extraction is synchronous and allocates only what the typed value
//! needs. A handler that takes the raw [`Request`] as its last argument still gets it whole.

mod client;
mod form;
mod headers;
mod json;
mod path;
mod query;
mod rejection;

pub use client::ClientAddr;
pub use form::Form;
pub use headers::Headers;
pub use json::Json;
pub use path::Path;
pub use query::Query;
pub use rejection::Rejection;

use crate::context::Ctx;
use crate::h1::Request;

/// A value a handler can take as an argument, built from the request (and the worker's
/// context) before the handler runs.
///
/// Implement it for an application's own extractors (the signed-in user, say); return a
/// [`Rejection`] to answer the request instead of running the handler.
pub trait FromRequest<S>: Sized {
    /// Builds the value from `req`.
    ///
    /// # Errors
    /// A [`Rejection`], answered in the handler's place.
    fn from_request(req: &Request, ctx: &Ctx<S>) -> Result<Self, Rejection>;
}

impl<S, T: FromRequest<S>> FromRequest<S> for Option<T> {
    /// `None` where `T` would be refused: for an optional query or body.
    fn from_request(req: &Request, ctx: &Ctx<S>) -> Result<Option<T>, Rejection> {
        Ok(T::from_request(req, ctx).ok())
    }
}

/// Checks that every `%` of a form-encoded string starts an escape and that it decodes to
/// UTF-8, which the form decoder would otherwise paper over (it keeps a stray `%` and replaces
/// bad bytes).
///
/// # Errors
/// 400 for a malformed escape, 422 for bytes that are not UTF-8, naming `what`.
fn check_form_encoding(bytes: &[u8], what: &str) -> Result<(), Rejection> {
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let escape = bytes.get(i + 1..i + 3);
            if !escape.is_some_and(|e| e.iter().all(u8::is_ascii_hexdigit)) {
                return Err(Rejection::bad_request(format!(
                    "{what}: malformed percent-encoding at byte {i}"
                )));
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    let decoded: std::borrow::Cow<'_, [u8]> = percent_encoding::percent_decode(bytes).into();
    if std::str::from_utf8(&decoded).is_err() {
        return Err(Rejection::unprocessable(format!(
            "{what}: a value is not valid UTF-8"
        )));
    }
    Ok(())
}

/// The message of a deserialization error with the path of the field it happened at.
fn field_error<E: std::fmt::Display>(e: &serde_path_to_error::Error<E>) -> String {
    let path = e.path().to_string();
    if path == "." || path.is_empty() {
        e.inner().to_string()
    } else {
        format!("{path}: {}", e.inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    #[test]
    fn form_encoding_is_checked_before_decoding() {
        assert!(check_form_encoding(b"a=1&b=caf%C3%A9+au+lait", "form").is_ok());
        let bad = check_form_encoding(b"a=%zz", "form").expect_err("malformed");
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        let bad = check_form_encoding(b"a=%4", "form").expect_err("truncated");
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        let bad = check_form_encoding(b"a=%FF%FE", "form").expect_err("not UTF-8");
        assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let bad = check_form_encoding(b"a=\xff", "form").expect_err("raw byte not UTF-8");
        assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
}
