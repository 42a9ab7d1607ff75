//! The crate's error type, and the one place where errors become responses.

use std::fmt;
use std::time::Duration;

use http::header::HeaderValue;
use http::StatusCode;

use crate::h1::Response;
use crate::problem::Problem;

/// What an internal error's source is boxed as.
type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error a handler (or the server) returns instead of a response.
///
/// It carries the status the client gets, a detail that is safe to show, optionally when to
/// retry (`Retry-After`), and optionally a source that only the log sees: internals (SQL,
/// paths, a database's own message) never reach a response body. It is answered like an
/// extractor's [`Rejection`](crate::extract::Rejection): an RFC 9457 problem document, or a
/// small HTML page for a client that accepts `text/html` and not JSON.
pub struct Error {
    // Boxed: handlers return `Result<Response, Error>` on every request, and the error path
    // is the rare one.
    repr: Box<Repr>,
}

struct Repr {
    status: StatusCode,
    /// What the client is told; `None`: the generic text of the status.
    detail: Option<Box<str>>,
    /// When a retry may succeed, sent as `Retry-After`.
    retry_after: Option<Duration>,
    /// What went wrong inside: logged when the error is answered, never shown.
    source: Option<Source>,
    /// What the server was doing (`bind`), for errors of the server itself.
    context: Option<&'static str>,
}

impl Error {
    fn from_repr(repr: Repr) -> Error {
        Error {
            repr: Box::new(repr),
        }
    }

    /// An error answered with `status` and `detail` (shown to the client as-is: write it for
    /// the client, and keep anything internal for [`with_source`](Self::with_source)).
    pub fn new(status: StatusCode, detail: impl Into<Box<str>>) -> Error {
        Error::from_repr(Repr {
            status,
            detail: Some(detail.into()),
            retry_after: None,
            source: None,
            context: None,
        })
    }

    /// An error answered with `status` and the generic text of that status, for failures
    /// whose particulars are nobody's business but the log's.
    pub fn status_only(status: StatusCode) -> Error {
        Error::from_repr(Repr {
            status,
            detail: None,
            retry_after: None,
            source: None,
            context: None,
        })
    }

    /// `400 Bad Request` with `detail`.
    pub fn bad_request(detail: impl Into<Box<str>>) -> Error {
        Error::new(StatusCode::BAD_REQUEST, detail)
    }

    /// `404 Not Found`.
    pub fn not_found() -> Error {
        Error::new(StatusCode::NOT_FOUND, "not found")
    }

    /// `503 Service Unavailable` with `Retry-After: retry_after` (whole seconds, rounded
    /// up): a dependency is down and a later attempt may succeed.
    pub fn unavailable(retry_after: Duration) -> Error {
        Error::status_only(StatusCode::SERVICE_UNAVAILABLE).with_retry_after(retry_after)
    }

    /// An internal error: `source` is logged (with the request id), the client sees only a
    /// generic `500 Internal Server Error`.
    pub fn internal(source: impl Into<Source>) -> Error {
        Error::status_only(StatusCode::INTERNAL_SERVER_ERROR).with_source(source)
    }

    pub(crate) fn io(context: &'static str, source: std::io::Error) -> Error {
        let mut e = Error::internal(source);
        e.repr.context = Some(context);
        e
    }

    /// Keeps `source` for the log: it is logged once, when the error is answered — at ERROR
    /// for a 500, WARN for other 5xx, DEBUG for client errors — and never shown.
    pub fn with_source(mut self, source: impl Into<Source>) -> Error {
        self.repr.source = Some(source.into());
        self
    }

    /// Answers with `Retry-After`, telling the client when a retry may succeed.
    pub fn with_retry_after(mut self, wait: Duration) -> Error {
        self.repr.retry_after = Some(wait);
        self
    }

    /// The status this error is answered with.
    pub fn status(&self) -> StatusCode {
        self.repr.status
    }

    /// What the client is told.
    pub fn detail(&self) -> &str {
        match &self.repr.detail {
            Some(d) => d,
            None => generic_detail(self.repr.status),
        }
    }

    /// The `Retry-After` the answer carries, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        self.repr.retry_after
    }

    /// Whether this is a server error (5xx: logged at WARN or ERROR) rather than the client's.
    pub fn is_internal(&self) -> bool {
        self.repr.status.is_server_error()
    }

    /// Turns the error into the response the client gets: a problem document, or HTML when
    /// answering a typed handler's client that prefers it. The source is logged here, with
    /// the request id when the request is known, so every path that answers an error logs it
    /// exactly once.
    pub fn into_response(self) -> Response {
        let Repr {
            status,
            detail,
            retry_after,
            source,
            context,
        } = *self.repr;
        let problem = Problem {
            status,
            detail: detail.as_deref().unwrap_or_else(|| generic_detail(status)),
            retry_after,
        };
        problem.answer(|request_id| {
            if let Some(source) = &source {
                log(status, &Chain(&**source), context, request_id);
            }
        })
    }
}

