//! What a connection runs over: a TCP stream in production, memory in the test client.
//!
//! Only the operations the connection loop uses, on the buffer types it uses, so that the loop
//! is the same code for both and monomorphises to direct calls on a socket.

use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use bytes::BytesMut;
use monoio::buf::{Slice, SliceMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;
use monoio::BufResult;

/// A byte stream to a client.
pub(crate) trait Transport: 'static {
    /// Reads into the slice's spare room (monoio's owned-buffer read).
    fn read(
        &mut self,
        buf: SliceMut<BytesMut>,
    ) -> impl Future<Output = BufResult<usize, SliceMut<BytesMut>>>;

    /// Writes some of the slice.
    fn write(
        &mut self,
        buf: Slice<BytesMut>,
    ) -> impl Future<Output = BufResult<usize, Slice<BytesMut>>>;

    /// Closes the sending side, so that the client sees the end of the last response.
    fn shutdown(&mut self) -> impl Future<Output = io::Result<()>>;

    /// Makes the close that follows a reset (SO_LINGER 0).
    fn reset_on_close(&self) -> io::Result<()>;

    /// Resolves when the peer closes or sends something; never, where that cannot be seen.
    fn peer_event(&self) -> impl Future<Output = PeerEvent>;
}

impl Transport for TcpStream {
    #[inline]
    fn read(
        &mut self,
        buf: SliceMut<BytesMut>,
    ) -> impl Future<Output = BufResult<usize, SliceMut<BytesMut>>> {
        AsyncReadRent::read(self, buf)
    }

    #[inline]
    fn write(
        &mut self,
        buf: Slice<BytesMut>,
    ) -> impl Future<Output = BufResult<usize, Slice<BytesMut>>> {
        AsyncWriteRent::write(self, buf)
    }

    fn shutdown(&mut self) -> impl Future<Output = io::Result<()>> {
        AsyncWriteRent::shutdown(self)
    }

    fn reset_on_close(&self) -> io::Result<()> {
        // SAFETY: the descriptor is the stream's, open for as long as `self` lives, which
        // outlives this borrow.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.as_raw_fd()) };
        socket2::SockRef::from(&fd).set_linger(Some(Duration::ZERO))
    }

    fn peer_event(&self) -> impl Future<Output = PeerEvent> {
        tcp_peer_event(self)
    }
}

/// What a quiet client did, seen while a streamed response waits for its next chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PeerEvent {
    /// It closed (or reset) the connection: the stream should end.
    Gone,
    /// It sent bytes (a pipelined request), left unread for the connection loop.
    Sent,
}

/// Waits until the peer of `stream` closes or sends something, without reading it.
pub(crate) async fn tcp_peer_event(stream: &TcpStream) -> PeerEvent {
    loop {
        if stream.readable(false).await.is_err() {
            return PeerEvent::Gone;
        }
        let mut byte = 0u8;
        // SAFETY: a one-byte peek into a local the call does not outlive; the descriptor is
        // the stream's, open while `stream` is borrowed.
        let n = unsafe {
            libc::recv(
                stream.as_raw_fd(),
                (&mut byte as *mut u8).cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        match n {
            0 => return PeerEvent::Gone,
            n if n > 0 => return PeerEvent::Sent,
            _ => match io::Error::last_os_error().kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => continue,
                _ => return PeerEvent::Gone,
            },
        }
    }
}
