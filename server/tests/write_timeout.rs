//! Clients that stop reading: `write_timeout` closes their connections and frees the responses
//! they held. A test binary of its own, so that the process's resident memory is this test's.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{drivers, settings, tiny_window_client, Client, TestServer};
use pinion_server::{header::HeaderValue, Ctx, Error, Request, Response, Router};

async fn echo(req: Request, _ctx: &Ctx<()>) -> Result<Response, Error> {
    Ok(Response::with_body(
        HeaderValue::from_static("application/octet-stream"),
        req.into_body(),
    ))
}

async fn hello(_req: Request, _ctx: &Ctx<()>) -> Result<Response, Error> {
    Ok(Response::text("hello"))
}

const BODY: usize = 8 * 1024 * 1024;
const STALLED: usize = 3;

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

/// Waits up to `limit` for `cond` on the resident memory; returns the last reading.
fn rss_until(limit: Duration, cond: impl Fn(usize) -> bool) -> (bool, usize) {
    let deadline = Instant::now() + limit;
    loop {
        let now = rss();
        if cond(now) || Instant::now() > deadline {
            return (cond(now), now);
        }
        std::thread::yield_now();
    }
}

#[test]
fn clients_that_never_read_are_cut_off_and_their_responses_freed() {
    // Large buffers straight from mmap and back: what the server frees leaves the process at
    // once, so resident memory shows it (glibc would otherwise keep it for reuse).
    // SAFETY: mallopt only changes the allocator's tuning; called before any server runs.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
    for d in drivers() {
        let mut s = settings(d);
        s.max_connections_per_thread = STALLED;
        s.write_timeout = Duration::from_secs(1);
        let server = TestServer::start(&s, |_| {
            (Router::new().post("/echo", echo).get("/hello", hello), ())
        });
        let mut head = format!("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {BODY}\r\n\r\n")
            .into_bytes();
        head.resize(head.len() + BODY, b'x');
        let before = rss();
        let mut stalled: Vec<TcpStream> = (0..STALLED)
            .map(|_| {
                let mut c = tiny_window_client(server.addr);
                c.write_all(&head).expect("send the request");
                c
            })
            .collect();
        // Each stalled connection holds its 8 MiB response while its write waits.
        let (held, peak) = rss_until(Duration::from_secs(10), |r| {
            r >= before + STALLED * BODY * 3 / 4
        });
        assert!(
            held,
            "{d:?}: the responses were never built: {before} -> {peak}"
        );

        // Every slot is taken: a new client waits until write_timeout frees one.
        let mut waiting = Client::connect(server.addr);
        let r = waiting.get("/hello");
        assert_eq!((r.status, r.text().as_str()), (200, "hello"), "{d:?}");

        let (freed, after) = rss_until(Duration::from_secs(10), |r| r < before + BODY / 2);
        assert!(
            freed,
            "{d:?}: memory not returned: {before} -> {peak} -> {after}"
        );
        // Each stalled client got a reset or an end before its whole response.
        for c in &mut stalled {
            let mut got = 0;
            let mut chunk = [0u8; 65536];
            loop {
                match c.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => panic!("{d:?}: stalled client: {e}"),
                }
            }
            assert!(
                got < BODY,
                "{d:?}: the whole response arrived ({got} bytes)"
            );
        }
        server.stop();
    }
}
