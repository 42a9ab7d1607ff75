//! One HTTP/1.1 connection: read, parse, route, handle, encode, write — in a loop.
//!
//! Every request already buffered is answered before anything is written, so a pipelined batch
//! costs one `write` (the plaintext benchmark's 16-deep pipeline is the case this serves).
//! Buffers are per connection and reused for its whole life.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{Method, StatusCode};
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;

use crate::clock;
use crate::context::Ctx;
use crate::deadline::{Deadline, Sweeper};
use crate::error::error_response;
use crate::h1::chunked::{ChunkedDecoder, ChunkedError};
use crate::h1::encode::{self, ConnHeader, CONTINUE};
use crate::h1::framing::BodyFraming;
use crate::h1::head::{self, Head, HeadError, Limits, PathRepr, Version};
use crate::h1::{Request, Response};
use crate::middleware::{Exchange, HeaderBlock};
use crate::router::{fallback_response, Dispatch, Router};
use crate::runtime::shutdown::LocalShutdown;
use crate::telemetry::trace::{Recorder, Traced};
use crate::telemetry::{Phases, RequestSlot};

/// Initial size of a connection's read buffer; it grows (up to the head and body limits) only
/// for requests that need it. Small, because every idle keep-alive connection holds one (an
/// io_uring read owns its buffer while it waits); see `bench/README.md`, idle memory.
const READ_BUF: usize = 4 * 1024;
/// Least free space offered to each read.
const READ_CHUNK: usize = 4 * 1024;
/// Size of a write buffer when the worker's pool has none to lend.
const WRITE_BUF: usize = 8 * 1024;
/// Most write buffers a worker keeps for reuse, and the largest it keeps: an idle connection
/// holds no write buffer, it borrows one from its worker for each batch.
const WBUF_POOL: usize = 256;
const WBUF_POOL_MAX_CAPACITY: usize = 64 * 1024;
/// A batch of pipelined responses is flushed early past this size, bounding memory when a
/// client pipelines many requests for large responses.
const FLUSH_AT: usize = 256 * 1024;

/// Settings a connection needs, resolved once per worker.
#[derive(Debug, Clone)]
pub(crate) struct ConnConfig {
    pub(crate) limits: Limits,
    pub(crate) max_drain: u64,
    pub(crate) header_read_timeout: Duration,
    pub(crate) body_read_timeout: Duration,
    pub(crate) write_timeout: Duration,
    pub(crate) keepalive_timeout: Duration,
    /// The peers whose `X-Forwarded-For` is believed (`trusted_proxies`), for handlers.
    pub(crate) trusted_proxies: std::sync::Arc<[ipnet::IpNet]>,
    /// `Server: <name>\r\n`, rendered once.
    pub(crate) server_line: Box<[u8]>,
}

/// What a worker shares with each of its connections.
pub(crate) struct Shared<S> {
    pub(crate) router: Router<S>,
    pub(crate) ctx: Ctx<S>,
    pub(crate) cfg: ConnConfig,
    pub(crate) shutdown: Rc<LocalShutdown>,
    /// Expires the connections' read and write deadlines.
    pub(crate) sweeper: Rc<Sweeper>,
    /// Write buffers lent to connections for one batch each (see [`WBUF_POOL`]). A `RefCell`:
    /// only this worker's tasks touch it, and never across an `.await`.
    pub(crate) wbufs: std::cell::RefCell<Vec<BytesMut>>,
}

impl<S> Shared<S> {
    fn take_wbuf(&self) -> BytesMut {
        self.wbufs
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| BytesMut::with_capacity(WRITE_BUF))
    }

    fn put_wbuf(&self, buf: BytesMut) {
        let mut pool = self.wbufs.borrow_mut();
        if pool.len() < WBUF_POOL && buf.capacity() <= WBUF_POOL_MAX_CAPACITY {
            pool.push(buf);
        }
    }
}

/// Why a connection ended early; only logged at debug level, since clients vanish all the time.
#[derive(Debug)]
enum Closed {
    /// The peer closed or reset the connection, or a write failed.
    Io,
    /// A write made no progress for `write_timeout`: the peer stopped reading.
    WriteTimedOut,
    /// A timeout, a protocol error or shutdown: the answer (if any) was already sent.
    Done,
}

