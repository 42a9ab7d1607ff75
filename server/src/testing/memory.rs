//! The test client's transport: the request bytes in, the response bytes out, in memory.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::rc::Rc;

use bytes::{Buf, Bytes, BytesMut};
use monoio::buf::{IoBuf, IoBufMut, Slice, SliceMut};
use monoio::BufResult;

use crate::connection::{PeerEvent, Transport};

/// Reads hand out `input`, then end of stream; writes append to `output`.
pub(crate) struct Memory {
    input: Bytes,
    output: Rc<RefCell<BytesMut>>,
}

impl Memory {
    /// A transport that delivers `input` and collects what is written into `output`.
    pub(crate) fn new(input: Bytes, output: Rc<RefCell<BytesMut>>) -> Memory {
        Memory { input, output }
    }
}

impl Transport for Memory {
    fn read(
        &mut self,
        mut buf: SliceMut<BytesMut>,
    ) -> impl Future<Output = BufResult<usize, SliceMut<BytesMut>>> {
        let n = self.input.len().min(buf.bytes_total());
        // SAFETY: `write_ptr` points at `bytes_total` writable bytes and `n` is no more than
        // that; exactly `n` bytes are initialised before `set_init(n)`.
        unsafe {
            std::ptr::copy_nonoverlapping(self.input.as_ptr(), buf.write_ptr(), n);
            buf.set_init(n);
        }
        self.input.advance(n);
        std::future::ready((Ok(n), buf))
    }

    fn write(
        &mut self,
        buf: Slice<BytesMut>,
    ) -> impl Future<Output = BufResult<usize, Slice<BytesMut>>> {
        // SAFETY: `read_ptr` points at `bytes_init` initialised bytes owned by `buf`, which
        // lives across this borrow.
        let data = unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) };
        self.output.borrow_mut().extend_from_slice(data);
        let n = data.len();
        std::future::ready((Ok(n), buf))
    }

    fn shutdown(&mut self) -> impl Future<Output = io::Result<()>> {
        std::future::ready(Ok(()))
    }

    fn reset_on_close(&self) -> io::Result<()> {
        Ok(())
    }

    /// The test client has sent everything and waits for the whole answer: it never leaves.
    fn peer_event(&self) -> impl Future<Output = PeerEvent> {
        std::future::pending()
    }
}
