//! [`TestRequest`]: a request built field by field and rendered as HTTP/1.1 bytes.

use std::net::SocketAddr;

use bytes::{BufMut, Bytes, BytesMut};
use http::Method;
use serde::Serialize;

use super::{TestClient, TestResponse, DEFAULT_PEER};

/// A request for a [`TestClient`]; [`send`](TestRequest::send) it to get the response.
#[must_use = "a request does nothing until it is sent"]
pub struct TestRequest<'c, S: 'static> {
    client: &'c TestClient<S>,
    method: Method,
    target: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Option<Bytes>,
    peer: SocketAddr,
}

impl<'c, S: 'static> TestRequest<'c, S> {
    pub(super) fn new(client: &'c TestClient<S>, method: Method, target: &str) -> Self {
        TestRequest {
            client,
            method,
            target: target.to_owned(),
            headers: Vec::new(),
            body: None,
            peer: DEFAULT_PEER,
        }
    }

    /// Adds a header line (repeated names are sent as repeated lines, as a client would).
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers
            .push((name.to_owned(), value.as_ref().to_vec()));
        self
    }

    /// Sends `body` with its `Content-Length`.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Sends `value` as an `application/x-www-form-urlencoded` body.
    ///
    /// # Panics
    /// When `value` is not a flat map of fields (serde_html_form cannot encode it).
    pub fn form(self, value: &impl Serialize) -> Self {
        let body = match serde_html_form::to_string(value) {
            Ok(body) => body,
            Err(e) => panic!("the test form cannot be encoded: {e}"),
        };
        self.header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    }

    /// Sends `value` as an `application/json` body.
    ///
    /// # Panics
    /// When `value` cannot be serialised.
    pub fn json(self, value: &impl Serialize) -> Self {
        let body = match serde_json::to_vec(value) {
            Ok(body) => body,
            Err(e) => panic!("the test JSON cannot be encoded: {e}"),
        };
        self.header("content-type", "application/json").body(body)
    }

    /// Makes the request come from `peer` (for client-address, proxy and rate-limit tests).
    pub fn peer(mut self, peer: SocketAddr) -> Self {
        self.peer = peer;
        self
    }

    /// The request as it goes on the wire: `Host` unless one was given, `Content-Length` for
    /// a body.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(128);
        out.put_slice(self.method.as_str().as_bytes());
        out.put_u8(b' ');
        out.put_slice(self.target.as_bytes());
        out.put_slice(b" HTTP/1.1\r\n");
        if !self.has("host") {
            out.put_slice(b"Host: pinion.test\r\n");
        }
        for (name, value) in &self.headers {
            out.put_slice(name.as_bytes());
            out.put_slice(b": ");
            out.put_slice(value);
            out.put_slice(b"\r\n");
        }
        if let Some(body) = &self.body {
            if !self.has("content-length") && !self.has("transfer-encoding") {
                out.put_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
            }
        }
        out.put_slice(b"\r\n");
        if let Some(body) = &self.body {
            out.put_slice(body);
        }
        out.freeze()
    }

    fn has(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// Sends the request and reads the response.
    ///
    /// # Panics
    /// When the server closed without a complete response: the test failed there.
    pub async fn send(self) -> TestResponse {
        let head_only = self.method == Method::HEAD;
        let out = self.client.send_raw(self.to_bytes(), self.peer).await;
        match TestResponse::parse_all(&out, &[head_only]) {
            Ok(mut responses) if !responses.is_empty() => responses.remove(0),
            Ok(_) => panic!("the server closed without answering"),
            Err(e) => panic!("the server's answer cannot be read ({e}): {out:?}"),
        }
    }
}
