//! Why an extractor refused a request, and the answer the client gets for it.

use std::fmt;

use bytes::Bytes;
use http::header::HeaderValue;
use http::StatusCode;
use serde::Serialize;

use crate::h1::{Request, Response};

/// An extractor's refusal: a client error with its status and a message safe to show.
///
/// Answered as an RFC 9457 `application/problem+json` document, or as a small HTML page when
/// the client accepts `text/html` and not JSON (a browser submitting a form). The detail never
/// carries anything internal: it describes what was wrong with what the client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    status: StatusCode,
    detail: Box<str>,
}

impl Rejection {
    /// A refusal with `status` and `detail` (shown to the client).
    pub fn new(status: StatusCode, detail: impl Into<Box<str>>) -> Rejection {
        Rejection {
            status,
            detail: detail.into(),
        }
    }

    /// `400 Bad Request`: a query string or path that cannot be read.
    pub fn bad_request(detail: impl Into<Box<str>>) -> Rejection {
        Rejection::new(StatusCode::BAD_REQUEST, detail)
    }

    /// `415 Unsupported Media Type`: the body is not of the type the extractor reads.
    pub fn unsupported_media_type(expected: &str) -> Rejection {
        Rejection::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("expected a body of type {expected}"),
        )
    }

    /// `422 Unprocessable Content`: a well-formed body whose fields do not fit.
    pub fn unprocessable(detail: impl Into<Box<str>>) -> Rejection {
        Rejection::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }

    /// The status the client gets.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// What the client is told.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The answer to `req`: HTML for a client that accepts `text/html` and not JSON, a problem
    /// document for everyone else.
    pub fn into_response_for(self, req: &Request) -> Response {
        if prefers_html(req.header_str("accept")) {
            self.into_html()
        } else {
            self.into_problem()
        }
    }

    /// The RFC 9457 problem document.
    pub fn into_problem(self) -> Response {
        #[derive(Serialize)]
        struct Problem<'a> {
            #[serde(rename = "type")]
            kind: &'a str,
            title: &'a str,
            status: u16,
            detail: &'a str,
        }
        let problem = Problem {
            kind: "about:blank",
            title: self.title(),
            status: self.status.as_u16(),
            detail: &self.detail,
        };
        // Strings and an integer always serialize.
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        Response::with_body(
            HeaderValue::from_static("application/problem+json"),
            Bytes::from(body),
        )
        .status(self.status)
    }

    /// A small HTML page saying what was wrong, for browsers.
    pub fn into_html(self) -> Response {
        let title = self.title();
        let body = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{status} \
             {title}</title></head><body><h1>{status} {title}</h1><p>{detail}</p></body></html>\n",
            status = self.status.as_u16(),
            detail = escape_html(&self.detail),
        );
        Response::html(body).status(self.status)
    }

    fn title(&self) -> &'static str {
        self.status.canonical_reason().unwrap_or("Error")
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status.as_u16(), self.detail)
    }
}

impl std::error::Error for Rejection {}

/// Whether an `Accept` header asks for HTML and not JSON: `text/html` listed (with a non-zero
/// weight) and neither `application/json` nor `application/problem+json`.
fn prefers_html(accept: Option<&str>) -> bool {
    let Some(accept) = accept else {
        return false;
    };
    let mut html = false;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or_default().trim();
        let refused = parts.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q == 0.0)
        });
        if refused {
            continue;
        }
        if media.eq_ignore_ascii_case("text/html") {
            html = true;
        } else if media.eq_ignore_ascii_case("application/json")
            || media.eq_ignore_ascii_case("application/problem+json")
        {
            return false;
        }
    }
    html
}

/// `text` with `&`, `<`, `>`, `"` and `'` escaped for HTML.
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_get_html_and_api_clients_json() {
        let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        assert!(prefers_html(Some(browser)));
        assert!(!prefers_html(Some("application/json")));
        assert!(!prefers_html(Some("text/html, application/json")));
        assert!(!prefers_html(Some("*/*")));
        assert!(!prefers_html(Some("text/html;q=0")));
        assert!(!prefers_html(None));
    }

    #[test]
    fn the_html_page_escapes_the_detail() {
        let resp = Rejection::unprocessable("name: <script>").into_html();
        let body = std::str::from_utf8(resp.body()).expect("utf-8");
        assert!(body.contains("name: &lt;script&gt;"), "{body}");
        assert!(!body.contains("<script>"), "{body}");
        assert_eq!(resp.status_code(), StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[test]
    fn the_problem_document_has_the_rfc_9457_members() {
        let resp = Rejection::bad_request("bad query").into_problem();
        let v: serde_json::Value = serde_json::from_slice(resp.body()).expect("json");
        assert_eq!(v["type"], "about:blank");
        assert_eq!(v["title"], "Bad Request");
        assert_eq!(v["status"], 400);
        assert_eq!(v["detail"], "bad query");
    }
}
