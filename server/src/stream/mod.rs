//! Streamed response bodies: chunks sent as they are produced, for large downloads, exports
//! and [Server-Sent Events](crate::sse).
//!
//! A handler returns [`Response::stream`](crate::Response::stream) with any
//! [`Stream`](futures_util::Stream) of chunks, or with the receiving half of a [`channel`]
//! whose [`Sender`] a spawned task feeds:
//!
//! ```
//! use pinion_server::stream;
//! use pinion_server::{HeaderValue, Response};
//!
//! async fn export() -> Response {
//!     let (mut tx, body) = stream::channel(4);
//!     monoio::spawn(async move {
//!         for n in 0..1000u32 {
//!             // Waits while the client is slow; fails once it has left.
//!             if tx.send(format!("{n}\n")).await.is_err() {
//!                 return;
//!             }
//!         }
//!     });
//!     Response::stream(HeaderValue::from_static("text/csv"), body)
//! }
//! ```
//!
//! On HTTP/1.1 the body goes out with `Transfer-Encoding: chunked`; an HTTP/1.0 client gets it
//! delimited by the close. The connection takes the next chunk only once the previous ones
//! are written, so a slow reader holds the producer back and memory stays bounded (at most
//! the channel's capacity and one write batch). A client that disconnects ends the stream:
//! the producer's next `send` fails (a `Stream` is dropped). A stream that ends with an error
//! is cut off without its last chunk, so the client sees an incomplete body rather than a
//! short one that looks whole. Open streams are counted by `pinion_http_streams_open`, and
//! the request's duration and status are recorded when the stream ends.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_channel::mpsc;
use futures_util::{Stream, StreamExt};

/// The error a streamed body may end with: logged, never shown to the client.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A response body still being produced, as the connection holds it.
pub(crate) struct Streaming {
    pub(crate) chunks: Pin<Box<dyn Stream<Item = Result<Bytes, BoxError>>>>,
    pub(crate) kind: Kind,
    /// Set by the connection before encoding: chunked framing (HTTP/1.1) rather than the
    /// close (HTTP/1.0).
    pub(crate) chunked: bool,
}

/// What kind of stream a response carries: it decides keep-alives and what shutdown does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A body that is sent to its end (a download); shutdown lets it finish within
    /// `drain_timeout`.
    Plain,
    /// An event stream: a comment after `keep_alive` of silence (the `sse_keepalive` setting
    /// when `None`), and ended cleanly when shutdown begins, since its client reconnects.
    Events { keep_alive: Option<Duration> },
}

impl Streaming {
    pub(crate) fn new<S, B, E>(chunks: S, kind: Kind) -> Streaming
    where
        S: Stream<Item = Result<B, E>> + 'static,
        B: Into<Bytes>,
        E: Into<BoxError>,
    {
        Streaming {
            chunks: Box::pin(chunks.map(|c| c.map(Into::into).map_err(Into::into))),
            kind,
            chunked: true,
        }
    }
}

impl fmt::Debug for Streaming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Streaming")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// A bounded channel for a streamed body: the [`Sender`] is fed by a task, the [`Chunks`] go
/// into [`Response::stream`](crate::Response::stream).
///
/// `capacity` chunks may wait in the channel (at least one); past that, `send` waits for the
/// connection to write. A few chunks of 16–64 KiB keep a fast client's pipe full.
pub fn channel(capacity: usize) -> (Sender, Chunks) {
    // futures' mpsc adds one slot per sender to `buffer`: ask for one fewer.
    let (tx, rx) = mpsc::channel(capacity.max(1) - 1);
    (Sender { tx }, Chunks { rx })
}

/// The producing half of a [`channel`].
#[derive(Debug)]
pub struct Sender {
    tx: mpsc::Sender<Result<Bytes, BoxError>>,
}

/// The client is gone (or the server is cutting the stream short): stop producing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disconnected;

impl fmt::Display for Disconnected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the client of this stream is gone")
    }
}

impl std::error::Error for Disconnected {}

impl Sender {
    /// Sends one chunk, waiting while the channel is full. Empty chunks are skipped.
    ///
    /// # Errors
    /// [`Disconnected`] once the response is over: the client left, or the stream was ended.
    pub async fn send(&mut self, chunk: impl Into<Bytes>) -> Result<(), Disconnected> {
        let chunk = chunk.into();
        if chunk.is_empty() {
            return if self.tx.is_closed() {
                Err(Disconnected)
            } else {
                Ok(())
            };
        }
        self.ready().await?;
        self.tx.start_send(Ok(chunk)).map_err(|_| Disconnected)
    }

    /// Ends the response as failed: the client sees the body cut off (no final chunk), and
    /// `error` is logged. Dropping the sender instead ends the body normally.
    pub async fn fail(mut self, error: impl Into<BoxError>) {
        if self.ready().await.is_ok() {
            let _ = self.tx.start_send(Err(error.into()));
        }
    }

    /// Whether the client is gone, without sending.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    async fn ready(&mut self) -> Result<(), Disconnected> {
        futures_util::future::poll_fn(|cx| self.tx.poll_ready(cx))
            .await
            .map_err(|_| Disconnected)
    }
}

/// The receiving half of a [`channel`]: the body of a streamed response.
#[derive(Debug)]
pub struct Chunks {
    rx: mpsc::Receiver<Result<Bytes, BoxError>>,
}

impl Stream for Chunks {
    type Item = Result<Bytes, BoxError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_next_unpin(cx)
    }
}
