//! Strict, incremental decoder for the chunked transfer coding (RFC 9112 §7.1).
//!
//! We write our own instead of using `httparse::parse_chunk_size` because httparse accepts an
//! empty size line and a bare LF inside chunk extensions. Either leniency lets a front proxy and
//! this server disagree about where a body ends, which is the raw material of request
//! smuggling. This decoder accepts exactly the RFC grammar and rejects everything else.
//!
//! # Design
//!
//! Framing lines (size lines, the CRLF after data, trailer fields) are walked one byte at a time
//! through a small state machine; chunk data is copied in bulk. All progress lives in
//! [`ChunkedDecoder`], never in the input buffer, so the input may be split at *any* byte
//! boundary: a read that ends in the middle of `"1a;x=\"y"` or between the CR and LF of a line
//! resumes exactly where it stopped. Nothing is allocated except the caller's `out` growing.
//!
//! Every line and section is bounded ([`MAX_SIZE_DIGITS`], [`MAX_EXTENSION_BYTES`],
//! [`MAX_TRAILER_BYTES`], [`MAX_TRAILER_FIELDS`]) and the decoded total is bounded by the
//! caller's `max_body`, so a peer cannot make the decoder do unbounded work per byte of body.

use std::fmt;

use bytes::{Buf, BytesMut};

use super::token::is_tchar;

/// Most hex digits accepted in a chunk-size, leading zeros included.
///
/// Sixteen hex digits is exactly `u64::MAX`, so every accepted size fits a `u64`, and the cap also
/// bounds the size line of a peer that sends an endless run of `0`s.
pub(crate) const MAX_SIZE_DIGITS: u8 = 16;

/// Most bytes of chunk extensions (everything between the size and the CRLF) per chunk line.
///
/// Extensions carry no meaning for us and are discarded; the bound stops a peer from streaming an
/// endless extension that we would have to scan without ever making progress on the body.
pub(crate) const MAX_EXTENSION_BYTES: u32 = 4096;

/// Most bytes of the trailer section, counting every trailer line with its CRLF and the final
/// empty line.
///
/// Trailers are discarded, so the bound exists only to cap the work a peer can make us do after
/// the last chunk; 16 KiB matches the usual limit on a request head.
pub(crate) const MAX_TRAILER_BYTES: u32 = 16 * 1024;

/// Most trailer fields accepted after the last chunk.
///
/// Separate from [`MAX_TRAILER_BYTES`] because many tiny fields are the cheap way to exhaust a
/// per-field budget elsewhere (logging, future trailer merging); 100 mirrors the header limit.
pub(crate) const MAX_TRAILER_FIELDS: u32 = 100;

/// Why a chunked body was rejected.
///
/// Each variant names the rule that was broken so logs say what the peer did wrong. The
/// connection answers [`ChunkedError::BodyTooLarge`] with 413 and every other variant with 400;
/// after any error the body's end is unknown, so the connection must be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChunkedError {
    /// The chunk-size line does not start with a hex digit (e.g. an empty line, `g`), or the
    /// digits are followed by something other than `;`, BWS before `;`, or CRLF.
    InvalidSize,
    /// The chunk-size has more than [`MAX_SIZE_DIGITS`] digits, so it may not fit a `u64`.
    SizeOverflow,
    /// A chunk extension breaks the `BWS ";" BWS name [ BWS "=" BWS value ]` grammar or holds a
    /// control character.
    InvalidExtension,
    /// The chunk extensions of one line exceed [`MAX_EXTENSION_BYTES`].
    ExtensionTooLong,
    /// A CR is not followed by LF, or chunk data is not followed by CRLF (data longer than the
    /// declared size).
    MissingCrlf,
    /// An LF appeared without its CR in a size line, after chunk data or in the trailers.
    BareLf,
    /// A trailer line is not a `token ":" value` field.
    InvalidTrailer,
    /// The trailer section exceeds [`MAX_TRAILER_BYTES`] or [`MAX_TRAILER_FIELDS`].
    TrailerTooLarge,
    /// The decoded body would exceed the caller's `max_body`.
    BodyTooLarge,
}

impl ChunkedError {
    /// A short lowercase description, static so it can go straight into a response body or
    /// log field without formatting.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Self::InvalidSize => "invalid chunk size line",
            Self::SizeOverflow => "chunk size has too many digits",
            Self::InvalidExtension => "invalid chunk extension",
            Self::ExtensionTooLong => "chunk extensions too long",
            Self::MissingCrlf => "missing crlf in chunked body",
            Self::BareLf => "bare lf in chunked body",
            Self::InvalidTrailer => "invalid trailer field",
            Self::TrailerTooLarge => "trailer section too large",
            Self::BodyTooLarge => "chunked body exceeds the size limit",
        }
    }
}

impl fmt::Display for ChunkedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for ChunkedError {}

