//! Request-head parsing: httparse plus the RFC 9112 rules httparse leaves to us.
//!
//! [`parse`] looks at the bytes buffered on a connection and either asks for more, rejects the
//! head with the status it deserves, or returns a [`Head`]: spans into the buffer (so nothing is
//! copied) plus everything the connection needs to know before it touches the body — framing,
//! keep-alive, `Expect: 100-continue`.

use std::mem::MaybeUninit;

use http::Method;

use super::framing::{body_framing, BodyFraming, FramingError};
use super::spans::HeaderSpans;
use super::token::{eq_lower, word};

/// Upper bound of [`Limits::max_headers`]: a head with more than [`SMALL_HEADERS`] lines is
/// parsed with slots on the heap, up to 1024 × 32 bytes = 32 KiB during the call.
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
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) method: Method,
    pub(crate) version: Version,
    pub(crate) path: PathRepr,
    pub(crate) query: Option<Span>,
    pub(crate) headers: HeaderSpans,
    /// Bytes the head occupies at the front of the buffer.
    pub(crate) len: usize,
    pub(crate) framing: BodyFraming,
    /// Whether the client allows the connection to stay open after this exchange.
    pub(crate) keep_alive: bool,
    pub(crate) expect_continue: bool,
    /// Whether an `X-Request-Id` line came: the request-id middleware looks for a proxy's id
    /// only then, rather than scanning every request's headers for it.
    pub(crate) has_request_id: bool,
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
    let max_headers = limits.max_headers.clamp(1, MAX_HEADERS_CAP);
    let mut small: [MaybeUninit<httparse::Header<'_>>; SMALL_HEADERS] =
        [const { MaybeUninit::uninit() }; SMALL_HEADERS];
    let mut large = Vec::new();
    let mut slots = &mut small[..max_headers.min(SMALL_HEADERS)];
    loop {
        // One call site, so that the compiler inlines it, and httparse's request-line parser
        // with it (out of line, the pair cost ~45 instructions more per request).
        match parse_with(buf, limits, slots) {
            Err(HeadError::TooManyHeaders) if max_headers > slots.len() => {
                large.resize_with(max_headers, MaybeUninit::uninit);
                slots = &mut large[..];
            }
            done => return done,
        }
    }
}

/// Header slots on the stack of every [`parse`]: 2 KiB. Room for all `max_headers` lines
/// (up to 32 KiB) made the compiler probe the stack page by page on every call (~35
/// instructions, callgrind), for heads that almost never have more than twenty lines; a head
/// with more than this is parsed again with slots on the heap.
const SMALL_HEADERS: usize = 64;

/// [`parse`] with `slots` for the header lines: a head with more lines is a 431.
#[inline(always)]
fn parse_with<'b>(
    buf: &'b [u8],
    limits: &Limits,
    slots: &mut [MaybeUninit<httparse::Header<'b>>],
) -> Result<Option<Head>, HeadError> {
    let mut req = httparse::Request::new(&mut []);
    let status = req.parse_with_uninit_headers(buf, slots);
    let len = match status {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return incomplete(buf, limits),
        // httparse rejects "HTTP/2" before the line is complete; whether that is a 505 or a
        // 400 must not depend on where a read happened to end, so wait for the whole version.
        Err(httparse::Error::Version) if version_shape(buf) == VersionShape::Partial => {
            return incomplete(buf, limits)
        }
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
    // The two common methods by one comparison each: `Method::from_bytes`' general match cost
    // ~25 instructions per request (callgrind, pipelined plaintext).
    let method = match method {
        "GET" => Method::GET,
        "POST" => Method::POST,
        other => Method::from_bytes(other.as_bytes())
            .map_err(|_| HeadError::BadRequest("invalid method"))?,
    };
    if method == Method::CONNECT {
        return Err(HeadError::NotImplemented("connect is not supported"));
    }
    let (path, query) = split_target(buf, target.as_bytes(), &method)?;

    let headers = req.headers;
    let mut spans = HeaderSpans::new();
    let mut hosts = 0usize;
    let mut close = false;
    let mut keep_alive_asked = false;
    let mut expect_continue = false;
    let mut has_request_id = false;
    // Whether `body_framing` has anything to look at: most requests have no body.
    let mut framed = false;
    for h in headers.iter() {
        let name = h.name.as_bytes();
        spans.push(Span::of(buf, name), Span::of(buf, h.value));
        if eq_lower(name, b"host") {
            hosts += 1;
            if !valid_host(trim_ows(h.value)) {
                return Err(HeadError::BadRequest("invalid host header"));
            }
        } else if eq_lower(name, b"connection") {
            for token in h.value.split(|&b| b == b',').map(trim_ows) {
                if eq_lower(token, b"close") {
                    close = true;
                } else if eq_lower(token, b"keep-alive") {
                    keep_alive_asked = true;
                }
            }
        } else if eq_lower(name, b"expect") {
            if eq_lower(trim_ows(h.value), b"100-continue") {
                expect_continue = true;
            } else {
                return Err(HeadError::ExpectationFailed);
            }
        } else if eq_lower(name, b"x-request-id") {
            has_request_id = true;
        } else if eq_lower(name, b"content-length") || eq_lower(name, b"transfer-encoding") {
            framed = true;
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
    let framing = if framed {
        body_framing(minor, headers)?
    } else {
        BodyFraming::None
    };
    if let BodyFraming::Length(n) = framing {
        if n > limits.max_body {
            return Err(HeadError::BodyTooLarge);
        }
    }
    // "close" wins wherever it appears (RFC 9112 §9.6): deciding token by token let a later
    // "keep-alive" (`close, keep-alive`, or a second Connection line) override it on 1.0.
    let keep_alive = !close && (version == Version::Http11 || keep_alive_asked);
    // 100-continue only means something when a body follows, and an HTTP/1.0 client would not
    // understand the interim response: RFC 9110 §10.1.1 says a server MUST ignore it there.
    let expect_continue =
        expect_continue && version == Version::Http11 && !matches!(framing, BodyFraming::None);
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
        has_request_id,
    }))
}

