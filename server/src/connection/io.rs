//! A connection's I/O: reads under a deadline, writes under `write_timeout`, the write buffers
//! lent by the worker, lingering and resetting closes.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use monoio::buf::IoBufMut;

use super::{Closed, Connection, ReadOutcome, Transport, READ_BUF, READ_CHUNK};
use crate::h1::body;

/// How long a lingering close waits for the peer to finish sending (nginx's
/// `lingering_timeout` is 5 s; a shorter bound keeps a drain deadline reachable).
const LINGER_TIMEOUT: Duration = Duration::from_secs(2);
/// Most bytes a lingering close reads and discards before giving up.
const LINGER_MAX: usize = 1024 * 1024;

impl<S: 'static, T: Transport> Connection<S, T> {
    /// Closes without destroying the last response: half-closes (so the client sees the end of
    /// the response), then reads and discards what the peer still sends until it closes too,
    /// [`LINGER_TIMEOUT`] passes or [`LINGER_MAX`] bytes were thrown away.
    pub(super) async fn linger_close(&mut self) {
        if self.stream.shutdown().await.is_err() {
            return;
        }
        let deadline = Instant::now() + LINGER_TIMEOUT;
        let mut discarded = 0;
        while discarded < LINGER_MAX {
            self.rbuf.clear();
            match self.read_more(deadline, false).await {
                Ok(ReadOutcome::Data) => discarded += self.rbuf.len(),
                _ => return,
            }
        }
    }

    /// Borrows a write buffer from the worker if this connection holds none.
    #[inline]
    pub(super) fn ensure_wbuf(&mut self) {
        if self.wbuf.capacity() == 0 {
            self.wbuf = self.shared.take_wbuf();
        }
    }

    /// Times the requests not yet timed: their responses are ready to be sent.
    pub(super) fn time_untimed(&mut self) {
        self.timing
            .time_untimed(self.shared.router.chain().telemetry());
    }

    /// Logs the sampled requests of the batch just written.
    pub(super) fn log_traces(&mut self) {
        self.timing
            .log_traces(self.shared.router.chain().telemetry());
    }

    /// Writes everything buffered for the peer, timing first the requests it answers.
    pub(super) async fn flush(&mut self) -> Result<(), Closed> {
        self.time_untimed();
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let mut buf = std::mem::take(&mut self.wbuf);
        let total = buf.len();
        let mut written = 0;
        while written < total {
            // The deadline restarts whenever the peer takes some bytes, as nginx's
            // `send_timeout`: a slow reader is served, one that reads nothing is cut off.
            let at = self
                .shared
                .sweeper
                .coarse_deadline(self.shared.cfg.write_timeout);
            let write = self
                .stream
                .write(monoio::buf::IoBuf::slice(buf, written..total));
            let done = std::pin::pin!(self.deadline.limit(at, write)).await;
            // On a timeout the buffer goes with the cancelled write, and the connection with it.
            let Some((res, slice)) = done else {
                self.abort();
                return Err(Closed::WriteTimedOut);
            };
            buf = slice.into_inner();
            match res {
                Ok(n) if n > 0 => written += n,
                _ => {
                    // The requests were answered, if not delivered: their traces still count.
                    self.log_traces();
                    return Err(Closed::Io);
                }
            }
        }
        buf.clear();
        self.wbuf = buf;
        if self.timing.has_traces() {
            self.log_traces();
        }
        Ok(())
    }

    /// Makes the close that follows a reset: a peer that stopped reading would otherwise keep
    /// the unsent response in the kernel's send buffer until TCP gives up on it, minutes later.
    pub(super) fn abort(&mut self) {
        self.linger = false;
        if let Err(e) = self.stream.reset_on_close() {
            tracing::debug!(peer = %self.peer, error = %e, "cannot set SO_LINGER before a reset");
        }
        tracing::debug!(peer = %self.peer, "response not read in time: connection reset");
    }

    /// Moves what follows a large body into a buffer of its own: the body's bytes share the
    /// read buffer's allocation, which the read buffer would otherwise keep alive for the
    /// rest of the connection (and the handler may keep the body past the response).
    pub(super) fn unshare_rbuf(&mut self) {
        let mut fresh = BytesMut::with_capacity(READ_BUF.max(self.rbuf.len()));
        fresh.extend_from_slice(&self.rbuf);
        self.rbuf = fresh;
    }

    /// Appends what the peer sends next to the read buffer, waiting at most until `deadline`;
    /// an `idle` connection also stops waiting when shutdown begins.
    pub(super) async fn read_more(
        &mut self,
        deadline: Instant,
        idle: bool,
    ) -> Result<ReadOutcome, Closed> {
        self.rbuf.reserve(READ_CHUNK);
        let buf = std::mem::take(&mut self.rbuf);
        let len = buf.len();
        let cap = buf.capacity();
        // A monoio read into a `BytesMut` writes at offset 0: read into the spare capacity.
        let read = self.stream.read(buf.slice_mut(len..cap));
        // The worker's sweeper enforces the deadline (no timer per read, see `deadline`).
        // Pinned where it is built: moving the read into `select!` cost a memcpy per read.
        let mut timed = std::pin::pin!(self.deadline.limit(deadline, read));
        let result = if idle {
            let shutdown = Rc::clone(&self.shared.shutdown);
            let notified = std::pin::pin!(shutdown.notified());
            if shutdown.is_draining() {
                return Ok(ReadOutcome::Draining);
            }
            // `biased`: the read first, and no random number per select.
            monoio::select! {
                biased;
                r = &mut timed => r,
                _ = notified => {
                    // The drain began while this connection waited: its next request is
                    // still read and answered if it comes within the grace (one timer, only
                    // while draining).
                    let grace = std::pin::pin!(monoio::time::sleep(shutdown.grace()));
                    monoio::select! {
                        biased;
                        r = &mut timed => r,
                        _ = grace => return Ok(ReadOutcome::Draining),
                    }
                }
            }
        } else {
            timed.await
        };
        // On a timeout or drain the buffer went with the cancelled read: the connection closes
        // next, so nothing is lost that anyone will read.
        let Some((res, slice)) = result else {
            return Ok(ReadOutcome::TimedOut);
        };
        self.rbuf = slice.into_inner();
        match res {
            Ok(0) => Ok(ReadOutcome::Eof),
            Ok(_) => Ok(ReadOutcome::Data),
            Err(_) => Err(Closed::Io),
        }
    }
}

impl<S: 'static, T: Transport> body::Source for Connection<S, T> {
    type Gone = Closed;

    #[inline]
    fn buffered(&mut self) -> &mut BytesMut {
        &mut self.rbuf
    }

    async fn fill(&mut self, deadline: Instant) -> Result<body::Filled, Closed> {
        Ok(match self.read_more(deadline, false).await? {
            ReadOutcome::Data => body::Filled::Data,
            ReadOutcome::TimedOut => body::Filled::TimedOut,
            ReadOutcome::Eof | ReadOutcome::Draining => body::Filled::Eof,
        })
    }

    fn unshare(&mut self) {
        self.unshare_rbuf();
    }

    fn gone(&self) -> Closed {
        Closed::Io
    }
}
