//! Response headers as raw bytes, appended to the encoded response.

use bytes::BytesMut;
use http::header::{HeaderName, HeaderValue};

/// Header lines (`Name: value\r\n`) a middleware adds to a response.
///
/// Raw bytes rather than a header map: the chain runs for every request, and appending a
/// pre-rendered block (the security headers are one) costs a `memcpy`, not an allocation per
/// header. Values come from `HeaderValue` (which cannot hold CR or LF) or from static blocks
/// checked when they are built, so nothing here can split a response.
#[derive(Debug, Default)]
pub struct HeaderBlock {
    buf: BytesMut,
}

impl HeaderBlock {
    /// An empty block (no allocation until something is added).
    pub fn new() -> HeaderBlock {
        HeaderBlock::default()
    }

    /// Adds `name: value`.
    pub fn push(&mut self, name: &HeaderName, value: &HeaderValue) {
        self.push_str(name.as_str(), value.as_bytes());
    }

    /// Adds `name: value` for a name known to be valid (a `&'static str` constant).
    pub fn push_str(&mut self, name: &str, value: &[u8]) {
        self.buf.reserve(name.len() + value.len() + 4);
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(b": ");
        self.buf.extend_from_slice(value);
        self.buf.extend_from_slice(b"\r\n");
    }

    /// Adds pre-rendered header lines (each ending in CRLF), validated when they were built.
    pub(crate) fn push_block(&mut self, block: &[u8]) {
        self.buf.extend_from_slice(block);
    }

    /// Appends another block.
    pub fn append(&mut self, other: &HeaderBlock) {
        self.buf.extend_from_slice(&other.buf);
    }

    /// The bytes, ready to be written after the response's own headers.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Empties the block, keeping its capacity.
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}
