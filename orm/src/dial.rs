//! Dialing PostgreSQL on monoio: a TCP or Unix-socket stream, turned into tokio's I/O traits,
//! handed to tokio-postgres's `connect_raw`, its `Connection` future spawned on this thread.
//!
//! tokio-postgres is used without its `runtime` feature (no tokio reactor, no tokio timers), so
//! dialing, timeouts and keep-alives are ours. The stream is driven by monoio's own read and
//! write operations through [`RentIo`] (io_uring submissions, batched with the HTTP side's),
//! not by `into_poll_io()`'s readiness polling: see `rent_io` for the measured difference.

use std::cell::Cell;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config, NoTls};

use crate::error::{Deadline, Error};
use crate::rent_io::RentIo;

/// Socket and time limits for one connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnectOptions {
    /// Dial plus startup handshake must finish within this.
    pub connect_timeout: Duration,
    /// TCP keep-alive idle time: a silent peer is probed after this.
    pub keepalive: Duration,
    /// `TCP_USER_TIMEOUT`: data unacknowledged for this long drops the connection, so a
    /// vanished server is noticed in seconds rather than the kernel's ~15 minutes.
    pub user_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            connect_timeout: Duration::from_secs(5),
            keepalive: Duration::from_secs(30),
            user_timeout: Duration::from_secs(10),
        }
    }
}

/// Set when a connection's background task ends: the socket is gone.
#[derive(Debug, Default)]
pub(crate) struct Closed {
    closed: Cell<bool>,
    notify: Notify,
}

impl Closed {
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.get()
    }

    pub(crate) fn set(&self) {
        self.closed.set(true);
        self.notify.notify_waiters();
    }

    /// Completes once the connection has ended.
    pub(crate) async fn wait(&self) {
        let notified = self.notify.notified();
        if self.closed.get() {
            return;
        }
        notified.await;
    }
}

/// A connected client and the flag its connection task sets when it ends.
pub(crate) struct Dialed {
    pub(crate) client: Client,
    pub(crate) closed: Rc<Closed>,
    /// Prepared statements by SQL text. Per connection, since a statement exists only in the
    /// session that prepared it. FxHash, since every query looks its statement up here
    /// (bench/ANALYSIS.md).
    pub(crate) statements:
        std::cell::RefCell<rustc_hash::FxHashMap<Box<str>, tokio_postgres::Statement>>,
    /// A transaction was left open on it (its future dropped): the pool rolls it back before
    /// handing the connection out again.
    pub(crate) needs_rollback: std::cell::Cell<bool>,
}

impl Dialed {
    /// The prepared statement for `sql`, preparing it on first use.
    pub(crate) async fn statement(&self, sql: &str) -> Result<tokio_postgres::Statement, Error> {
        if let Some(s) = self.statements.borrow().get(sql) {
            return Ok(s.clone());
        }
        let stmt = self.client.prepare(sql).await.map_err(Error::from_pg)?;
        self.statements
            .borrow_mut()
            .insert(sql.into(), stmt.clone());
        Ok(stmt)
    }
}

/// Connects to the first host of `config` that answers, within `opts.connect_timeout`.
///
/// # Errors
/// A connect error naming the last host tried, or a timeout.
pub(crate) async fn connect(config: &Config, opts: &ConnectOptions) -> Result<Dialed, Error> {
    connect_with(config, opts, |stream| async move {
        match stream {
            Stream::Tcp(stream) => finish(config, RentIo::new(stream)).await,
            Stream::Unix(stream) => finish(config, RentIo::new(stream)).await,
        }
    })
    .await
}

/// Opens a socket to each host of `config` in turn and runs `handshake` on it, until one
/// succeeds; all within `opts.connect_timeout`. tokio-postgres's connections and the
/// pipeline's own share it: only the protocol spoken on the socket differs.
///
/// # Errors
/// The last host's error, or a timeout.
pub(crate) async fn connect_with<T, F, Fut>(
    config: &Config,
    opts: &ConnectOptions,
    mut handshake: F,
) -> Result<T, Error>
where
    F: FnMut(Stream) -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    let any = async {
        let mut last = None;
        for (host, port) in targets(config)? {
            let result = match open_host(&host, port, opts).await {
                Ok(stream) => handshake(stream).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(done) => return Ok(done),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::unavailable("no host answered")))
    };
    match monoio::time::timeout(opts.connect_timeout, any).await {
        Ok(result) => result,
        Err(_) => Err(Error::timeout(Deadline::Connect)),
    }
}

