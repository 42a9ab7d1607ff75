//! Response headers as raw bytes, appended to the encoded response.

use bytes::{BufMut, BytesMut};
use http::header::{HeaderName, HeaderValue};

/// Header lines (`Name: value\r\n`) a middleware adds to a response.
///
/// Raw bytes rather than a header map: the chain runs for every request, and appending a
/// pre-rendered block (the security headers are one) costs a `memcpy`, not an allocation per
/// header. Values come from `HeaderValue` (which cannot hold CR or LF) or from static blocks
/// checked when they are built, so nothing here can split a response.
///
/// The block is a view of the connection's write buffer, positioned just after the response's
/// own headers ([`over`](Self::over)): what a middleware adds lands where it will be sent,
/// with no second copy and no buffer moved in or out. Everything before that position (earlier
/// responses of the batch, this response's head) is out of reach:
/// [`as_bytes`](Self::as_bytes), [`clear`](Self::clear) and [`is_empty`](Self::is_empty) see
/// only this block's lines.
#[derive(Debug)]
pub struct HeaderBlock<'b> {
    buf: &'b mut BytesMut,
    /// Where this block's lines begin in `buf`.
    start: usize,
}

impl<'b> HeaderBlock<'b> {
    /// A block that appends to `buf` after what it already holds.
    pub fn over(buf: &'b mut BytesMut) -> HeaderBlock<'b> {
        HeaderBlock {
            start: buf.len(),
            buf,
        }
    }

    /// Adds `name: value`.
    pub fn push(&mut self, name: &HeaderName, value: &HeaderValue) {
        self.push_str(name.as_str(), value.as_bytes());
    }

    /// Adds `name: value` for a name known to be valid (a `&'static str` constant).
    pub fn push_str(&mut self, name: &str, value: &[u8]) {
        self.buf.reserve(name.len() + value.len() + 4);
        push_line(self.buf, name, value);
    }

    /// Adds pre-rendered header lines (each ending in CRLF), validated when they were built.
    pub(crate) fn push_block(&mut self, block: &[u8]) {
        self.buf.extend_from_slice(block);
    }

    /// Adds a line made of three parts of sizes known at compile time (a name with its `": "`,
    /// a value, `"\r\n"`), valid by construction. Copies of constant size compile to a few
    /// moves rather than `memcpy` calls, and after the one `reserve` the others' capacity
    /// checks are single comparisons.
    #[inline]
    pub(crate) fn push_fixed<const A: usize, const B: usize, const C: usize>(
        &mut self,
        a: &[u8; A],
        b: &[u8; B],
        c: &[u8; C],
    ) {
        self.buf.reserve(A + B + C);
        self.buf.extend_from_slice(a);
        self.buf.extend_from_slice(b);
        self.buf.extend_from_slice(c);
    }

    /// The bytes, ready to be written after the response's own headers.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Empties the block.
    pub fn clear(&mut self) {
        self.buf.truncate(self.start);
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.buf.len() == self.start
    }
}

/// Appends `name: value\r\n` to `buf`.
pub(crate) fn push_line(buf: &mut impl BufMut, name: &str, value: &[u8]) {
    buf.put_slice(name.as_bytes());
    buf.put_slice(b": ");
    buf.put_slice(value);
    buf.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_over_a_buffer_sees_only_its_own_lines() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        let mut block = HeaderBlock::over(&mut buf);
        assert!(block.is_empty());
        block.push_str("x-a", b"1");
        assert_eq!(block.as_bytes(), b"x-a: 1\r\n");
        block.clear();
        assert!(block.is_empty());
        block.push_str("x-b", b"2");
        block.push_block(b"x-c: 3\r\n");
        assert_eq!(&buf[..], b"HTTP/1.1 200 OK\r\nx-b: 2\r\nx-c: 3\r\n");
    }
}
