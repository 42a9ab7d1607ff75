//! Request-head parsing: httparse plus the RFC 9112 rules httparse leaves to us.
//!
//! [`parse`] looks at the bytes buffered on a connection and either asks for more, rejects the
//! head with the status it deserves, or returns a [`Head`]: spans into the buffer (so nothing is
//! copied) plus everything the connection needs to know before it touches the body — framing,
//! keep-alive, `Expect: 100-continue`.

use std::mem::MaybeUninit;

use http::Method;

use super::framing::{body_framing, BodyFraming, FramingError};

/// Upper bound of [`Limits::max_headers`]: the parser keeps its header slots on the stack, so the
/// array needs a size known at compile time (1024 × 32 bytes = 32 KiB, only during the call).
pub(crate) const MAX_HEADERS_CAP: usize = 1024;

/// The limits a head is checked against; copied from `Settings` once per worker.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Largest head (request line + headers + blank line) accepted; 431 beyond.
    pub(crate) max_head: usize,
    /// Most header lines accepted; 431 beyond.
    pub(crate) max_headers: usize,
    /// Longest request target accepted; 414 beyond.
    pub(crate) max_uri: usize,
    /// Largest body accepted; 413 beyond (checked here when `Content-Length` says so).
    pub(crate) max_body: u64,
}

/// HTTP version of a request; only 1.0 and 1.1 get this far (others are 505).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    /// HTTP/1.0: close by default, keep-alive only when asked for.
    Http10,
    /// HTTP/1.1: keep-alive by default.
    Http11,
}

/// A byte range in the head buffer; `u32` halves the size of the header table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: u32,
    pub(crate) end: u32,
}

impl Span {
    fn of(base: &[u8], part: &[u8]) -> Span {
        // Both slices come from the same buffer, `part` inside `base`.
        let start = part.as_ptr() as usize - base.as_ptr() as usize;
        Span {
            start: start as u32,
            end: (start + part.len()) as u32,
        }
    }

    /// The bytes this span covers in `buf`.
    #[inline]
    pub(crate) fn get(self, buf: &[u8]) -> &[u8] {
        &buf[self.start as usize..self.end as usize]
    }
}

/// Where the path of the request target lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathRepr {
    /// A span of the head (origin-form, or the path part of absolute-form).
    Span(Span),
    /// `/`: absolute-form without a path (`GET http://host HTTP/1.1`).
    Root,
    /// `*` (asterisk-form, OPTIONS only).
    Asterisk,
}

/// A parsed request head: spans into the buffer it was parsed from.
#[derive(Debug, Clone)]
pub(crate) struct Head {
    pub(crate) method: Method,
    pub(crate) version: Version,
    pub(crate) path: PathRepr,
    pub(crate) query: Option<Span>,
    pub(crate) headers: Vec<(Span, Span)>,
    /// Bytes the head occupies at the front of the buffer.
    pub(crate) len: usize,
    pub(crate) framing: BodyFraming,
    /// Whether the client allows the connection to stay open after this exchange.
    pub(crate) keep_alive: bool,
    pub(crate) expect_continue: bool,
}

/// Why a head was rejected; each maps to one status, and all of them close the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeadError {
    /// 400, with the rule that was broken.
    BadRequest(&'static str),
    /// 431: the head is larger than `max_head_size`.
    HeadTooLarge,
    /// 431: more header lines than `max_headers`.
    TooManyHeaders,
    /// 414: the request target is longer than `max_uri_length`.
    UriTooLong,
    /// 413: `Content-Length` already exceeds `max_body_size`.
    BodyTooLarge,
    /// 417: an `Expect` other than `100-continue`.
    ExpectationFailed,
    /// 501, with what is not implemented.
    NotImplemented(&'static str),
    /// 505: a well-formed version other than HTTP/1.0 and HTTP/1.1.
    VersionNotSupported,
}

impl HeadError {
    /// The status code this rejection is answered with.
    pub(crate) fn status(self) -> u16 {
        match self {
            HeadError::BadRequest(_) => 400,
            HeadError::HeadTooLarge | HeadError::TooManyHeaders => 431,
            HeadError::UriTooLong => 414,
            HeadError::BodyTooLarge => 413,
            HeadError::ExpectationFailed => 417,
            HeadError::NotImplemented(_) => 501,
            HeadError::VersionNotSupported => 505,
        }
    }

    /// A short, lowercase explanation for the response body and the log.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            HeadError::BadRequest(why) | HeadError::NotImplemented(why) => why,
            HeadError::HeadTooLarge => "request head too large",
            HeadError::TooManyHeaders => "too many header fields",
            HeadError::UriTooLong => "request target too long",
            HeadError::BodyTooLarge => "content-length exceeds the body size limit",
            HeadError::ExpectationFailed => "only 100-continue is supported in expect",
            HeadError::VersionNotSupported => "http version not supported",
        }
    }
}

