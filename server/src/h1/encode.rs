//! Response serialisation into the connection's write buffer.
//!
//! Responses of one pipelined batch are appended to the same buffer and written with one
//! syscall; nothing here allocates unless the buffer has to grow.

use bytes::BytesMut;
use http::{header, StatusCode};

use super::date;
use super::response::Response;

/// How the response relates to the connection it is written on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnHeader {
    /// HTTP/1.1 keep-alive: nothing to say.
    None,
    /// HTTP/1.0 client that asked for keep-alive: confirm it.
    KeepAlive,
    /// The connection closes after this response.
    Close,
}

/// Appends the status line: pre-rendered for the common codes, formatted for the rest.
fn status_line(out: &mut BytesMut, status: StatusCode) {
    let line: &[u8] = match status.as_u16() {
        200 => b"HTTP/1.1 200 OK\r\n",
        201 => b"HTTP/1.1 201 Created\r\n",
        204 => b"HTTP/1.1 204 No Content\r\n",
        301 => b"HTTP/1.1 301 Moved Permanently\r\n",
        302 => b"HTTP/1.1 302 Found\r\n",
        303 => b"HTTP/1.1 303 See Other\r\n",
        304 => b"HTTP/1.1 304 Not Modified\r\n",
        400 => b"HTTP/1.1 400 Bad Request\r\n",
        404 => b"HTTP/1.1 404 Not Found\r\n",
        405 => b"HTTP/1.1 405 Method Not Allowed\r\n",
        500 => b"HTTP/1.1 500 Internal Server Error\r\n",
        _ => {
            out.extend_from_slice(b"HTTP/1.1 ");
            out.extend_from_slice(status.as_str().as_bytes());
            out.extend_from_slice(b" ");
            out.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
            out.extend_from_slice(b"\r\n");
            return;
        }
    };
    out.extend_from_slice(line);
}

/// Appends `resp` to `out`. `server` is the pre-rendered `Server: …\r\n` line. With `head_only`
/// (a HEAD request) the headers are those of the full response and the body is left out.
pub(crate) fn encode(
    out: &mut BytesMut,
    resp: &Response,
    server: &[u8],
    conn: ConnHeader,
    head_only: bool,
) {
    let status = resp.status;
    // 1xx, 204 and 304 carry no body and, here, no Content-Length (RFC 9110 §8.6, §15.4.5).
    let bodiless = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    out.reserve(128 + resp.body.len());
    status_line(out, status);
    out.extend_from_slice(server);
    out.extend_from_slice(b"Date: ");
    date::append(out);
    out.extend_from_slice(b"\r\n");
    if let Some(ct) = &resp.content_type {
        out.extend_from_slice(b"Content-Type: ");
        out.extend_from_slice(ct.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !bodiless {
        out.extend_from_slice(b"Content-Length: ");
        let mut n = itoa::Buffer::new();
        out.extend_from_slice(n.format(resp.body.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in &resp.headers {
        if name == header::CONTENT_LENGTH
            || name == header::TRANSFER_ENCODING
            || name == header::CONNECTION
        {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match conn {
        ConnHeader::None => {}
        ConnHeader::KeepAlive => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        ConnHeader::Close => out.extend_from_slice(b"Connection: close\r\n"),
    }
    out.extend_from_slice(b"\r\n");
    if !head_only && !bodiless {
        out.extend_from_slice(&resp.body);
    }
}

/// The interim response sent before reading a body the client is holding back.
pub(crate) const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
