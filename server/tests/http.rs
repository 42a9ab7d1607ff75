//! Integration tests over real sockets on 127.0.0.1:0, under every driver the machine has.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{drivers, settings, tiny_window_client, Client, TestServer};
use pinion_config::Settings;
use pinion_server::{header::HeaderValue, Ctx, Error, Request, Response, Router};

async fn hello(_req: Request, _ctx: &Ctx<()>) -> Result<Response, Error> {
    Ok(Response::text("hello"))
}

async fn number(req: Request, _ctx: &Ctx<()>) -> Result<Response, Error> {
    Ok(Response::text(req.param("i").unwrap_or("?").to_string()))
}

async fn echo(req: Request, _ctx: &Ctx<()>) -> Result<Response, Error> {
    let ct = req
        .header("content-type")
        .and_then(|v| HeaderValue::from_bytes(v).ok())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    Ok(Response::with_body(ct, req.into_body()))
}

async fn slow(_req: Request, _ctx: &Ctx<()>) -> Result<Response, Error> {
    monoio::time::sleep(Duration::from_millis(600)).await;
    Ok(Response::text("slow done"))
}

async fn fail(_req: Request, _ctx: &Ctx<()>) -> Result<Response, Error> {
    Err(Error::internal("database password is hunter2"))
}

fn app() -> Router<()> {
    Router::new()
        .get("/hello", hello)
        .get("/n/{i}", number)
        .any("/echo", echo)
        .post("/post-only", hello)
        .get("/slow", slow)
        .get("/fail", fail)
}

fn start(s: &Settings) -> TestServer {
    TestServer::start(s, |_| (app(), ()))
}

#[test]
fn keep_alive_reuses_the_connection() {
    for d in drivers() {
        let server = start(&settings(d));
        let mut c = server.connect();
        for _ in 0..3 {
            let r = c.get("/hello");
            assert_eq!(r.status, 200, "{d:?}");
            assert_eq!(r.text(), "hello");
            assert_eq!(r.header("connection"), None);
            assert_eq!(r.header("server"), Some("pinion"));
            assert_eq!(r.header("date").map(str::len), Some(29));
        }
        server.stop();
    }
}

#[test]
fn http10_closes_unless_keep_alive_is_asked() {
    for d in drivers() {
        let server = start(&settings(d));
        let mut c = server.connect();
        c.send(b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let r = c.response();
        assert_eq!(r.header("connection"), Some("keep-alive"));
        c.send(b"GET /hello HTTP/1.0\r\n\r\n");
        let r = c.response();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("connection"), Some("close"));
        assert!(c.is_closed(), "{d:?}");
        server.stop();
    }
}

