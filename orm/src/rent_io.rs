//! A PostgreSQL socket driven by monoio's own read and write operations (io_uring submissions
//! where the kernel allows them), presented to tokio-postgres as tokio's `AsyncRead` and
//! `AsyncWrite`.
//!
//! Through `into_poll_io()` every round trip cost a `write(2)`, a poll submission to learn that
//! the answer arrived, a `read(2)` for it and one more `read(2)` that said `EAGAIN`: four kernel
//! entries, only one of them batched with the ring's other work. Here a round trip is one write
//! and one read submission, both batched with the HTTP connections' submissions in the ring's
//! next `io_uring_enter`, and nothing is read until there is something to read.
//!
//! The socket is split into monoio's owned halves; an operation in flight owns its half and its
//! buffer (a boxed `'static` future), and gives both back when it completes. Reads land in an
//! owned buffer and are copied out to tokio-postgres's; writes are copied into an owned buffer,
//! sent in the background, and `poll_flush` waits for them. Dropping the stream with an
//! operation in flight is safe: monoio keeps the buffer until the kernel is done with it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use monoio::io::{AsyncReadRent, AsyncWriteRent, OwnedReadHalf, OwnedWriteHalf, Split, Splitable};
use tokio::io::ReadBuf;

/// Bytes asked of the kernel per read: PostgreSQL answers to pipelined statements fit.
const READ_SIZE: usize = 16 * 1024;

/// Bytes buffered for writing before `poll_write` waits for the write in flight.
const WRITE_LIMIT: usize = 64 * 1024;

/// A read in flight: it owns the read half and the buffer, and gives both back.
type ReadOp<S> = Pin<Box<dyn Future<Output = (OwnedReadHalf<S>, io::Result<usize>, Vec<u8>)>>>;

/// A write (or shutdown) in flight, likewise.
type WriteOp<S> = Pin<Box<dyn Future<Output = (OwnedWriteHalf<S>, io::Result<usize>, Vec<u8>)>>>;

/// A monoio stream as tokio's `AsyncRead + AsyncWrite` (see the module documentation).
pub(crate) struct RentIo<S: AsyncWriteRent> {
    reader: Option<OwnedReadHalf<S>>,
    read_op: Option<ReadOp<S>>,
    /// Bytes read and not yet handed out: `read_buf[read_pos..]`.
    read_buf: Vec<u8>,
    read_pos: usize,
    writer: Option<OwnedWriteHalf<S>>,
    write_op: Option<WriteOp<S>>,
    /// Bytes accepted by `poll_write` and not yet in a write.
    pending: Vec<u8>,
    /// A buffer to send the next write from (the last write's, emptied).
    spare: Vec<u8>,
    /// Whether the write in flight is the shutdown.
    shutting_down: bool,
}

impl<S> RentIo<S>
where
    S: Split + AsyncReadRent + AsyncWriteRent + 'static,
{
    /// Wraps a connected stream.
    pub(crate) fn new(stream: S) -> RentIo<S> {
        let (reader, writer) = stream.into_split();
        RentIo {
            reader: Some(reader),
            read_op: None,
            read_buf: Vec::with_capacity(READ_SIZE),
            read_pos: 0,
            writer: Some(writer),
            write_op: None,
            pending: Vec::new(),
            spare: Vec::new(),
            shutting_down: false,
        }
    }

    /// Drives the write in flight to completion: `Ready(Ok)` once no write is in flight.
    fn poll_write_op(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(op) = self.write_op.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let (writer, result, mut buf) = match op.as_mut().poll(cx) {
            Poll::Ready(done) => done,
            Poll::Pending => return Poll::Pending,
        };
        self.write_op = None;
        self.writer = Some(writer);
        if self.shutting_down {
            return Poll::Ready(result.map(|_| ()));
        }
        match result {
            Ok(0) if !buf.is_empty() => Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            Ok(n) => {
                // A short write: what is left goes before anything accepted since.
                buf.drain(..n);
                if !buf.is_empty() {
                    buf.extend_from_slice(&self.pending);
                    self.pending.clear();
                    std::mem::swap(&mut self.pending, &mut buf);
                }
                buf.clear();
                self.spare = buf;
                Poll::Ready(Ok(()))
            }
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// Starts writing `pending`, if there is anything and no write is in flight.
    fn start_write(&mut self) {
        if self.write_op.is_some() || self.pending.is_empty() {
            return;
        }
        let Some(mut writer) = self.writer.take() else {
            return;
        };
        let buf = std::mem::replace(&mut self.pending, std::mem::take(&mut self.spare));
        self.write_op = Some(Box::pin(async move {
            let (result, buf) = writer.write(buf).await;
            (writer, result, buf)
        }));
    }
}

impl<S> tokio::io::AsyncRead for RentIo<S>
where
    S: Split + AsyncReadRent + AsyncWriteRent + 'static,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.read_pos < this.read_buf.len() {
                let ready = &this.read_buf[this.read_pos..];
                let n = ready.len().min(out.remaining());
                out.put_slice(&ready[..n]);
                this.read_pos += n;
                return Poll::Ready(Ok(()));
            }
            let op = match this.read_op.as_mut() {
                Some(op) => op,
                None => {
                    let Some(mut reader) = this.reader.take() else {
                        return Poll::Ready(Err(io::ErrorKind::NotConnected.into()));
                    };
                    let mut buf = std::mem::take(&mut this.read_buf);
                    buf.clear();
                    if buf.capacity() < READ_SIZE {
                        buf.reserve(READ_SIZE);
                    }
                    this.read_op.insert(Box::pin(async move {
                        let (result, buf) = reader.read(buf).await;
                        (reader, result, buf)
                    }))
                }
            };
            let (reader, result, buf) = match op.as_mut().poll(cx) {
                Poll::Ready(done) => done,
                Poll::Pending => return Poll::Pending,
            };
            this.read_op = None;
            this.reader = Some(reader);
            this.read_buf = buf;
            this.read_pos = 0;
            match result {
                // End of stream: nothing put in `out` says so.
                Ok(0) => return Poll::Ready(Ok(())),
                Ok(_) => {}
                Err(e) => {
                    this.read_buf.clear();
                    return Poll::Ready(Err(e));
                }
            }
        }
    }
}

