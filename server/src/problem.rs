//! The document every error answer is, and what it is rendered for.
//!
//! An error ([`Error`](crate::Error)) or a refusal ([`Rejection`](crate::extract::Rejection))
//! is answered with an RFC 9457 `application/problem+json` document, or with a small HTML page
//! when the client accepts `text/html` and not JSON (a browser). Both carry only the status and
//! a detail that is safe to show.
//!
//! `IntoResponse::into_response` does not see the request, so a typed handler's answer is
//! rendered inside an [`Answering`] scope: the wrapper (`handler.rs`) captures the request's
//! `Accept` and id before the handler takes the request, and the renderer reads them from the
//! scope. Outside a scope (a raw handler's error, answered by the connection loop) the document
//! is problem+json and the log line has no request id.

use std::cell::Cell;
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, RETRY_AFTER};
use http::StatusCode;
use serde::Serialize;

use crate::h1::{Request, Response};
use crate::middleware::RequestIdValue;

/// What the client asked for and which request it is, for rendering its error answer.
pub(crate) struct Answering {
    /// The request's `Accept` value (a slice of its head: no copy).
    accept: Option<Bytes>,
    /// The request id the middleware gave the request, for the log line.
    request_id: Option<RequestIdValue>,
}

thread_local! {
    /// The scope of the answer being rendered on this thread. Set only around the synchronous
    /// `into_response` call, so requests interleaved on one thread never see each other's.
    static ANSWERING: Cell<Option<Answering>> = const { Cell::new(None) };
}

/// Puts the previous scope back when the rendering ends (or unwinds).
struct Restore(Option<Answering>);

impl Drop for Restore {
    fn drop(&mut self) {
        let previous = self.0.take();
        ANSWERING.with(|cell| cell.set(previous));
    }
}

impl Answering {
    /// What `req` accepts and its id: one scan of its header list, no copy of any value.
    pub(crate) fn capture(req: &Request) -> Answering {
        Answering {
            accept: req.header_bytes("accept"),
            request_id: req.request_id_value().cloned(),
        }
    }

    /// The scope of a raw handler's error, answered by the connection loop once the request
    /// is gone: its id from the exchange, so the log line names the request; no `Accept`
    /// (raw handlers answer problem documents), so that nothing is kept on the success path.
    pub(crate) fn request_id_only(request_id: Option<RequestIdValue>) -> Answering {
        Answering {
            accept: None,
            request_id,
        }
    }

    /// Runs `render` (a handler's `into_response`) with this scope current.
    pub(crate) fn scope<R>(self, render: impl FnOnce() -> R) -> R {
        let previous = ANSWERING.with(|cell| cell.replace(Some(self)));
        let _restore = Restore(previous);
        render()
    }
}

/// Runs `f` with the current scope's `Accept` value and request id (both `None` outside one).
/// The scope is taken out of its cell while `f` runs and put back after (or on unwind), so a
/// nested answer inside `f` renders as if outside a scope.
fn with_scope<R>(f: impl FnOnce(Option<&str>, Option<&str>) -> R) -> R {
    let scope = Restore(ANSWERING.with(Cell::take));
    match scope.0.as_ref() {
        Some(a) => f(
            a.accept
                .as_deref()
                .and_then(|v| std::str::from_utf8(v).ok()),
            a.request_id.as_ref().map(RequestIdValue::as_str),
        ),
        None => f(None, None),
    }
}

/// An error answer: status, the detail the client may see, and when to retry.
#[derive(Clone, Copy)]
pub(crate) struct Problem<'a> {
    pub(crate) status: StatusCode,
    pub(crate) detail: &'a str,
    pub(crate) retry_after: Option<Duration>,
}