/// The outcome of waiting for more bytes.
enum ReadOutcome {
    /// Bytes were appended to the read buffer.
    Data,
    /// The peer closed its side.
    Eof,
    /// The deadline passed.
    TimedOut,
    /// Shutdown began while the connection was idle.
    Draining,
}

struct Connection<S: 'static> {
    stream: TcpStream,
    peer: SocketAddr,
    rbuf: BytesMut,
    wbuf: BytesMut,
    shared: Rc<Shared<S>>,
    /// Set when the connection closes while the peer may still be sending (a rejected
    /// request, an undrained body): closing a socket with unread input makes the kernel send
    /// a reset, which can destroy the response before the client reads it.
    linger: bool,
    /// When the last read of request heads completed: the start of every request it brought
    /// (one clock read per batch, not per pipelined request).
    arrived: clock::Instant,
    /// This connection's read deadline, swept by the worker ([`crate::deadline`]).
    deadline: Rc<Deadline>,
    /// Sampled requests of the current batch, logged once the batch is written (their write
    /// phase ends then). Empty, and unallocated, for almost every batch.
    traces: Vec<PendingTrace>,
    /// Requests answered but not yet timed, when the chain times them at
    /// the flush (see `Chain::times_at_flush` in `middleware`).
    untimed: Option<Untimed>,
}

/// A run of answered requests in one telemetry series that arrived together (one read):
/// timed with one clock read when the write that carries their responses is issued.
#[derive(Clone, Copy)]
struct Untimed {
    slot: RequestSlot,
    start: clock::Instant,
    count: u32,
}

/// A sampled request whose response is encoded but not yet written.
struct PendingTrace {
    request_id: Option<crate::middleware::RequestIdValue>,
    method: Method,
    route: Option<Rc<str>>,
    status: u16,
    /// Every phase but `write`, which ends when the batch is flushed.
    phases: Phases,
    /// When encoding began: the start of the write phase.
    encode_start: clock::Instant,
}

/// The path as text for routing: ASCII (nearly every path; percent-encoding keeps them so) is
/// checked a word at a time, the rest by full UTF-8 validation; invalid UTF-8 routes as "".
/// `str::from_utf8` alone walked short paths byte by byte (~100 instructions for `/plaintext`).
fn path_str(bytes: &[u8]) -> &str {
    if bytes.is_ascii() {
        // SAFETY: every ASCII byte sequence is valid UTF-8.
        unsafe { std::str::from_utf8_unchecked(bytes) }
    } else {
        std::str::from_utf8(bytes).unwrap_or("")
    }
}

/// How long a lingering close waits for the peer to finish sending (nginx's
/// `lingering_timeout` is 5 s; a shorter bound keeps a drain deadline reachable).
const LINGER_TIMEOUT: Duration = Duration::from_secs(2);
/// Most bytes a lingering close reads and discards before giving up.
const LINGER_MAX: usize = 1024 * 1024;

/// Serves `stream` until the peer leaves, an error closes it, or shutdown drains it.
pub(crate) async fn serve<S: 'static>(stream: TcpStream, peer: SocketAddr, shared: Rc<Shared<S>>) {
    let deadline = shared.sweeper.register();
    let mut conn = Connection {
        stream,
        peer,
        rbuf: BytesMut::with_capacity(READ_BUF),
        wbuf: BytesMut::new(),
        shared,
        linger: false,
        arrived: clock::now(),
        deadline,
        traces: Vec::new(),
        untimed: None,
    };
    if let Err(why) = conn.run().await {
        tracing::trace!(peer = %conn.peer, ?why, "connection closed");
    }
    // A write that failed still answered its requests.
    conn.time_untimed();
    if conn.linger {
        conn.linger_close().await;
    }
}

