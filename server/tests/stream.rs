//! Streamed responses over real sockets: chunked framing, HEAD, HTTP/1.0, pipelining after a
//! stream, a producer that fails, and a client that leaves (the producer sees it).

mod common;

use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use common::{drivers, settings, TestServer};
use pinion_server::extract::Query;
use pinion_server::stream::{self, BoxError};
use pinion_server::testing::{block_on, TestClient};
use pinion_server::{header::HeaderValue, Response, Router};
use serde::Deserialize;

#[derive(Deserialize)]
struct Count {
    n: u32,
    #[serde(default)]
    fail_after: Option<u32>,
}

/// `n` numbered lines from a task through a channel; optionally failing after some.
async fn lines(Query(c): Query<Count>) -> Response {
    let (mut tx, body) = stream::channel(2);
    monoio::spawn(async move {
        for i in 0..c.n {
            if c.fail_after == Some(i) {
                tx.fail("the export broke").await;
                return;
            }
            if tx.send(format!("line {i}\n")).await.is_err() {
                return;
            }
        }
    });
    Response::stream(HeaderValue::from_static("text/plain"), body)
}

/// A stream made of a `Stream` directly, with an empty chunk in the middle (skipped).
async fn direct() -> Response {
    let parts: Vec<Result<Bytes, BoxError>> = vec![
        Ok(Bytes::from_static(b"a")),
        Ok(Bytes::new()),
        Ok(Bytes::from_static(b"bc")),
    ];
    Response::stream(
        HeaderValue::from_static("text/plain"),
        futures_util::stream::iter(parts),
    )
}

async fn hello() -> &'static str {
    "hello"
}

fn app(left: Option<mpsc::Sender<u32>>) -> Router<()> {
    let forever = move || {
        let left = left.clone();
        async move {
            let (mut tx, body) = stream::channel(2);
            monoio::spawn(async move {
                let mut sent = 0;
                while tx.send(vec![b'x'; 16 * 1024]).await.is_ok() {
                    sent += 1;
                }
                if let Some(left) = left {
                    let _ = left.send(sent);
                }
            });
            Response::stream(HeaderValue::from_static("application/octet-stream"), body)
        }
    };
    Router::new()
        .get("/lines", lines)
        .get("/direct", direct)
        .get("/hello", hello)
        .get("/forever", forever)
}

#[test]
fn a_stream_is_chunked_and_the_connection_serves_the_next_request() {
    for d in drivers() {
        let server = TestServer::start(&settings(d), |_| (app(None), ()));
        let mut c = server.connect();
        let r = c.get("/lines?n=1000");
        assert_eq!(r.status, 200, "{d:?}");
        assert_eq!(r.header("transfer-encoding"), Some("chunked"));
        assert_eq!(r.header("content-length"), None);
        let text = r.text();
        assert_eq!(text.lines().count(), 1000);
        assert!(text.starts_with("line 0\nline 1\n") && text.ends_with("line 999\n"));
        assert_eq!(
            c.get("/direct").text(),
            "abc",
            "an empty chunk does not end the body"
        );
        assert_eq!(
            c.get("/hello").text(),
            "hello",
            "{d:?}: keep-alive after a stream"
        );
        server.stop();
    }
}

#[test]
fn pipelined_requests_after_a_stream_are_answered_in_order() {
    for d in drivers() {
        let server = TestServer::start(&settings(d), |_| (app(None), ()));
        let mut c = server.connect();
        c.send(
            b"GET /lines?n=300 HTTP/1.1\r\nHost: t\r\n\r\nGET /hello HTTP/1.1\r\nHost: t\r\n\r\n\
              GET /direct HTTP/1.1\r\nHost: t\r\n\r\n",
        );
        assert_eq!(c.response().text().lines().count(), 300, "{d:?}");
        assert_eq!(c.response().text(), "hello");
        assert_eq!(c.response().text(), "abc");
        server.stop();
    }
}

#[test]
fn head_gets_the_stream_s_headers_and_no_body() {
    for d in drivers() {
        let server = TestServer::start(&settings(d), |_| (app(None), ()));
        let mut c = server.connect();
        c.send(b"HEAD /lines?n=5 HTTP/1.1\r\nHost: t\r\n\r\n");
        let r = c.response_to(true);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("transfer-encoding"), Some("chunked"));
        assert!(r.body.is_empty());
        assert_eq!(
            c.get("/hello").text(),
            "hello",
            "{d:?}: nothing was left unread"
        );
        server.stop();
    }
}

#[test]
fn an_http_1_0_client_gets_the_body_delimited_by_the_close() {
    for d in drivers() {
        let server = TestServer::start(&settings(d), |_| (app(None), ()));
        let mut c = server.connect();
        c.send(b"GET /lines?n=3 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let all = String::from_utf8(c.rest()).expect("text");
        let (head, body) = all.split_once("\r\n\r\n").expect("head");
        assert!(head.contains("Connection: close"), "{head}");
        assert!(!head.to_ascii_lowercase().contains("transfer-encoding"));
        assert_eq!(body, "line 0\nline 1\nline 2\n", "{d:?}");
        server.stop();
    }
}

#[test]
fn a_producer_that_fails_cuts_the_body_without_its_last_chunk() {
    for d in drivers() {
        let server = TestServer::start(&settings(d), |_| (app(None), ()));
        let mut c = server.connect();
        c.send(b"GET /lines?n=10&fail_after=4 HTTP/1.1\r\nHost: t\r\n\r\n");
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            use std::io::Read;
            match c.stream.read(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Ok(0) | Err(_) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
        let text = String::from_utf8_lossy(&all);
        assert!(text.contains("line 3\n"), "{d:?}: {text}");
        assert!(!text.contains("line 4"), "{text}");
        assert!(
            !text.ends_with("0\r\n\r\n"),
            "the body must not look complete: {text}"
        );
        server.stop();
    }
}

#[test]
fn a_client_that_leaves_mid_stream_stops_the_producer() {
    for d in drivers() {
        let (left_tx, left_rx) = mpsc::channel();
        let server = TestServer::start(&settings(d), move |_| (app(Some(left_tx.clone())), ()));
        let mut c = server.connect();
        c.send(b"GET /forever HTTP/1.1\r\nHost: t\r\n\r\n");
        c.until(b"xxxxxxxx");
        drop(c);
        let sent = left_rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("{d:?}: the producer never saw the client leave"));
        assert!(sent > 0);
        // The worker goes on serving.
        assert_eq!(server.connect().get("/hello").text(), "hello");
        server.stop();
    }
}

#[test]
fn the_test_client_reads_a_stream_whole() {
    block_on(async {
        let client = TestClient::new(&settings(drivers()[0]), app(None), ());
        let r = client.get("/lines?n=50").send().await;
        assert_eq!(r.header("transfer-encoding"), Some("chunked"));
        assert_eq!(r.text().lines().count(), 50);
        let r = client.head("/lines?n=50").send().await;
        assert!(r.body().is_empty());
    });
}
