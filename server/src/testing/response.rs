//! [`TestResponse`]: a response read back from the bytes the server wrote.

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::de::DeserializeOwned;

use crate::h1::chunked::ChunkedDecoder;

/// A response as a client received it: status, headers, and the body with its framing
/// (`Content-Length`, chunked, or up to the close) removed.
#[derive(Debug, Clone)]
pub struct TestResponse {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl TestResponse {
    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Every header, as sent.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The first value of header `name`, as text; `None` when absent or not visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Every value of header `name` (each `Set-Cookie`, say), as text.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    }

    /// The body's bytes.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    ///
    /// # Panics
    /// When the body is not JSON of that shape: the test failed there.
    pub fn json<T: DeserializeOwned>(&self) -> T {
        match serde_json::from_slice(&self.body) {
            Ok(v) => v,
            Err(e) => panic!("the body is not the JSON expected ({e}): {}", self.text()),
        }
    }

    /// Reads the responses in `out`, one per entry of `head_only` (whether it answers a HEAD,
    /// which has no body); interim `1xx` responses are skipped.
    pub(crate) fn parse_all(
        out: &[u8],
        head_only: &[bool],
    ) -> Result<Vec<TestResponse>, &'static str> {
        let mut rest = BytesMut::from(out);
        let mut responses = Vec::with_capacity(head_only.len());
        for &head_only in head_only {
            loop {
                if rest.is_empty() {
                    return Ok(responses);
                }
                let resp = parse_one(&mut rest, head_only)?;
                if !resp.status.is_informational() {
                    responses.push(resp);
                    break;
                }
            }
        }
        Ok(responses)
    }
}

/// Reads one response off the front of `rest`.
fn parse_one(rest: &mut BytesMut, head_only: bool) -> Result<TestResponse, &'static str> {
    let mut slots = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut slots);
    let head_len = match parsed.parse(rest) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err("the response head is incomplete"),
        Err(_) => return Err("the response head is malformed"),
    };
    let status = parsed
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or("the status code is invalid")?;
    let mut headers = HeaderMap::new();
    for h in parsed.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| "bad header name")?;
        let value = HeaderValue::from_bytes(h.value).map_err(|_| "bad header value")?;
        headers.append(name, value);
    }
    let _ = rest.split_to(head_len);
    let bodiless = head_only
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let chunked = headers
        .get(http::header::TRANSFER_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"chunked"));
    let length = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let body = if bodiless {
        Bytes::new()
    } else if chunked {
        let mut decoder = ChunkedDecoder::new(u64::MAX);
        let mut body = BytesMut::new();
        match decoder.decode(rest, &mut body) {
            Ok(true) => body.freeze(),
            Ok(false) => return Err("the chunked body is cut short"),
            Err(_) => return Err("the chunked body is malformed"),
        }
    } else if let Some(n) = length {
        if rest.len() < n {
            return Err("the body is shorter than its Content-Length");
        }
        rest.split_to(n).freeze()
    } else {
        // Delimited by the close.
        rest.split().freeze()
    };
    Ok(TestResponse {
        status,
        headers,
        body,
    })
}
