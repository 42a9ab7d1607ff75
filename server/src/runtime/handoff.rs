//! Handing the listening sockets to a successor process (`handoff_socket`), so that a restart
//! resets no connection.
//!
//! Closing a `SO_REUSEPORT` listener resets the connections in its accept queue, and a
//! connection can land there between a worker's last accept and its close. Handing the
//! sockets over closes nothing that matters: the successor receives the same sockets (the same
//! accept queues) over a Unix socket with `SCM_RIGHTS`, as HAProxy's and Pingora's upgrades
//! do, accepts from them beside the old process, and once it is ready the old process stops
//! accepting and drains. The queues live on in the successor's descriptors.
//!
//! The exchange, one line each way on a Unix stream socket at `handoff_socket`:
//! successor `pinion-handoff/1`; predecessor `listeners` with the descriptors (or `draining`
//! when it is already stopping); successor `ready` once it serves; predecessor `bye` once its
//! drain has begun. The successor then binds the path for the next one.

use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::socket::{
    getsockopt, recvmsg, sendmsg, sockopt, ControlMessage, ControlMessageOwned, MsgFlags,
};
use parking_lot::Mutex;

use super::shutdown::ShutdownTrigger;

const HELLO: &[u8] = b"pinion-handoff/1\n";
const LISTENERS: &[u8] = b"listeners\n";
const DRAINING: &[u8] = b"draining\n";
const READY: &[u8] = b"ready\n";
const BYE: &[u8] = b"bye\n";
/// More listeners than anyone runs threads: the receive buffer is sized for this many.
const MAX_LISTENERS: usize = 1024;
/// The predecessor's answer comes at once; a silent peer is not a pinion.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// This process's listening sockets, as the handoff thread may send them: a worker clears its
/// entry before it closes the socket, so a descriptor number is never sent after its close.
pub(crate) struct Registry {
    fds: Mutex<Vec<Option<RawFd>>>,
    handed_over: AtomicBool,
    on_hand_over: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("fds", &self.fds)
            .field("handed_over", &self.handed_over)
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// The registry of `fds`, in listener order.
    pub(crate) fn new(fds: Vec<RawFd>) -> Arc<Registry> {
        Arc::new(Registry {
            fds: Mutex::new(fds.into_iter().map(Some).collect()),
            handed_over: AtomicBool::new(false),
            on_hand_over: Mutex::new(None),
        })
    }

    /// Runs `f` when a successor takes over, before the drain starts.
    pub(crate) fn on_hand_over(&self, f: Box<dyn FnOnce() + Send>) {
        *self.on_hand_over.lock() = Some(f);
    }

    /// Called by a worker before it closes listener `slot`.
    pub(crate) fn release(&self, slot: usize) {
        if let Some(fd) = self.fds.lock().get_mut(slot) {
            *fd = None;
        }
    }

    /// Whether a successor has the sockets: the queues are then its to empty.
    pub(crate) fn handed_over(&self) -> bool {
        self.handed_over.load(Ordering::Acquire)
    }
}

/// The listeners taken from a predecessor, and the line on which to tell it to drain.
#[derive(Debug)]
pub(crate) struct Takeover {
    stream: UnixStream,
    pub(crate) listeners: Vec<std::net::TcpListener>,
}

impl Takeover {
    /// Tells the predecessor that this process serves: it stops accepting and drains. Waits
    /// for its acknowledgement, so that when this returns the old process has been told (its
    /// workers notice on their next turn of the event loop).
    ///
    /// # Errors
    /// When the predecessor went away meanwhile (it was stopped): nothing is lost, the sockets
    /// are this process's already.
    pub(crate) fn finish(mut self) -> io::Result<()> {
        self.stream.write_all(READY)?;
        let mut answer = [0u8; 16];
        let n = read_line(&mut self.stream, &mut answer)?;
        if &answer[..n] != BYE {
            return Err(io::Error::other("the predecessor did not acknowledge"));
        }
        Ok(())
    }
}