/// A socket to PostgreSQL, connected and tuned, before any protocol.
pub(crate) enum Stream {
    /// TCP, with `TCP_NODELAY`, keep-alives and `TCP_USER_TIMEOUT` set.
    Tcp(monoio::net::TcpStream),
    /// A Unix socket (`host=/run/postgresql`).
    Unix(monoio::net::UnixStream),
}

/// The hosts and ports of `config`, paired as libpq pairs them (one port for all hosts, or
/// one each).
fn targets(config: &Config) -> Result<Vec<(Host, u16)>, Error> {
    let hosts = config.get_hosts();
    let ports = config.get_ports();
    if hosts.is_empty() {
        return Err(Error::config("the database URL names no host"));
    }
    Ok(hosts
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            (host.clone(), port)
        })
        .collect())
}

/// Opens a socket to `host:port` (or the Unix socket in directory `host`).
async fn open_host(host: &Host, port: u16, opts: &ConnectOptions) -> Result<Stream, Error> {
    match host {
        Host::Tcp(name) => {
            // Resolution is blocking; hosts are IP literals or local names in practice, and this
            // runs only at start-up and on reconnect, never per query.
            let addr = std::net::ToSocketAddrs::to_socket_addrs(&(name.as_str(), port))
                .map_err(|e| Error::connect(format!("{name}:{port}: {e}")))?
                .next()
                .ok_or_else(|| Error::connect(format!("{name}:{port}: no address")))?;
            let stream = monoio::net::TcpStream::connect_addr(addr)
                .await
                .map_err(|e| Error::connect(format!("{addr}: {e}")))?;
            stream
                .set_nodelay(true)
                .map_err(|e| Error::connect(format!("{addr}: {e}")))?;
            tune_tcp(&stream, opts).map_err(|e| Error::connect(format!("{addr}: {e}")))?;
            Ok(Stream::Tcp(stream))
        }
        Host::Unix(dir) => {
            let path: PathBuf = dir.join(format!(".s.PGSQL.{port}"));
            let stream = monoio::net::UnixStream::connect(&path)
                .await
                .map_err(|e| Error::connect(format!("{}: {e}", path.display())))?;
            Ok(Stream::Unix(stream))
        }
    }
}

fn tune_tcp(stream: &monoio::net::TcpStream, opts: &ConnectOptions) -> std::io::Result<()> {
    use std::os::fd::{AsRawFd, BorrowedFd};
    // SAFETY: the descriptor belongs to `stream`, which outlives this borrow.
    let fd = unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) };
    let sock = socket2::SockRef::from(&fd);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(opts.keepalive)
        .with_interval(Duration::from_secs(opts.keepalive.as_secs().clamp(1, 10)))
        .with_retries(3);
    sock.set_tcp_keepalive(&keepalive)?;
    sock.set_tcp_user_timeout(Some(opts.user_timeout))
}

/// What a listening connection hands each notification's channel and payload to.
pub(crate) type OnNotify = Rc<dyn Fn(&str, &str)>;

/// Connects as [`connect`] does, and hands the payload of every notification (`LISTEN`) the
/// connection receives to `on_notify`.
///
/// # Errors
/// As [`connect`].
pub(crate) async fn connect_listening(
    config: &Config,
    opts: &ConnectOptions,
    on_notify: OnNotify,
) -> Result<Dialed, Error> {
    connect_with(config, opts, |stream| {
        let on_notify = Rc::clone(&on_notify);
        async move {
            match stream {
                Stream::Tcp(stream) => {
                    finish_with(config, RentIo::new(stream), Some(on_notify)).await
                }
                Stream::Unix(stream) => {
                    finish_with(config, RentIo::new(stream), Some(on_notify)).await
                }
            }
        }
    })
    .await
}

async fn finish<S>(config: &Config, stream: S) -> Result<Dialed, Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + 'static,
{
    finish_with(config, stream, None).await
}

async fn finish_with<S>(
    config: &Config,
    stream: S,
    on_notify: Option<OnNotify>,
) -> Result<Dialed, Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + 'static,
{
    let (client, mut connection) = config
        .connect_raw(stream, NoTls)
        .await
        .map_err(Error::connect)?;
    let closed = Rc::new(Closed::default());
    let on_close = Rc::clone(&closed);
    monoio::spawn(async move {
        match on_notify {
            None => {
                if let Err(e) = connection.await {
                    tracing::warn!(error = %e, "database connection ended");
                }
            }
            Some(on_notify) => loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                        on_notify(n.channel(), n.payload());
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "database connection ended");
                        break;
                    }
                    None => break,
                }
            },
        }
        on_close.set();
    });
    Ok(Dialed {
        client,
        closed,
        statements: Default::default(),
        needs_rollback: Default::default(),
    })
}
