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
}
