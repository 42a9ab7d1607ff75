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
/// `extra` holds header lines the middleware chain added (each ending in CRLF).
pub(crate) fn encode(
    out: &mut BytesMut,
    resp: &Response,
    server: &[u8],
    conn: ConnHeader,
    head_only: bool,
    extra: &[u8],
) {
    encode_with(out, resp, server, conn, head_only, |out| {
        out.extend_from_slice(extra)
    });
}

/// [`encode`], with the extra header lines appended by `extra` straight into `out`, after the
/// response's own headers (the middleware chain writes there without an intermediate buffer).
pub(crate) fn encode_with(
    out: &mut BytesMut,
    resp: &Response,
    server: &[u8],
    conn: ConnHeader,
    head_only: bool,
    extra: impl FnOnce(&mut BytesMut),
) {
    let status = resp.status;
    // 1xx, 204 and 304 carry no body and, here, no Content-Length (RFC 9110 §8.6, §15.4.5).
    let bodiless = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    out.reserve(128 + resp.body.len());
    status_line(out, status);
    // A handler may set its own Server or Date; then ours is left out rather than doubled.
    let own = |name: &header::HeaderName| resp.headers.iter().any(|(n, _)| n == name);
    if resp.headers.is_empty() || !own(&header::SERVER) {
        out.extend_from_slice(server);
    }
    if resp.headers.is_empty() || !own(&header::DATE) {
        date::append_line(out);
    }
    if let Some(ct) = &resp.content_type {
        out.extend_from_slice(b"Content-Type: ");
        out.extend_from_slice(ct.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match &resp.stream {
        _ if bodiless => {}
        Some(stream) if stream.chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        // Delimited by the close (HTTP/1.0): no length to give.
        Some(_) => {}
        None => {
            out.extend_from_slice(b"Content-Length: ");
            let mut n = itoa::Buffer::new();
            out.extend_from_slice(n.format(resp.body.len()).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
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
    extra(out);
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

/// Appends `data` as one chunk of a chunked body (RFC 9112 §7.1); `data` must not be empty,
/// since an empty chunk ends the body.
pub(crate) fn chunk(out: &mut BytesMut, data: &[u8]) {
    debug_assert!(!data.is_empty());
    let mut size = [0u8; 16];
    let mut n = data.len();
    let mut at = size.len();
    loop {
        at -= 1;
        size[at] = b"0123456789abcdef"[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.reserve(data.len() + 20);
    out.extend_from_slice(&size[at..]);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The end of a chunked body: the last chunk and no trailers.
pub(crate) const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// The interim response sent before reading a body the client is holding back.
pub(crate) const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::header::{HeaderName, HeaderValue};

    const SERVER: &[u8] = b"Server: pinion\r\n";
    /// What the (live) Date value is replaced with, so whole responses compare byte for byte.
    const FIXED_DATE: &str = "Sun, 06 Nov 1994 08:49:37 GMT";

    /// Encodes `resp` alone, checks its Date line is a current-format IMF-fixdate, and returns
    /// the bytes as text with that date replaced by [`FIXED_DATE`].
    fn encoded(resp: &Response, conn: ConnHeader, head_only: bool) -> String {
        let mut out = BytesMut::new();
        encode(&mut out, resp, SERVER, conn, head_only, &[]);
        fixed_date(&out)
    }

    fn fixed_date(out: &[u8]) -> String {
        let text = String::from_utf8(out.to_vec()).expect("test bodies are text");
        let at = text.find("\r\nDate: ").expect("a Date line") + "\r\nDate: ".len();
        let date = &text[at..at + date::DATE_LEN];
        assert_eq!(&text[at + date::DATE_LEN..at + date::DATE_LEN + 2], "\r\n");
        let when = httpdate::parse_http_date(date).expect("an IMF-fixdate");
        assert_eq!(httpdate::fmt_http_date(when), date, "canonical form");
        format!(
            "{}{FIXED_DATE}{}",
            &text[..at],
            &text[at + date::DATE_LEN..]
        )
    }

    fn with_body(status: StatusCode, body: &'static str) -> Response {
        let mut resp = Response::new(status);
        resp.body = Bytes::from_static(body.as_bytes());
        resp
    }

    #[test]
    fn text_200() {
        assert_eq!(
            encoded(&Response::text("hello"), ConnHeader::None, false),
            "HTTP/1.1 200 OK\r\n\
             Server: pinion\r\n\
             Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 5\r\n\
             \r\n\
             hello"
        );
    }

    #[test]
    fn empty_200_says_content_length_0() {
        assert_eq!(
            encoded(&Response::new(StatusCode::OK), ConnHeader::None, false),
            "HTTP/1.1 200 OK\r\nServer: pinion\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
             Content-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn head_gets_the_full_headers_and_no_body() {
        assert_eq!(
            encoded(&Response::text("hello"), ConnHeader::None, true),
            "HTTP/1.1 200 OK\r\n\
             Server: pinion\r\n\
             Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 5\r\n\
             \r\n"
        );
    }

    #[test]
    fn no_content_has_no_length_and_no_body() {
        // Even if a handler put a body on it.
        for head_only in [false, true] {
            assert_eq!(
                encoded(
                    &with_body(StatusCode::NO_CONTENT, "ignored"),
                    ConnHeader::None,
                    head_only
                ),
                "HTTP/1.1 204 No Content\r\nServer: pinion\r\n\
                 Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n"
            );
        }
    }

    #[test]
    fn not_modified_keeps_its_headers_but_has_no_length_or_body() {
        let resp = with_body(StatusCode::NOT_MODIFIED, "ignored")
            .header(http::header::ETAG, HeaderValue::from_static("\"v1\""));
        assert_eq!(
            encoded(&resp, ConnHeader::None, false),
            "HTTP/1.1 304 Not Modified\r\nServer: pinion\r\n\
             Date: Sun, 06 Nov 1994 08:49:37 GMT\r\netag: \"v1\"\r\n\r\n"
        );
    }

    #[test]
    fn informational_has_no_length_or_body() {
        let resp = with_body(StatusCode::from_u16(103).expect("valid"), "ignored").header(
            http::header::LINK,
            HeaderValue::from_static("</s.css>; rel=preload"),
        );
        assert_eq!(
            encoded(&resp, ConnHeader::None, false),
            "HTTP/1.1 103 Early Hints\r\nServer: pinion\r\n\
             Date: Sun, 06 Nov 1994 08:49:37 GMT\r\nlink: </s.css>; rel=preload\r\n\r\n"
        );
    }

    #[test]
    fn connection_line_follows_the_connection() {
        let base = "HTTP/1.1 200 OK\r\nServer: pinion\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
                    Content-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\n";
        let resp = Response::text("ok");
        assert_eq!(
            encoded(&resp, ConnHeader::None, false),
            format!("{base}\r\nok")
        );
        assert_eq!(
            encoded(&resp, ConnHeader::Close, false),
            format!("{base}Connection: close\r\n\r\nok")
        );
        assert_eq!(
            encoded(&resp, ConnHeader::KeepAlive, false),
            format!("{base}Connection: keep-alive\r\n\r\nok")
        );
        // Bodiless statuses still say how the connection goes.
        assert!(encoded(
            &Response::new(StatusCode::NO_CONTENT),
            ConnHeader::Close,
            false
        )
        .ends_with("\r\nConnection: close\r\n\r\n"));
    }

    #[test]
    fn a_handler_server_or_date_replaces_ours() {
        let resp = Response::text("x")
            .header(http::header::SERVER, HeaderValue::from_static("custom"))
            .header(
                http::header::DATE,
                HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
            );
        let mut out = BytesMut::new();
        encode(&mut out, &resp, SERVER, ConnHeader::None, false, &[]);
        assert_eq!(
            String::from_utf8(out.to_vec()).expect("text"),
            "HTTP/1.1 200 OK\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 1\r\n\
             server: custom\r\n\
             date: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
             \r\n\
             x"
        );
    }

    #[test]
    fn handler_framing_headers_are_dropped() {
        let resp = Response::text("abc")
            .header(
                http::header::CONTENT_LENGTH,
                HeaderValue::from_static("999"),
            )
            .header(
                http::header::TRANSFER_ENCODING,
                HeaderValue::from_static("chunked"),
            )
            .header(
                http::header::CONNECTION,
                HeaderValue::from_static("upgrade"),
            )
            .header(
                HeaderName::from_static("x-kept"),
                HeaderValue::from_static("1"),
            );
        assert_eq!(
            encoded(&resp, ConnHeader::Close, false),
            "HTTP/1.1 200 OK\r\n\
             Server: pinion\r\n\
             Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 3\r\n\
             x-kept: 1\r\n\
             Connection: close\r\n\
             \r\n\
             abc"
        );
    }

    #[test]
    fn extra_headers_keep_their_order_and_repeats() {
        let resp = Response::new(StatusCode::OK)
            .header(http::header::SET_COOKIE, HeaderValue::from_static("a=1"))
            .header(http::header::VARY, HeaderValue::from_static("accept"))
            .header(http::header::SET_COOKIE, HeaderValue::from_static("b=2"));
        assert!(encoded(&resp, ConnHeader::None, false).ends_with(
            "Content-Length: 0\r\nset-cookie: a=1\r\nvary: accept\r\nset-cookie: b=2\r\n\r\n"
        ));
    }

    #[test]
    fn uncommon_status_is_formatted_with_its_reason() {
        let teapot = with_body(StatusCode::IM_A_TEAPOT, "short and stout");
        assert_eq!(
            encoded(&teapot, ConnHeader::None, false),
            "HTTP/1.1 418 I'm a teapot\r\nServer: pinion\r\n\
             Date: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 15\r\n\r\nshort and stout"
        );
        let unknown = Response::new(StatusCode::from_u16(599).expect("valid"));
        assert!(encoded(&unknown, ConnHeader::None, false).starts_with("HTTP/1.1 599 Unknown\r\n"));
    }

    #[test]
    fn pre_rendered_status_lines_match_the_formatted_ones() {
        for code in [200, 201, 204, 301, 302, 303, 304, 400, 404, 405, 500] {
            let status = StatusCode::from_u16(code).expect("valid");
            let mut out = BytesMut::new();
            status_line(&mut out, status);
            let want = format!(
                "HTTP/1.1 {code} {}\r\n",
                status.canonical_reason().expect("known")
            );
            assert_eq!(&out[..], want.as_bytes(), "{code}");
        }
    }

    #[test]
    fn a_batch_appends_responses_back_to_back() {
        let mut out = BytesMut::new();
        encode(
            &mut out,
            &Response::text("one"),
            SERVER,
            ConnHeader::None,
            false,
            &[],
        );
        let first = out.len();
        encode(
            &mut out,
            &Response::text("two"),
            SERVER,
            ConnHeader::None,
            true,
            &[],
        );
        encode(
            &mut out,
            &Response::new(StatusCode::NOT_FOUND),
            SERVER,
            ConnHeader::Close,
            false,
            &[],
        );
        let text = fixed_date(&out[..first]);
        assert!(text.ends_with("Content-Length: 3\r\n\r\none"), "{text}");
        let rest = String::from_utf8(out[first..].to_vec()).expect("text");
        let second_at = rest.find("HTTP/1.1 404").expect("the 404 follows");
        assert!(rest.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(
            rest[..second_at].ends_with("Content-Length: 3\r\n\r\n"),
            "no HEAD body"
        );
        assert!(rest.ends_with("Content-Length: 0\r\nConnection: close\r\n\r\n"));
    }

    #[test]
    fn continue_is_a_complete_interim_response() {
        assert_eq!(CONTINUE, b"HTTP/1.1 100 Continue\r\n\r\n");
    }

    #[test]
    fn chunks_are_framed_with_their_hex_size() {
        let mut out = BytesMut::new();
        chunk(&mut out, b"hello");
        chunk(&mut out, &[b'x'; 0x1a2]);
        out.extend_from_slice(LAST_CHUNK);
        assert!(out.starts_with(b"5\r\nhello\r\n1a2\r\nxxx"));
        assert!(out.ends_with(b"xx\r\n0\r\n\r\n"));
        assert_eq!(out.len(), 3 + 5 + 2 + 5 + 0x1a2 + 2 + 5);
    }

    #[test]
    fn a_streamed_response_is_chunked_or_close_delimited_never_sized() {
        let streamed = |chunked: bool| {
            let mut resp = Response::stream(
                HeaderValue::from_static("text/plain"),
                futures_util::stream::empty::<Result<Bytes, std::io::Error>>(),
            );
            if let Some(s) = resp.stream.as_mut() {
                s.chunked = chunked;
            }
            resp
        };
        let text = encoded(&streamed(true), ConnHeader::None, false);
        assert!(text.contains("Transfer-Encoding: chunked\r\n"), "{text}");
        assert!(!text.contains("Content-Length"), "{text}");
        let text = encoded(&streamed(false), ConnHeader::Close, false);
        assert!(!text.contains("Transfer-Encoding") && !text.contains("Content-Length"));
        assert!(text.ends_with("Connection: close\r\n\r\n"), "{text}");
    }
}
