//! A 50 MiB streamed response read slowly: backpressure holds the producer, so the server's
//! memory does not grow with the body. A test binary of its own, so that the process's
//! resident memory is this test's.

mod common;

use std::io::Read;
use std::time::Duration;

use common::{drivers, settings, TestServer};
use pinion_server::stream;
use pinion_server::{header::HeaderValue, Response, Router};

const CHUNK: usize = 64 * 1024;
const CHUNKS: usize = 800; // 50 MiB

/// This process's resident memory in bytes.
fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line");
    kib * 1024
}

async fn download() -> Response {
    let (mut tx, body) = stream::channel(4);
    monoio::spawn(async move {
        for i in 0..CHUNKS {
            // Each chunk is made when the connection is ready for it, as a generated export
            // would be.
            if tx.send(vec![(i % 251) as u8; CHUNK]).await.is_err() {
                return;
            }
        }
    });
    Response::stream(HeaderValue::from_static("application/octet-stream"), body)
}

/// Reads a chunked body off `stream` a little at a time, checking every byte, and returns
/// the largest resident memory seen while reading.
fn read_slowly(stream: &mut std::net::TcpStream, mut pending: Vec<u8>) -> (usize, usize) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut peak = 0;
    let mut body = 0usize;
    let mut reads = 0usize;
    // Bytes left in the current chunk's data; when zero, a size line is next (after the
    // CRLF that ends the previous chunk's data, except before the first).
    let mut left = 0usize;
    let mut first = true;
    loop {
        loop {
            if left > 0 {
                let take = left.min(pending.len());
                for (k, b) in pending[..take].iter().enumerate() {
                    let i = (body + k) / CHUNK;
                    assert_eq!(*b, (i % 251) as u8, "byte {} of the body", body + k);
                }
                body += take;
                left -= take;
                pending.drain(..take);
                if pending.is_empty() {
                    break;
                }
                continue;
            }
            let skip = if first { 0 } else { 2 };
            if pending.len() < skip {
                break;
            }
            let Some(end) = pending[skip..].windows(2).position(|w| w == b"\r\n") else {
                break;
            };
            if skip == 2 {
                assert_eq!(&pending[..2], b"\r\n", "data ends with CRLF");
            }
            let size_text = std::str::from_utf8(&pending[skip..skip + end]).expect("size");
            let size = usize::from_str_radix(size_text, 16).expect("hex size");
            pending.drain(..skip + end + 2);
            first = false;
            if size == 0 {
                return (body, peak);
            }
            left = size;
        }
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("read failed after {body} bytes: {e}"),
        };
        assert!(n > 0, "the stream ended after {body} bytes");
        pending.extend_from_slice(&buf[..n]);
        reads += 1;
        if reads.is_multiple_of(16) {
            peak = peak.max(rss());
        }
        // The client's pace: 16 KiB a millisecond at most, far slower than the producer.
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_slowly_read_50_mib_stream_keeps_the_server_s_memory_flat() {
    for d in drivers() {
        let server = TestServer::start(&settings(d), |_| {
            (Router::new().get("/download", download), ())
        });
        let mut stream = std::net::TcpStream::connect(server.addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        use std::io::Write;
        stream
            .write_all(b"GET /download HTTP/1.1\r\nHost: t\r\n\r\n")
            .expect("request");
        // The head, then a baseline taken once the stream runs.
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(stream.read(&mut byte).expect("head"), 1);
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        assert!(head.contains("Transfer-Encoding: chunked"), "{head}");
        let before = rss();
        let (body, peak) = read_slowly(&mut stream, Vec::new());
        assert_eq!(body, CHUNK * CHUNKS, "{d:?}: the whole body");
        let grew = peak.saturating_sub(before);
        assert!(
            grew < 2 * 1024 * 1024,
            "{d:?}: resident memory grew by {grew} bytes while streaming 50 MiB"
        );
        server.stop();
    }
}