impl<S: 'static> Connection<S> {
    async fn run(&mut self) -> Result<(), Closed> {
        let shared = Rc::clone(&self.shared);
        let cfg = &shared.cfg;
        // Set when the first byte of a head arrives; the whole head must arrive by then
        // (a slowloris defence: a per-read timeout alone could be reset byte by byte).
        let mut head_deadline: Option<Instant> = None;
        // Until its first request, a connection is not idle: it was accepted to be served, and
        // one taken from the accept queue during shutdown still gets its answer. It waits for
        // its first head up to `header_read_timeout`, and drain does not cut that short.
        let mut fresh = true;
        loop {
            // 1. Answer every complete request already buffered.
            while !self.rbuf.is_empty() {
                let head = match head::parse(&self.rbuf, &cfg.limits) {
                    Ok(Some(head)) => head,
                    Ok(None) => break,
                    Err(e) => return Box::pin(self.reject(e)).await,
                };
                head_deadline = None;
                fresh = false;
                if !self.answer(head, &shared).await? {
                    self.flush().await?;
                    self.linger |= !self.rbuf.is_empty();
                    return Ok(());
                }
                if self.wbuf.len() >= FLUSH_AT {
                    self.flush().await?;
                }
            }
            // 2. One write for the whole batch; an idle connection gives its write buffer back.
            self.flush().await?;
            if self.rbuf.is_empty() && self.wbuf.capacity() > 0 {
                shared.put_wbuf(std::mem::take(&mut self.wbuf));
            }
            // 3. Wait for more.
            let idle = self.rbuf.is_empty() && !fresh;
            if idle && shared.shutdown.is_draining() {
                return Ok(());
            }
            let deadline = if idle {
                Instant::now() + cfg.keepalive_timeout
            } else if fresh && self.rbuf.is_empty() {
                // Nothing received yet: a silent client is dropped without a 408.
                Instant::now() + cfg.header_read_timeout
            } else {
                *head_deadline.get_or_insert_with(|| Instant::now() + cfg.header_read_timeout)
            };
            // (A timed-out read takes the buffer with it: decide from what was there before.)
            let partial_head = !self.rbuf.is_empty();
            match self.read_more(deadline, idle).await? {
                ReadOutcome::Data => {
                    if !shared.router.chain().is_empty() {
                        self.arrived = clock::now();
                    }
                }
                ReadOutcome::Eof | ReadOutcome::Draining => return Ok(()),
                ReadOutcome::TimedOut if !partial_head => return Ok(()),
                ReadOutcome::TimedOut => {
                    return Box::pin(self.reject_status(
                        StatusCode::REQUEST_TIMEOUT,
                        "request head not received in time",
                    ))
                    .await;
                }
            }
        }
    }

    /// Reads the body (if any), runs the handler and encodes its response.
    ///
    /// # Return
    /// Whether the connection stays open.
    async fn answer(&mut self, head: Head, shared: &Shared<S>) -> Result<bool, Closed> {
        let start = self.arrived;
        let head_bytes = self.rbuf.split_to(head.len).freeze();
        let path = match head.path {
            PathRepr::Span(span) => path_str(span.get(&head_bytes)),
            PathRepr::Root => "/",
            PathRepr::Asterisk => "*",
        };
        let found = shared.router.find(&head.method, path);
        let route = found.route();
        let chain = shared.router.chain();
        // Health probes and other bare routes skip the chain.
        let run_chain = !chain.is_empty() && route.is_none_or(|r| r.options.middleware);
        let (framing, expect_continue, version, mut keep_alive) = (
            head.framing,
            head.expect_continue,
            head.version,
            head.keep_alive,
        );
        let head_only = head.method == Method::HEAD;
        let mut ex = run_chain.then(|| {
            let path = chain.needs_path().then(|| match head.path {
                PathRepr::Span(span) => head_bytes.slice(span.start as usize..span.end as usize),
                PathRepr::Root => Bytes::from_static(b"/"),
                PathRepr::Asterisk => Bytes::from_static(b"*"),
            });
            Exchange::new(start, head.method.clone(), path, route, self.peer)
        });
        let mut req = Request::new(head, head_bytes, Bytes::new(), self.peer);
        // About `telemetry_sample_ratio` of the requests that run the chain are traced.
        let recorder = match (&ex, chain.telemetry()) {
            (Some(_), Some(t)) if t.should_sample() => Some(Rc::new(Recorder::default())),
            _ => None,
        };
        let mut handler_span: Option<(clock::Instant, clock::Instant)> = None;

        // The chain may answer before the body is read (a 429, a preflight).
        let early = match &mut ex {
            Some(ex) => match chain.before_now(&mut req, ex) {
                None if chain.waits() => chain.before(&mut req, ex, &shared.ctx).await,
                now => now,
            },
            None => None,
        };

        // The route decides whether the body is worth reading: an early answer, a 404 or a 405
        // drains it (up to `max_drain_size`) instead of buffering it.
        let wants_body = early.is_none() && matches!(found, Dispatch::Handler(..));
        match framing {
            BodyFraming::None => {}
            // Body reading, draining and rejections are boxed: they are rarer than the plain
            // GET, and inline they would add their (deep) state to every connection's task,
            // idle ones included (see `bench/idle-memory`).
            _ if wants_body => {
                match Box::pin(self.read_body(framing, expect_continue, shared)).await? {
                    Ok(body) => req.set_body(body),
                    Err((status, why)) => {
                        return Box::pin(self.reject_status(status, why))
                            .await
                            .map(|()| false)
                    }
                }
            }
            _ => {
                // Without a 100 Continue the client may still be holding the body back: do not
                // wait for it, answer and close.
                if expect_continue || !Box::pin(self.drain_body(framing, shared)).await? {
                    keep_alive = false;
                    self.linger = true;
                }
            }
        }

        let mut response = match (early, found) {
            (Some(resp), _) => *resp,
            (None, Dispatch::Handler(handler, _, params)) => {
                req.set_params(params);
                let result = match &recorder {
                    Some(rec) => {
                        let began = clock::now();
                        let result =
                            Traced::new(handler.call(req, &shared.ctx), Rc::clone(rec)).await;
                        handler_span = Some((began, clock::now()));
                        result
                    }
                    None => handler.call(req, &shared.ctx).await,
                };
                match result {
                    Ok(resp) => resp,
                    Err(e) => e.into_response(),
                }
            }
            (None, other) => {
                fallback_response(&other).unwrap_or_else(|| Response::new(StatusCode::NOT_FOUND))
            }
        };

        if shared.shutdown.is_draining() && !self.another_request_buffered(shared) {
            keep_alive = false;
        }
        let conn = match (keep_alive, version) {
            (false, _) => ConnHeader::Close,
            (true, Version::Http10) => ConnHeader::KeepAlive,
            (true, Version::Http11) => ConnHeader::None,
        };
        self.ensure_wbuf();
        let encode_start = recorder.as_ref().map(|_| clock::now());
        match &mut ex {
            Some(ex) => {
                chain.prepare(&mut response);
                encode::encode_with(
                    &mut self.wbuf,
                    &response,
                    &shared.cfg.server_line,
                    conn,
                    head_only,
                    |out| chain.after(ex, &response, &mut HeaderBlock::over(out), &shared.ctx),
                );
                if let Some(slot) = chain.finish(ex, response.status_code().as_u16(), &shared.ctx) {
                    self.add_untimed(slot, start);
                }
            }
            None => encode::encode(
                &mut self.wbuf,
                &response,
                &shared.cfg.server_line,
                conn,
                head_only,
                &[],
            ),
        }
        // The recorder first: a tuple of all three would move the exchange on every request.
        if let Some(rec) = recorder {
            let (Some(ex), Some(encode_start)) = (ex, encode_start) else {
                return Ok(keep_alive);
            };
            // An early answer ran no handler: everything before encoding was reading.
            let read_end = handler_span.map_or(encode_start, |(began, _)| began);
            let handler = handler_span.map_or(std::time::Duration::ZERO, |(b, e)| e - b);
            let (request_id, method, route) = ex.into_trace_parts();
            self.traces.push(PendingTrace {
                request_id,
                method,
                route,
                status: response.status_code().as_u16(),
                phases: Phases {
                    read: read_end.saturating_duration_since(start),
                    handler,
                    database: rec.database(),
                    render: rec.render(),
                    write: std::time::Duration::ZERO,
                },
                encode_start,
            });
        }
        Ok(keep_alive)
    }

    /// Logs the sampled requests of the batch just written, now that their write phase ended.
    fn log_traces(&mut self) {
        let Some(telemetry) = self.shared.router.chain().telemetry() else {
            self.traces.clear();
            return;
        };
        let now = clock::now();
        for t in self.traces.drain(..) {
            let phases = Phases {
                write: now.saturating_duration_since(t.encode_start),
                ..t.phases
            };
            let id = t.request_id.as_ref().map_or("-", |id| id.as_str());
            telemetry.log_trace(id, &t.method, t.route.as_deref(), t.status, &phases);
        }
    }

    /// During drain, a pipelined request already in the buffer is still answered; only the
    /// last response of the batch carries `Connection: close`.
    fn another_request_buffered(&self, shared: &Shared<S>) -> bool {
        matches!(head::parse(&self.rbuf, &shared.cfg.limits), Ok(Some(_)))
    }

    /// Reads a body the handler will get.
    ///
    /// # Return
    /// `Ok(Err((status, reason)))` for a body that breaks a rule or limit (answered, then the
    /// connection closes); `Err` when the connection is gone.
    async fn read_body(
        &mut self,
        framing: BodyFraming,
        expect_continue: bool,
        shared: &Shared<S>,
    ) -> Result<Result<Bytes, (StatusCode, &'static str)>, Closed> {
        let cfg = &shared.cfg;
        // A client that already sent body bytes is not waiting for the interim response.
        if expect_continue && self.rbuf.is_empty() {
            // Earlier responses of the batch go first, then the interim 100.
            self.ensure_wbuf();
            self.wbuf.extend_from_slice(CONTINUE);
            self.flush().await?;
        }
        // One deadline for the whole body, as for the head: a per-read timeout could be
        // re-armed forever by a client sending a byte at a time.
        let deadline = Instant::now() + cfg.body_read_timeout;
        match framing {
            BodyFraming::None => Ok(Ok(Bytes::new())),
            BodyFraming::Length(n) => {
                // `parse` already refused lengths over the limit, so this fits in memory.
                let n = n as usize;
                if self.rbuf.len() < n {
                    self.rbuf.reserve(n - self.rbuf.len());
                }
                while self.rbuf.len() < n {
                    match self.read_more(deadline, false).await? {
                        ReadOutcome::Data => {}
                        ReadOutcome::TimedOut => {
                            return Ok(Err((
                                StatusCode::REQUEST_TIMEOUT,
                                "request body not received in time",
                            )))
                        }
                        ReadOutcome::Eof | ReadOutcome::Draining => return Err(Closed::Io),
                    }
                }
                let body = self.rbuf.split_to(n).freeze();
                if n > READ_BUF {
                    self.unshare_rbuf();
                }
                Ok(Ok(body))
            }
            BodyFraming::Chunked => {
                let mut decoder = ChunkedDecoder::new(cfg.limits.max_body);
                let mut out = BytesMut::new();
                loop {
                    match decoder.decode(&mut self.rbuf, &mut out) {
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
                    match self.read_more(deadline, false).await? {
                        ReadOutcome::Data => {}
                        ReadOutcome::TimedOut => {
                            return Ok(Err((
                                StatusCode::REQUEST_TIMEOUT,
                                "request body not received in time",
                            )))
                        }
                        ReadOutcome::Eof | ReadOutcome::Draining => return Err(Closed::Io),
                    }
                }
            }
        }
    }

    /// Reads and discards a body nobody will use, up to `max_drain_size`.
    ///
    /// # Return
    /// Whether the body was fully drained, so that the connection can be reused.
    async fn drain_body(
        &mut self,
        framing: BodyFraming,
        shared: &Shared<S>,
    ) -> Result<bool, Closed> {
        let cfg = &shared.cfg;
        let deadline = Instant::now() + cfg.body_read_timeout;
        match framing {
            BodyFraming::None => Ok(true),
            BodyFraming::Length(n) => {
                if n > cfg.max_drain {
                    return Ok(false);
                }
                let mut left = n as usize;
                loop {
                    let take = left.min(self.rbuf.len());
                    let _ = self.rbuf.split_to(take);
                    left -= take;
                    if left == 0 {
                        return Ok(true);
                    }
                    match self.read_more(deadline, false).await? {
                        ReadOutcome::Data => {}
                        _ => return Ok(false),
                    }
                }
            }
            BodyFraming::Chunked => {
                let mut decoder = ChunkedDecoder::new(cfg.max_drain);
                loop {
                    match decoder.discard(&mut self.rbuf) {
                        Ok(true) => return Ok(true),
                        Ok(false) => {}
                        Err(_) => return Ok(false),
                    }
                    match self.read_more(deadline, false).await? {
                        ReadOutcome::Data => {}
                        _ => return Ok(false),
                    }
                }
            }
        }
    }

    /// Answers a rejected head and ends the connection: after a framing error the byte stream
    /// cannot be trusted, so it is never reused.
    async fn reject(&mut self, e: HeadError) -> Result<(), Closed> {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
        self.reject_status(status, e.reason()).await
    }

    async fn reject_status(&mut self, status: StatusCode, why: &'static str) -> Result<(), Closed> {
        tracing::debug!(peer = %self.peer, status = status.as_u16(), why, "request rejected");
        let resp = error_response(status, why);
        self.ensure_wbuf();
        encode::encode(
            &mut self.wbuf,
            &resp,
            &self.shared.cfg.server_line,
            ConnHeader::Close,
            false,
            &[],
        );
        self.linger = true;
        self.flush().await?;
        Err(Closed::Done)
    }

    /// Closes without destroying the last response: half-closes (so the client sees the end of
    /// the response), then reads and discards what the peer still sends until it closes too,
    /// [`LINGER_TIMEOUT`] passes or [`LINGER_MAX`] bytes were thrown away.
    async fn linger_close(&mut self) {
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
    fn ensure_wbuf(&mut self) {
        if self.wbuf.capacity() == 0 {
            self.wbuf = self.shared.take_wbuf();
        }
    }

    /// Counts a request to time at the next flush: one more in the current run when it is of
    /// the same series and read, otherwise the run is timed now and a new one begins.
    #[inline]
    fn add_untimed(&mut self, slot: RequestSlot, start: clock::Instant) {
        match &mut self.untimed {
            Some(run) if run.slot == slot && run.start == start && run.count < u32::MAX => {
                run.count += 1;
            }
            _ => {
                self.time_untimed();
                self.untimed = Some(Untimed {
                    slot,
                    start,
                    count: 1,
                });
            }
        }
    }

    /// Times the requests not yet timed: their responses are ready to be sent.
    fn time_untimed(&mut self) {
        if let Some(run) = self.untimed.take() {
            if let Some(telemetry) = self.shared.router.chain().telemetry() {
                let elapsed = clock::now().saturating_duration_since(run.start);
                telemetry.observe_requests(run.slot, run.count, elapsed);
            }
        }
    }

    /// Writes everything buffered for the peer, timing first the requests it answers.
    async fn flush(&mut self) -> Result<(), Closed> {
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
        if !self.traces.is_empty() {
            self.log_traces();
        }
        Ok(())
    }

    /// Makes the close that follows a reset: a peer that stopped reading would otherwise keep
    /// the unsent response in the kernel's send buffer until TCP gives up on it, minutes later.
    fn abort(&mut self) {
        self.linger = false;
        // SAFETY: the descriptor is the stream's, open for as long as `self.stream` lives,
        // which outlives this borrow.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.stream.as_raw_fd()) };
        if let Err(e) = socket2::SockRef::from(&fd).set_linger(Some(Duration::ZERO)) {
            tracing::debug!(peer = %self.peer, error = %e, "cannot set SO_LINGER before a reset");
        }
        tracing::debug!(peer = %self.peer, "response not read in time: connection reset");
    }

    /// Moves what follows a large body into a buffer of its own: the body's bytes share the
    /// read buffer's allocation, which the read buffer would otherwise keep alive for the
    /// rest of the connection (and the handler may keep the body past the response).
    fn unshare_rbuf(&mut self) {
        let mut fresh = BytesMut::with_capacity(READ_BUF.max(self.rbuf.len()));
        fresh.extend_from_slice(&self.rbuf);
        self.rbuf = fresh;
    }

    /// Appends what the peer sends next to the read buffer, waiting at most until `deadline`;
    /// an `idle` connection also stops waiting when shutdown begins.
    async fn read_more(&mut self, deadline: Instant, idle: bool) -> Result<ReadOutcome, Closed> {
        self.rbuf.reserve(READ_CHUNK);
        let buf = std::mem::take(&mut self.rbuf);
        let len = buf.len();
        let cap = buf.capacity();
        // A monoio read into a `BytesMut` writes at offset 0: read into the spare capacity.
        let read = self.stream.read(buf.slice_mut(len..cap));
        // The worker's sweeper enforces the deadline (no timer per read, see `deadline`).
        // Pinned where it is built: moving the read into `select!` cost a memcpy per read.
        let timed = std::pin::pin!(self.deadline.limit(deadline, read));
        let result = if idle {
            let shutdown = Rc::clone(&self.shared.shutdown);
            let notified = std::pin::pin!(shutdown.notified());
            if shutdown.is_draining() {
                return Ok(ReadOutcome::Draining);
            }
            // `biased`: the read first, and no random number per select.
            monoio::select! {
                biased;
                r = timed => r,
                _ = notified => return Ok(ReadOutcome::Draining),
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