/// The detail of an error that gave none: the status's name, in lowercase words.
fn generic_detail(status: StatusCode) -> &'static str {
    match status {
        StatusCode::INTERNAL_SERVER_ERROR => "the server could not answer this request",
        StatusCode::SERVICE_UNAVAILABLE => "temporarily unavailable; try again later",
        StatusCode::GATEWAY_TIMEOUT => "the answer took too long",
        StatusCode::NOT_FOUND => "not found",
        StatusCode::CONFLICT => "conflicts with the current state of the resource",
        _ if status.is_server_error() => "the server could not answer this request",
        _ => "the request cannot be answered",
    }
}

/// One log line for an answered error: `error` (the source and its causes), `request_id`
/// (`-` when unknown), the status, and what the server was doing for its own errors.
fn log(status: StatusCode, error: &Chain<'_>, context: Option<&str>, request_id: Option<&str>) {
    let request_id = request_id.unwrap_or("-");
    let status = status.as_u16();
    let context = context.unwrap_or("handler");
    match status {
        500 => tracing::error!(%error, %request_id, status, %context, "request failed"),
        501.. => tracing::warn!(%error, %request_id, status, %context, "request failed"),
        _ => tracing::debug!(%error, %request_id, status, %context, "request refused"),
    }
}

/// An error and its causes, `outer: inner: innermost`, skipping a cause whose text its
/// wrapper already repeats.
struct Chain<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.0.to_string();
        f.write_str(&shown)?;
        let mut next = self.0.source();
        while let Some(cause) = next {
            let text = cause.to_string();
            if !shown.contains(&text) {
                write!(f, ": {text}")?;
                shown = text;
            }
            next = cause.source();
        }
        Ok(())
    }
}

/// A small `text/plain` error body: `404 Not Found: not found`. For the connection's own
/// protocol answers (408, 413, …), which precede any handler.
pub(crate) fn error_response(status: StatusCode, message: &str) -> Response {
    let reason = status.canonical_reason().unwrap_or("Error");
    let body = format!("{} {reason}: {message}\n", status.as_u16());
    Response::with_body(
        HeaderValue::from_static("text/plain; charset=utf-8"),
        body.into(),
    )
    .status(status)
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("status", &self.repr.status)
            .field("detail", &self.detail());
        if let Some(wait) = self.repr.retry_after {
            d.field("retry_after", &wait);
        }
        if let Some(context) = self.repr.context {
            d.field("context", &context);
        }
        if let Some(source) = &self.repr.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    /// The status and detail (or, for the server's own errors, what it was doing), then the
    /// source: for logs and tests, never for clients.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The server's own errors (binding, starting workers) are no answer to anyone: what it
        // was doing, then why.
        match self.repr.context {
            Some(context) => write!(f, "{context}")?,
            None => write!(f, "{}: {}", self.repr.status.as_u16(), self.detail())?,
        }
        match &self.repr.source {
            Some(source) => write!(f, ": {}", Chain(&**source)),
            None => Ok(()),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.repr.source {
            Some(e) => Some(&**e),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(resp: &Response) -> serde_json::Value {
        serde_json::from_slice(resp.body()).expect("a problem document")
    }

    #[test]
    fn an_internal_error_shows_nothing_of_its_source() {
        let e = Error::internal("password authentication failed for user \"pinion\"");
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(e.is_internal());
        assert!(e.to_string().contains("password"), "the log sees it: {e}");
        let resp = e.into_response();
        assert_eq!(resp.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        let text = std::str::from_utf8(resp.body()).expect("utf-8");
        assert!(!text.contains("password"), "{text}");
        assert_eq!(
            body(&resp)["detail"],
            "the server could not answer this request"
        );
    }

    #[test]
    fn a_client_error_shows_its_detail_and_a_retry_after_is_sent() {
        let resp = Error::new(StatusCode::CONFLICT, "the name is taken").into_response();
        assert_eq!(resp.status_code(), StatusCode::CONFLICT);
        assert_eq!(body(&resp)["detail"], "the name is taken");
        assert_eq!(body(&resp)["title"], "Conflict");
        assert!(resp.header_value(&http::header::RETRY_AFTER).is_none());

        let e = Error::unavailable(Duration::from_millis(1500)).with_source("connect refused");
        assert_eq!(e.retry_after(), Some(Duration::from_millis(1500)));
        let resp = e.into_response();
        assert_eq!(resp.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            resp.header_value(&http::header::RETRY_AFTER),
            Some(&HeaderValue::from_static("2"))
        );
        assert!(!std::str::from_utf8(resp.body())
            .expect("utf-8")
            .contains("refused"));
    }

    #[test]
    fn the_log_text_has_every_cause_once() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl fmt::Display for Outer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("reading the template")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Error::internal(Outer(std::io::Error::other("/srv/t.html: no such file")));
        assert_eq!(
            e.to_string(),
            "500: the server could not answer this request: reading the template: \
             /srv/t.html: no such file"
        );
    }
}
