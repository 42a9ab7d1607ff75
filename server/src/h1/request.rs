//! The request a handler receives.

use std::borrow::Cow;
use std::net::SocketAddr;

use bytes::Bytes;
use http::Method;
use percent_encoding::percent_decode;

use super::head::{Head, PathRepr, Span, Version};

/// An HTTP request: method, target, headers, the whole body, path parameters and peer address.
///
/// The head is kept as the bytes it arrived in, with spans pointing into them, so building a
/// `Request` copies nothing. The body has been read completely (bounded by `max_body_size`)
/// before the handler runs.
#[derive(Debug)]
pub struct Request {
    method: Method,
    version: Version,
    head: Bytes,
    path: PathRepr,
    query: Option<Span>,
    headers: Vec<(Span, Span)>,
    params: Vec<(Box<str>, Box<str>)>,
    body: Bytes,
    peer: SocketAddr,
}

impl Request {
    pub(crate) fn new(head: Head, bytes: Bytes, body: Bytes, peer: SocketAddr) -> Request {
        Request {
            method: head.method,
            version: head.version,
            head: bytes,
            path: head.path,
            query: head.query,
            headers: head.headers,
            params: Vec::new(),
            body,
            peer,
        }
    }

    /// The request method.
    #[inline]
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// Whether the request came as HTTP/1.0 (HTTP/1.1 otherwise).
    pub fn is_http10(&self) -> bool {
        self.version == Version::Http10
    }

    /// The path of the request target, still percent-encoded, without the query (`/a%20b`).
    /// `*` for an asterisk-form `OPTIONS *`.
    #[inline]
    pub fn path(&self) -> &str {
        match self.path {
            // The parser only admits URI token bytes (visible ASCII) in the target.
            PathRepr::Span(s) => std::str::from_utf8(s.get(&self.head)).unwrap_or("/"),
            PathRepr::Root => "/",
            PathRepr::Asterisk => "*",
        }
    }

    /// The raw query string after `?`, if the target had one.
    pub fn query(&self) -> Option<&str> {
        self.query
            .and_then(|s| std::str::from_utf8(s.get(&self.head)).ok())
    }

    /// The first value of query parameter `name`, percent-decoded (`+` means space, as in
    /// HTML forms). `None` when absent; an empty string when present without a value.
    pub fn query_param(&self, name: &str) -> Option<Cow<'_, str>> {
        let query = self.query()?;
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_form(k) == name).then(|| decode_form(v))
        })
    }

    /// The first value of header `name` (case-insensitive), as raw bytes.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find_map(|&(n, v)| {
            n.get(&self.head)
                .eq_ignore_ascii_case(name.as_bytes())
                .then(|| v.get(&self.head))
        })
    }

    /// The first value of header `name` as text, if it is valid UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Every header line in arrival order, names as sent.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        self.headers.iter().map(|&(n, v)| {
            (
                std::str::from_utf8(n.get(&self.head)).unwrap_or(""),
                v.get(&self.head),
            )
        })
    }

    /// The `Content-Type` header as text, if present.
    pub fn content_type(&self) -> Option<&str> {
        self.header_str("content-type")
    }

    /// The path parameter `name` captured by the route (`/users/{id}`), percent-decoded.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find_map(|(k, v)| (&**k == name).then_some(&**v))
    }

    pub(crate) fn set_params(&mut self, params: Vec<(Box<str>, Box<str>)>) {
        self.params = params;
    }

    /// The request body (empty when there was none).
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Takes the body out of the request without copying it.
    pub fn into_body(self) -> Bytes {
        self.body
    }

    /// The address of the peer that sent the request (nginx's, behind a proxy).
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }
}

/// Decodes one `application/x-www-form-urlencoded` component.
fn decode_form(s: &str) -> Cow<'_, str> {
    if !s.contains(['+', '%']) {
        return Cow::Borrowed(s);
    }
    let spaced = s.replace('+', " ");
    Cow::Owned(
        percent_decode(spaced.as_bytes())
            .decode_utf8_lossy()
            .into_owned(),
    )
}

/// Percent-decodes a path segment captured by the router.
pub(crate) fn decode_path_param(s: &str) -> Box<str> {
    percent_decode(s.as_bytes()).decode_utf8_lossy().into()
}
