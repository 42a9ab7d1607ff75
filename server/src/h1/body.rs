//! Request bodies off the wire: read whole for a handler, or drained for nobody.
//!
//! The rules live here, beside the framing and the chunked decoder they use; where the bytes
//! come from (a socket, the test client's memory) is a [`Source`].

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use http::StatusCode;

use super::chunked::{ChunkedDecoder, ChunkedError};
use super::framing::BodyFraming;

/// What a body is read from: a buffer that [`fill`](Source::fill) appends to.
pub(crate) trait Source {
    /// Why the source can give no more (the connection is gone).
    type Gone;

    /// The bytes received and not yet consumed.
    fn buffered(&mut self) -> &mut BytesMut;

    /// Appends what arrives next to [`buffered`](Source::buffered), waiting at most until
    /// `deadline`.
    async fn fill(&mut self, deadline: Instant) -> Result<Filled, Self::Gone>;

    /// Gives the bytes after a large body a buffer of their own (see [`read`]).
    fn unshare(&mut self);

    /// The error for a peer that closed in the middle of a body: nobody is left to answer.
    fn gone(&self) -> Self::Gone;
}

/// The outcome of [`Source::fill`].
pub(crate) enum Filled {
    /// Bytes were appended.
    Data,
    /// The peer closed its side.
    Eof,
    /// The deadline passed.
    TimedOut,
}

/// A body that broke a rule or a limit: answered with this status and reason, then the
/// connection closes.
pub(crate) type Refused = (StatusCode, &'static str);

const TOO_SLOW: Refused = (
    StatusCode::REQUEST_TIMEOUT,
    "request body not received in time",
);

/// Reads a whole body of at most `max_body` bytes, all of it by `deadline` (one deadline for the
/// body: a per-read timeout could be re-armed forever by a client sending a byte at a time).
///
/// A body larger than `unshare_above` leaves what follows it in a fresh buffer: its bytes
/// share the read buffer's allocation, which would otherwise stay alive for the rest of the
/// connection (and the handler may keep the body past the response).
pub(crate) async fn read<R: Source>(
    src: &mut R,
    framing: BodyFraming,
    max_body: u64,
    deadline: Instant,
    unshare_above: usize,
) -> Result<Result<Bytes, Refused>, R::Gone> {
    match framing {
        BodyFraming::None => Ok(Ok(Bytes::new())),
        BodyFraming::Length(n) => {
            // The head parser already refused lengths over the limit, so this fits in memory.
            let n = n as usize;
            let buf = src.buffered();
            if buf.len() < n {
                buf.reserve(n - buf.len());
            }
            while src.buffered().len() < n {
                match src.fill(deadline).await? {
                    Filled::Data => {}
                    Filled::TimedOut => return Ok(Err(TOO_SLOW)),
                    Filled::Eof => return Err(src.gone()),
                }
            }
            let body = src.buffered().split_to(n).freeze();
            if n > unshare_above {
                src.unshare();
            }
            Ok(Ok(body))
        }
        BodyFraming::Chunked => {
            let mut decoder = ChunkedDecoder::new(max_body);
            let mut out = BytesMut::new();
            loop {
                match decoder.decode(src.buffered(), &mut out) {
                    Ok(true) => return Ok(Ok(out.freeze())),
                    Ok(false) => {}
                    Err(ChunkedError::BodyTooLarge) => {
                        return Ok(Err((
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "body exceeds the size limit",
                        )))
                    }
                    Err(e) => return Ok(Err((StatusCode::BAD_REQUEST, e.reason()))),
                }
                match src.fill(deadline).await? {
                    Filled::Data => {}
                    Filled::TimedOut => return Ok(Err(TOO_SLOW)),
                    Filled::Eof => return Err(src.gone()),
                }
            }
        }
    }
}

/// Reads and discards a body nobody will use, up to `max_drain` bytes and until `deadline`.
///
/// # Return
/// Whether the body was fully drained, so that the connection can be reused.
pub(crate) async fn drain<R: Source>(
    src: &mut R,
    framing: BodyFraming,
    max_drain: u64,
    deadline: Instant,
) -> Result<bool, R::Gone> {
    match framing {
        BodyFraming::None => Ok(true),
        BodyFraming::Length(n) => {
            if n > max_drain {
                return Ok(false);
            }
            let mut left = n as usize;
            loop {
                let buf = src.buffered();
                let take = left.min(buf.len());
                let _ = buf.split_to(take);
                left -= take;
                if left == 0 {
                    return Ok(true);
                }
                if !matches!(src.fill(deadline).await?, Filled::Data) {
                    return Ok(false);
                }
            }
        }
        BodyFraming::Chunked => {
            let mut decoder = ChunkedDecoder::new(max_drain);
            loop {
                match decoder.discard(src.buffered()) {
                    Ok(true) => return Ok(true),
                    Ok(false) => {}
                    Err(_) => return Ok(false),
                }
                if !matches!(src.fill(deadline).await?, Filled::Data) {
                    return Ok(false);
                }
            }
        }
    }
}