impl Problem<'_> {
    /// The document in the format the current scope's client prefers. `log` runs first, with
    /// the scope's request id, so the internal detail is logged beside the request it failed.
    pub(crate) fn answer(self, log: impl FnOnce(Option<&str>)) -> Response {
        with_scope(|accept, request_id| {
            log(request_id);
            if prefers_html(accept) {
                self.html()
            } else {
                self.json()
            }
        })
    }

    /// The RFC 9457 problem document (`type`, `title`, `status`, `detail`).
    pub(crate) fn json(self) -> Response {
        #[derive(Serialize)]
        struct Doc<'a> {
            #[serde(rename = "type")]
            kind: &'a str,
            title: &'a str,
            status: u16,
            detail: &'a str,
        }
        let doc = Doc {
            kind: "about:blank",
            title: self.title(),
            status: self.status.as_u16(),
            detail: self.detail,
        };
        // Strings and an integer always serialize.
        let body = serde_json::to_vec(&doc).unwrap_or_default();
        let resp = Response::with_body(
            HeaderValue::from_static("application/problem+json"),
            Bytes::from(body),
        );
        self.finish(resp)
    }

    /// A small HTML page with the status and the (escaped) detail, for browsers.
    pub(crate) fn html(self) -> Response {
        let title = self.title();
        let body = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{status} \
             {title}</title></head><body><h1>{status} {title}</h1><p>{detail}</p></body></html>\n",
            status = self.status.as_u16(),
            detail = Escaped(self.detail),
        );
        self.finish(Response::html(body))
    }

    fn finish(self, resp: Response) -> Response {
        let resp = resp.status(self.status);
        match self.retry_after {
            Some(wait) => resp.header(RETRY_AFTER, HeaderValue::from(retry_after_secs(wait))),
            None => resp,
        }
    }

    fn title(&self) -> &'static str {
        self.status.canonical_reason().unwrap_or("Error")
    }
}

/// `Retry-After` is in whole seconds: a wait is rounded up, and never said to be 0.
fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// Whether an `Accept` header asks for HTML and not JSON: `text/html` listed (with a non-zero
/// weight) and neither `application/json` nor `application/problem+json`.
pub(crate) fn prefers_html(accept: Option<&str>) -> bool {
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

/// Text with `&`, `<`, `>`, `"` and `'` escaped for HTML, written as it is formatted.
struct Escaped<'a>(&'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..at])?;
            f.write_str(match rest.as_bytes()[at] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[at + 1..];
        }
        f.write_str(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(status: StatusCode, detail: &str) -> Problem<'_> {
        Problem {
            status,
            detail,
            retry_after: None,
        }
    }

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
        let resp = problem(StatusCode::UNPROCESSABLE_ENTITY, "name: <script> & 'x'").html();
        let body = std::str::from_utf8(resp.body()).expect("utf-8");
        assert!(
            body.contains("name: &lt;script&gt; &amp; &#39;x&#39;"),
            "{body}"
        );
        assert!(!body.contains("<script>"), "{body}");
        assert_eq!(resp.status_code(), StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[test]
    fn the_problem_document_has_the_rfc_9457_members() {
        let resp = problem(StatusCode::BAD_REQUEST, "bad query").json();
        let v: serde_json::Value = serde_json::from_slice(resp.body()).expect("json");
        assert_eq!(v["type"], "about:blank");
        assert_eq!(v["title"], "Bad Request");
        assert_eq!(v["status"], 400);
        assert_eq!(v["detail"], "bad query");
        assert_eq!(
            resp.header_value(&http::header::CONTENT_TYPE),
            Some(&HeaderValue::from_static("application/problem+json"))
        );
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_in_both_formats() {
        for (wait, secs) in [
            (Duration::from_millis(1), "1"),
            (Duration::ZERO, "1"),
            (Duration::from_secs(2), "2"),
            (Duration::from_millis(2_100), "3"),
        ] {
            let p = Problem {
                status: StatusCode::SERVICE_UNAVAILABLE,
                detail: "later",
                retry_after: Some(wait),
            };
            for resp in [p.json(), p.html()] {
                assert_eq!(
                    resp.header_value(&RETRY_AFTER)
                        .and_then(|v| v.to_str().ok()),
                    Some(secs),
                    "{wait:?}"
                );
            }
        }
    }

    #[test]
    fn the_scope_decides_the_format_and_is_restored_after() {
        let html = Answering {
            accept: Some(Bytes::from_static(b"text/html")),
            request_id: Some(RequestIdValue::Generated([b'a'; 32])),
        };
        let p = problem(StatusCode::NOT_FOUND, "gone");
        let mut seen = None;
        let resp = html.scope(|| p.answer(|id| seen = id.map(str::to_owned)));
        assert_eq!(seen.as_deref(), Some("a".repeat(32).as_str()));
        assert_eq!(
            resp.header_value(&http::header::CONTENT_TYPE),
            Some(&HeaderValue::from_static("text/html; charset=utf-8"))
        );
        // Outside the scope: problem+json, no request id.
        let mut seen = Some("stale".to_owned());
        let resp = p.answer(|id| seen = id.map(str::to_owned));
        assert_eq!(seen, None);
        assert_eq!(
            resp.header_value(&http::header::CONTENT_TYPE),
            Some(&HeaderValue::from_static("application/problem+json"))
        );
    }
}