/// Where the decoder is in the chunked grammar; one variant per point where input may stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a chunk-size line: a hex digit must come.
    SizeStart,
    /// Inside the chunk-size digits.
    Size,
    /// Whitespace after the size: only more whitespace or `;` may follow.
    SizeBws,
    /// After `;`: optional whitespace, then an extension name.
    ExtNameStart,
    /// Inside an extension name (a token).
    ExtName,
    /// Whitespace after an extension name: `=` or `;` must follow.
    ExtNameBws,
    /// After `=`: optional whitespace, then a token or a quoted string.
    ExtValueStart,
    /// Inside a token extension value.
    ExtToken,
    /// Inside a quoted-string extension value.
    ExtQuoted,
    /// After a backslash inside a quoted string.
    ExtQuotedPair,
    /// Right after a quoted-string value's closing quote: whitespace, `;` or CR must follow.
    ExtQuotedEnd,
    /// Whitespace after an extension value: only more whitespace or `;` may follow.
    ExtValueBws,
    /// After the CR ending a size line: LF must follow.
    SizeLf,
    /// Inside chunk data; `ChunkedDecoder::size` bytes remain.
    Data,
    /// After chunk data: CR must follow.
    DataCr,
    /// After the CR following chunk data: LF must follow.
    DataLf,
    /// At the start of a trailer line or of the final empty line.
    TrailerStart,
    /// Inside a trailer field name.
    TrailerName,
    /// Inside a trailer field value.
    TrailerValue,
    /// After the CR ending a trailer field: LF must follow.
    TrailerLf,
    /// After the CR of the final empty line: LF must follow.
    EndLf,
    /// The body and its trailers are complete.
    Done,
    /// An error was returned; it is returned again on every later call.
    Failed(ChunkedError),
}

impl State {
    /// Whether bytes consumed in this state count toward [`MAX_EXTENSION_BYTES`].
    fn in_extension(self) -> bool {
        matches!(
            self,
            Self::SizeBws
                | Self::ExtNameStart
                | Self::ExtName
                | Self::ExtNameBws
                | Self::ExtValueStart
                | Self::ExtToken
                | Self::ExtQuoted
                | Self::ExtQuotedPair
                | Self::ExtQuotedEnd
                | Self::ExtValueBws
        )
    }

    /// Whether bytes consumed in this state count toward [`MAX_TRAILER_BYTES`].
    fn in_trailer(self) -> bool {
        matches!(
            self,
            Self::TrailerStart
                | Self::TrailerName
                | Self::TrailerValue
                | Self::TrailerLf
                | Self::EndLf
        )
    }

    /// Whether this state expects the LF of a CRLF, the only place an LF byte is legal outside
    /// chunk data.
    fn expects_lf(self) -> bool {
        matches!(
            self,
            Self::SizeLf | Self::DataLf | Self::TrailerLf | Self::EndLf
        )
    }
}

/// Incremental decoder for one chunked request body.
///
/// Create one per body with the body limit, then call [`decode`](Self::decode) each time more
/// bytes have been read until it returns `Ok(true)`. The decoder holds all state between calls,
/// so reads may end anywhere.
#[derive(Debug, Clone)]
pub(crate) struct ChunkedDecoder {
    /// Position in the grammar.
    state: State,
    /// The chunk-size being parsed, then the bytes of chunk data still to come.
    size: u64,
    /// Hex digits seen in the current chunk-size, for [`MAX_SIZE_DIGITS`].
    digits: u8,
    /// Extension bytes seen on the current size line, for [`MAX_EXTENSION_BYTES`].
    ext_len: u32,
    /// Bytes of trailer section seen, for [`MAX_TRAILER_BYTES`].
    trailer_bytes: u32,
    /// Trailer fields seen, for [`MAX_TRAILER_FIELDS`].
    trailer_fields: u32,
    /// Body bytes decoded so far (also counted by `discard`).
    decoded: u64,
    /// Most body bytes accepted; checked when a chunk-size is read, before its data arrives.
    max_body: u64,
}

impl ChunkedDecoder {
    /// A decoder for a body of at most `max_body` decoded bytes.
    ///
    /// The limit is on decoded data, not wire bytes, because that is what the handler buffers;
    /// framing overhead is bounded separately by the `MAX_*` constants.
    pub(crate) fn new(max_body: u64) -> Self {
        Self {
            state: State::SizeStart,
            size: 0,
            digits: 0,
            ext_len: 0,
            trailer_bytes: 0,
            trailer_fields: 0,
            decoded: 0,
            max_body,
        }
    }

    /// Decodes as much of `input` as possible, appending body data to `out`.
    ///
    /// Consumed bytes are removed from the front of `input`. Data is copied into `out` rather
    /// than split off `input` so that the connection's read buffer never shares its allocation
    /// with a body and can keep being reused in place.
    ///
    /// # Return
    ///
    /// `Ok(true)` once the empty line ending the trailer section has been consumed: the body is
    /// complete, and whatever remains in `input` is the next pipelined request, untouched (later
    /// calls consume nothing and return `Ok(true)` again). `Ok(false)` when all of `input` was
    /// consumed and more is needed.
    ///
    /// # Errors
    ///
    /// A [`ChunkedError`] when the body breaks the grammar or a limit. The decoder then stays
    /// failed and returns the same error on every later call; `input` and `out` are left in an
    /// unspecified state and the connection must be closed.
    pub(crate) fn decode(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
    ) -> Result<bool, ChunkedError> {
        self.run(input, Some(out))
    }

    /// Like [`decode`](Self::decode) but drops the body data instead of storing it.
    ///
    /// Drains a body nobody wants (e.g. after an early error response) so the connection can be
    /// reused without buffering it. `max_body` still applies, so draining is bounded work too.
    ///
    /// # Errors
    ///
    /// As for [`decode`](Self::decode).
    pub(crate) fn discard(&mut self, input: &mut BytesMut) -> Result<bool, ChunkedError> {
        self.run(input, None)
    }

