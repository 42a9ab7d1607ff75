//! Sending a streamed body after its head: chunk by chunk, each written before the next is
//! taken (backpressure), with keep-alive comments on quiet event streams, an end on shutdown
//! for event streams, and the producer dropped as soon as the client is gone.

use std::pin::Pin;
use std::rc::Rc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, Stream, StreamExt};
use http::StatusCode;

use super::{Closed, Connection, PeerEvent, Transport, FLUSH_AT, WRITE_BUF};
use crate::deadline::Deadline;
use crate::h1::encode::{self, LAST_CHUNK};
use crate::h1::head::Version;
use crate::h1::Response;
use crate::runtime::shutdown::LocalShutdown;
use crate::stream::{BoxError, Kind, Streaming};

/// How long the last chunk of an event stream may take to leave once shutdown began.
const DRAIN_FLUSH: std::time::Duration = std::time::Duration::from_secs(2);

/// The comment line an idle event stream gets: ignored by every SSE client.
const KEEP_ALIVE_COMMENT: &[u8] = b":\n\n";

/// Room for a chunk's size line and its CRLFs (16 hex digits at most).
const CHUNK_FRAMING: usize = 16 + 4;

/// Decides how a streamed `resp` is framed on a `version` connection, or drops its stream
/// when the status has no body (1xx, 204, 304).
///
/// # Return
/// Whether the response still streams.
pub(super) fn frame_stream(resp: &mut Response, version: Version) -> bool {
    let status = resp.status;
    if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        resp.stream = None;
        return false;
    }
    if let Some(stream) = resp.stream.as_mut() {
        stream.chunked = version == Version::Http11;
    }
    true
}

/// What happened while a stream waited for its next chunk.
enum Next {
    /// The producer's next item (`None`: the body is complete).
    Item(Option<Result<Bytes, BoxError>>),
    /// An event stream stayed silent for its keep-alive interval.
    Quiet,
    /// Shutdown began (event streams only).
    Draining,
    /// The client closed, or sent its next request.
    Peer(PeerEvent),
}

type Chunks = Pin<Box<dyn Stream<Item = Result<Bytes, BoxError>>>>;

/// Waits for the next chunk, at most until `quiet_at`, and for whatever else ends the wait.
async fn wait_next<T: Transport>(
    transport: &T,
    chunks: &mut Chunks,
    deadline: &Deadline,
    quiet_at: Option<Instant>,
    shutdown: Option<&LocalShutdown>,
    watch_peer: bool,
) -> Next {
    let item = async {
        match quiet_at {
            Some(at) => deadline
                .limit(at, chunks.next())
                .await
                .map_or(Next::Quiet, Next::Item),
            None => Next::Item(chunks.next().await),
        }
    };
    let draining = async {
        match shutdown {
            Some(shutdown) => {
                let notified = shutdown.notified();
                if !shutdown.is_draining() {
                    notified.await;
                }
            }
            None => std::future::pending().await,
        }
    };
    let peer = async {
        if watch_peer {
            transport.peer_event().await
        } else {
            std::future::pending().await
        }
    };
    monoio::select! {
        biased;
        next = item => next,
        () = draining => Next::Draining,
        event = peer => Next::Peer(event),
    }
}

