//! `handoff_socket`: a second server started with the same socket takes the first one's
//! listening sockets and serves on the same port beside it; once it declares itself ready, the
//! first drains (an idle keep-alive connection's next request is answered with
//! `Connection: close`) and its workers exit. Under every driver the machine has.

mod common;

use std::path::PathBuf;

use common::{drivers, settings, Client};
use pinion_config::{IoDriver, Settings};
use pinion_server::{Ctx, Error, Request, Response, Router, ServerHandle};

async fn who(_req: Request, ctx: &Ctx<&'static str>) -> Result<Response, Error> {
    Ok(Response::text(*ctx.state()))
}

fn start(s: &Settings, name: &'static str) -> Result<ServerHandle, pinion_server::Error> {
    pinion_server::start(s, move |_| (Router::new().get("/who", who), name))
}

fn socket_path(d: IoDriver, what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "pinion-handoff-{}-{d:?}-{what}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join("handoff.sock")
}

#[test]
fn the_successor_takes_the_listeners_and_the_predecessor_drains_once_it_is_ready() {
    for d in drivers() {
        let path = socket_path(d, "takeover");
        let mut s = settings(d);
        s.threads = Some(2);
        s.handoff_socket = Some(path.clone());
        let mut a = start(&s, "a").expect("a starts");
        a.ready().expect("a serves hand-offs");
        let addr = a.local_addr();
        let mut kept = Client::connect(addr);
        assert_eq!(kept.get("/who").text(), "a", "{d:?}");

        // Same port, asked for explicitly: it must be the same sockets, since a fresh bind
        // would only have joined the group.
        s.port = addr.port();
        let mut b = start(&s, "b").expect("b takes over");
        assert_eq!(b.local_addr(), addr, "{d:?}");
        // Until b is ready, a serves as before.
        let r = kept.get("/who");
        assert_eq!(
            (r.text().as_str(), r.header("connection")),
            ("a", None),
            "{d:?}"
        );

        b.ready().expect("b is ready");
        // a has been told to drain (its workers learn it from their event loops): every
        // request on the kept connection is still answered by a, until one is answered with
        // `Connection: close` and the connection ends.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let r = kept.get("/who");
            assert_eq!((r.status, r.text().as_str()), (200, "a"), "{d:?}");
            if r.header("connection") == Some("close") {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{d:?}: a never drained"
            );
        }
        assert!(kept.is_closed(), "{d:?}");
        a.join().expect("a's workers exit");
        // Every new connection is b's, on the sockets a had.
        for _ in 0..10 {
            assert_eq!(Client::connect(addr).get("/who").text(), "b", "{d:?}");
        }
        b.shutdown();
        b.join().expect("b's workers exit");
        let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    }
}

#[test]
fn a_stale_socket_binds_afresh_and_another_address_is_refused() {
    for d in drivers() {
        let path = socket_path(d, "stale");
        let mut s = settings(d);
        s.handoff_socket = Some(path.clone());
        let mut a = start(&s, "a").expect("a starts");
        a.ready().expect("a serves hand-offs");

        // Another port with the same handoff socket: two deployments share a path.
        let mut other = s.clone();
        other.port = common::free_port();
        let err = start(&other, "x").expect_err("another address is refused");
        let text = err.to_string();
        assert!(text.contains("handoff_socket"), "{d:?}: {text}");
        assert!(text.contains(&a.local_addr().to_string()), "{d:?}: {text}");
        // a was not told anything and still serves.
        assert_eq!(
            Client::connect(a.local_addr()).get("/who").text(),
            "a",
            "{d:?}"
        );

        a.shutdown();
        a.join().expect("a's workers exit");
        // The socket file is left behind by a; nobody listens on it.
        assert!(path.exists(), "{d:?}");
        let mut b = start(&s, "b").expect("a stale socket binds afresh");
        b.ready().expect("b takes the path over");
        assert_eq!(
            Client::connect(b.local_addr()).get("/who").text(),
            "b",
            "{d:?}"
        );
        b.shutdown();
        b.join().expect("b's workers exit");
        let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    }
}