#[test]
fn connection_close_is_honoured() {
    for d in drivers() {
        let server = start(&settings(d));
        let mut c = server.connect();
        c.send(b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let r = c.response();
        assert_eq!(r.header("connection"), Some("close"));
        assert!(c.is_closed());
        drop(c);
        server.stop();
    }
}

#[test]
fn hundred_pipelined_requests_answered_in_order() {
    for d in drivers() {
        let server = start(&settings(d));
        let mut c = server.connect();
        let mut batch = Vec::new();
        for i in 0..100 {
            batch.extend_from_slice(format!("GET /n/{i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        }
        c.send(&batch);
        for i in 0..100 {
            let r = c.response();
            assert_eq!(r.status, 200);
            assert_eq!(r.text(), i.to_string(), "{d:?}: response {i} out of order");
        }
        server.stop();
    }
}

#[test]
fn content_length_and_chunked_bodies_are_echoed() {
    for d in drivers() {
        let server = start(&settings(d));
        let mut c = server.connect();
        c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: text/x-test\r\nContent-Length: 5\r\n\r\nhello");
        let r = c.response();
        assert_eq!((r.status, r.text().as_str()), (200, "hello"));
        assert_eq!(r.header("content-type"), Some("text/x-test"));
        c.send(b"PUT /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n");
        let r = c.response();
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "hello, world"),
            "{d:?}"
        );
        // The connection is still usable.
        assert_eq!(c.get("/hello").status, 200);
        server.stop();
    }
}

#[test]
fn chunked_body_sent_slowly_in_pieces() {
    for d in drivers() {
        let server = start(&settings(d));
        let mut c = server.connect();
        let msg: &[u8] = b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        for piece in msg.chunks(7) {
            c.send(piece);
            std::thread::sleep(Duration::from_millis(5));
        }
        let r = c.response();
        assert_eq!(r.text(), "abc", "{d:?}");
        server.stop();
    }
}

#[test]
fn expect_100_continue_gets_an_interim_response() {
    for d in drivers() {
        let server = start(&settings(d));
        let mut c = server.connect();
        c.send(
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n",
        );
        let interim = c.response();
        assert_eq!(interim.status, 100, "{d:?}");
        c.send(b"ping");
        let r = c.response();
        assert_eq!((r.status, r.text().as_str()), (200, "ping"));
        server.stop();
    }
}

#[test]
fn head_has_the_get_headers_and_no_body() {
    for d in drivers() {
        let server = start(&settings(d));
        let mut c = server.connect();
        c.send(b"HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n");
        let r = c.response_to(true);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-length"), Some("5"));
        // The next response must start right after the head: no body bytes in between.
        let r = c.get("/hello");
        assert_eq!(r.text(), "hello", "{d:?}");
        server.stop();
    }
}

#[test]
fn not_found_and_method_not_allowed() {
    for d in drivers() {
        let server = start(&settings(d));
        let mut c = server.connect();
        assert_eq!(c.get("/nope").status, 404);
        let r = c.get("/post-only");
        assert_eq!(r.status, 405);
        assert_eq!(r.header("allow"), Some("POST, OPTIONS"));
        c.send(b"OPTIONS /hello HTTP/1.1\r\nHost: t\r\n\r\n");
        let r = c.response();
        assert_eq!(r.status, 204);
        assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"));
        // A body sent to a 404 is drained, and the connection stays usable.
        c.send(b"POST /nope HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc");
        assert_eq!(c.response().status, 404);
        assert_eq!(c.get("/hello").status, 200, "{d:?}");
        server.stop();
    }
}

#[test]
fn internal_errors_do_not_leak() {
    for d in drivers() {
        let server = start(&settings(d));
        let mut c = server.connect();
        let r = c.get("/fail");
        assert_eq!(r.status, 500);
        assert!(!r.text().contains("hunter2"), "{}", r.text());
        server.stop();
    }
}

/// Sends `request`, expects `status` and then a closed connection.
fn rejected_and_closed(s: &Settings, request: &[u8], status: u16) {
    let server = start(s);
    let mut c = server.connect();
    c.send(request);
    let r = c.response();
    assert_eq!(r.status, status, "{:?}", String::from_utf8_lossy(request));
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.is_closed(), "connection left open after {status}");
    drop(c);
    server.stop();
}

#[test]
fn limits_answer_and_close() {
    for d in drivers() {
        let mut s = settings(d);
        s.max_body_size = 1024;
        s.max_uri_length = 256;
        s.max_head_size = 4096;
        s.max_headers = 10;
        // 413 before the body is read: Content-Length already says too much.
        rejected_and_closed(
            &s,
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n",
            413,
        );
        // 413 for a chunked body that grows past the limit.
        let mut big =
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..3 {
            big.extend_from_slice(b"200\r\n");
            big.extend_from_slice(&[b'x'; 512]);
            big.extend_from_slice(b"\r\n");
        }
        rejected_and_closed(&s, &big, 413);
        // 414.
        let long = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(300));
        rejected_and_closed(&s, long.as_bytes(), 414);
        // 431: head too large, and too many headers.
        let fat = format!(
            "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
            "b".repeat(5000)
        );
        rejected_and_closed(&s, fat.as_bytes(), 431);
        let mut many = b"GET / HTTP/1.1\r\nHost: t\r\n".to_vec();
        for i in 0..20 {
            many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        rejected_and_closed(&s, &many, 431);
    }
}

#[test]
fn slow_head_gets_408_and_close() {
    for d in drivers() {
        let mut s = settings(d);
        s.header_read_timeout = Duration::from_millis(300);
        let server = start(&s);
        let mut c = server.connect();
        c.send(b"GET /hello HTTP/1.1\r\nHo");
        let started = Instant::now();
        let r = c.response();
        assert_eq!(r.status, 408, "{d:?}");
        assert!(started.elapsed() >= Duration::from_millis(250));
        assert!(c.is_closed());
        drop(c);
        server.stop();
    }
}

#[test]
fn idle_keep_alive_connection_is_closed_after_the_timeout() {
    for d in drivers() {
        let mut s = settings(d);
        s.keepalive_timeout = Duration::from_millis(200);
        let server = start(&s);
        let mut c = server.connect();
        assert_eq!(c.get("/hello").status, 200);
        assert!(c.is_closed(), "{d:?}");
        server.stop();
    }
}

#[test]
fn smuggling_shapes_are_rejected_and_closed() {
    for d in drivers() {
        let s = settings(d);
        rejected_and_closed(&s, b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400);
        rejected_and_closed(
            &s,
            b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        );
        rejected_and_closed(
            &s,
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n",
            501,
        );
        rejected_and_closed(
            &s,
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            400,
        );
        rejected_and_closed(
            &s,
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n",
            400,
        );
        rejected_and_closed(&s, b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\r\nabc\r\n0\r\n\r\n", 400);
        rejected_and_closed(&s, b"GET /hello HTTP/1.1\r\n\r\n", 400);
        rejected_and_closed(
            &s,
            b"GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            400,
        );
        rejected_and_closed(&s, b"GET hello HTTP/1.1\r\nHost: a\r\n\r\n", 400);
        rejected_and_closed(&s, b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400);
        rejected_and_closed(&s, b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 501);
        rejected_and_closed(&s, b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505);
    }
}

#[test]
fn graceful_shutdown_finishes_the_request_in_flight() {
    for d in drivers() {
        let server = start(&settings(d));
        let addr = server.addr;
        let mut idle = server.connect();
        assert_eq!(idle.get("/hello").status, 200);
        let mut busy = server.connect();
        busy.send(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n");
        std::thread::sleep(Duration::from_millis(150));
        server.handle().shutdown();
        // The idle keep-alive connection is closed; new connections are refused.
        assert!(idle.is_closed(), "{d:?}: idle connection not closed");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match std::net::TcpStream::connect(addr) {
                Err(_) => break,
                Ok(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                Ok(_) => panic!("{d:?}: still accepting after shutdown"),
            }
        }
        // The request in flight still gets its answer, with Connection: close.
        let r = busy.response();
        assert_eq!((r.status, r.text().as_str()), (200, "slow done"));
        assert_eq!(r.header("connection"), Some("close"));
        assert!(busy.is_closed());
        server.stop();
    }
}

#[test]
fn workers_are_pinned_one_core_each() {
    let cores = core_count();
    for d in drivers() {
        let mut s = settings(d);
        s.threads = Some(cores);
        let server = start(&s);
        let mut seen = Vec::new();
        for entry in std::fs::read_dir("/proc/self/task").expect("procfs") {
            let path = entry.expect("task").path();
            let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
            if !comm.starts_with("pinion-worker") {
                continue;
            }
            let status = std::fs::read_to_string(path.join("status")).expect("status");
            let allowed = status
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .expect("Cpus_allowed_list")
                .trim()
                .to_string();
            assert!(
                allowed.parse::<usize>().is_ok(),
                "worker {comm:?} allowed on {allowed:?}, not one core"
            );
            seen.push(allowed);
        }
        seen.sort();
        seen.dedup();
        assert_eq!(
            seen.len(),
            cores,
            "{d:?}: each worker on its own core: {seen:?}"
        );
        server.stop();
    }
}

fn core_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[test]
fn many_clients_on_several_threads() {
    for d in drivers() {
        let mut s = settings(d);
        s.threads = Some(2);
        let server = start(&s);
        let addr = server.addr;
        let clients: Vec<_> = (0..8)
            .map(|_| {
                std::thread::spawn(move || {
                    let mut c = Client::connect(addr);
                    for i in 0..50 {
                        let r = c.get(&format!("/n/{i}"));
                        assert_eq!(r.text(), i.to_string());
                    }
                })
            })
            .collect();
        for c in clients {
            c.join().expect("client thread");
        }
        server.stop();
    }
}

#[test]
fn slow_body_gets_408_and_close() {
    for d in drivers() {
        let mut s = settings(d);
        s.body_read_timeout = Duration::from_millis(300);
        let server = start(&s);
        let mut c = server.connect();
        c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhal");
        let r = c.response();
        assert_eq!(r.status, 408, "{d:?}");
        assert_eq!(r.header("connection"), Some("close"));
        assert!(c.is_closed());
        drop(c);
        server.stop();
    }
}

#[test]
fn a_trickled_body_is_cut_off_at_one_deadline_for_the_whole_body() {
    for d in drivers() {
        let mut s = settings(d);
        s.body_read_timeout = Duration::from_millis(600);
        let server = start(&s);
        let mut c = server.connect();
        c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 20\r\n\r\n");
        // One byte, then up to 100 ms waiting for the answer, and again: each read comes well
        // within the timeout, the whole body (2 s) does not. The answer ends the trickle.
        let began = Instant::now();
        for _ in 0..20 {
            if c.stream.write_all(b"z").is_err()
                || c.byte_within(Duration::from_millis(100)).is_some()
            {
                break;
            }
        }
        let r = c.response();
        assert_eq!(r.status, 408, "{d:?}: {}", r.text());
        assert_eq!(r.header("connection"), Some("close"));
        assert!(began.elapsed() < Duration::from_millis(1800), "{d:?}");
        assert!(c.is_closed(), "{d:?}");
        server.stop();
    }
}

#[test]
fn accept_pauses_at_the_connection_cap() {
    for d in drivers() {
        let mut s = settings(d);
        s.max_connections_per_thread = 2;
        let server = start(&s);
        let mut a = server.connect();
        let mut b = server.connect();
        assert_eq!(a.get("/hello").status, 200);
        assert_eq!(b.get("/hello").status, 200);
        // The third connection completes in the kernel's backlog but is not served...
        let mut third = server.connect();
        third.send(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
        let waited = third.byte_within(Duration::from_millis(300));
        assert!(waited.is_none(), "{d:?}: served beyond the cap: {waited:?}");
        // ...until one of the first two closes.
        drop(a);
        assert_eq!(third.response().status, 200, "{d:?}");
        assert_eq!(b.get("/hello").status, 200);
        server.stop();
    }
}

#[test]
fn a_large_unwanted_body_still_gets_its_answer() {
    for d in drivers() {
        let mut s = settings(d);
        s.max_drain_size = 1024;
        let server = start(&s);
        let mut c = server.connect();
        let mut req = b"POST /nope HTTP/1.1\r\nHost: t\r\nContent-Length: 300000\r\n\r\n".to_vec();
        req.extend(std::iter::repeat_n(b'z', 300_000));
        // Write from another thread: the server answers before reading it all.
        let mut writer = c.stream.try_clone().expect("clone");
        let sender = std::thread::spawn(move || {
            let _ = std::io::Write::write_all(&mut writer, &req);
        });
        let r = c.response();
        assert_eq!(r.status, 404, "{d:?}");
        assert_eq!(r.header("connection"), Some("close"));
        let _ = sender.join();
        drop(c);
        server.stop();
    }
}

#[test]
fn a_connection_waiting_in_the_accept_queue_is_served_during_shutdown() {
    for d in drivers() {
        let mut s = settings(d);
        s.max_connections_per_thread = 1;
        let server = start(&s);
        // The only slot is busy with a slow request...
        let mut busy = server.connect();
        busy.send(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n");
        std::thread::sleep(Duration::from_millis(100));
        // ...so this connection waits in the listener's accept queue, its request sent.
        let mut queued = server.connect();
        queued.send(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
        std::thread::sleep(Duration::from_millis(100));
        server.handle().shutdown();
        // Closing the listener would reset it; it is accepted and answered instead.
        let r = queued.response();
        assert_eq!((r.status, r.text().as_str()), (200, "hello"), "{d:?}");
        assert_eq!(r.header("connection"), Some("close"));
        let r = busy.response();
        assert_eq!(r.status, 200);
        drop((busy, queued));
        server.stop();
    }
}

#[test]
fn a_slow_reader_that_keeps_reading_gets_its_whole_response() {
    for d in drivers() {
        let mut s = settings(d);
        s.write_timeout = Duration::from_millis(300);
        let server = TestServer::start(&s, |_| (app(), ()));
        let body = 1024 * 1024;
        let mut c = tiny_window_client(server.addr);
        let mut req = format!("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {body}\r\n\r\n")
            .into_bytes();
        req.resize(req.len() + body, b'y');
        c.write_all(&req).expect("send the request");
        // 32 KiB every 50 ms: the response takes several write timeouts in all, but no pause
        // is one, so it must arrive whole.
        let began = Instant::now();
        let mut got = Vec::new();
        let mut chunk = vec![0u8; 32 * 1024];
        let total = loop {
            if let Some(end) = common::find(&got, b"\r\n\r\n") {
                if got.len() >= end + 4 + body {
                    break end + 4 + body;
                }
            }
            // A signal another test of this binary delivers interrupts a blocking read: retry.
            let n = match c.read(&mut chunk) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => other.expect("read"),
            };
            assert!(n > 0, "{d:?}: closed after {} bytes", got.len());
            got.extend_from_slice(&chunk[..n]);
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"), "{d:?}");
        assert_eq!(got.len(), total, "{d:?}");
        assert!(got[total - body..].iter().all(|&b| b == b'y'), "{d:?}");
        let took = began.elapsed();
        assert!(took > Duration::from_millis(900), "{d:?}: read in {took:?}");
        server.stop();
    }
}
