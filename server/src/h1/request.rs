//! The request a handler receives.

use std::borrow::Cow;
use std::net::SocketAddr;

use bytes::Bytes;
use http::Method;
use percent_encoding::percent_decode;

use super::head::{Head, PathRepr, Span, Version};
use super::spans::HeaderSpans;

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
    headers: HeaderSpans,
    params: Vec<(Box<str>, Box<str>)>,
    body: Bytes,
    peer: SocketAddr,
    request_id: Option<crate::middleware::RequestIdValue>,
    has_request_id_header: bool,
    extensions: super::extensions::Extensions,
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
            request_id: None,
            has_request_id_header: head.has_request_id,
            extensions: super::extensions::Extensions::new(),
        }
    }

    /// Whether the head had an `X-Request-Id` line (found while parsing it).
    pub(crate) fn has_request_id_header(&self) -> bool {
        self.has_request_id_header
    }

    pub(crate) fn set_body(&mut self, body: Bytes) {
        self.body = body;
    }

    /// The request id (`X-Request-Id`, from a trusted proxy or generated), when the
    /// request-id middleware runs; put it in your logs.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_ref().map(|v| v.as_str())
    }

    /// The request id as the middleware stored it, for keeping beyond the request's life.
    pub(crate) fn request_id_value(&self) -> Option<&crate::middleware::RequestIdValue> {
        self.request_id.as_ref()
    }

    pub(crate) fn set_request_id(&mut self, id: crate::middleware::RequestIdValue) {
        self.request_id = Some(id);
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

    /// The first value of header `name` as a slice of the head (a reference count, no copy),
    /// for keeping after the request is handed on.
    pub(crate) fn header_bytes(&self, name: &str) -> Option<Bytes> {
        self.header(name).map(|v| self.head.slice_ref(v))
    }

    /// The first value of header `name` as text, if it is valid UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The values of every header line named `name` (ASCII case-insensitive), in arrival
    /// order: for fields that may come on several lines (`Cookie`, `X-Forwarded-Proto`),
    /// without the UTF-8 check of each name that [`headers`](Self::headers) makes.
    pub fn header_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .iter()
            .filter(move |&&(n, _)| n.get(&self.head).eq_ignore_ascii_case(name.as_bytes()))
            .map(|&(_, v)| v.get(&self.head))
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

    /// Every path parameter the route captured, in the order of the template, percent-decoded.
    pub fn params(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.params.iter().map(|(k, v)| (&**k, &**v))
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

    /// Values a [`Layer`](crate::Layer) attached for the handler (the session, the signed-in
    /// user), found by type; an extractor reads them. Empty, and free, unless a layer adds one.
    pub fn extensions(&self) -> &super::extensions::Extensions {
        &self.extensions
    }

    /// The extensions, to attach a value before the handler runs.
    pub fn extensions_mut(&mut self) -> &mut super::extensions::Extensions {
        &mut self.extensions
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h1::head::{self, Limits};

    const LIMITS: Limits = Limits {
        max_head: 8192,
        max_headers: 32,
        max_uri: 1024,
        max_body: 1 << 20,
    };

    /// A request as the connection builds it: head bytes split off, the rest as body.
    fn request(raw: &[u8]) -> Request {
        let head = head::parse(raw, &LIMITS)
            .expect("valid head")
            .expect("complete head");
        let head_bytes = Bytes::copy_from_slice(&raw[..head.len]);
        let body = Bytes::copy_from_slice(&raw[head.len..]);
        let peer = SocketAddr::from(([127, 0, 0, 1], 40000));
        Request::new(head, head_bytes, body, peer)
    }

    fn get(target: &str) -> Request {
        request(format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
    }

    #[test]
    fn query_param_finds_each_key() {
        let req = get("/s?a=1&b=2");
        assert_eq!(req.query(), Some("a=1&b=2"));
        assert_eq!(req.query_param("a").as_deref(), Some("1"));
        assert_eq!(req.query_param("b").as_deref(), Some("2"));
        assert_eq!(req.query_param("c"), None);
        // Keys match exactly.
        assert_eq!(req.query_param("A"), None);
        assert_eq!(req.query_param(""), None);
    }

    #[test]
    fn query_param_decodes_like_a_form() {
        let req = get("/s?q=hello+world&p=a%20b&plus=a%2Bb&mixed=%41+%42&bad=%FF&lone=100%");
        assert_eq!(req.query_param("q").as_deref(), Some("hello world"));
        assert_eq!(req.query_param("p").as_deref(), Some("a b"));
        // An encoded plus is a plus, not a space.
        assert_eq!(req.query_param("plus").as_deref(), Some("a+b"));
        assert_eq!(req.query_param("mixed").as_deref(), Some("A B"));
        // Bytes that are not UTF-8 decode lossily instead of failing.
        assert_eq!(req.query_param("bad").as_deref(), Some("\u{FFFD}"));
        // A '%' without two hex digits is kept as it is.
        assert_eq!(req.query_param("lone").as_deref(), Some("100%"));
        // Keys are decoded too.
        let req = get("/s?my+key=1&other%20key=2");
        assert_eq!(req.query_param("my key").as_deref(), Some("1"));
        assert_eq!(req.query_param("other key").as_deref(), Some("2"));
    }

    #[test]
    fn query_param_borrows_when_nothing_is_encoded() {
        let req = get("/s?a=plain");
        assert!(matches!(req.query_param("a"), Some(Cow::Borrowed("plain"))));
    }

    #[test]
    fn query_param_without_a_value_is_empty() {
        let req = get("/s?flag&empty=&x=1");
        assert_eq!(req.query_param("flag").as_deref(), Some(""));
        assert_eq!(req.query_param("empty").as_deref(), Some(""));
        assert_eq!(req.query_param("x").as_deref(), Some("1"));
        // Only the first '=' separates; the rest belong to the value.
        assert_eq!(get("/s?k=a=b").query_param("k").as_deref(), Some("a=b"));
        // Empty pairs are skipped over.
        assert_eq!(get("/s?&&k=v&").query_param("k").as_deref(), Some("v"));
    }

    #[test]
    fn query_param_repeated_key_gives_the_first() {
        let req = get("/s?k=first&k=second&k");
        assert_eq!(req.query_param("k").as_deref(), Some("first"));
    }

    #[test]
    fn no_query_means_no_params() {
        let req = get("/s");
        assert_eq!(req.query(), None);
        assert_eq!(req.query_param("a"), None);
        let req = get("/s?");
        assert_eq!(req.query(), Some(""));
        assert_eq!(req.query_param("a"), None);
    }

    #[test]
    fn path_is_raw_and_without_the_query() {
        assert_eq!(get("/a%20b/c?x=1").path(), "/a%20b/c");
        assert_eq!(get("http://h").path(), "/");
        assert_eq!(get("http://h?q=1").path(), "/");
        assert_eq!(get("http://h?q=1").query_param("q").as_deref(), Some("1"));
        assert_eq!(get("http://h/p/q").path(), "/p/q");
        let star = request(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(star.path(), "*");
        assert_eq!(star.method(), Method::OPTIONS);
    }

    #[test]
    fn header_lookup_is_case_insensitive_and_first_wins() {
        let req = request(
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Token: one\r\nx-token: two\r\n\
              Content-Type: application/json\r\nX-Latin: caf\xe9\r\n\r\n",
        );
        for name in ["x-token", "X-TOKEN", "X-Token"] {
            assert_eq!(req.header(name), Some(&b"one"[..]), "{name}");
            assert_eq!(req.header_str(name), Some("one"), "{name}");
        }
        assert_eq!(req.header("x-missing"), None);
        assert_eq!(req.header("x-toke"), None);
        assert_eq!(req.content_type(), Some("application/json"));
        // obs-text is kept as bytes, but is not text.
        assert_eq!(req.header("x-latin"), Some(&b"caf\xe9"[..]));
        assert_eq!(req.header_str("x-latin"), None);
    }

    #[test]
    fn headers_come_in_arrival_order_with_names_as_sent() {
        let req = request(b"GET / HTTP/1.1\r\nhost: a\r\nB: 1\r\nA: 2\r\nB: 3\r\n\r\n");
        let all: Vec<(&str, &[u8])> = req.headers().collect();
        assert_eq!(
            all,
            [
                ("host", &b"a"[..]),
                ("B", &b"1"[..]),
                ("A", &b"2"[..]),
                ("B", &b"3"[..])
            ]
        );
        assert_eq!(request(b"GET / HTTP/1.0\r\n\r\n").headers().count(), 0);
        assert_eq!(request(b"GET / HTTP/1.0\r\n\r\n").content_type(), None);
    }

    #[test]
    fn params_are_set_by_the_router() {
        let mut req = get("/users/42");
        assert_eq!(req.param("id"), None);
        req.set_params(vec![
            ("id".into(), "42".into()),
            ("tab".into(), "a b".into()),
        ]);
        assert_eq!(req.param("id"), Some("42"));
        assert_eq!(req.param("tab"), Some("a b"));
        assert_eq!(req.param("ID"), None);
    }

    #[test]
    fn method_version_body_and_peer() {
        let req = request(b"POST /f HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello");
        assert_eq!(req.method(), Method::POST);
        assert!(req.is_http10());
        assert_eq!(req.body(), &Bytes::from_static(b"hello"));
        assert_eq!(req.peer_addr(), SocketAddr::from(([127, 0, 0, 1], 40000)));
        assert_eq!(req.into_body(), Bytes::from_static(b"hello"));
        let req = get("/");
        assert!(!req.is_http10());
        assert!(req.body().is_empty());
    }

    #[test]
    fn path_params_are_percent_decoded_but_plus_is_kept() {
        assert_eq!(&*decode_path_param("a%20b"), "a b");
        assert_eq!(&*decode_path_param("a+b"), "a+b");
        assert_eq!(&*decode_path_param("%E2%9C%93"), "\u{2713}");
        assert_eq!(&*decode_path_param("%FF"), "\u{FFFD}");
        assert_eq!(&*decode_path_param("plain"), "plain");
    }
}