impl<S> tokio::io::AsyncWrite for RentIo<S>
where
    S: Split + AsyncReadRent + AsyncWriteRent + 'static,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.pending.len() >= WRITE_LIMIT {
            // Enough queued: wait for the write in flight, then send what waits.
            if let Poll::Ready(done) = this.poll_write_op(cx) {
                done?;
            }
            this.start_write();
            if this.pending.len() >= WRITE_LIMIT {
                return Poll::Pending;
            }
        }
        this.pending.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match this.poll_write_op(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
            if this.pending.is_empty() {
                return Poll::Ready(Ok(()));
            }
            this.start_write();
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.shutting_down {
            match self.as_mut().poll_flush(cx) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
            let this = self.as_mut().get_mut();
            let Some(mut writer) = this.writer.take() else {
                return Poll::Ready(Ok(()));
            };
            this.shutting_down = true;
            this.write_op = Some(Box::pin(async move {
                let result = writer.shutdown().await.map(|()| 0);
                (writer, result, Vec::new())
            }));
        }
        self.get_mut().poll_write_op(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Runs `f` under io_uring (when this kernel allows it) and under epoll.
    fn on_both_drivers<F: Future<Output = ()>>(f: impl Fn() -> F) {
        if monoio::utils::detect_uring() {
            monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
                .enable_timer()
                .build()
                .expect("io_uring runtime")
                .block_on(f());
        }
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("epoll runtime")
            .block_on(f());
    }

    /// An echo peer on loopback: every byte it gets comes back.
    fn echo_peer() -> std::net::SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                let mut copy = s.try_clone().expect("clone");
                let _ = std::io::copy(&mut s, &mut copy);
            }
        });
        addr
    }

    #[test]
    fn bytes_written_come_back_whole_and_in_order_through_small_and_large_reads() {
        on_both_drivers(|| async {
            let addr = echo_peer();
            let stream = monoio::net::TcpStream::connect_addr(addr)
                .await
                .expect("connect");
            let mut io = RentIo::new(stream);
            // More than the write limit and the read size, in uneven pieces.
            let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
            let mut got = Vec::new();
            let mut sent = 0;
            let mut small = [0u8; 7];
            while got.len() < data.len() {
                if sent < data.len() {
                    let end = (sent + 10_007).min(data.len());
                    io.write_all(&data[sent..end]).await.expect("write");
                    io.flush().await.expect("flush");
                    sent = end;
                }
                // Alternate tiny reads (the buffered rest is handed out later) and big ones.
                let n = if got.len() % 2 == 0 {
                    io.read(&mut small).await.expect("read")
                } else {
                    let mut big = vec![0u8; 20_000];
                    let n = io.read(&mut big).await.expect("read");
                    got.extend_from_slice(&big[..n]);
                    continue;
                };
                assert!(n > 0, "the peer does not close first");
                got.extend_from_slice(&small[..n]);
            }
            assert_eq!(got, data);
            io.shutdown().await.expect("shutdown");
            // The peer sees the end of the stream and closes: we read the end too.
            let mut rest = Vec::new();
            io.read_to_end(&mut rest).await.expect("read to end");
            assert!(rest.is_empty());
        });
    }

    #[test]
    fn a_closed_peer_reads_as_the_end_of_the_stream() {
        on_both_drivers(|| async {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("addr");
            let peer = std::thread::spawn(move || {
                let (mut s, _) = listener.accept().expect("accept");
                std::io::Write::write_all(&mut s, b"bye").expect("write");
            });
            let stream = monoio::net::TcpStream::connect_addr(addr)
                .await
                .expect("connect");
            let mut io = RentIo::new(stream);
            let mut all = Vec::new();
            io.read_to_end(&mut all).await.expect("read");
            assert_eq!(all, b"bye");
            peer.join().expect("peer");
        });
    }
}