/// Takes the listening sockets of the pinion serving `path`; `None` when none does (no socket
/// file, or a stale one), or when it is draining already.
///
/// # Errors
/// When the exchange fails half-way, or when the sockets are not listeners on `addr` (port 0
/// takes whatever the predecessor has): two deployments sharing a handoff path is a
/// configuration error, not something to guess around.
pub(crate) fn take_over(path: &Path, addr: SocketAddr) -> io::Result<Option<Takeover>> {
    let mut stream = match UnixStream::connect(path) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    stream.set_write_timeout(Some(ANSWER_TIMEOUT))?;
    check_peer(&stream)?;
    stream.write_all(HELLO)?;
    let mut line = [0u8; 32];
    let mut space = nix::cmsg_space!([RawFd; MAX_LISTENERS]);
    let (n, fds) = {
        let mut iov = [IoSliceMut::new(&mut line)];
        let msg = loop {
            match recvmsg::<()>(
                stream.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                // With a receive timeout set, the kernel does not restart the call: an
                // io_uring torn down on this thread (the driver probe) interrupts it.
                Err(nix::errno::Errno::EINTR) => continue,
                other => break other.map_err(io::Error::from)?,
            }
        };
        let mut fds = Vec::new();
        for cmsg in msg.cmsgs() {
            if let ControlMessageOwned::ScmRights(got) = cmsg {
                fds.extend(got);
            }
        }
        (msg.bytes, fds)
    };
    // Owned at once, so that every path below closes what it does not keep.
    let listeners: Vec<std::net::TcpListener> = fds
        .into_iter()
        // SAFETY: SCM_RIGHTS installed these descriptors in this process; nothing else owns them.
        .map(|fd| unsafe { std::net::TcpListener::from_raw_fd(fd) })
        .collect();
    match &line[..n] {
        l if l == LISTENERS => {}
        l if l == DRAINING => return Ok(None),
        _ => return Err(io::Error::other("unexpected answer from the predecessor")),
    }
    if listeners.is_empty() {
        return Err(io::Error::other("the predecessor sent no listeners"));
    }
    for l in &listeners {
        let got = l.local_addr()?;
        let same = got.ip() == addr.ip() && (addr.port() == 0 || got.port() == addr.port());
        if !same {
            return Err(io::Error::other(format!(
                "the process on {} listens on {got}, this one is configured for {addr}",
                path.display()
            )));
        }
        l.set_nonblocking(true)?;
    }
    Ok(Some(Takeover { stream, listeners }))
}

/// Serves hand-offs on `path` from a thread of its own until one succeeds, which starts this
/// process's graceful shutdown through `trigger`. The socket is made accessible to its owner
/// only, and a peer of another user is refused.
///
/// # Errors
/// When the path cannot be bound.
pub(crate) fn serve(
    path: &Path,
    registry: Arc<Registry>,
    trigger: ShutdownTrigger,
) -> io::Result<()> {
    // The predecessor's socket file, or a stale one: its listener (if any) has handed over.
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    let path: PathBuf = path.to_path_buf();
    std::thread::Builder::new()
        .name("pinion-handoff".to_string())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                match hand_over(conn, &registry, &trigger) {
                    Ok(true) => return,
                    Ok(false) => {}
                    Err(e) => tracing::warn!(path = %path.display(), error = %e, "hand-off failed; still serving"),
                }
                if trigger.is_triggered() {
                    return;
                }
            }
        })?;
    Ok(())
}

/// One successor: sends the listeners, waits for its `ready`. `Ok(true)` once handed over.
fn hand_over(
    mut conn: UnixStream,
    registry: &Registry,
    trigger: &ShutdownTrigger,
) -> io::Result<bool> {
    conn.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    conn.set_write_timeout(Some(ANSWER_TIMEOUT))?;
    check_peer(&conn)?;
    let mut line = [0u8; 32];
    let n = read_line(&mut conn, &mut line)?;
    if &line[..n] != HELLO {
        return Err(io::Error::other("not a pinion successor"));
    }
    {
        // Held while sending: a worker that starts draining waits to close its socket.
        let fds = registry.fds.lock();
        let open: Option<Vec<RawFd>> = fds.iter().copied().collect();
        match open {
            Some(fds) if !trigger.is_triggered() => loop {
                match sendmsg::<()>(
                    conn.as_raw_fd(),
                    &[IoSlice::new(LISTENERS)],
                    &[ControlMessage::ScmRights(&fds)],
                    MsgFlags::empty(),
                    None,
                ) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    other => break other.map(drop).map_err(io::Error::from)?,
                }
            },
            _ => {
                conn.write_all(DRAINING)?;
                return Ok(false);
            }
        }
    }
    // The successor migrates and connects to its databases before it is ready.
    conn.set_read_timeout(None)?;
    let n = match read_line(&mut conn, &mut line) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            tracing::warn!("the successor exited before it was ready; still serving");
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    if &line[..n] != READY {
        return Err(io::Error::other("unexpected message from the successor"));
    }
    registry.handed_over.store(true, Ordering::Release);
    if let Some(f) = registry.on_hand_over.lock().take() {
        f();
    }
    // Before the drain starts: with nothing to drain, the process may exit right after it.
    tracing::info!("listeners handed to the successor, draining");
    let _ = conn.write_all(BYE);
    trigger.shutdown();
    Ok(true)
}

/// Refuses a peer running as another user: the sockets are this user's to give.
fn check_peer(conn: &UnixStream) -> io::Result<()> {
    let cred = getsockopt(conn.as_raw_fd(), sockopt::PeerCredentials).map_err(io::Error::from)?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if cred.uid() != me {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("peer runs as uid {}, not {me}", cred.uid()),
        ));
    }
    Ok(())
}

/// Reads one `\n`-terminated line into `buf`, returning its length with the newline.
fn read_line(conn: &mut UnixStream, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let got = match conn.read(&mut buf[n..n + 1]) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => other?,
        };
        if got == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        n += 1;
        if buf[n - 1] == b'\n' {
            return Ok(n);
        }
    }
    Err(io::Error::other("line too long"))
}
