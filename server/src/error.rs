//! The crate's error type, and the one place where errors become responses.

use std::fmt;

use http::header::HeaderValue;
use http::StatusCode;

use crate::h1::Response;

/// An error a handler (or the server) returns instead of a response.
///
/// Client errors carry a message that is safe to show; internal errors keep their source for
/// the log and answer a generic 500, so internals never leak into a response body.
pub struct Error {
    kind: Kind,
}

enum Kind {
    /// A status with a message meant for the client.
    Status(StatusCode, Box<str>),
    /// Anything else: logged with its source, answered as 500.
    Internal(Box<dyn std::error::Error + Send + Sync + 'static>),
    /// The server could not start or run (bind, runtime, thread).
    Io(&'static str, std::io::Error),
}

impl Error {
    /// An error answered with `status` and `message` (shown to the client as-is).
    pub fn new(status: StatusCode, message: impl Into<Box<str>>) -> Error {
        Error {
            kind: Kind::Status(status, message.into()),
        }
    }

    /// `400 Bad Request` with `message`.
    pub fn bad_request(message: impl Into<Box<str>>) -> Error {
        Error::new(StatusCode::BAD_REQUEST, message)
    }

    /// `404 Not Found`.
    pub fn not_found() -> Error {
        Error::new(StatusCode::NOT_FOUND, "not found")
    }

    /// An internal error: `source` is logged, the client sees only `500 Internal Server Error`.
    pub fn internal(
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Error {
        Error {
            kind: Kind::Internal(source.into()),
        }
    }

    pub(crate) fn io(context: &'static str, source: std::io::Error) -> Error {
        Error {
            kind: Kind::Io(context, source),
        }
    }

    /// The status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match &self.kind {
            Kind::Status(status, _) => *status,
            Kind::Internal(_) | Kind::Io(..) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Whether this is an internal (5xx, logged) error rather than a client error.
    pub fn is_internal(&self) -> bool {
        !matches!(self.kind, Kind::Status(..))
    }

    /// Turns the error into the response the client gets. Internal errors are logged here, so
    /// every path that answers an error logs it exactly once.
    pub fn into_response(self) -> Response {
        match self.kind {
            Kind::Status(status, message) => error_response(status, &message),
            Kind::Internal(source) => {
                tracing::error!(error = %source, "handler failed");
                error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
            }
            Kind::Io(context, source) => {
                tracing::error!(error = %source, context, "i/o failed");
                error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal server error")
            }
        }
    }
}

/// A small `text/plain` error body: `404 Not Found: not found`.
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
        match &self.kind {
            Kind::Status(s, m) => f.debug_tuple("Error").field(s).field(m).finish(),
            Kind::Internal(e) => f.debug_tuple("Error::Internal").field(e).finish(),
            Kind::Io(c, e) => f.debug_tuple("Error::Io").field(c).field(e).finish(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Status(s, m) => write!(f, "{}: {m}", s.as_u16()),
            Kind::Internal(e) => write!(f, "internal error: {e}"),
            Kind::Io(c, e) => write!(f, "{c}: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            Kind::Status(..) => None,
            Kind::Internal(e) => Some(&**e),
            Kind::Io(_, e) => Some(e),
        }
    }
}
