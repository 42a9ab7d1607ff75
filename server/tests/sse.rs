//! Server-Sent Events over real sockets: the headers nginx and browsers need, events with ids
//! and multi-line data, keep-alive comments, `Last-Event-ID`, a quiet client that leaves, and
//! shutdown with open streams.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{drivers, settings, Client, TestServer};
use pinion_server::sse::{self, Event, LastEventId, Sse};
use pinion_server::Router;

/// Three events, then silence (the stream stays open).
async fn events(last: Option<LastEventId>) -> Sse {
    use futures_util::StreamExt;
    let from: u32 = last
        .and_then(|id| id.0.parse().ok())
        .map_or(1, |n: u32| n + 1);
    let three = (from..from + 3).map(|n| {
        Event::new()
            .event("tick")
            .id(n.to_string())
            .data(format!("first {n}\nsecond {n}"))
    });
    Sse::new(futures_util::stream::iter(three).chain(futures_util::stream::pending()))
}

/// Events sent by a task through a channel until the client leaves.
async fn counter() -> Sse {
    let (mut tx, events) = sse::channel(4);
    monoio::spawn(async move {
        let mut n = 0u64;
        loop {
            n += 1;
            if tx.send(Event::data_only(n.to_string())).await.is_err() {
                return;
            }
        }
    });
    Sse::new(events)
}

/// A stream that never sends anything and tells when it is dropped.
struct Watched(Option<mpsc::Sender<()>>);

