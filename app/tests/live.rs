//! `GET /worlds/live` on the real binary: a write through `POST /worlds/{id}` reaches every
//! open event stream on every worker thread, and SIGTERM with streams open exits 0 within
//! `drain_timeout`.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{database_env, request, serve, serve_threads};

/// An open event stream: its socket, after the response head was read.
struct Stream {
    socket: TcpStream,
    seen: Vec<u8>,
}

impl Stream {
    /// Opens `/worlds/live` and reads the head: once it arrived, the stream is subscribed.
    fn open(addr: SocketAddr) -> Stream {
        let mut socket = TcpStream::connect(addr).expect("connect");
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        socket
            .write_all(b"GET /worlds/live HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n")
            .expect("write");
        let mut stream = Stream {
            socket,
            seen: Vec::new(),
        };
        let head = stream.until("\r\n\r\n").to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
        for field in [
            "content-type: text/event-stream",
            "transfer-encoding: chunked",
            "cache-control: no-cache",
            "x-accel-buffering: no",
        ] {
            assert!(head.contains(&format!("\r\n{field}\r\n")), "{head}");
        }
        stream
    }

    /// Reads until `needle` has arrived; returns everything read so far.
    fn until(&mut self, needle: &str) -> String {
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&self.seen).contains(needle) {
            match self.socket.read(&mut buf) {
                Ok(0) => panic!(
                    "closed before {needle:?}: {}",
                    String::from_utf8_lossy(&self.seen)
                ),
                Ok(n) => self.seen.extend_from_slice(&buf[..n]),
                Err(e) => panic!("read: {e}; so far {}", String::from_utf8_lossy(&self.seen)),
            }
        }
        String::from_utf8_lossy(&self.seen).into_owned()
    }

    /// Reads until the server closes the connection; returns the bytes after what was seen.
    fn read_to_close(&mut self) -> String {
        let start = self.seen.len();
        self.socket
            .read_to_end(&mut self.seen)
            .expect("read to the end");
        String::from_utf8_lossy(&self.seen[start..]).into_owned()
    }
}

#[test]
fn a_write_reaches_every_stream_on_every_worker() {
    // No wait for readiness: the write below waits for the primary's connection itself.
    let server = serve_threads(2, database_env());
    // The kernel spreads connections over both workers' listeners.
    let mut streams: Vec<Stream> = (0..8).map(|_| Stream::open(server.addr)).collect();
    let (status, _, body) = request(
        server.addr,
        "POST /worlds/42?randomNumber=4242 HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 303, "{body}");
    for stream in &mut streams {
        let seen = stream.until("}\n\n");
        let event = seen.split("\r\n\r\n").nth(1).expect("after the head");
        // The stream opens with an empty comment, then the event.
        assert!(event.starts_with("3\r\n:\n\n"), "{event}");
        assert!(event.contains("event: world\nid: 42\n"), "{event}");
        assert!(
            event.contains("data: {\"id\":42,\"randomNumber\":4242}\n\n"),
            "{event}"
        );
    }
}

#[test]
fn sigterm_with_open_event_streams_exits_zero_within_drain_timeout() {
    let drain = Duration::from_secs(5);
    let mut server = serve([("PINION_DRAIN_TIMEOUT", "5s")]);
    let mut streams: Vec<Stream> = (0..3).map(|_| Stream::open(server.addr)).collect();
    let signalled = Instant::now();
    // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
    let rc = unsafe { libc::kill(server.child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
    for stream in &mut streams {
        // Each stream ends cleanly: the last chunk, then the connection closes.
        let rest = stream.read_to_close();
        assert!(rest.ends_with("0\r\n\r\n"), "{rest:?}");
    }
    // Its last log line says it is done; the exit follows at once.
    let done = server.wait_for_logs(&["stopped"], 1);
    assert_eq!(done.len(), 1, "no \"stopped\" line after SIGTERM");
    let status = server.child.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
    assert!(
        signalled.elapsed() < drain,
        "took {:?}",
        signalled.elapsed()
    );
}
