//! Shared helpers for the integration tests: a server on 127.0.0.1:0 and a raw-socket client.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use pinion_config::{IoDriver, Settings};
use pinion_server::{Router, ServerHandle};
use socket2::{Domain, Socket, Type};

/// The drivers this machine can run: epoll always, io_uring when the kernel allows it.
pub fn drivers() -> Vec<IoDriver> {
    let mut out = vec![IoDriver::Epoll];
    if pinion_server::Driver::resolve(IoDriver::IoUring).is_ok() {
        out.push(IoDriver::IoUring);
    }
    out
}

/// Settings for a test server: loopback, a free port, one thread unless said otherwise.
pub fn settings(driver: IoDriver) -> Settings {
    Settings {
        bind: "127.0.0.1".parse().expect("loopback"),
        port: 0,
        threads: Some(1),
        io_driver: driver,
        ..Settings::default()
    }
}

/// A running test server, shut down and joined on drop.
pub struct TestServer {
    handle: Option<ServerHandle>,
    pub addr: SocketAddr,
}

impl TestServer {
    pub fn start<S: 'static>(
        settings: &Settings,
        factory: impl Fn(usize) -> (Router<S>, S) + Send + Sync + 'static,
    ) -> TestServer {
        let handle = pinion_server::start(settings, factory).expect("server starts");
        let addr = handle.local_addr();
        TestServer {
            handle: Some(handle),
            addr,
        }
    }

    pub fn handle(&self) -> &ServerHandle {
        self.handle.as_ref().expect("running")
    }

    /// Shuts down and waits for the workers.
    pub fn stop(mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown();
            h.join().expect("workers exit cleanly");
        }
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown();
            let _ = h.join();
        }
    }
}

/// One parsed response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A blocking client over a raw socket, with a read timeout so that no test can hang.
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 16384];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return n;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => panic!("read failed: {e}"),
            }
        }
    }

    /// Reads one response (Content-Length framed; no body for HEAD when `head` is set).
    pub fn response_to(&mut self, head: bool) -> Resp {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head_text = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                let mut lines = head_text.split("\r\n");
                let status_line = lines.next().expect("status line");
                let status: u16 = status_line
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
                let headers: Vec<(String, String)> = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
                    .collect();
                let chunked = headers.iter().any(|(n, v)| {
                    n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
                });
                if chunked && !head {
                    self.buf.drain(..end + 4);
                    let body = self.chunked_body();
                    return Resp {
                        status,
                        headers,
                        body,
                    };
                }
                let len: usize = if head || status == 100 || status == 204 || status == 304 {
                    0
                } else {
                    headers
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                        .map(|(_, v)| v.parse().expect("numeric content-length"))
                        .expect("content-length present")
                };
                while self.buf.len() < end + 4 + len {
                    assert!(self.fill() > 0, "connection closed inside a response body");
                }
                let body = self.buf[end + 4..end + 4 + len].to_vec();
                self.buf.drain(..end + 4 + len);
                return Resp {
                    status,
                    headers,
                    body,
                };
            }
            assert!(
                self.fill() > 0,
                "connection closed before a response: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        }
    }

    /// Reads a chunked body off the front of the buffer, up to and with its last chunk.
    fn chunked_body(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = find(&self.buf, b"\r\n") {
                    break i;
                }
                assert!(self.fill() > 0, "connection closed inside a chunked body");
            };
            let size_text = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.trim(), 16)
                .unwrap_or_else(|_| panic!("bad chunk size {size_text:?}"));
            while self.buf.len() < line_end + 2 + size + 2 {
                assert!(self.fill() > 0, "connection closed inside a chunk");
            }
            let start = line_end + 2;
            if size == 0 {
                assert_eq!(&self.buf[start..start + 2], b"\r\n", "no trailers expected");
                self.buf.drain(..start + 2);
                return body;
            }
            body.extend_from_slice(&self.buf[start..start + size]);
            assert_eq!(&self.buf[start + size..start + size + 2], b"\r\n");
            self.buf.drain(..start + size + 2);
        }
    }

    /// Reads until the server's next `\n\n` (the end of an event) and returns the bytes up
    /// to it, taken as raw text (chunk framing included).
    pub fn until(&mut self, needle: &[u8]) -> String {
        loop {
            if let Some(i) = find(&self.buf, needle) {
                let text = String::from_utf8_lossy(&self.buf[..i + needle.len()]).into_owned();
                self.buf.drain(..i + needle.len());
                return text;
            }
            assert!(
                self.fill() > 0,
                "connection closed before {:?}: {:?}",
                String::from_utf8_lossy(needle),
                String::from_utf8_lossy(&self.buf)
            );
        }
    }

    /// Reads everything until the server closes.
    pub fn rest(&mut self) -> Vec<u8> {
        loop {
            let mut chunk = [0u8; 16384];
            match self.stream.read(&mut chunk) {
                Ok(0) => return std::mem::take(&mut self.buf),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => panic!("read failed: {e}"),
            }
        }
    }

    pub fn response(&mut self) -> Resp {
        self.response_to(false)
    }

    /// Waits up to `limit` for a byte from the server; `None` when nothing came in time.
    pub fn byte_within(&mut self, limit: Duration) -> Option<std::io::Result<usize>> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.stream.set_read_timeout(Some(left)).expect("timeout");
            let mut b = [0u8; 1];
            let got = self.stream.read(&mut b);
            self.stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            match got {
                Ok(n) => {
                    self.buf.extend_from_slice(&b[..n]);
                    return Some(Ok(n));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return None
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }

    /// Whether the server closed the connection (EOF with nothing left unread).
    pub fn is_closed(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut b = [0u8; 1024];
            match self.stream.read(&mut b) {
                Ok(0) => return self.buf.is_empty(),
                Ok(n) => self.buf.extend_from_slice(&b[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
            if Instant::now() > deadline {
                return false;
            }
        }
    }

    /// `GET path` with a Host header, keep-alive.
    pub fn get(&mut self, path: &str) -> Resp {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
        self.response()
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A client whose receive buffer is 4 KiB, so that the server's writes stall as soon as the
/// kernel's buffers on both sides are full.
pub fn tiny_window_client(addr: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket.connect(&addr.into()).expect("connect");
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
}

/// A loopback port nothing listens on (the kernel may hand it out again later).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
