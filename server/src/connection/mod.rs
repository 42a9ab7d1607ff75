//! One HTTP/1.1 connection: read, parse, route, handle, encode, write — in a loop.
//!
//! Every request already buffered is answered before anything is written, so a pipelined batch
//! costs one `write` (the plaintext benchmark's 16-deep pipeline is the case this serves).
//! Buffers are per connection and reused for its whole life.

mod io;
mod pump;
mod transport;

pub(crate) use transport::{PeerEvent, Transport};

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{Method, StatusCode};

use crate::clock;
use crate::context::Ctx;
use crate::deadline::{Deadline, Sweeper};
use crate::error::error_response;
use crate::h1::body;
use crate::h1::encode::{self, ConnHeader, CONTINUE};
use crate::h1::framing::BodyFraming;
use crate::h1::head::{self, Head, HeadError, Limits, PathRepr, Version};
use crate::h1::{Request, Response};
use crate::middleware::{Exchange, HeaderBlock};
use crate::problem::Answering;
use crate::router::{fallback_response, Dispatch, Router};
use crate::runtime::shutdown::LocalShutdown;
use crate::telemetry::batch::{BatchTiming, PendingTrace};
use crate::telemetry::trace::{Recorder, Traced};
use crate::telemetry::Phases;

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
    /// How long an idle connection still waits for its next request once draining begins
    /// (`drain_grace`).
    pub(crate) drain_grace: Duration,
    /// Silence after which an event stream gets a keep-alive comment (`sse_keepalive`).
    pub(crate) sse_keepalive: Duration,
    /// The peers whose `X-Forwarded-For` is believed (`trusted_proxies`), for handlers.
    pub(crate) trusted_proxies: std::sync::Arc<[ipnet::IpNet]>,
    /// The process's cookie keys, one set shared by every worker.
    pub(crate) cookie_keys: std::sync::Arc<crate::cookie::CookieKeys>,
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
    /// What worker `index` shares with its connections; `ctx` is built from `state` and the
    /// settings in `cfg`.
    pub(crate) fn new(
        router: Router<S>,
        state: S,
        index: usize,
        cfg: ConnConfig,
        shutdown: Rc<LocalShutdown>,
        sweeper: Rc<Sweeper>,
    ) -> Shared<S> {
        Shared {
            router,
            ctx: Ctx::new(
                state,
                index,
                shutdown.flag(),
                std::sync::Arc::clone(&cfg.cookie_keys),
            )
            .with_trusted_proxies(std::sync::Arc::clone(&cfg.trusted_proxies)),
            cfg,
            shutdown,
            sweeper,
            wbufs: std::cell::RefCell::new(Vec::new()),
        }
    }

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

struct Connection<S: 'static, T> {
    stream: T,
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
    /// Requests answered and not yet timed or traced (their write phase ends at the flush).
    timing: BatchTiming,
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

/// Serves `stream` until the peer leaves, an error closes it, or shutdown drains it.
pub(crate) async fn serve<S: 'static, T: Transport>(
    stream: T,
    peer: SocketAddr,
    shared: Rc<Shared<S>>,
) {
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
        timing: BatchTiming::default(),
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

impl<S: 'static, T: Transport> Connection<S, T> {
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
            let mut idle = self.rbuf.is_empty() && !fresh;
            let mut grace_end = None;
            if idle && shared.shutdown.is_draining() {
                // Draining: the next request is still answered (with `Connection: close`)
                // if it comes within the grace; the wait is no longer cut short by the drain.
                let end = shared.shutdown.grace_end();
                if Instant::now() >= end {
                    return Ok(());
                }
                grace_end = Some(end);
                idle = false;
            }
            let deadline = if let Some(end) = grace_end {
                end
            } else if idle {
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
                None if chain.waits(ex) => chain.before(&mut req, ex, &shared.ctx).await,
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
                    Err(e) => {
                        let id = ex.as_ref().and_then(Exchange::request_id_value);
                        Answering::request_id_only(id).scope(|| e.into_response())
                    }
                }
            }
            (None, other) => {
                fallback_response(&other).unwrap_or_else(|| Response::new(StatusCode::NOT_FOUND))
            }
        };

        if shared.shutdown.is_draining() && !self.another_request_buffered(shared) {
            keep_alive = false;
        }
        // A streamed body is chunked on HTTP/1.1 and delimited by the close on HTTP/1.0.
        let streams = response.stream.is_some() && pump::frame_stream(&mut response, version);
        if streams && version == Version::Http10 {
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
                // A stream is timed and logged when it ends, however it ends. The pump is boxed,
                // like body reading: inline, its state would be in every connection's task.
                let sent = match response.stream.take() {
                    Some(body) if !head_only => Some(Box::pin(self.pump(body)).await),
                    _ => None,
                };
                if let Some(slot) = chain.finish(ex, response.status_code().as_u16(), &shared.ctx) {
                    self.timing.add_untimed(slot, start, chain.telemetry());
                    if sent.is_some() {
                        self.time_untimed();
                    }
                }
                if let Some(sent) = sent {
                    keep_alive &= sent?;
                }
            }
            None => {
                encode::encode(
                    &mut self.wbuf,
                    &response,
                    &shared.cfg.server_line,
                    conn,
                    head_only,
                    &[],
                );
                if let Some(body) = response.stream.take().filter(|_| !head_only) {
                    keep_alive &= Box::pin(self.pump(body)).await?;
                }
            }
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
            self.timing.push_trace(PendingTrace {
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

    /// During drain, a pipelined request already in the buffer is still answered; only the
    /// last response of the batch carries `Connection: close`.
    fn another_request_buffered(&self, shared: &Shared<S>) -> bool {
        matches!(head::parse(&self.rbuf, &shared.cfg.limits), Ok(Some(_)))
    }

    /// Reads a body the handler will get, after the interim `100 Continue` the client may be
    /// waiting for.
    ///
    /// # Return
    /// `Ok(Err((status, reason)))` for a body that breaks a rule or limit (answered, then the
    /// connection closes); `Err` when the connection is gone.
    async fn read_body(
        &mut self,
        framing: BodyFraming,
        expect_continue: bool,
        shared: &Shared<S>,
    ) -> Result<Result<Bytes, body::Refused>, Closed> {
        // A client that already sent body bytes is not waiting for the interim response.
        if expect_continue && self.rbuf.is_empty() {
            // Earlier responses of the batch go first, then the interim 100.
            self.ensure_wbuf();
            self.wbuf.extend_from_slice(CONTINUE);
            self.flush().await?;
        }
        let deadline = Instant::now() + shared.cfg.body_read_timeout;
        body::read(
            self,
            framing,
            shared.cfg.limits.max_body,
            deadline,
            READ_BUF,
        )
        .await
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
        let deadline = Instant::now() + shared.cfg.body_read_timeout;
        body::drain(self, framing, shared.cfg.max_drain, deadline).await
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
}