/// Decides whether a partial head may still grow, or already breaks a limit.
fn incomplete(buf: &[u8], limits: &Limits) -> Result<Option<Head>, HeadError> {
    // The target's length is known (or growing) long before the head is complete: measure it,
    // not the whole request line. Counting the method too turned valid requests with a long
    // extension method into 414s on a short read only, and empty lines before the request line
    // (which httparse skips) hid a growing target from the check altogether.
    let line = skip_empty_lines(buf);
    let line = &line[..line.iter().position(|&b| b == b'\n').unwrap_or(line.len())];
    if let Some(sp) = line.iter().position(|&b| b == b' ') {
        let target = &line[sp + 1..];
        let target_len = target
            .iter()
            .position(|&b| b == b' ')
            .unwrap_or(target.len());
        if target_len > limits.max_uri {
            return Err(HeadError::UriTooLong);
        }
    }
    if buf.len() >= limits.max_head {
        return Err(HeadError::HeadTooLarge);
    }
    Ok(None)
}

/// The request line starts after any empty lines (RFC 9112 §2.2), which httparse skips.
fn skip_empty_lines(buf: &[u8]) -> &[u8] {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    &buf[start..]
}

fn map_httparse_error(e: httparse::Error, buf: &[u8], limits: &Limits) -> HeadError {
    match e {
        httparse::Error::TooManyHeaders => HeadError::TooManyHeaders,
        httparse::Error::Version => {
            // "HTTP/2.0" or "HTTP/3.1" is well-formed but unsupported: 505; garbage is a 400.
            if version_shape(buf) == VersionShape::WellFormed {
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

/// How the version of a request line httparse rejected looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VersionShape {
    /// `HTTP/d.d`, just not 1.0 or 1.1: 505.
    WellFormed,
    /// A proper prefix of `HTTP/d.d` with the line still arriving: decide when it is complete.
    Partial,
    /// Anything else: 400.
    Garbage,
}

fn version_shape(buf: &[u8]) -> VersionShape {
    let line = skip_empty_lines(buf);
    let line_end = line.iter().position(|&b| b == b'\r' || b == b'\n');
    let terminated = line_end.is_some();
    let line = &line[..line_end.unwrap_or(line.len())];
    // method SP target SP version: the version is the third part, and has no space in it (a
    // doubled space before it must not pass for a well-formed version).
    let Some(v) = line.splitn(3, |&b| b == b' ').nth(2) else {
        return VersionShape::Garbage;
    };
    let fits = v.len() <= 8
        && v.iter().enumerate().all(|(i, &b)| match i {
            0..=4 => b == b"HTTP/"[i],
            5 | 7 => b.is_ascii_digit(),
            _ => b == b'.',
        });
    match (fits, v.len(), terminated) {
        (true, 8, _) => VersionShape::WellFormed,
        (true, _, false) => VersionShape::Partial,
        _ => VersionShape::Garbage,
    }
}

/// Splits a request target into path and query, enforcing its form (RFC 9112 §3.2).
fn split_target(
    buf: &[u8],
    target: &[u8],
    method: &Method,
) -> Result<(PathRepr, Option<Span>), HeadError> {
    // One pass over the whole target: a fragment anywhere is refused (checked on the whole
    // target: absolute-form without a path, `http://h#x` or `http://h?q#x`, returns before the
    // path is looked at, and used to let the fragment through), and the first `?` is noted.
    let query_at = scan_target(target)
        .map_err(|NoFragment| HeadError::BadRequest("fragment in request target"))?;
    if target == b"*" {
        return if method == Method::OPTIONS {
            Ok((PathRepr::Asterisk, None))
        } else {
            Err(HeadError::BadRequest(
                "asterisk-form is only allowed with options",
            ))
        };
    }
    if target.first() == Some(&b'/') {
        return Ok(match query_at {
            Some(i) => (
                PathRepr::Span(Span::of(buf, &target[..i])),
                Some(Span::of(buf, &target[i + 1..])),
            ),
            None => (PathRepr::Span(Span::of(buf, target)), None),
        });
    }
    let path_and_query = if let Some(rest) = strip_scheme(target) {
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
    match path_and_query.iter().position(|&b| b == b'?') {
        Some(i) => Ok((
            PathRepr::Span(Span::of(buf, &path_and_query[..i])),
            Some(Span::of(buf, &path_and_query[i + 1..])),
        )),
        None => Ok((PathRepr::Span(Span::of(buf, path_and_query)), None)),
    }
}

/// A `#` in a request target: fragments are never sent (RFC 9112 §3.2), so this is a 400.
struct NoFragment;

/// `0x01` in every byte of a word.
const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
/// `0x80` in every byte of a word.
const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);

/// The high bit of each byte of `word` (read little-endian) that equals `b`, exact for the
/// lowest such byte: a borrow may also mark a byte after a true match, which a caller looking
/// for the first match, or for any, never mistakes for one.
#[inline]
fn bytes_equal(word: u64, b: u8) -> u64 {
    let x = word ^ (ONES * u64::from(b));
    x.wrapping_sub(ONES) & !x & HIGHS
}

/// The position of the first `?` of `target`, if any, or `NoFragment` when a `#` is anywhere.
///
/// Eight bytes at a time (SWAR), the last word overlapping the one before: a byte loop cost
/// about nine instructions per byte of every request target (~100 for `/plaintext`,
/// callgrind). Hand-written because `memchr` scans short inputs byte by byte as well, and two
/// of its passes (`#`, then `?`) would read the target twice.
fn scan_target(target: &[u8]) -> Result<Option<usize>, NoFragment> {
    if target.len() < 8 {
        let mut query_at = None;
        for (i, &b) in target.iter().enumerate() {
            if b == b'#' {
                return Err(NoFragment);
            }
            if b == b'?' && query_at.is_none() {
                query_at = Some(i);
            }
        }
        return Ok(query_at);
    }
    let mut query_at = None;
    let mut check = |word: u64, at: usize| {
        if bytes_equal(word, b'#') != 0 {
            return Err(NoFragment);
        }
        if query_at.is_none() {
            let q = bytes_equal(word, b'?');
            if q != 0 {
                query_at = Some(at + (q.trailing_zeros() / 8) as usize);
            }
        }
        Ok(())
    };
    let n = target.len();
    let mut at = 0;
    while at + 8 <= n {
        check(word(target, at), at)?;
        at += 8;
    }
    let rest = n - at;
    if rest > 0 {
        // The last eight bytes, shifted so that only the `rest` unread ones remain (in the low
        // bytes; the zeros shifted in match neither `#` nor `?`).
        check(word(target, n - 8) >> (8 * (8 - rest)), at)?;
    }
    Ok(query_at)
}

fn strip_scheme(target: &[u8]) -> Option<&[u8]> {
    for scheme in [&b"http://"[..], &b"https://"[..]] {
        if target.len() > scheme.len() && target[..scheme.len()].eq_ignore_ascii_case(scheme) {
            return Some(&target[scheme.len()..]);
        }
    }
    None
}

/// The bytes of a reg-name or IPv4 host (RFC 3986 §3.2.2: unreserved, sub-delims, and `%` of
/// a pct-encoding), as a table: one load per byte of every request's Host, where the
/// comparisons it replaces cost about five (callgrind).
static HOST_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
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
            );
        b += 1;
    }
    table
};

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
    let host_ok = host.iter().all(|&b| HOST_BYTES[usize::from(b)]);
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Roomy limits for tests that are not about limits.
    const LIMITS: Limits = Limits {
        max_head: 8192,
        max_headers: 32,
        max_uri: 1024,
        max_body: 1 << 20,
    };

    /// Where a head's path points, resolved against its buffer.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Path {
        Bytes(Vec<u8>),
        Root,
        Asterisk,
    }

    /// Everything a [`Head`] says with its spans resolved, so heads parsed from different buffers
    /// (or different reads of the same bytes) can be compared.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Resolved {
        method: Method,
        version: Version,
        path: Path,
        query: Option<Vec<u8>>,
        headers: Vec<(Vec<u8>, Vec<u8>)>,
        len: usize,
        framing: BodyFraming,
        keep_alive: bool,
        expect_continue: bool,
    }

    impl Resolved {
        fn of(head: &Head, buf: &[u8]) -> Resolved {
            let within = |s: Span| {
                assert!(
                    s.start <= s.end && s.end as usize <= head.len,
                    "{s:?} outside the head"
                );
                s.get(buf).to_vec()
            };
            Resolved {
                method: head.method.clone(),
                version: head.version,
                path: match head.path {
                    PathRepr::Span(s) => Path::Bytes(within(s)),
                    PathRepr::Root => Path::Root,
                    PathRepr::Asterisk => Path::Asterisk,
                },
                query: head.query.map(within),
                headers: head
                    .headers
                    .iter()
                    .map(|&(n, v)| (within(n), within(v)))
                    .collect(),
                len: head.len,
                framing: head.framing,
                keep_alive: head.keep_alive,
                expect_continue: head.expect_continue,
            }
        }

        fn path(&self) -> &[u8] {
            match &self.path {
                Path::Bytes(p) => p,
                Path::Root => b"/",
                Path::Asterisk => b"*",
            }
        }

        fn query(&self) -> Option<&[u8]> {
            self.query.as_deref()
        }

        fn header(&self, name: &str) -> Option<&[u8]> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
                .map(|(_, v)| &v[..])
        }
    }

    /// Parses `buf` as a connection would see it arriving in two reads split at every byte
    /// boundary: each read lands in a fresh buffer, every prefix shorter than the head asks for
    /// more, and every longer one yields the head the whole buffer does.
    fn ok_with(buf: &[u8], limits: &Limits) -> Resolved {
        let whole = match parse(buf, limits) {
            Ok(Some(head)) => Resolved::of(&head, buf),
            other => panic!("{:?}: expected a head, got {other:?}", show(buf)),
        };
        for split in 0..buf.len() {
            let mut read = Vec::with_capacity(split);
            read.extend_from_slice(&buf[..split]);
            let got = parse(&read, limits);
            if split < whole.len {
                assert!(
                    matches!(got, Ok(None)),
                    "{:?} split at {split}: expected Ok(None), got {got:?}",
                    show(buf)
                );
            } else {
                let head = got.expect("prefix holding the head").expect("complete");
                assert_eq!(Resolved::of(&head, &read), whole, "split at {split}");
            }
            read.extend_from_slice(&buf[split..]);
            let head = parse(&read, limits).expect("whole").expect("complete");
            assert_eq!(
                Resolved::of(&head, &read),
                whole,
                "second read after {split}"
            );
        }
        whole
    }

    fn ok(buf: &[u8]) -> Resolved {
        ok_with(buf, &LIMITS)
    }

    fn err_with(buf: &[u8], limits: &Limits) -> HeadError {
        match parse(buf, limits) {
            Err(e) => e,
            other => panic!("{:?}: expected an error, got {other:?}", show(buf)),
        }
    }

    fn err(buf: &[u8]) -> HeadError {
        err_with(buf, &LIMITS)
    }

    fn show(buf: &[u8]) -> String {
        String::from_utf8_lossy(buf).into_owned()
    }

    fn bad(why: &'static str) -> HeadError {
        HeadError::BadRequest(why)
    }

    const NO_HOST: HeadError = HeadError::BadRequest("http/1.1 requires exactly one host header");
    const BAD_HOST: HeadError = HeadError::BadRequest("invalid host header");

    // ---- valid heads -------------------------------------------------------------------------

    #[test]
    fn simple_get() {
        let buf = b"GET /index.html HTTP/1.1\r\nHost: example.com\r\n\r\n";
        let head = ok(buf);
        assert_eq!(
            head,
            Resolved {
                method: Method::GET,
                version: Version::Http11,
                path: Path::Bytes(b"/index.html".to_vec()),
                query: None,
                headers: vec![(b"Host".to_vec(), b"example.com".to_vec())],
                len: buf.len(),
                framing: BodyFraming::None,
                keep_alive: true,
                expect_continue: false,
            }
        );
    }

    #[test]
    fn body_bytes_are_not_part_of_the_head() {
        let head_bytes = b"POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n";
        let buf = [&head_bytes[..], b"hello"].concat();
        let head = ok(&buf);
        assert_eq!(head.len, head_bytes.len());
        assert_eq!(head.framing, BodyFraming::Length(5));
        let chunked = ok(b"POST /f HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(chunked.framing, BodyFraming::Chunked);
        // Content-Length: 0 is no body at all.
        let empty = ok(b"POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(empty.framing, BodyFraming::None);
    }

    #[test]
    fn header_names_are_case_insensitive_and_kept_as_sent() {
        let head = ok(b"POST /p HTTP/1.1\r\nhOsT: a\r\ncontent-LENGTH: 3\r\n\
              CONNECTION: CLOSE\r\nEXPECT: 100-CONTINUE\r\nX-Custom:  v  \r\n\r\n");
        assert_eq!(head.framing, BodyFraming::Length(3));
        assert!(!head.keep_alive);
        assert!(head.expect_continue);
        let names: Vec<&[u8]> = head.headers.iter().map(|(n, _)| &n[..]).collect();
        assert_eq!(
            names,
            [
                &b"hOsT"[..],
                b"content-LENGTH",
                b"CONNECTION",
                b"EXPECT",
                b"X-Custom"
            ]
        );
        // httparse trims the OWS around a value.
        assert_eq!(head.header("x-custom"), Some(&b"v"[..]));
    }

    #[test]
    fn http10_closes_unless_it_asks_for_keep_alive() {
        // HTTP/1.0 needs no Host.
        let plain = ok(b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(plain.version, Version::Http10);
        assert!(!plain.keep_alive);
        for value in [
            "keep-alive",
            "Keep-Alive",
            " KEEP-ALIVE ",
            "foo, keep-alive",
        ] {
            let buf = format!("GET / HTTP/1.0\r\nHost: a\r\nConnection: {value}\r\n\r\n");
            assert!(ok(buf.as_bytes()).keep_alive, "{value}");
        }
    }

    #[test]
    fn http11_keeps_alive_unless_told_to_close() {
        assert!(ok(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").keep_alive);
        for value in ["keep-alive", "upgrade", "closed", "close-ish", ""] {
            let buf = format!("GET / HTTP/1.1\r\nHost: a\r\nConnection: {value}\r\n\r\n");
            assert!(ok(buf.as_bytes()).keep_alive, "{value:?}");
        }
        for value in [
            "close",
            "Close",
            "keep-alive, close",
            "te,close",
            " close\t",
            "a,, close",
        ] {
            let buf = format!("GET / HTTP/1.1\r\nHost: a\r\nConnection: {value}\r\n\r\n");
            assert!(!ok(buf.as_bytes()).keep_alive, "{value:?}");
        }
    }

    #[test]
    fn close_wins_over_keep_alive_in_any_order() {
        for version in ["1.0", "1.1"] {
            for connection in [
                "Connection: keep-alive, close\r\n",
                "Connection: close, keep-alive\r\n",
                "Connection: close\r\nConnection: keep-alive\r\n",
                "Connection: keep-alive\r\nConnection: close\r\n",
            ] {
                let buf = format!("GET / HTTP/{version}\r\nHost: a\r\n{connection}\r\n");
                assert!(!ok(buf.as_bytes()).keep_alive, "{version} {connection:?}");
            }
        }
    }

    #[test]
    fn expect_continue_only_with_a_body() {
        for value in [
            "100-continue",
            "100-Continue",
            "100-CONTINUE",
            " 100-continue ",
        ] {
            let with_body = format!(
                "PUT /f HTTP/1.1\r\nHost: a\r\nExpect: {value}\r\nContent-Length: 5\r\n\r\n"
            );
            assert!(ok(with_body.as_bytes()).expect_continue, "{value:?}");
            let chunked = format!(
                "PUT /f HTTP/1.1\r\nHost: a\r\nExpect: {value}\r\nTransfer-Encoding: chunked\r\n\r\n"
            );
            assert!(ok(chunked.as_bytes()).expect_continue, "{value:?}");
            let without = format!("PUT /f HTTP/1.1\r\nHost: a\r\nExpect: {value}\r\n\r\n");
            assert!(!ok(without.as_bytes()).expect_continue, "{value:?}");
            let zero = format!(
                "PUT /f HTTP/1.1\r\nHost: a\r\nExpect: {value}\r\nContent-Length: 0\r\n\r\n"
            );
            assert!(!ok(zero.as_bytes()).expect_continue, "{value:?}");
        }
        assert!(!ok(b"PUT /f HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n").expect_continue);
    }

    #[test]
    fn expect_continue_is_ignored_on_http10() {
        // RFC 9110 §10.1.1: "A server that receives a 100-continue expectation in an HTTP/1.0
        // request MUST ignore that expectation." A 1.0 client would not understand the 100.
        let head = ok(b"PUT /f HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(head.framing, BodyFraming::Length(5));
        assert!(!head.expect_continue);
    }

    /// The byte loop `scan_target` replaces: the first `?`, and no `#` anywhere.
    fn scan_target_by_bytes(target: &[u8]) -> Option<Option<usize>> {
        if target.contains(&b'#') {
            return None;
        }
        Some(target.iter().position(|&b| b == b'?'))
    }

    proptest! {
        // Cheap cases, and a `?` first seen in the last, overlapping word needs no `#` anywhere:
        // enough of them that such targets come up by the hundred.
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// The word-at-a-time scan finds what the byte loop finds, at every length and
        /// alignment; the alphabet holds `"` and `>`, which differ from `#` and `?` in the
        /// lowest bit (right after a match, that is where a borrow could mark a false one),
        /// and bytes above 0x7f.
        #[test]
        fn scan_target_agrees_with_a_byte_loop(
            target in proptest::collection::vec(
                proptest::sample::select(
                    &b"a/?#\">=%\x00\x01\x22\x3e\x80\xff"[..]
                ),
                0..48,
            )
        ) {
            let got = scan_target(&target).ok();
            prop_assert_eq!(got, scan_target_by_bytes(&target));
        }
    }

    #[test]
    fn scan_target_finds_the_first_query_mark_and_any_fragment() {
        for len in 0..40 {
            let plain = vec![b'p'; len];
            assert_eq!(scan_target(&plain).ok(), Some(None), "len {len}");
            for at in 0..len {
                let mut t = plain.clone();
                t[at] = b'?';
                if at + 1 < len {
                    t[at + 1] = b'>'; // a borrow out of the match lands here
                }
                if len > 1 {
                    t[len - 1] = b'?';
                }
                assert_eq!(scan_target(&t).ok(), Some(Some(at)), "len {len} at {at}");
                let mut f = plain.clone();
                f[at] = b'#';
                assert!(scan_target(&f).is_err(), "len {len}: # at {at}");
            }
        }
    }

    #[test]
    fn query_is_split_from_the_path() {
        for (target, path, query) in [
            ("/search?q=rust&page=2", "/search", Some("q=rust&page=2")),
            ("/p?", "/p", Some("")),
            ("/?x", "/", Some("x")),
            ("/p?a?b=c", "/p", Some("a?b=c")),
            ("/a%20b/c", "/a%20b/c", None),
            ("/", "/", None),
            ("//double", "//double", None),
        ] {
            let buf = format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n");
            let head = ok(buf.as_bytes());
            assert_eq!(head.path(), path.as_bytes(), "{target}");
            assert_eq!(head.query(), query.map(str::as_bytes), "{target}");
        }
    }

    #[test]
    fn absolute_form_targets() {
        let span = |p: &str| Path::Bytes(p.as_bytes().to_vec());
        for (target, path, query) in [
            ("http://h/p?q", span("/p"), Some("q")),
            ("http://h", Path::Root, None),
            ("http://h?x", Path::Root, Some("x")),
            ("http://h/", span("/"), None),
            ("HTTP://h:8080/a/b", span("/a/b"), None),
            ("https://h/s", span("/s"), None),
            ("http://user@h:1/x?y=1", span("/x"), Some("y=1")),
        ] {
            let buf = format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n");
            let head = ok(buf.as_bytes());
            assert_eq!(head.path, path, "{target}");
            assert_eq!(head.query(), query.map(str::as_bytes), "{target}");
        }
    }

    #[test]
    fn asterisk_form_with_options() {
        let head = ok(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(head.method, Method::OPTIONS);
        assert_eq!(head.path, Path::Asterisk);
        assert_eq!(head.query, None);
    }

    #[test]
    fn valid_host_values() {
        for host in [
            "example.com",
            "example.com:80",
            "127.0.0.1:8080",
            "[::1]",
            "[::1]:8080",
            "[2001:db8::7]:443",
            "[::ffff:192.0.2.1]",
            "xn--bcher-kva.example",
            "a:",
            "under_score.local",
            "  spaced.example  ",
        ] {
            let buf = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
            ok(buf.as_bytes());
        }
    }

    #[test]
    fn host_names_take_exactly_the_rfc_3986_reg_name_bytes() {
        // unreserved, sub-delims, and the `%` of a pct-encoding (RFC 3986 §3.2.2)
        let allowed: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789\
                               -._~!$&'()*+,;=%";
        for b in 0..=255u8 {
            let name = [b'h', b, b'x'];
            assert_eq!(
                valid_host(&name),
                allowed.contains(&b),
                "byte {b:#04x} in a host name"
            );
        }
    }

    #[test]
    fn empty_host_value_is_allowed() {
        // RFC 9110 §7.2: a target URI without an authority is sent with an empty Host.
        assert_eq!(
            ok(b"GET / HTTP/1.1\r\nHost:\r\n\r\n").header("host"),
            Some(&b""[..])
        );
        assert_eq!(
            ok(b"GET / HTTP/1.1\r\nHost: \r\n\r\n").header("host"),
            Some(&b""[..])
        );
    }

    #[test]
    fn empty_lines_before_the_request_line_are_skipped() {
        // RFC 9112 §2.2 lets a server ignore at least one empty line before the request line;
        // httparse skips any number of them, and they count towards the head's length.
        for lead in [&b"\r\n"[..], b"\n", b"\r\n\r\n", b"\n\r\n"] {
            let buf = [lead, b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n"].concat();
            let head = ok(&buf);
            assert_eq!(head.path(), b"/x");
            assert_eq!(head.len, buf.len());
        }
    }

    #[test]
    fn bare_lf_line_endings_are_accepted() {
        // RFC 9112 §2.2: a recipient MAY recognise a single LF as a line terminator; httparse does.
        let buf = b"GET /lf HTTP/1.1\nHost: a\nX: y\n\n";
        let head = ok(buf);
        assert_eq!(head.path(), b"/lf");
        assert_eq!(head.header("x"), Some(&b"y"[..]));
        assert_eq!(head.len, buf.len());
    }

    #[test]
    fn extension_methods_are_parsed() {
        let head = ok(b"PROPFIND /dav HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(head.method.as_str(), "PROPFIND");
        // Method names are case-sensitive: "get" is an extension method, not GET.
        assert_ne!(ok(b"get / HTTP/1.1\r\nHost: a\r\n\r\n").method, Method::GET);
    }

    // ---- rejections --------------------------------------------------------------------------

    #[test]
    fn host_is_required_once_on_http11() {
        assert_eq!(err(b"GET / HTTP/1.1\r\n\r\n"), NO_HOST);
        assert_eq!(err(b"GET / HTTP/1.1\r\nX: y\r\n\r\n"), NO_HOST);
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"),
            NO_HOST
        );
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"),
            NO_HOST
        );
        // An absolute-form target does not stand in for Host (RFC 9112 §3.2).
        assert_eq!(err(b"GET http://h/ HTTP/1.1\r\n\r\n"), NO_HOST);
        // HTTP/1.0 needs none, but two are still one too many.
        ok(b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(
            err(b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"),
            bad("more than one host header")
        );
        assert_eq!(NO_HOST.status(), 400);
    }

    #[test]
    fn invalid_host_values_are_rejected() {
        for host in [
            "a b",
            "a:port",
            "[zz]",
            "[]",
            "[::1",
            "[::1]x",
            "[::1]:x",
            "a:123456",
            "a/b",
            "user@host",
            "a:1:2",
            "a\"b",
        ] {
            for version in ["1.0", "1.1"] {
                let buf = format!("GET / HTTP/{version}\r\nHost: {host}\r\n\r\n");
                assert_eq!(err(buf.as_bytes()), BAD_HOST, "{version} {host:?}");
            }
        }
    }

    #[test]
    fn origin_form_must_start_with_a_slash() {
        let want = bad("request target must start with '/'");
        for target in [
            "index.html",
            "ftp://h/",
            "http://",
            "http:/h",
            "?q",
            "example.com:443",
        ] {
            let buf = format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n");
            assert_eq!(err(buf.as_bytes()), want, "{target}");
        }
    }

    #[test]
    fn asterisk_form_only_with_options() {
        let want = bad("asterisk-form is only allowed with options");
        for method in ["GET", "HEAD", "POST", "DELETE"] {
            let buf = format!("{method} * HTTP/1.1\r\nHost: a\r\n\r\n");
            assert_eq!(err(buf.as_bytes()), want, "{method}");
        }
        // `*` is only the whole target, never a prefix.
        assert_eq!(
            err(b"OPTIONS *x HTTP/1.1\r\nHost: a\r\n\r\n"),
            bad("request target must start with '/'")
        );
    }

    #[test]
    fn connect_is_not_implemented() {
        let e = err(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
        assert_eq!(e, HeadError::NotImplemented("connect is not supported"));
        assert_eq!(e.status(), 501);
    }

    #[test]
    fn fragments_are_rejected_in_every_form() {
        let want = bad("fragment in request target");
        for target in [
            "/p#x",
            "/p?q#x",
            "/#",
            "http://h/p#x",
            "http://h?q#x",
            "http://h#x",
        ] {
            let buf = format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n");
            assert_eq!(err(buf.as_bytes()), want, "{target}");
        }
    }

    #[test]
    fn unsupported_versions_are_505_and_garbage_is_400() {
        for version in ["HTTP/2.0", "HTTP/3.1", "HTTP/0.9", "HTTP/1.2"] {
            // HTTP/1.2 would ideally be served as 1.1 (RFC 9110 §6.2, a SHOULD), but httparse
            // rejects it, so the parser cannot; 505 at least names the problem.
            let buf = format!("GET / HTTP/{}\r\nHost: a\r\n\r\n", &version[5..]);
            let e = err(buf.as_bytes());
            assert_eq!(e, HeadError::VersionNotSupported, "{version}");
            assert_eq!(e.status(), 505);
        }
        let garbage = bad("invalid http version");
        for version in [
            "HTTP/x.y",
            "HTTP/11",
            "http/1.1",
            "FOO/1.1",
            "HTTP/10.0",
            "H",
        ] {
            let buf = format!("GET / {version}\r\nHost: a\r\n\r\n");
            assert_eq!(err(buf.as_bytes()), garbage, "{version}");
        }
    }

    #[test]
    fn version_status_does_not_depend_on_how_the_bytes_arrive() {
        // "HTTP/2" is already known to be wrong, but not yet whether it is well-formed: the
        // answer must be the 505 the whole line gets, never a 400 from a short read.
        let buf = b"GET / HTTP/2.0\r\nHost: a\r\n\r\n";
        for split in 0..=buf.len() {
            let got = parse(&buf[..split], &LIMITS);
            assert!(
                matches!(got, Ok(None) | Err(HeadError::VersionNotSupported)),
                "split at {split}: {got:?}"
            );
        }
        assert_eq!(err(buf), HeadError::VersionNotSupported);
        // Garbage is a 400 as soon as it is seen.
        assert_eq!(err(b"GET / HTTP/x"), bad("invalid http version"));
    }

    #[test]
    fn only_100_continue_is_expected() {
        for value in ["something-else", "100-continue, foo", "", "200-ok"] {
            let buf = format!(
                "PUT /f HTTP/1.1\r\nHost: a\r\nExpect: {value}\r\nContent-Length: 1\r\n\r\n"
            );
            let e = err(buf.as_bytes());
            assert_eq!(e, HeadError::ExpectationFailed, "{value:?}");
            assert_eq!(e.status(), 417);
        }
    }

    #[test]
    fn content_length_over_max_body_is_413() {
        let limits = Limits {
            max_body: 10,
            ..LIMITS
        };
        let at = ok_with(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n",
            &limits,
        );
        assert_eq!(at.framing, BodyFraming::Length(10));
        let e = err_with(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n",
            &limits,
        );
        assert_eq!(e, HeadError::BodyTooLarge);
        assert_eq!(e.status(), 413);
        // Chunked bodies are limited while they are read, not here.
        ok_with(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
            &limits,
        );
    }

    #[test]
    fn framing_errors_keep_their_status() {
        let e = err(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(e.status(), 400);
        assert_eq!(e, bad(FramingError::TeWithCl.reason()));
        let e = err(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n");
        assert_eq!(
            e,
            HeadError::NotImplemented(FramingError::UnsupportedCoding.reason())
        );
        assert_eq!(e.status(), 501);
    }

    #[test]
    fn too_many_headers_is_431() {
        let limits = Limits {
            max_headers: 3,
            ..LIMITS
        };
        let three = b"GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\nC: 2\r\n\r\n";
        assert_eq!(ok_with(three, &limits).headers.len(), 3);
        let four = b"GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\nC: 2\r\nD: 3\r\n\r\n";
        let e = err_with(four, &limits);
        assert_eq!(e, HeadError::TooManyHeaders);
        assert_eq!(e.status(), 431);
        // Known as soon as the extra line starts, before the head is complete.
        assert_eq!(
            err_with(
                b"GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\nC: 2\r\nD: 3\r\n",
                &limits
            ),
            HeadError::TooManyHeaders
        );
    }

    /// Heads with more lines than the slots every parse starts with are parsed again with room
    /// for `max_headers`: accepted up to the limit, a 431 beyond, whichever side of
    /// `SMALL_HEADERS` the limit is on.
    #[test]
    fn header_counts_around_the_small_slots() {
        let head = |lines: usize| {
            let mut h = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
            for i in 1..lines {
                h.extend_from_slice(format!("X-Line-{i}: {i}\r\n").as_bytes());
            }
            h.extend_from_slice(b"\r\n");
            h
        };
        for max_headers in [
            SMALL_HEADERS - 1,
            SMALL_HEADERS,
            SMALL_HEADERS + 1,
            100,
            1000,
        ] {
            let limits = Limits {
                max_headers,
                max_head: 1 << 16,
                ..LIMITS
            };
            for lines in [
                SMALL_HEADERS,
                SMALL_HEADERS + 1,
                max_headers,
                max_headers + 1,
            ] {
                let buf = head(lines);
                if lines <= max_headers {
                    // `ok_with` tries every split: quadratic in a head of a thousand lines.
                    let head = parse(&buf, &limits)
                        .expect("within the limits")
                        .expect("complete");
                    assert_eq!(head.len, buf.len());
                    let parsed = Resolved::of(&head, &buf);
                    assert_eq!(
                        parsed.headers.len(),
                        lines,
                        "{lines} lines, max {max_headers}"
                    );
                    let last = format!("{}", lines - 1);
                    assert_eq!(
                        parsed.header(&format!("x-line-{last}")),
                        Some(last.as_bytes()),
                        "the last line is kept"
                    );
                    assert!(
                        matches!(parse(&buf[..buf.len() - 2], &limits), Ok(None)),
                        "not complete without its blank line"
                    );
                } else {
                    assert_eq!(
                        err_with(&buf, &limits),
                        HeadError::TooManyHeaders,
                        "{lines} lines, max {max_headers}"
                    );
                    // And while the head is still arriving.
                    assert_eq!(
                        err_with(&buf[..buf.len() - 2], &limits),
                        HeadError::TooManyHeaders
                    );
                }
            }
        }
    }

    #[test]
    fn head_larger_than_max_head_is_431() {
        let buf = b"GET / HTTP/1.1\r\nHost: a\r\nX-Pad: aaaaaaaaaa\r\n\r\n";
        let exact = Limits {
            max_head: buf.len(),
            ..LIMITS
        };
        ok_with(buf, &exact);
        let short = Limits {
            max_head: buf.len() - 1,
            ..LIMITS
        };
        // Complete but too large.
        assert_eq!(err_with(buf, &short), HeadError::HeadTooLarge);
        assert_eq!(HeadError::HeadTooLarge.status(), 431);
        // Incomplete: once max_head bytes are buffered without an end, it cannot fit.
        let partial = &buf[..buf.len() - 1];
        assert_eq!(err_with(partial, &short), HeadError::HeadTooLarge);
        assert!(matches!(
            parse(&partial[..partial.len() - 1], &short),
            Ok(None)
        ));
    }

    #[test]
    fn long_request_target_is_414() {
        let limits = Limits {
            max_uri: 16,
            ..LIMITS
        };
        let target = format!("/{}", "a".repeat(15));
        let fits = format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n");
        ok_with(fits.as_bytes(), &limits);
        let long = format!("GET {target}b HTTP/1.1\r\nHost: a\r\n\r\n");
        let e = err_with(long.as_bytes(), &limits);
        assert_eq!(e, HeadError::UriTooLong);
        assert_eq!(e.status(), 414);
        // While the request line is still arriving, as soon as the target cannot fit.
        let line = format!("GET /{}", "a".repeat(64));
        assert_eq!(err_with(line.as_bytes(), &limits), HeadError::UriTooLong);
        let line = format!("GET /{}", "a".repeat(16));
        assert_eq!(err_with(line.as_bytes(), &limits), HeadError::UriTooLong);
        // The complete line, without its headers yet.
        let line = format!("GET {target}b HTTP/1.1\r\n");
        assert_eq!(err_with(line.as_bytes(), &limits), HeadError::UriTooLong);
    }

    #[test]
    fn target_limit_does_not_count_the_method() {
        // A long extension method leaves the target within max_uri: no read may say 414.
        let limits = Limits {
            max_uri: 8,
            ..LIMITS
        };
        let method = "X-A-VERY-LONG-EXTENSION-METHOD-NAME";
        let buf = format!("{method} /1234567 HTTP/1.1\r\nHost: a\r\n\r\n");
        let head = ok_with(buf.as_bytes(), &limits);
        assert_eq!(head.method.as_str(), method);
        // Nor do empty lines before the request line hide a long target.
        let buf = format!("\r\nGET /{} HTTP/1.1\r\n", "a".repeat(32));
        assert_eq!(
            err_with(&buf.as_bytes()[..20], &limits),
            HeadError::UriTooLong
        );
    }

    #[test]
    fn malformed_header_lines_are_rejected() {
        let name = bad("invalid header name");
        // Whitespace between name and colon (RFC 9112 §5.1: MUST reject).
        assert_eq!(err(b"GET / HTTP/1.1\r\nHost : a\r\n\r\n"), name);
        assert_eq!(err(b"GET / HTTP/1.1\r\nHost: a\r\nX\t: y\r\n\r\n"), name);
        // obs-fold (RFC 9112 §5.2: a server MAY reject it; we do).
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n"),
            name
        );
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n"),
            name
        );
        // No colon at all, or an empty name.
        assert_eq!(err(b"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n"), name);
        assert_eq!(err(b"GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n"), name);
        // Control bytes in values.
        let value = bad("invalid header value");
        assert_eq!(err(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n"), value);
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n"),
            value
        );
        // A bare CR is not a line ending.
        assert_eq!(err(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n"), value);
    }

    #[test]
    fn malformed_request_lines_are_rejected() {
        for buf in [
            &b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b" GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GE(T / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /\xff HTTP/1.1\r\nHost: a\r\n\r\n",
            b"\r\r\n",
            // Trailing bytes after a good version, or a doubled space before it.
            b"GET / HTTP/1.1x\r\nHost: a\r\n\r\n",
            b"GET /  HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /  HTTP/2.0\r\nHost: a\r\n\r\n",
        ] {
            assert_eq!(err(buf).status(), 400, "{:?}", show(buf));
        }
    }

    #[test]
    fn every_error_has_its_status_and_a_lowercase_reason() {
        let cases = [
            (bad("x"), 400),
            (HeadError::HeadTooLarge, 431),
            (HeadError::TooManyHeaders, 431),
            (HeadError::UriTooLong, 414),
            (HeadError::BodyTooLarge, 413),
            (HeadError::ExpectationFailed, 417),
            (HeadError::NotImplemented("y"), 501),
            (HeadError::VersionNotSupported, 505),
        ];
        for (e, status) in cases {
            assert_eq!(e.status(), status, "{e:?}");
            let reason = e.reason();
            assert!(!reason.is_empty());
            assert_eq!(reason, reason.to_lowercase());
        }
    }

    // ---- pipelining --------------------------------------------------------------------------

    #[test]
    fn hundred_pipelined_requests_in_one_buffer() {
        let mut buf = Vec::new();
        let mut want = Vec::new();
        for i in 0..100 {
            let path = format!("/item/{i}");
            if i % 3 == 0 {
                let body = format!("body-{i}").repeat(i % 7 + 1);
                buf.extend_from_slice(
                    format!(
                        "POST {path} HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                );
                want.push((Method::POST, path, body.into_bytes()));
            } else {
                buf.extend_from_slice(
                    format!("GET {path}?n={i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes(),
                );
                want.push((Method::GET, path, Vec::new()));
            }
        }
        let mut rest = &buf[..];
        let mut got = Vec::new();
        while !rest.is_empty() {
            let head = parse(rest, &LIMITS).expect("valid").expect("complete");
            let body_len = match head.framing {
                BodyFraming::None => 0,
                BodyFraming::Length(n) => usize::try_from(n).expect("small"),
                BodyFraming::Chunked => unreachable!("no chunked bodies here"),
            };
            let seen = Resolved::of(&head, rest);
            assert!(seen.keep_alive);
            let body = rest[head.len..head.len + body_len].to_vec();
            got.push((seen.method.clone(), show(seen.path()), body));
            rest = &rest[head.len + body_len..];
        }
        assert_eq!(got, want);
    }

    // ---- properties --------------------------------------------------------------------------

    /// Limits anywhere from absurdly small to roomy.
    fn any_limits() -> impl Strategy<Value = Limits> {
        (0..2048usize, 0..40usize, 0..1024usize, any::<u64>()).prop_map(
            |(max_head, max_headers, max_uri, max_body)| Limits {
                max_head,
                max_headers,
                max_uri,
                max_body,
            },
        )
    }

    /// Invariants any accepted head keeps, whatever the input.
    fn check_accepted(buf: &[u8], limits: &Limits, head: &Head) -> Result<(), TestCaseError> {
        prop_assert!(head.len <= buf.len());
        prop_assert!(head.len <= limits.max_head);
        prop_assert!(head.headers.len() <= limits.max_headers.max(1));
        let _ = Resolved::of(head, buf);
        if let BodyFraming::Length(n) = head.framing {
            prop_assert!(n > 0 && n <= limits.max_body);
        }
        if head.version == Version::Http11 {
            prop_assert_eq!(
                head.headers
                    .iter()
                    .filter(|(n, _)| n.get(buf).eq_ignore_ascii_case(b"host"))
                    .count(),
                1
            );
        }
        Ok(())
    }

    /// A request that should parse: the pieces and the bytes they make.
    #[derive(Debug, Clone)]
    struct Generated {
        method: &'static str,
        path: String,
        query: Option<String>,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Generated {
        fn target(&self) -> String {
            match &self.query {
                Some(q) => format!("{}?{q}", self.path),
                None => self.path.clone(),
            }
        }

        fn bytes(&self, lead: &str, lf_only: bool) -> Vec<u8> {
            let eol = if lf_only { "\n" } else { "\r\n" };
            let mut out = format!("{lead}{} {} HTTP/1.1{eol}", self.method, self.target());
            for (n, v) in &self.headers {
                out.push_str(&format!("{n}: {v}{eol}"));
            }
            out.push_str(eol);
            let mut out = out.into_bytes();
            out.extend_from_slice(&self.body);
            out
        }
    }

    fn generated() -> impl Strategy<Value = Generated> {
        let method = prop::sample::select(vec![
            "GET",
            "HEAD",
            "POST",
            "PUT",
            "DELETE",
            "OPTIONS",
            "PATCH",
            "TRACE",
            "PROPFIND",
            "X-A-VERY-LONG-EXTENSION-METHOD-NAME",
        ]);
        let path = "(/[A-Za-z0-9._~!$&'()*+,;=:@%-]{0,12}){1,4}";
        let query = prop::option::of("[A-Za-z0-9._~!$&'()*+,;=:@%/?-]{0,24}");
        let name = "X-[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}";
        let value = "[!-~]([ -~]{0,20}[!-~])?";
        let host = prop::sample::select(vec!["a", "example.com:8080", "[::1]:80", "10.0.0.1", ""]);
        let body = prop::collection::vec(any::<u8>(), 0..40);
        (
            method,
            path,
            query,
            prop::collection::vec((name, value), 0..8),
            host,
            0..9usize,
            body,
        )
            .prop_map(|(method, path, query, mut headers, host, at, body)| {
                // Host goes anywhere among the others; Content-Length only when there is a body.
                let at = at.min(headers.len());
                headers.insert(at, ("Host".to_owned(), host.to_owned()));
                if !body.is_empty() {
                    headers.push(("Content-Length".to_owned(), body.len().to_string()));
                }
                Generated {
                    method,
                    path,
                    query,
                    headers,
                    body,
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_bytes_never_panic(
            buf in prop::collection::vec(any::<u8>(), 0..600),
            limits in any_limits(),
        ) {
            if let Ok(Some(head)) = parse(&buf, &limits) {
                check_accepted(&buf, &limits, &head)?;
            }
        }

        #[test]
        fn mutated_requests_never_panic(
            req in generated(),
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
            cut in any::<prop::sample::Index>(),
            limits in any_limits(),
        ) {
            // Mostly-valid bytes reach deeper into the parser than random ones.
            let mut buf = req.bytes("", false);
            for (at, byte) in edits {
                let i = at.index(buf.len());
                buf[i] = byte;
            }
            buf.truncate(cut.index(buf.len() + 1));
            if let Ok(Some(head)) = parse(&buf, &limits) {
                check_accepted(&buf, &limits, &head)?;
            }
        }

        #[test]
        fn valid_requests_parse_alike_whatever_the_reads(
            req in generated(),
            lead in prop::sample::select(vec!["", "\r\n", "\n"]),
            lf_only in any::<bool>(),
            next in prop::sample::select(vec![&b""[..], b"G", b"GET / HTTP/1.1\r\n", b"\r\n"]),
            slack in (0..3usize, 0..3usize, 0..3usize, 0..3u64),
        ) {
            let request = req.bytes(lead, lf_only);
            let head_len = request.len() - req.body.len();
            // Limits at or just above what this request needs, so each is exercised at its edge.
            let limits = Limits {
                max_head: head_len + slack.0,
                max_headers: req.headers.len() + slack.1,
                max_uri: req.target().len() + slack.2,
                max_body: req.body.len() as u64 + slack.3,
            };
            // Whatever follows the request (the next one, pipelined) must not change it.
            let buf = [&request[..], next].concat();
            let whole = match parse(&buf, &limits) {
                Ok(Some(head)) => Resolved::of(&head, &buf),
                other => return Err(TestCaseError::fail(format!("{:?}: {other:?}", show(&buf)))),
            };
            prop_assert_eq!(whole.len, head_len);
            prop_assert_eq!(&whole.method.as_str(), &req.method);
            prop_assert_eq!(whole.path(), req.path.as_bytes());
            prop_assert_eq!(whole.query(), req.query.as_deref().map(str::as_bytes));
            let want_headers: Vec<(Vec<u8>, Vec<u8>)> = req
                .headers
                .iter()
                .map(|(n, v)| (n.clone().into_bytes(), v.clone().into_bytes()))
                .collect();
            prop_assert_eq!(&whole.headers, &want_headers);
            let want_framing = match req.body.len() {
                0 => BodyFraming::None,
                n => BodyFraming::Length(n as u64),
            };
            prop_assert_eq!(whole.framing, want_framing);
            prop_assert!(whole.keep_alive);
            for split in 0..buf.len() {
                let mut read = buf[..split].to_vec();
                let got = parse(&read, &limits);
                if split < head_len {
                    prop_assert!(matches!(got, Ok(None)), "split at {}: {:?}", split, got);
                } else {
                    let head = got.map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
                    let head = head.ok_or_else(|| TestCaseError::fail("incomplete"))?;
                    prop_assert_eq!(&Resolved::of(&head, &read), &whole);
                }
                read.extend_from_slice(&buf[split..]);
                let head = parse(&read, &limits)
                    .map_err(|e| TestCaseError::fail(format!("{e:?}")))?
                    .ok_or_else(|| TestCaseError::fail("incomplete"))?;
                prop_assert_eq!(&Resolved::of(&head, &read), &whole);
            }
        }
    }
}