    /// The loop shared by [`decode`](Self::decode) and [`discard`](Self::discard): framing bytes
    /// one at a time through [`step`](Self::step), chunk data in bulk into `out` if there is one.
    fn run(
        &mut self,
        input: &mut BytesMut,
        mut out: Option<&mut BytesMut>,
    ) -> Result<bool, ChunkedError> {
        let mut pos = 0;
        let result = loop {
            match self.state {
                State::Done => break Ok(true),
                State::Failed(err) => break Err(err),
                State::Data => {
                    let avail = input.len() - pos;
                    if avail == 0 {
                        break Ok(false);
                    }
                    // If the remaining size does not fit a usize it is larger than `avail`.
                    let n = usize::try_from(self.size).map_or(avail, |rem| rem.min(avail));
                    if let Some(out) = out.as_deref_mut() {
                        out.extend_from_slice(&input[pos..pos + n]);
                    }
                    pos += n;
                    // `n <= self.size`, and `decoded + size <= max_body` was checked when the
                    // size line ended, so neither operation can wrap.
                    self.size -= n as u64;
                    self.decoded += n as u64;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                }
                _ => {
                    let Some(&byte) = input.get(pos) else {
                        break Ok(false);
                    };
                    pos += 1;
                    match self.step(byte) {
                        Ok(next) => self.state = next,
                        Err(err) => {
                            self.state = State::Failed(err);
                            break Err(err);
                        }
                    }
                }
            }
        };
        input.advance(pos);
        result
    }

    /// Body bytes decoded (or dropped) so far.
    ///
    /// Lets the caller log or account the body size without tracking `out` itself, which it
    /// cannot do at all when draining.
    #[allow(
        dead_code,
        reason = "part of the decoder's contract; the connection does not log body sizes yet"
    )]
    pub(crate) fn decoded_len(&self) -> u64 {
        self.decoded
    }

    /// Consumes one framing byte and returns the next state.
    fn step(&mut self, b: u8) -> Result<State, ChunkedError> {
        use ChunkedError as E;

        let state = self.state;
        if b == b'\n' && !state.expects_lf() {
            return Err(E::BareLf);
        }
        // Extension bytes are everything between the last size digit and the CR; the byte that
        // opens the extensions is counted where it is seen, in `State::Size`.
        if state.in_extension() && b != b'\r' {
            self.ext_len += 1;
            if self.ext_len > MAX_EXTENSION_BYTES {
                return Err(E::ExtensionTooLong);
            }
        }
        if state.in_trailer() {
            self.trailer_bytes += 1;
            if self.trailer_bytes > MAX_TRAILER_BYTES {
                return Err(E::TrailerTooLarge);
            }
        }

        Ok(match state {
            State::SizeStart => {
                let digit = hex_value(b).ok_or(E::InvalidSize)?;
                self.size = digit;
                self.digits = 1;
                self.ext_len = 0;
                State::Size
            }
            State::Size => match (hex_value(b), b) {
                (Some(digit), _) => {
                    self.digits += 1;
                    if self.digits > MAX_SIZE_DIGITS {
                        return Err(E::SizeOverflow);
                    }
                    self.size = self
                        .size
                        .checked_mul(16)
                        .and_then(|s| s.checked_add(digit))
                        .ok_or(E::SizeOverflow)?;
                    State::Size
                }
                (None, b';') => {
                    self.ext_len = 1;
                    State::ExtNameStart
                }
                (None, b' ' | b'\t') => {
                    self.ext_len = 1;
                    State::SizeBws
                }
                (None, b'\r') => State::SizeLf,
                (None, _) => return Err(E::InvalidSize),
            },
            State::SizeBws => match b {
                b' ' | b'\t' => State::SizeBws,
                b';' => State::ExtNameStart,
                _ => return Err(E::InvalidSize),
            },
            State::ExtNameStart => match b {
                b' ' | b'\t' => State::ExtNameStart,
                _ if is_tchar(b) => State::ExtName,
                _ => return Err(E::InvalidExtension),
            },
            State::ExtName => match b {
                b' ' | b'\t' => State::ExtNameBws,
                b'=' => State::ExtValueStart,
                b';' => State::ExtNameStart,
                b'\r' => State::SizeLf,
                _ if is_tchar(b) => State::ExtName,
                _ => return Err(E::InvalidExtension),
            },
            State::ExtNameBws => match b {
                b' ' | b'\t' => State::ExtNameBws,
                b'=' => State::ExtValueStart,
                b';' => State::ExtNameStart,
                _ => return Err(E::InvalidExtension),
            },
            State::ExtValueStart => match b {
                b' ' | b'\t' => State::ExtValueStart,
                b'"' => State::ExtQuoted,
                _ if is_tchar(b) => State::ExtToken,
                _ => return Err(E::InvalidExtension),
            },
            State::ExtToken => match b {
                b' ' | b'\t' => State::ExtValueBws,
                b';' => State::ExtNameStart,
                b'\r' => State::SizeLf,
                _ if is_tchar(b) => State::ExtToken,
                _ => return Err(E::InvalidExtension),
            },
            State::ExtQuoted => match b {
                b'"' => State::ExtQuotedEnd,
                b'\\' => State::ExtQuotedPair,
                // qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
                b'\t' | b' ' | 0x21 | 0x23..=0x5B | 0x5D..=0x7E | 0x80..=0xFF => State::ExtQuoted,
                _ => return Err(E::InvalidExtension),
            },
            State::ExtQuotedPair => match b {
                // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
                b'\t' | b' ' | 0x21..=0x7E | 0x80..=0xFF => State::ExtQuoted,
                _ => return Err(E::InvalidExtension),
            },
            State::ExtQuotedEnd => match b {
                b' ' | b'\t' => State::ExtValueBws,
                b';' => State::ExtNameStart,
                b'\r' => State::SizeLf,
                _ => return Err(E::InvalidExtension),
            },
            // BWS is only allowed before ";", never before the CRLF.
            State::ExtValueBws => match b {
                b' ' | b'\t' => State::ExtValueBws,
                b';' => State::ExtNameStart,
                _ => return Err(E::InvalidExtension),
            },
            State::SizeLf => {
                if b != b'\n' {
                    return Err(E::MissingCrlf);
                }
                self.end_size_line()?
            }
            State::DataCr => match b {
                b'\r' => State::DataLf,
                _ => return Err(E::MissingCrlf),
            },
            State::DataLf => match b {
                b'\n' => State::SizeStart,
                _ => return Err(E::MissingCrlf),
            },
            State::TrailerStart => match b {
                b'\r' => State::EndLf,
                _ if is_tchar(b) => {
                    self.trailer_fields += 1;
                    if self.trailer_fields > MAX_TRAILER_FIELDS {
                        return Err(E::TrailerTooLarge);
                    }
                    State::TrailerName
                }
                _ => return Err(E::InvalidTrailer),
            },
            State::TrailerName => match b {
                b':' => State::TrailerValue,
                _ if is_tchar(b) => State::TrailerName,
                _ => return Err(E::InvalidTrailer),
            },
            State::TrailerValue => match b {
                b'\r' => State::TrailerLf,
                // field-value bytes: HTAB / SP / VCHAR / obs-text
                b'\t' | b' ' | 0x21..=0x7E | 0x80..=0xFF => State::TrailerValue,
                _ => return Err(E::InvalidTrailer),
            },
            State::TrailerLf => match b {
                b'\n' => State::TrailerStart,
                _ => return Err(E::MissingCrlf),
            },
            State::EndLf => match b {
                b'\n' => State::Done,
                _ => return Err(E::MissingCrlf),
            },
            // `run` never steps in these states; answering with the state itself keeps this
            // function total without a panic path.
            State::Data | State::Done | State::Failed(_) => state,
        })
    }

    /// Finishes a size line: starts the chunk's data, or the trailers after the last chunk.
    fn end_size_line(&mut self) -> Result<State, ChunkedError> {
        if self.size == 0 {
            self.trailer_bytes = 0;
            self.trailer_fields = 0;
            return Ok(State::TrailerStart);
        }
        // Reject before any of the chunk's data arrives: no point reading what we will refuse.
        match self.decoded.checked_add(self.size) {
            Some(total) if total <= self.max_body => Ok(State::Data),
            _ => Err(ChunkedError::BodyTooLarge),
        }
    }
}

