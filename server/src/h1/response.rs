//! The response a handler returns, with typed constructors.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::StatusCode;
use serde::Serialize;

use crate::error::Error;
use crate::stream::{BoxError, Kind, Streaming};

/// An HTTP response: status, content type, extra headers and a body, complete or
/// [streamed](Response::stream).
///
/// `Server`, `Date`, `Content-Length` and `Connection` are written by the server when the
/// response is encoded; a handler cannot set framing headers, so it cannot desynchronise the
/// connection.
#[derive(Debug)]
pub struct Response {
    pub(crate) status: StatusCode,
    pub(crate) content_type: Option<HeaderValue>,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) body: Bytes,
    /// A body still being produced, sent after the head (boxed: rare, and a response moves
    /// through every handler's future).
    pub(crate) stream: Option<Box<Streaming>>,
}

/// A JSON scratch buffer that grew past this is not kept, so one huge response does not pin
/// its memory on a worker for good.
const JSON_SCRATCH_MAX: usize = 256 * 1024;

thread_local! {
    /// [`Response::json`]'s scratch buffer, reused by every response of this thread.
    static JSON_SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Response {
    /// An empty response with `status`.
    pub fn new(status: StatusCode) -> Response {
        Response {
            status,
            content_type: None,
            headers: Vec::new(),
            body: Bytes::new(),
            stream: None,
        }
    }

    /// `200 OK` with a `text/plain; charset=utf-8` body.
    pub fn text(body: impl Into<Bytes>) -> Response {
        Response::with_body(
            HeaderValue::from_static("text/plain; charset=utf-8"),
            body.into(),
        )
    }

    /// `200 OK` with a `text/html; charset=utf-8` body.
    pub fn html(body: impl Into<Bytes>) -> Response {
        Response::with_body(
            HeaderValue::from_static("text/html; charset=utf-8"),
            body.into(),
        )
    }

    /// `200 OK` with `value` serialized as `application/json`.
    ///
    /// # Errors
    /// An internal error if `value` cannot be serialized (a map with non-string keys, say).
    ///
    /// Serialized into a per-thread scratch buffer, then copied once into an exact-size body:
    /// `serde_json::to_vec` grew a fresh `Vec` by doubling, which was ~6 % of a 20-row
    /// `/queries` request (callgrind).
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Response, Error> {
        let body = crate::telemetry::trace::render(|| {
            JSON_SCRATCH.with(|cell| match cell.try_borrow_mut() {
                Ok(mut buf) => {
                    buf.clear();
                    let result = serde_json::to_writer(&mut *buf, value);
                    let body = result.map(|()| Bytes::copy_from_slice(&buf));
                    if buf.capacity() > JSON_SCRATCH_MAX {
                        *buf = Vec::new();
                    }
                    body
                }
                // A `Serialize` impl that itself builds a JSON response: no scratch for it.
                Err(_) => serde_json::to_vec(value).map(Bytes::from),
            })
        })
        .map_err(Error::internal)?;
        Ok(Response::with_body(
            HeaderValue::from_static("application/json"),
            body,
        ))
    }

    /// `200 OK` with `body` and the given content type.
    pub fn with_body(content_type: HeaderValue, body: Bytes) -> Response {
        Response {
            status: StatusCode::OK,
            content_type: Some(content_type),
            headers: Vec::new(),
            body,
            stream: None,
        }
    }

    /// `200 OK` whose body is `chunks`, sent as they come (see [`crate::stream`]): chunked on
    /// HTTP/1.1, delimited by the close on HTTP/1.0, no body for `HEAD`.
    pub fn stream<S, B, E>(content_type: HeaderValue, chunks: S) -> Response
    where
        S: futures_util::Stream<Item = Result<B, E>> + 'static,
        B: Into<Bytes>,
        E: Into<BoxError>,
    {
        Response::streaming(content_type, Streaming::new(chunks, Kind::Plain))
    }

    pub(crate) fn streaming(content_type: HeaderValue, stream: Streaming) -> Response {
        Response {
            status: StatusCode::OK,
            content_type: Some(content_type),
            headers: Vec::new(),
            body: Bytes::new(),
            stream: Some(Box::new(stream)),
        }
    }

    /// Whether the body is streamed rather than complete.
    pub fn is_streamed(&self) -> bool {
        self.stream.is_some()
    }

    /// A redirect (`303 See Other` unless `status` says otherwise) to `location`.
    ///
    /// # Errors
    /// A bad-request error if `location` is not a valid header value.
    pub fn redirect(status: StatusCode, location: &str) -> Result<Response, Error> {
        let value = HeaderValue::from_str(location)
            .map_err(|_| Error::bad_request("invalid redirect location"))?;
        Ok(Response::new(status).header(http::header::LOCATION, value))
    }

    /// Replaces the status.
    pub fn status(mut self, status: StatusCode) -> Response {
        self.status = status;
        self
    }

    /// Adds a header. Framing headers (`Content-Length`, `Transfer-Encoding`, `Connection`)
    /// are ignored at encoding time: the server owns framing.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Response {
        if name == http::header::CONTENT_TYPE {
            self.content_type = Some(value);
        } else {
            self.headers.push((name, value));
        }
        self
    }

    /// Adds a header in place (for middleware that holds a `&mut Response`).
    pub fn insert_header(&mut self, name: HeaderName, value: HeaderValue) {
        if name == http::header::CONTENT_TYPE {
            self.content_type = Some(value);
        } else {
            self.headers.push((name, value));
        }
    }

    /// The status code.
    pub fn status_code(&self) -> StatusCode {
        self.status
    }

    /// The first value of header `name`, `Content-Type` included.
    pub fn header_value(&self, name: &HeaderName) -> Option<&HeaderValue> {
        if name == http::header::CONTENT_TYPE {
            return self.content_type.as_ref();
        }
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Every header but `Content-Type` (see [`header_value`](Self::header_value)), in the
    /// order they were added: for a layer that copies a response (a response cache).
    pub fn headers(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        self.headers.iter().map(|(n, v)| (n, v))
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }
}