impl From<FramingError> for HeadError {
    fn from(e: FramingError) -> Self {
        if e.status() == 501 {
            HeadError::NotImplemented(e.reason())
        } else {
            HeadError::BadRequest(e.reason())
        }
    }
}

/// Parses the head at the front of `buf`.
///
/// # Return
/// `Ok(None)` when the head is not complete yet (and still within limits), `Ok(Some(head))`
/// when it is; the body, if any, starts at `head.len`.
///
/// # Errors
/// A [`HeadError`] naming the status to answer with; the caller closes the connection after it.
pub(crate) fn parse(buf: &[u8], limits: &Limits) -> Result<Option<Head>, HeadError> {
    let mut slots: [MaybeUninit<httparse::Header<'_>>; MAX_HEADERS_CAP] =
        [const { MaybeUninit::uninit() }; MAX_HEADERS_CAP];
    let max_headers = limits.max_headers.clamp(1, MAX_HEADERS_CAP);
    let mut req = httparse::Request::new(&mut []);
    let status = req.parse_with_uninit_headers(buf, &mut slots[..max_headers]);
    let len = match status {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return incomplete(buf, limits),
        Err(e) => return Err(map_httparse_error(e, buf, limits)),
    };
    if len > limits.max_head {
        return Err(HeadError::HeadTooLarge);
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(HeadError::BadRequest("incomplete request line"));
    };
    let version = if minor == 0 {
        Version::Http10
    } else {
        Version::Http11
    };
    if target.len() > limits.max_uri {
        return Err(HeadError::UriTooLong);
    }
    let method = Method::from_bytes(method.as_bytes())
        .map_err(|_| HeadError::BadRequest("invalid method"))?;
    if method == Method::CONNECT {
        return Err(HeadError::NotImplemented("connect is not supported"));
    }
    let (path, query) = split_target(buf, target.as_bytes(), &method)?;

    let headers = req.headers;
    let mut spans = Vec::with_capacity(headers.len());
    let mut hosts = 0usize;
    let mut keep_alive = version == Version::Http11;
    let mut expect_continue = false;
    for h in headers.iter() {
        let name = h.name.as_bytes();
        spans.push((Span::of(buf, name), Span::of(buf, h.value)));
        if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
            if !valid_host(trim_ows(h.value)) {
                return Err(HeadError::BadRequest("invalid host header"));
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in h.value.split(|&b| b == b',').map(trim_ows) {
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") && version == Version::Http10 {
                    keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"expect") {
            if trim_ows(h.value).eq_ignore_ascii_case(b"100-continue") {
                expect_continue = true;
            } else {
                return Err(HeadError::ExpectationFailed);
            }
        }
    }
    // RFC 9112 §3.2: a 1.1 request without exactly one Host is a 400. A "Connection: close"
    // seen before a later Host line must not outlive this rejection, and it does not: every
    // error closes the connection.
    if version == Version::Http11 && hosts != 1 {
        return Err(HeadError::BadRequest(
            "http/1.1 requires exactly one host header",
        ));
    }
    if hosts > 1 {
        return Err(HeadError::BadRequest("more than one host header"));
    }
    let framing = body_framing(minor, headers)?;
    if let BodyFraming::Length(n) = framing {
        if n > limits.max_body {
            return Err(HeadError::BodyTooLarge);
        }
    }
    // 100-continue only means something when a body follows.
    let expect_continue = expect_continue && !matches!(framing, BodyFraming::None);
    Ok(Some(Head {
        method,
        version,
        path,
        query,
        headers: spans,
        len,
        framing,
        keep_alive,
        expect_continue,
    }))
}

/// Decides whether a partial head may still grow, or already breaks a limit.
fn incomplete(buf: &[u8], limits: &Limits) -> Result<Option<Head>, HeadError> {
    // Until the request line is complete, its length is what grows; "GET " and " HTTP/1.1\r\n"
    // around the target are allowed 32 bytes of slack.
    let line_done = buf.contains(&b'\n');
    if !line_done && buf.len() > limits.max_uri.saturating_add(32) {
        return Err(HeadError::UriTooLong);
    }
    if buf.len() >= limits.max_head {
        return Err(HeadError::HeadTooLarge);
    }
    Ok(None)
}

fn map_httparse_error(e: httparse::Error, buf: &[u8], limits: &Limits) -> HeadError {
    match e {
        httparse::Error::TooManyHeaders => HeadError::TooManyHeaders,
        httparse::Error::Version => {
            // "HTTP/2.0" or "HTTP/3.1" is well-formed but unsupported: 505; garbage is a 400.
            if request_line_version_is_wellformed(buf) {
                HeadError::VersionNotSupported
            } else {
                HeadError::BadRequest("invalid http version")
            }
        }
        httparse::Error::Token => {
            // httparse reports an over-long head as whatever byte it fails on; keep 431 honest.
            if buf.len() >= limits.max_head {
                HeadError::HeadTooLarge
            } else {
                HeadError::BadRequest("invalid token in request line")
            }
        }
        httparse::Error::HeaderName => HeadError::BadRequest("invalid header name"),
        httparse::Error::HeaderValue => HeadError::BadRequest("invalid header value"),
        httparse::Error::NewLine => HeadError::BadRequest("invalid line ending"),
        httparse::Error::Status => HeadError::BadRequest("invalid request line"),
    }
}

fn request_line_version_is_wellformed(buf: &[u8]) -> bool {
    let line_end = buf.iter().position(|&b| b == b'\r' || b == b'\n');
    let line = &buf[..line_end.unwrap_or(buf.len())];
    let Some(sp) = line.iter().rposition(|&b| b == b' ') else {
        return false;
    };
    let v = &line[sp + 1..];
    v.len() == 8
        && v.starts_with(b"HTTP/")
        && v[5].is_ascii_digit()
        && v[6] == b'.'
        && v[7].is_ascii_digit()
}

/// Splits a request target into path and query, enforcing its form (RFC 9112 §3.2).
fn split_target(
    buf: &[u8],
    target: &[u8],
    method: &Method,
) -> Result<(PathRepr, Option<Span>), HeadError> {
    if target == b"*" {
        return if method == Method::OPTIONS {
            Ok((PathRepr::Asterisk, None))
        } else {
            Err(HeadError::BadRequest(
                "asterisk-form is only allowed with options",
            ))
        };
    }
    let path_and_query = if target.first() == Some(&b'/') {
        target
    } else if let Some(rest) = strip_scheme(target) {
        // absolute-form: servers must accept it (RFC 9112 §3.2.2); the authority is ignored
        // in favour of Host, which was already required and validated.
        match rest.iter().position(|&b| b == b'/' || b == b'?') {
            Some(i) if rest[i] == b'/' => &rest[i..],
            Some(i) => {
                let q = &rest[i + 1..];
                return Ok((PathRepr::Root, Some(Span::of(buf, q))));
            }
            None => return Ok((PathRepr::Root, None)),
        }
    } else {
        return Err(HeadError::BadRequest("request target must start with '/'"));
    };
    if path_and_query.contains(&b'#') {
        return Err(HeadError::BadRequest("fragment in request target"));
    }
    match path_and_query.iter().position(|&b| b == b'?') {
        Some(i) => Ok((
            PathRepr::Span(Span::of(buf, &path_and_query[..i])),
            Some(Span::of(buf, &path_and_query[i + 1..])),
        )),
        None => Ok((PathRepr::Span(Span::of(buf, path_and_query)), None)),
    }
}

fn strip_scheme(target: &[u8]) -> Option<&[u8]> {
    for scheme in [&b"http://"[..], &b"https://"[..]] {
        if target.len() > scheme.len() && target[..scheme.len()].eq_ignore_ascii_case(scheme) {
            return Some(&target[scheme.len()..]);
        }
    }
    None
}

/// `Host = uri-host [ ":" port ]` (RFC 9110 §7.2): a reg-name or an IP literal in brackets,
/// then an optional all-digit port. An empty value is allowed by the grammar.
fn valid_host(v: &[u8]) -> bool {
    let (host, port) = if v.first() == Some(&b'[') {
        let Some(end) = v.iter().position(|&b| b == b']') else {
            return false;
        };
        let literal = &v[1..end];
        if literal.is_empty()
            || !literal
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return false;
        }
        match &v[end + 1..] {
            [] => (&v[..0], None),
            [b':', port @ ..] => (&v[..0], Some(port)),
            _ => return false,
        }
    } else {
        match v.iter().rposition(|&b| b == b':') {
            Some(i) => (&v[..i], Some(&v[i + 1..])),
            None => (v, None),
        }
    };
    let host_ok = host.iter().all(|&b| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'%'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            )
    });
    let port_ok = port.is_none_or(|p| p.len() <= 5 && p.iter().all(u8::is_ascii_digit));
    host_ok && port_ok
}

/// Trims optional whitespace (SP / HTAB) on both ends.
pub(crate) fn trim_ows(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |i| i + 1);
    &v[start..end]
}
