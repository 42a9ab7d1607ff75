//! `IntoResponse`: what a handler may return.

use http::header::HeaderValue;
use http::StatusCode;

use crate::error::Error;
use crate::extract::Rejection;
use crate::h1::Response;

/// A value a handler can return: a [`Response`], a string, a [`Json`](crate::extract::Json),
/// an [`Error`], a `Result` of two of them, or a status with one.
///
/// Implement it for an application's own error type to map its variants to statuses in one
/// place, so that handlers use `?` on every line instead of a `map_err`:
///
/// ```
/// use pinion_server::{IntoResponse, Response, StatusCode};
///
/// enum AppError { NoSuchTag, Full }
///
/// impl IntoResponse for AppError {
///     fn into_response(self) -> Response {
///         match self {
///             AppError::NoSuchTag => (StatusCode::NOT_FOUND, "no such tag").into_response(),
///             AppError::Full => (StatusCode::CONFLICT, "the list is full").into_response(),
///         }
///     }
/// }
///
/// async fn add(_tag: String) -> Result<String, AppError> {
///     Err(AppError::Full)
/// }
/// ```
pub trait IntoResponse {
    /// The response the client gets.
    fn into_response(self) -> Response;
}

impl IntoResponse for Response {
    #[inline]
    fn into_response(self) -> Response {
        self
    }
}

impl IntoResponse for Error {
    /// See [`Error::into_response`]: the source is logged, the client gets the status and the
    /// detail as a problem document (HTML for a browser calling a typed handler).
    fn into_response(self) -> Response {
        Error::into_response(self)
    }
}

impl IntoResponse for Rejection {
    /// The problem document, or HTML for a browser calling a typed handler.
    fn into_response(self) -> Response {
        self.into_negotiated()
    }
}

impl<T: IntoResponse, E: IntoResponse> IntoResponse for Result<T, E> {
    #[inline]
    fn into_response(self) -> Response {
        match self {
            Ok(v) => v.into_response(),
            Err(e) => e.into_response(),
        }
    }
}

impl IntoResponse for &'static str {
    fn into_response(self) -> Response {
        Response::text(self)
    }
}

impl IntoResponse for String {
    fn into_response(self) -> Response {
        Response::text(self)
    }
}

impl IntoResponse for StatusCode {
    /// An empty body with this status.
    fn into_response(self) -> Response {
        Response::new(self)
    }
}

impl<T: IntoResponse> IntoResponse for (StatusCode, T) {
    /// `T`'s response with this status instead of its own.
    fn into_response(self) -> Response {
        self.1.into_response().status(self.0)
    }
}

/// An HTML body (`text/html; charset=utf-8`), for rendered templates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Html<T>(pub T);

impl<T: Into<bytes::Bytes>> IntoResponse for Html<T> {
    fn into_response(self) -> Response {
        Response::with_body(
            HeaderValue::from_static("text/html; charset=utf-8"),
            self.0.into(),
        )
    }
}
