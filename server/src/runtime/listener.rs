//! Listening sockets: one per worker, all bound to the same address with `SO_REUSEPORT`, so the
//! kernel spreads connections over the workers with no shared accept queue.

use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// Binds `count` listeners on `addr`. With port 0 the first one picks a free port and the
/// others join it, so tests can ask for any free port.
///
/// # Errors
/// The bind or listen error, with the address.
pub(crate) fn bind_all(
    addr: SocketAddr,
    count: usize,
    backlog: u32,
) -> std::io::Result<Vec<std::net::TcpListener>> {
    let mut out = Vec::with_capacity(count);
    let mut addr = addr;
    for _ in 0..count {
        let listener = bind_one(addr, backlog)?;
        addr = listener.local_addr()?;
        out.push(listener);
    }
    Ok(out)
}

fn bind_one(addr: SocketAddr, backlog: u32) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    // Inherited by accepted sockets on Linux; set again per connection for other kernels.
    socket.set_tcp_nodelay(true)?;
    socket.set_nonblocking(true)?;
    socket
        .bind(&addr.into())
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot bind {addr}: {e}")))?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(socket.into())
}

/// Accepts, without blocking, every connection already queued on `fd`.
///
/// Closing one `SO_REUSEPORT` listener resets the connections waiting in *its* accept queue
/// (the kernel does not hand them to the group's other listeners unless
/// `net.ipv4.tcp_migrate_req` is set, which we cannot assume). So at shutdown each worker first
/// empties its queue with non-blocking `accept4` calls until `EAGAIN`, serves what it got like
/// any request in flight (answered with `Connection: close`), and only then closes the
/// listener. A connection that lands in the few microseconds between the last `accept4` and
/// `close` is still reset; clients retry those as they do any refused connection.
pub(crate) fn accept_queued(fd: std::os::fd::RawFd) -> Vec<(std::net::TcpStream, SocketAddr)> {
    use std::os::fd::FromRawFd;
    let mut out = Vec::new();
    loop {
        let mut storage: libc::sockaddr_storage =
            // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
            unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: `fd` is a listening socket owned by the caller for the duration of the call;
        // `storage` and `len` are valid for writes of the sizes given.
        let conn = unsafe {
            libc::accept4(
                fd,
                (&mut storage as *mut libc::sockaddr_storage).cast(),
                &mut len,
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            )
        };
        if conn < 0 {
            break;
        }
        // SAFETY: accept4 returned a fresh descriptor that nothing else owns.
        let stream = unsafe { std::net::TcpStream::from_raw_fd(conn) };
        match stream.peer_addr() {
            Ok(peer) => out.push((stream, peer)),
            Err(_) => continue,
        }
    }
    out
}