impl<S: 'static, T: Transport> Connection<S, T> {
    /// Sends `body` after the head already in the write buffer, counted in
    /// `pinion_http_streams_open` while it runs.
    ///
    /// # Return
    /// Whether the connection may serve another request (the body ended cleanly and was
    /// chunked); `Err` when the connection is gone or was cut.
    pub(super) async fn pump(&mut self, mut body: Box<Streaming>) -> Result<bool, Closed> {
        let telemetry = self.shared.router.chain().telemetry().cloned();
        if let Some(t) = &telemetry {
            t.stream_opened();
        }
        let sent = self.pump_chunks(&mut body).await;
        // The producer learns that the response is over as soon as its stream is dropped.
        drop(body);
        if let Some(t) = &telemetry {
            t.stream_closed();
        }
        sent
    }

    async fn pump_chunks(&mut self, body: &mut Streaming) -> Result<bool, Closed> {
        let shared = Rc::clone(&self.shared);
        let (keep_alive, shutdown) = match body.kind {
            Kind::Events { keep_alive } => (
                Some(keep_alive.unwrap_or(shared.cfg.sse_keepalive)),
                Some(&*shared.shutdown),
            ),
            Kind::Plain => (None, None),
        };
        // Bytes already buffered after this request mean the client is still there; only a
        // quiet connection is watched for its close.
        let mut watch_peer = self.rbuf.is_empty();
        loop {
            // A producer that is never idle would otherwise keep an event stream past the
            // start of shutdown: the wait below takes a ready item first.
            if shutdown.is_some_and(LocalShutdown::is_draining) {
                return self.end_at_drain(body.chunked).await;
            }
            // The head (and whatever was ready) leaves before the next wait, and a pooled write
            // buffer goes back to the pool while this stream waits: thousands of quiet event
            // streams would otherwise hold 8 KiB each. A small one of the stream's own is kept.
            self.flush_unless_drained(shutdown).await?;
            if self.wbuf.is_empty() && self.wbuf.capacity() >= WRITE_BUF {
                shared.put_wbuf(std::mem::take(&mut self.wbuf));
            }
            let quiet_at = keep_alive.map(|k| shared.sweeper.coarse_deadline(k));
            let next = wait_next(
                &self.stream,
                &mut body.chunks,
                &self.deadline,
                quiet_at,
                shutdown,
                watch_peer,
            )
            .await;
            match next {
                Next::Item(Some(Ok(data))) => {
                    self.frame(body.chunked, &data);
                    // Take what is ready now into the same write, up to a batch.
                    while self.wbuf.len() < FLUSH_AT {
                        match body.chunks.next().now_or_never() {
                            Some(Some(Ok(data))) => self.frame(body.chunked, &data),
                            Some(Some(Err(e))) => return self.cut(e).await,
                            Some(None) => return self.finish_stream(body.chunked).await,
                            None => break,
                        }
                    }
                }
                Next::Item(Some(Err(e))) => return self.cut(e).await,
                Next::Item(None) => return self.finish_stream(body.chunked).await,
                Next::Quiet => self.frame(body.chunked, KEEP_ALIVE_COMMENT),
                Next::Draining => return self.end_at_drain(body.chunked).await,
                Next::Peer(PeerEvent::Gone) => {
                    tracing::debug!(peer = %self.peer, "client left a streamed response");
                    return Err(Closed::Io);
                }
                Next::Peer(PeerEvent::Sent) => watch_peer = false,
            }
        }
    }

    /// Flushes; an event stream whose client is not reading is cut when shutdown begins,
    /// rather than holding the drain until `write_timeout`.
    async fn flush_unless_drained(
        &mut self,
        shutdown: Option<&LocalShutdown>,
    ) -> Result<(), Closed> {
        let Some(shutdown) = shutdown else {
            return self.flush().await;
        };
        let notified = shutdown.notified();
        monoio::select! {
            biased;
            flushed = self.flush() => return flushed,
            () = notified => {}
        }
        // The cancelled write may have sent part of a chunk: the body cannot end cleanly.
        tracing::debug!(peer = %self.peer, "event stream not read at shutdown: reset");
        self.abort();
        Err(Closed::Done)
    }

    /// Ends an event stream because shutdown began: the client reconnects (to another
    /// instance) once it ends. One that does not read is not waited for long.
    async fn end_at_drain(&mut self, chunked: bool) -> Result<bool, Closed> {
        match monoio::time::timeout(DRAIN_FLUSH, self.finish_stream(chunked)).await {
            Ok(ended) => ended.map(|_| false),
            Err(_) => {
                self.abort();
                Err(Closed::Done)
            }
        }
    }

    /// Appends `data` to the write buffer as the framing wants it.
    fn frame(&mut self, chunked: bool, data: &[u8]) {
        if data.is_empty() {
            // An empty chunk would end a chunked body.
            return;
        }
        if self.wbuf.capacity() == 0 {
            // Small chunks (events) get a small buffer of their own, kept between them: taking
            // a pooled one for each would, on a fan-out to thousands of streams, empty the
            // pool and allocate 8 KiB per stream per event.
            self.wbuf = match data.len() + CHUNK_FRAMING < WRITE_BUF {
                true => BytesMut::with_capacity((data.len() + CHUNK_FRAMING).next_power_of_two()),
                false => self.shared.take_wbuf(),
            };
        }
        if chunked {
            encode::chunk(&mut self.wbuf, data);
        } else {
            self.wbuf.extend_from_slice(data);
        }
    }

    /// Ends a complete body: the last chunk, or (close-delimited) nothing but the close.
    async fn finish_stream(&mut self, chunked: bool) -> Result<bool, Closed> {
        if chunked {
            self.ensure_wbuf();
            self.wbuf.extend_from_slice(LAST_CHUNK);
        }
        self.flush().await?;
        Ok(chunked)
    }

    /// Cuts a body whose producer failed: what was produced is sent, then the connection is
    /// reset without the last chunk, so the client cannot take the body for complete.
    async fn cut(&mut self, error: BoxError) -> Result<bool, Closed> {
        tracing::warn!(peer = %self.peer, error = %error, "streamed response failed, cut off");
        self.flush().await?;
        self.abort();
        Err(Closed::Done)
    }
}