/// The value of an ASCII hex digit, either case.
fn hex_value(b: u8) -> Option<u64> {
    match b {
        b'0'..=b'9' => Some(u64::from(b - b'0')),
        b'a'..=b'f' => Some(u64::from(b - b'a' + 10)),
        b'A'..=b'F' => Some(u64::from(b - b'A' + 10)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What feeding input produced: the result of the last call, the body, and (only on success)
    /// the bytes left for the next request.
    type Outcome = (Result<bool, ChunkedError>, Vec<u8>, Vec<u8>);

    /// A pipelined request that must come back untouched after a complete body.
    const NEXT: &[u8] = b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n";

    const MAX: u64 = u64::MAX;

    /// Feeds `pieces` in order, as successive reads would deliver them.
    fn feed<'a>(pieces: impl IntoIterator<Item = &'a [u8]>, max_body: u64) -> Outcome {
        let mut dec = ChunkedDecoder::new(max_body);
        let mut input = BytesMut::new();
        let mut out = BytesMut::new();
        let mut pieces = pieces.into_iter();
        for piece in pieces.by_ref() {
            input.extend_from_slice(piece);
            match dec.decode(&mut input, &mut out) {
                Ok(true) => {
                    for rest in pieces {
                        input.extend_from_slice(rest);
                    }
                    assert_eq!(dec.decoded_len(), out.len() as u64);
                    return (Ok(true), out.to_vec(), input.to_vec());
                }
                Ok(false) => assert!(input.is_empty(), "Ok(false) must consume all input"),
                Err(e) => return (Err(e), out.to_vec(), Vec::new()),
            }
        }
        (Ok(false), out.to_vec(), input.to_vec())
    }

    fn one_shot(input: &[u8], max_body: u64) -> Outcome {
        feed([input], max_body)
    }

    fn bytewise(input: &[u8], max_body: u64) -> Outcome {
        feed(input.chunks(1), max_body)
    }

    /// Splits `input` at the given cut points (taken modulo the length, in any order).
    fn split_at_cuts<'a>(input: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        cuts.sort_unstable();
        let mut pieces = Vec::new();
        let mut start = 0;
        for cut in cuts {
            pieces.push(&input[start..cut]);
            start = cut;
        }
        pieces.push(&input[start..]);
        pieces
    }

    /// Discards `input` in one call and returns the result, leftover and counted length.
    fn discard_one_shot(input: &[u8], max_body: u64) -> (Result<bool, ChunkedError>, Vec<u8>, u64) {
        let mut dec = ChunkedDecoder::new(max_body);
        let mut buf = BytesMut::from(input);
        let r = dec.discard(&mut buf);
        (r, buf.to_vec(), dec.decoded_len())
    }

    /// Valid bodies and what they decode to.
    const VALID: &[(&[u8], &[u8])] = &[
        (b"0\r\n\r\n", b""),
        (b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
        (b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", b"hello world"),
        (b"1\r\na\r\n1\r\nb\r\n1\r\nc\r\n0\r\n\r\n", b"abc"),
        (b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
        (b"a\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
        (
            b"1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n",
            b"abcdefghijklmnopqrstuvwxyz",
        ),
        (
            b"1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n",
            b"abcdefghijklmnopqrstuvwxyz",
        ),
        (b"0005\r\nhello\r\n000\r\n\r\n", b"hello"),
        (
            b"0000000000000005\r\nhello\r\n0000000000000000\r\n\r\n",
            b"hello",
        ),
        // Chunk data may hold CR, LF and anything else.
        (b"4\r\n\r\n\n\r\r\n0\r\n\r\n", b"\r\n\n\r"),
        (b"3\r\n\x00\xff0\r\n0\r\n\r\n", b"\x00\xff0"),
        // Extensions without and with values.
        (b"5;foo\r\nhello\r\n0;bar\r\n\r\n", b"hello"),
        (b"5;foo=bar\r\nhello\r\n0\r\n\r\n", b"hello"),
        (b"5;a;b=1;c\r\nhello\r\n0\r\n\r\n", b"hello"),
        (b"5 ; a = 1 ;b\t;\tc=\"x\"\r\nhello\r\n0\r\n\r\n", b"hello"),
        (b"5;a=1 ;b=2\t;c\r\nhello\r\n0\r\n\r\n", b"hello"),
        (
            b"5;name=\"quoted; value, with = stuff\"\r\nhello\r\n0\r\n\r\n",
            b"hello",
        ),
        (
            b"5;n=\"esc \\\" \\\\ \\\t\"\r\nhello\r\n0\r\n\r\n",
            b"hello",
        ),
        (b"5;n=\"\"\r\nhello\r\n0\r\n\r\n", b"hello"),
        (b"5;n=\"obs \x80\xff\" ;m\r\nhello\r\n0\r\n\r\n", b"hello"),
        (
            b"5;!#$%&'*+-.^_`|~09AZaz=!#$%&'*+-.^_`|~\r\nhello\r\n0\r\n\r\n",
            b"hello",
        ),
        // Trailers, discarded.
        (b"5\r\nhello\r\n0\r\nExpires: never\r\n\r\n", b"hello"),
        (
            b"5\r\nhello\r\n0\r\nA: 1\r\nb:2\r\nX-Empty:\r\nX-Obs: \x80\xff\t!\r\n\r\n",
            b"hello",
        ),
        (b"0;last\r\nChecksum: abc\r\n\r\n", b""),
    ];

    #[test]
    fn valid_bodies_decode_one_shot_with_pipelined_leftover() {
        for (wire, body) in VALID {
            let input = [*wire, NEXT].concat();
            assert_eq!(
                one_shot(&input, MAX),
                (Ok(true), body.to_vec(), NEXT.to_vec()),
                "input {:?}",
                String::from_utf8_lossy(wire)
            );
            // Without the next request there is nothing left over.
            assert_eq!(one_shot(wire, MAX), (Ok(true), body.to_vec(), Vec::new()));
        }
    }

    #[test]
    fn valid_bodies_decode_identically_at_every_split() {
        for (wire, body) in VALID {
            let input = [*wire, NEXT].concat();
            let want = (Ok(true), body.to_vec(), NEXT.to_vec());
            for i in 0..=input.len() {
                let (a, b) = input.split_at(i);
                assert_eq!(
                    feed([a, b], MAX),
                    want,
                    "split at {i} of {:?}",
                    String::from_utf8_lossy(wire)
                );
            }
            assert_eq!(
                bytewise(&input, MAX),
                want,
                "bytewise {:?}",
                String::from_utf8_lossy(wire)
            );
        }
    }

    #[test]
    fn every_strict_prefix_needs_more_input() {
        for (wire, _) in VALID {
            for i in 0..wire.len() {
                let (r, _, left) = one_shot(&wire[..i], MAX);
                assert_eq!(
                    r,
                    Ok(false),
                    "prefix {i} of {:?}",
                    String::from_utf8_lossy(wire)
                );
                assert!(left.is_empty());
            }
        }
    }

    #[test]
    fn discard_mode_counts_and_preserves_leftover() {
        for (wire, body) in VALID {
            let input = [*wire, NEXT].concat();
            assert_eq!(
                discard_one_shot(&input, MAX),
                (Ok(true), NEXT.to_vec(), body.len() as u64)
            );
            // Bytewise draining too.
            let mut dec = ChunkedDecoder::new(MAX);
            let mut buf = BytesMut::new();
            let mut done = false;
            for &b in &input {
                buf.extend_from_slice(&[b]);
                if !done {
                    done = dec.discard(&mut buf).unwrap();
                }
            }
            assert!(done);
            assert_eq!(&buf[..], NEXT);
            assert_eq!(dec.decoded_len(), body.len() as u64);
        }
    }

    #[test]
    fn complete_decoder_consumes_nothing_more() {
        let mut dec = ChunkedDecoder::new(MAX);
        let mut out = BytesMut::new();
        let mut input = BytesMut::from(&b"0\r\n\r\n"[..]);
        assert_eq!(dec.decode(&mut input, &mut out), Ok(true));
        let mut more = BytesMut::from(NEXT);
        assert_eq!(dec.decode(&mut more, &mut out), Ok(true));
        assert_eq!(&more[..], NEXT);
        assert!(out.is_empty());
    }

    #[test]
    fn out_is_appended_to_not_replaced() {
        let mut dec = ChunkedDecoder::new(MAX);
        let mut out = BytesMut::from(&b"prefix:"[..]);
        let mut input = BytesMut::from(&b"3\r\nabc\r\n0\r\n\r\n"[..]);
        assert_eq!(dec.decode(&mut input, &mut out), Ok(true));
        assert_eq!(&out[..], b"prefix:abc");
        assert_eq!(dec.decoded_len(), 3);
    }

    /// Invalid bodies and the error each must produce, however the input is split.
    const INVALID: &[(&[u8], ChunkedError)] = {
        use ChunkedError::*;
        &[
            // Size line.
            (b"\r\n", InvalidSize),
            (b"\r\nhello\r\n0\r\n\r\n", InvalidSize),
            (b"g\r\n", InvalidSize),
            (b"5g\r\n", InvalidSize),
            (b";a\r\n", InvalidSize),
            (b" 5\r\n", InvalidSize),
            (b"\t5\r\n", InvalidSize),
            (b"-5\r\n", InvalidSize),
            (b"+5\r\n", InvalidSize),
            (b"0x5\r\n", InvalidSize),
            (b"5 \r\n", InvalidSize),
            (b"5 x\r\n", InvalidSize),
            (b"5\x00\r\n", InvalidSize),
            (b"00000000000000005\r\n", SizeOverflow),
            (b"FFFFFFFFFFFFFFFFF\r\n", SizeOverflow),
            (b"10000000000000000\r\n", SizeOverflow),
            (b"5\rx", MissingCrlf),
            (b"5\r\r\n", MissingCrlf),
            (b"5;a\rx", MissingCrlf),
            (b"5;a=\"q\"\rx", MissingCrlf),
            // Bare LF anywhere outside data.
            (b"\n", BareLf),
            (b"5\n", BareLf),
            (b"5\nhello\r\n0\r\n\r\n", BareLf),
            (b"5 \n", BareLf),
            (b"5;a\n", BareLf),
            (b"5;a=b\n", BareLf),
            (b"5;a=\"x\n\"\r\n", BareLf),
            (b"5;a=\"x\\\n\"\r\n", BareLf),
            (b"5\r\nhello\n0\r\n\r\n", BareLf),
            (b"5\r\nhello\r\n0\n\r\n", BareLf),
            (b"5\r\nhello\r\n0\r\n\n", BareLf),
            (b"5\r\nhello\r\n0\r\nX: y\n\r\n", BareLf),
            (b"5\r\nhello\r\n0\r\nX\n", BareLf),
            // After data: CRLF exactly.
            (b"5\r\nhelloX\r\n0\r\n\r\n", MissingCrlf),
            (b"5\r\nhello world\r\n0\r\n\r\n", MissingCrlf),
            (b"5\r\nhello\rX", MissingCrlf),
            (b"5\r\nhello\r\r\n", MissingCrlf),
            // Extensions.
            (b"5;\r\n", InvalidExtension),
            (b"5; \r\n", InvalidExtension),
            (b"5;=x\r\n", InvalidExtension),
            (b"5;a=\r\n", InvalidExtension),
            (b"5;a= \r\n", InvalidExtension),
            (b"5;a \r\n", InvalidExtension),
            (b"5;a=b \r\n", InvalidExtension),
            (b"5;a=\"x\" \r\n", InvalidExtension),
            (b"5;a b\r\n", InvalidExtension),
            (b"5;a=b c\r\n", InvalidExtension),
            (b"5;a@b\r\n", InvalidExtension),
            (b"5;a=b@\r\n", InvalidExtension),
            (b"5;a=\"x\"y\r\n", InvalidExtension),
            (b"5;a=\"x\r\n", InvalidExtension),
            (b"5;a=\"x\\\r\"\r\n", InvalidExtension),
            (b"5;a\x00\r\n", InvalidExtension),
            (b"5;a=\x7f\r\n", InvalidExtension),
            (b"5;a=\"\x01\"\r\n", InvalidExtension),
            (b"5;a=\"\x7f\"\r\n", InvalidExtension),
            (b"5;a\x0b\r\n", InvalidExtension),
            (b"5;\ra\r\n", InvalidExtension),
            // Trailers.
            (b"0\r\nNoColon\r\n\r\n", InvalidTrailer),
            (b"0\r\n: v\r\n\r\n", InvalidTrailer),
            (b"0\r\nX : v\r\n\r\n", InvalidTrailer),
            (b"0\r\n X: v\r\n\r\n", InvalidTrailer),
            (b"0\r\nA: 1\r\n\tfolded\r\n\r\n", InvalidTrailer),
            (b"0\r\nX@: v\r\n\r\n", InvalidTrailer),
            (b"0\r\nX: a\x00b\r\n\r\n", InvalidTrailer),
            (b"0\r\nX: a\x7fb\r\n\r\n", InvalidTrailer),
            (b"0\r\nX: a\rb\r\n\r\n", MissingCrlf),
            (b"0\r\n\rX", MissingCrlf),
            (b"0\r\nX: v\r\r\n", MissingCrlf),
        ]
    };

    #[test]
    fn invalid_bodies_fail_the_same_at_every_split() {
        for (wire, err) in INVALID {
            let name = String::from_utf8_lossy(wire);
            assert_eq!(one_shot(wire, MAX).0, Err(*err), "one shot {name:?}");
            assert_eq!(bytewise(wire, MAX).0, Err(*err), "bytewise {name:?}");
            assert_eq!(discard_one_shot(wire, MAX).0, Err(*err), "discard {name:?}");
            for i in 0..=wire.len() {
                let (a, b) = wire.split_at(i);
                assert_eq!(feed([a, b], MAX).0, Err(*err), "split at {i} of {name:?}");
            }
        }
    }

    #[test]
    fn errors_are_sticky() {
        let mut dec = ChunkedDecoder::new(MAX);
        let mut out = BytesMut::new();
        let mut input = BytesMut::from(&b"\r\n"[..]);
        assert_eq!(
            dec.decode(&mut input, &mut out),
            Err(ChunkedError::InvalidSize)
        );
        let mut good = BytesMut::from(&b"0\r\n\r\n"[..]);
        assert_eq!(
            dec.decode(&mut good, &mut out),
            Err(ChunkedError::InvalidSize)
        );
        assert_eq!(dec.discard(&mut good), Err(ChunkedError::InvalidSize));
    }

    #[test]
    fn largest_size_is_accepted_up_to_the_body_limit() {
        // Sixteen digits parse; the limit then refuses the chunk before any data is read.
        assert_eq!(
            one_shot(b"FFFFFFFFFFFFFFFF\r\n", MAX),
            (Ok(false), Vec::new(), Vec::new())
        );
        assert_eq!(
            one_shot(b"ffffffffffffffff\r\n", u64::MAX - 1).0,
            Err(ChunkedError::BodyTooLarge)
        );
    }

    #[test]
    fn body_limit_is_inclusive() {
        let wire = b"5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n";
        assert_eq!(
            one_shot(wire, 10),
            (Ok(true), b"helloworld".to_vec(), Vec::new())
        );
        assert_eq!(
            one_shot(b"0\r\n\r\n", 0),
            (Ok(true), Vec::new(), Vec::new())
        );
    }

    #[test]
    fn body_over_limit_is_refused_before_its_data() {
        let wire = b"5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n";
        // The second size line pushes the total to 10: refused, first chunk already delivered.
        for outcome in [one_shot(wire, 9), bytewise(wire, 9)] {
            assert_eq!(
                outcome,
                (
                    Err(ChunkedError::BodyTooLarge),
                    b"hello".to_vec(),
                    Vec::new()
                )
            );
        }
        // A single oversized chunk is refused as soon as its size line ends.
        assert_eq!(one_shot(b"b\r\n", 10).0, Err(ChunkedError::BodyTooLarge));
        assert_eq!(one_shot(b"1\r\n", 0).0, Err(ChunkedError::BodyTooLarge));
        assert_eq!(discard_one_shot(wire, 9).0, Err(ChunkedError::BodyTooLarge));
    }

    #[test]
    fn size_digit_limit_is_exact() {
        let ok = format!(
            "{}5\r\nhello\r\n0\r\n\r\n",
            "0".repeat(usize::from(MAX_SIZE_DIGITS) - 1)
        );
        assert_eq!(one_shot(ok.as_bytes(), MAX).0, Ok(true));
        let too_many = format!("{}5\r\n", "0".repeat(usize::from(MAX_SIZE_DIGITS)));
        assert_eq!(
            one_shot(too_many.as_bytes(), MAX).0,
            Err(ChunkedError::SizeOverflow)
        );
        // An endless run of zeros is cut off, not scanned forever.
        assert_eq!(
            one_shot(&[b'0'; 1000], MAX).0,
            Err(ChunkedError::SizeOverflow)
        );
    }

    #[test]
    fn extension_limit_is_exact() {
        let limit = MAX_EXTENSION_BYTES as usize;
        // ";" plus the name is the whole extension.
        let at = format!("5;{}\r\nhello\r\n0\r\n\r\n", "a".repeat(limit - 1));
        assert_eq!(one_shot(at.as_bytes(), MAX).0, Ok(true));
        let over = format!("5;{}\r\nhello\r\n0\r\n\r\n", "a".repeat(limit));
        assert_eq!(
            one_shot(over.as_bytes(), MAX).0,
            Err(ChunkedError::ExtensionTooLong)
        );
        assert_eq!(
            bytewise(over.as_bytes(), MAX).0,
            Err(ChunkedError::ExtensionTooLong)
        );
        // Whitespace counts too, and the budget is per line, not per body.
        let ws = format!("5{};a\r\n", " ".repeat(limit));
        assert_eq!(
            one_shot(ws.as_bytes(), MAX).0,
            Err(ChunkedError::ExtensionTooLong)
        );
        let ext = format!(";{}", "b".repeat(limit - 1));
        let per_line = format!("1{ext}\r\nx\r\n1{ext}\r\ny\r\n0{ext}\r\n\r\n");
        assert_eq!(
            one_shot(per_line.as_bytes(), MAX),
            (Ok(true), b"xy".to_vec(), Vec::new())
        );
        // An endless extension is cut off.
        let endless = format!("5;a={}", "v".repeat(10 * limit));
        assert_eq!(
            one_shot(endless.as_bytes(), MAX).0,
            Err(ChunkedError::ExtensionTooLong)
        );
    }

    #[test]
    fn trailer_field_count_limit_is_exact() {
        let fields = |n: u32| {
            let mut wire = b"0\r\n".to_vec();
            for i in 0..n {
                wire.extend_from_slice(format!("T{i}: v\r\n").as_bytes());
            }
            wire.extend_from_slice(b"\r\n");
            wire
        };
        assert_eq!(one_shot(&fields(MAX_TRAILER_FIELDS), MAX).0, Ok(true));
        assert_eq!(
            one_shot(&fields(MAX_TRAILER_FIELDS + 1), MAX).0,
            Err(ChunkedError::TrailerTooLarge)
        );
        assert_eq!(
            bytewise(&fields(MAX_TRAILER_FIELDS + 1), MAX).0,
            Err(ChunkedError::TrailerTooLarge)
        );
    }

    #[test]
    fn trailer_byte_limit_is_exact() {
        let limit = MAX_TRAILER_BYTES as usize;
        // "X: " + value + "\r\n" + final "\r\n" must total the limit.
        let trailer = |value_len: usize| {
            let mut wire = b"0\r\nX: ".to_vec();
            wire.extend(std::iter::repeat_n(b'v', value_len));
            wire.extend_from_slice(b"\r\n\r\n");
            wire
        };
        let at = trailer(limit - 7);
        assert_eq!(at.len() - 3, limit);
        assert_eq!(one_shot(&at, MAX).0, Ok(true));
        assert_eq!(
            one_shot(&trailer(limit - 6), MAX).0,
            Err(ChunkedError::TrailerTooLarge)
        );
        // An endless trailer value is cut off.
        let endless = [&b"0\r\nX: "[..], &vec![b'v'; 2 * limit]].concat();
        assert_eq!(
            one_shot(&endless, MAX).0,
            Err(ChunkedError::TrailerTooLarge)
        );
    }

    #[test]
    fn display_is_lowercase() {
        use ChunkedError::*;
        for e in [
            InvalidSize,
            SizeOverflow,
            InvalidExtension,
            ExtensionTooLong,
            MissingCrlf,
            BareLf,
            InvalidTrailer,
            TrailerTooLarge,
            BodyTooLarge,
        ] {
            let text = e.to_string();
            assert!(!text.is_empty());
            assert_eq!(text, text.to_lowercase());
            assert_eq!(text, e.reason());
        }
    }

    /// Pieces of chunked syntax, so random input reaches deep states instead of failing on the
    /// first byte.
    const FRAGMENTS: &[&[u8]] = &[
        b"0",
        b"1",
        b"5",
        b"a",
        b"F",
        b"10",
        b"ffff",
        b";",
        b"=",
        b"\"",
        b"\\",
        b"\r\n",
        b"\r",
        b"\n",
        b" ",
        b"\t",
        b"x",
        b"hello",
        b":",
        b"X-T: v",
        b"\x00",
        b"\x7f",
        b"\x80",
        b"0\r\n\r\n",
        b"3\r\nabc\r\n",
        b";e=\"q\"",
    ];

    fn soup() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(prop::sample::select(FRAGMENTS), 0..48).prop_map(|f| f.concat())
    }

    /// Encodes `body` in chunks of the given sizes, with optional decorations, as a sender might.
    fn encode(
        body: &[u8],
        sizes: &[usize],
        exts: &[&str],
        upper: bool,
        zeros: usize,
        trailers: &[&str],
    ) -> Vec<u8> {
        let mut wire = Vec::new();
        let mut rest = body;
        let mut i = 0;
        while !rest.is_empty() {
            let n = sizes[i % sizes.len()].min(rest.len());
            let hex = if upper {
                format!("{n:X}")
            } else {
                format!("{n:x}")
            };
            wire.extend_from_slice("0".repeat(zeros).as_bytes());
            wire.extend_from_slice(hex.as_bytes());
            wire.extend_from_slice(exts[i % exts.len()].as_bytes());
            wire.extend_from_slice(b"\r\n");
            wire.extend_from_slice(&rest[..n]);
            wire.extend_from_slice(b"\r\n");
            rest = &rest[n..];
            i += 1;
        }
        wire.extend_from_slice(b"0");
        wire.extend_from_slice(exts[i % exts.len()].as_bytes());
        wire.extend_from_slice(b"\r\n");
        for t in trailers {
            wire.extend_from_slice(t.as_bytes());
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"\r\n");
        wire
    }

    const EXTS: &[&str] = &[
        "",
        ";a",
        ";a=b",
        " ;a = \"x;y\"",
        ";a;b=1\t;c=\"\\\"\"",
        "\t; n=v",
    ];
    const TRAILERS: &[&str] = &["Expires: never", "X-Sum:abc", "E:", "T: a\tb \u{80}"];

    proptest! {
        #[test]
        fn arbitrary_bytes_split_anywhere_match_one_shot(
            input in prop::collection::vec(any::<u8>(), 0..256),
            cuts in prop::collection::vec(any::<usize>(), 0..8),
            max in prop_oneof![Just(u64::MAX), 0..64u64],
        ) {
            prop_assert_eq!(feed(split_at_cuts(&input, &cuts), max), one_shot(&input, max));
        }

        #[test]
        fn chunk_syntax_soup_split_anywhere_matches_one_shot(
            input in soup(),
            cuts in prop::collection::vec(any::<usize>(), 0..8),
            max in prop_oneof![Just(u64::MAX), 0..64u64],
        ) {
            let want = one_shot(&input, max);
            prop_assert_eq!(feed(split_at_cuts(&input, &cuts), max), want.clone());
            prop_assert_eq!(bytewise(&input, max), want);
        }

        #[test]
        fn encoded_bodies_round_trip(
            body in prop::collection::vec(any::<u8>(), 0..3000),
            sizes in prop::collection::vec(1..700usize, 1..16),
            exts in prop::collection::vec(prop::sample::select(EXTS), 1..6),
            upper in any::<bool>(),
            zeros in 0..4usize,
            trailers in prop::collection::vec(prop::sample::select(TRAILERS), 0..4),
            next in prop::collection::vec(any::<u8>(), 0..64),
            cuts in prop::collection::vec(any::<usize>(), 0..12),
        ) {
            let wire = [encode(&body, &sizes, &exts, upper, zeros, &trailers), next.clone()].concat();
            let want = (Ok(true), body.clone(), next.clone());
            prop_assert_eq!(feed(split_at_cuts(&wire, &cuts), MAX), want.clone());
            prop_assert_eq!(one_shot(&wire, body.len() as u64), want);
            if !body.is_empty() {
                prop_assert_eq!(
                    one_shot(&wire, body.len() as u64 - 1).0,
                    Err(ChunkedError::BodyTooLarge)
                );
            }
            prop_assert_eq!(discard_one_shot(&wire, MAX), (Ok(true), next, body.len() as u64));
        }
    }
}
