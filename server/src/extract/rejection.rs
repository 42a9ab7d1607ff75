//! Why an extractor refused a request, and the answer the client gets for it.

use std::fmt;

use http::StatusCode;

use crate::h1::{Request, Response};
use crate::problem::Problem;

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
        if crate::problem::prefers_html(req.header_str("accept")) {
            self.into_html()
        } else {
            self.into_problem()
        }
    }

    /// The RFC 9457 problem document.
    pub fn into_problem(self) -> Response {
        self.problem().json()
    }

    /// A small HTML page saying what was wrong, for browsers.
    pub fn into_html(self) -> Response {
        self.problem().html()
    }

    /// The answer in the format the client of the typed handler being answered prefers (a
    /// problem document outside one): what [`IntoResponse`](crate::IntoResponse) gives.
    pub(crate) fn into_negotiated(self) -> Response {
        self.problem().answer(|_| {})
    }

    fn problem(&self) -> Problem<'_> {
        Problem {
            status: self.status,
            detail: &self.detail,
            retry_after: None,
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status.as_u16(), self.detail)
    }
}

impl std::error::Error for Rejection {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejection_keeps_its_status_and_detail_in_both_formats() {
        let html = Rejection::unprocessable("name: <script>").into_html();
        let body = std::str::from_utf8(html.body()).expect("utf-8");
        assert!(body.contains("name: &lt;script&gt;"), "{body}");
        assert_eq!(html.status_code(), StatusCode::UNPROCESSABLE_ENTITY);
        let json = Rejection::bad_request("bad query").into_problem();
        let v: serde_json::Value = serde_json::from_slice(json.body()).expect("json");
        assert_eq!(
            (v["status"].as_u64(), v["detail"].as_str()),
            (Some(400), Some("bad query"))
        );
    }
}