impl futures_util::Stream for Watched {
    type Item = Event;
    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Event>> {
        std::task::Poll::Pending
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

fn app(dropped: Option<mpsc::Sender<()>>) -> Router<()> {
    let quiet = move || {
        let dropped = dropped.clone();
        async move { Sse::new(Watched(dropped)).keep_alive(Duration::from_secs(3600)) }
    };
    Router::new()
        .get("/events", events)
        .get("/quiet", quiet)
        .get("/counter", counter)
}

fn open(c: &mut Client, path: &str, extra: &str) -> String {
    c.send(
        format!("GET {path} HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n{extra}\r\n")
            .as_bytes(),
    );
    let head = c.until(b"\r\n\r\n");
    // Every stream opens with an empty comment, so that a proxy forwards the head at once.
    let opening = c.until(b"\n\n");
    assert_eq!(opening, "3\r\n:\n\n", "the opening comment, as one chunk");
    head
}

#[test]
fn events_arrive_with_ids_multi_line_data_and_keep_alive_comments() {
    for d in drivers() {
        let mut s = settings(d);
        s.sse_keepalive = Duration::from_millis(200);
        let server = TestServer::start(&s, |_| (app(None), ()));
        let mut c = server.connect();
        let head = open(&mut c, "/events", "");
        for line in [
            "HTTP/1.1 200 OK",
            "Content-Type: text/event-stream",
            "Cache-Control: no-cache",
            "x-accel-buffering: no",
            "Transfer-Encoding: chunked",
        ] {
            assert!(
                head.to_ascii_lowercase()
                    .contains(&line.to_ascii_lowercase()),
                "{d:?}: {line} in {head}"
            );
        }
        for n in 1..=3 {
            let event = c.until(b"\n\n");
            let expected = format!("event: tick\nid: {n}\ndata: first {n}\ndata: second {n}\n\n");
            assert!(event.ends_with(&expected), "{d:?}: {event:?}");
        }
        // Silence, then the keep-alive comment (timed by the server, waited for here).
        let started = Instant::now();
        let comment = c.until(b"\n\n");
        assert!(comment.ends_with(":\n\n"), "{comment:?}");
        assert!(
            started.elapsed() >= Duration::from_millis(100),
            "not before the interval"
        );
        server.stop();
    }
}

#[test]
fn last_event_id_reaches_the_handler() {
    for d in drivers() {
        let server = TestServer::start(&settings(d), |_| (app(None), ()));
        let mut c = server.connect();
        open(&mut c, "/events", "Last-Event-ID: 41\r\n");
        let event = c.until(b"\n\n");
        assert!(event.contains("id: 42\n"), "{d:?}: {event:?}");
        server.stop();
    }
}

#[test]
fn a_quiet_client_that_leaves_drops_the_stream() {
    for d in drivers() {
        let (tx, rx) = mpsc::channel();
        let server = TestServer::start(&settings(d), move |_| (app(Some(tx.clone())), ()));
        let mut c = server.connect();
        open(&mut c, "/quiet", "");
        drop(c);
        rx.recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("{d:?}: the server kept the stream of a client that left"));
        server.stop();
    }
}

#[test]
fn shutdown_ends_open_event_streams_cleanly_within_the_drain_timeout() {
    for d in drivers() {
        let mut s = settings(d);
        s.drain_timeout = Duration::from_secs(5);
        let server = TestServer::start(&s, |_| (app(None), ()));
        let mut clients: Vec<Client> = (0..3).map(|_| server.connect()).collect();
        for c in &mut clients {
            open(c, "/events", "");
            c.until(b"id: 3\n");
        }
        let began = Instant::now();
        server.stop();
        assert!(
            began.elapsed() < Duration::from_secs(5),
            "{d:?}: the streams held the drain to its deadline"
        );
        for c in &mut clients {
            // The rest of the body ends with the last chunk: a clean end, then the close.
            let rest = String::from_utf8_lossy(&c.rest()).into_owned();
            assert!(rest.ends_with("0\r\n\r\n"), "{d:?}: {rest:?}");
        }
    }
}

#[test]
fn a_channel_fed_stream_delivers_every_event_in_order_and_a_busy_one_ends_at_shutdown() {
    for d in drivers() {
        let server = TestServer::start(&settings(d), |_| (app(None), ()));
        let mut c = server.connect();
        open(&mut c, "/counter", "");
        let first = c.until(b"\n\n");
        assert!(first.ends_with("data: 1\n\n"), "{first:?}");
        // Events come in order, none skipped, however fast the producer is.
        for n in 2..=2000 {
            let event = c.until(b"\n\n");
            assert!(
                event.ends_with(&format!("data: {n}\n\n")),
                "{d:?}: {event:?}"
            );
        }
        let began = Instant::now();
        server.stop();
        assert!(
            began.elapsed() < Duration::from_secs(5),
            "{d:?}: a busy event stream held the drain"
        );
    }
}

mod broadcast {
    use super::*;
    use pinion_server::sse::Broadcast;
    use pinion_server::Ctx;
    use std::rc::Rc;

    async fn subscribe(ctx: &Ctx<Rc<Broadcast>>) -> Sse {
        ctx.state().subscribe()
    }

    async fn publish(ctx: &Ctx<Rc<Broadcast>>) -> String {
        let event = Event::new().event("price").id("9").data("{\"eur\":3}");
        ctx.state().send(&event).to_string()
    }

    #[test]
    fn one_event_reaches_every_subscriber_of_the_worker() {
        for d in drivers() {
            let server = TestServer::start(&settings(d), |_| {
                let router = Router::new()
                    .get("/live", subscribe)
                    .post("/publish", publish);
                (router, Rc::new(Broadcast::new(8)))
            });
            let mut subscribers: Vec<Client> = (0..3).map(|_| server.connect()).collect();
            for c in &mut subscribers {
                open(c, "/live", "");
            }
            let mut p = server.connect();
            p.send(b"POST /publish HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
            assert_eq!(p.response().text(), "3", "{d:?}");
            for c in &mut subscribers {
                let event = c.until(b"\n\n");
                assert!(
                    event.ends_with("event: price\nid: 9\ndata: {\"eur\":3}\n\n"),
                    "{event:?}"
                );
            }
            server.stop();
        }
    }
}
