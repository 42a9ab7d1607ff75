//! Live pages across two `pinion serve` instances on one PostgreSQL (the real binary, the
//! private cluster, the same `secret_key`): an order placed through A appears on B's open
//! orders list (`/events/orders-{user}`), the order page's `progress` element gets what is
//! published to `order-{id}` (a fragment past `NOTIFY`'s 8000 bytes intact); after B's
//! listening connection is killed, a client reconnecting with `Last-Event-ID` gets every
//! event it missed, in order; a stream that never reads does not delay a reader of the same
//! channel; another user's channel is refused.
//!
//! Every wait is for the event itself (a read with a timeout, a bounded poll naming what it
//! waits for).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::site::{parts, Browser, EventStream};
use common::{counter, database_env, metrics, request, serve, wait_for, Served};

/// The key both instances sign their cookies with.
const SECRET_KEY: &str = "live-pages-test-secret-key-shared-by-both-instances";

/// Two instances configured as one deployment; B's subscribers may have 16 events waiting.
fn two_instances() -> [Served; 2] {
    let mut env = database_env();
    env.extend(
        [
            ("PINION_SECRET_KEY", SECRET_KEY),
            ("PINION_TRUSTED_PROXIES", "127.0.0.1/32"),
            ("PINION_TELEMETRY_DRAIN_INTERVAL", "100ms"),
            // The tests publish to the order's channel themselves: no confirmation job of
            // the demo's publishing there too (app/tests/jobs.rs tests that one).
            ("PINION_JOBS_THREADS", "0"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let a = serve(env.clone());
    env.push(("PINION_EVENTS_SUBSCRIBER_QUEUE".into(), "16".into()));
    let b = serve(env);
    for served in [&a, &b] {
        wait_for(
            &format!("{} ready with its listening connection up", served.addr),
            Duration::from_secs(20),
            || {
                let (status, _, body) = request(
                    served.addr,
                    "GET /health/ready HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                );
                (status == 200 && body.contains(r#""listener":"up""#))
                    .then_some(())
                    .ok_or(format!("{status} {body}"))
            },
        );
    }
    [a, b]
}

/// The private cluster's primary.
fn primary_url() -> String {
    database_env()
        .into_iter()
        .find(|(k, _)| k == "DATABASE_URL")
        .expect("DATABASE_URL")
        .1
}

/// Runs `f` against the primary on a runtime of its own (what a job would do in-process).
fn on_primary<T>(f: impl AsyncFnOnce(&pinion_orm::ConnectionManager) -> T) -> T {
    pinion_app::startup::on_runtime(async {
        let db =
            pinion_orm::ConnectionManager::start(&pinion_orm::DbConfig::new(primary_url(), vec![]))
                .expect("db");
        f(&db).await
    })
    .expect("a runtime")
}

/// Publishes each of `events` (name, data) to `channel`, in order; their ids.
fn publish(channel: &str, events: &[(&str, String)]) -> Vec<i64> {
    on_primary(async |db| {
        let mut ids = Vec::new();
        for (name, data) in events {
            ids.push(
                pinion_events::publish(db, channel, name, data)
                    .await
                    .expect("publish"),
            );
        }
        ids
    })
}

fn cookie_header(b: &Browser) -> String {
    let pairs: Vec<String> = b.cookies.iter().map(|(n, v)| format!("{n}={v}")).collect();
    format!(
        "Cookie: {}\r\nX-Forwarded-For: {}\r\n",
        pairs.join("; "),
        b.client
    )
}

/// The value of attribute `name` on the first element of `html` that has it.
fn attribute<'a>(html: &'a str, name: &str) -> &'a str {
    let start = html
        .find(&format!(" {name}=\""))
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + name.len()
        + 3;
    &html[start..start + html[start..].find('"').expect("end of the attribute")]
}

/// A user signed up through `a` with an order placed there: the browser and the order's id.
fn user_with_order(a: SocketAddr) -> (Browser, i64) {
    let mut user = Browser::new();
    user.sign_up(a);
    let product = user.create_product(a, "Live cog", "2.50");
    user.get(a, &product);
    let placed = user.post(a, &format!("{product}/order"), &[("quantity", "1")]);
    assert_eq!(placed.status, 303, "{placed:?}");
    let order = placed
        .header("location")
        .and_then(|l| l.strip_prefix("/orders/"))
        .and_then(|id| id.parse().ok())
        .expect("the order's page");
    (user, order)
}

#[test]
fn an_order_placed_through_one_instance_appears_on_the_list_open_through_the_other() {
    let [a, b] = two_instances();
    let (mut user, first) = user_with_order(a.addr);

    // The list, through B: its table listens to the user's channel, with the SSE extension.
    let page = user.get(b.addr, "/orders");
    assert_eq!(page.status, 200, "{page:?}");
    assert!(
        page.body.contains(&format!("id=\"order-{first}\"")),
        "{page:?}"
    );
    let connect = attribute(&page.body, "sse-connect").to_string();
    assert!(connect.starts_with("/events/orders-"), "{connect}");
    assert_eq!(attribute(&page.body, "sse-swap"), "order");
    assert!(page.body.contains("/static/htmx-ext-sse."), "{page:?}");
    let (status, list) = EventStream::open(b.addr, &connect, &cookie_header(&user));
    let mut list = list.unwrap_or_else(|| panic!("{connect} through B: {status}"));

    // Nobody else may listen: signed out, or another user.
    let (status, _) = EventStream::open(b.addr, &connect, "");
    assert_eq!(status, 403);
    let mut other = Browser::new();
    other.sign_up(b.addr);
    let (status, _) = EventStream::open(b.addr, &connect, &cookie_header(&other));
    assert_eq!(status, 403);
    let (status, _) = EventStream::open(b.addr, "/events/anything", &cookie_header(&user));
    assert_eq!(status, 403, "a channel no rule names");

    // A second order through A: its row arrives on B's open list.
    let product = user.create_product(a.addr, "Live gear", "3.00");
    user.get(a.addr, &product);
    let placed = user.post(a.addr, &format!("{product}/order"), &[("quantity", "2")]);
    assert_eq!(placed.status, 303, "{placed:?}");
    let second = placed.header("location").expect("the order").to_string();
    let (name, id, data) = parts(&list.next_event().expect("the order event"));
    assert_eq!(name, "order");
    assert!(id.parse::<i64>().is_ok(), "{id}");
    assert!(
        data.starts_with(&format!(
            "<tr id=\"order-{}\"><td><a href=\"{second}\">",
            second.trim_start_matches("/orders/")
        )) && data.contains("6.00"),
        "{data}"
    );
    let text = metrics(b.addr);
    assert!(
        counter(&text, "pinion_events_delivered_total", &[]) >= 1,
        "{text}"
    );
    assert_eq!(counter(&text, "pinion_listener_up", &[]), 1, "{text}");
}

#[test]
fn the_order_page_shows_the_progress_published_to_its_channel_large_fragments_intact() {
    let [a, b] = two_instances();
    let (mut user, order) = user_with_order(a.addr);
    let page = user.get(b.addr, &format!("/orders/{order}"));
    assert_eq!(page.status, 200, "{page:?}");
    let element = &page.body[page
        .body
        .find("id=\"progress\"")
        .expect("the progress element")..];
    assert_eq!(
        attribute(element, "sse-connect"),
        format!("/events/order-{order}")
    );
    assert_eq!(attribute(element, "sse-swap"), "progress");
    let (status, stream) = EventStream::open(
        b.addr,
        &format!("/events/order-{order}"),
        &cookie_header(&user),
    );
    let mut stream = stream.unwrap_or_else(|| panic!("order-{order} through B: {status}"));
    let mut other = Browser::new();
    other.sign_up(a.addr);
    let (status, _) = EventStream::open(
        b.addr,
        &format!("/events/order-{order}"),
        &cookie_header(&other),
    );
    assert_eq!(status, 403, "another user's order");

    let small = "<p>Packed</p>".to_string();
    let large: String = (0..2000)
        .map(|i| format!("<li>step {i:05}</li>\n"))
        .collect();
    assert!(large.len() > 8000);
    let ids = publish(
        &format!("order-{order}"),
        &[("progress", small.clone()), ("progress", large.clone())],
    );
    // The fragment's last line break is kept (an empty last `data:` line).
    for (id, data) in ids.iter().zip([small, large]) {
        let (name, got_id, got) = parts(&stream.next_event().expect("progress"));
        assert_eq!((name.as_str(), got_id), ("progress", id.to_string()));
        assert!(
            got == data,
            "{} bytes, not the {} published",
            got.len(),
            data.len()
        );
    }
}

#[test]
fn after_the_listening_connection_is_killed_a_client_reconnecting_with_last_event_id_gets_every_missed_event_in_order(
) {
    let [a, b] = two_instances();
    let (user, order) = user_with_order(a.addr);
    let channel = format!("order-{order}");
    let path = format!("/events/{channel}");
    let (_, stream) = EventStream::open(b.addr, &path, &cookie_header(&user));
    let mut stream = stream.expect("the stream");
    let first = publish(&channel, &[("progress", "1".into())])[0];
    assert_eq!(
        parts(&stream.next_event().expect("e1")).1,
        first.to_string()
    );
    drop(stream);

    // B's listening connection, found by its application_name, killed.
    let name = format!("pinion-listener-{}", b.child.id());
    let backends = "SELECT pid FROM pg_stat_activity WHERE application_name = $1";
    let killed: Vec<i32> = on_primary(async |db| {
        db.primary()
            .query(
                "WITH listener AS MATERIALIZED \
                   (SELECT pid FROM pg_stat_activity WHERE application_name = $1) \
                 SELECT pid FROM listener WHERE pg_terminate_backend(pid)",
                &[&name],
            )
            .await
            .expect("pg_terminate_backend")
            .iter()
            .map(|r| r.get(0))
            .collect()
    });
    assert_eq!(killed.len(), 1, "B's listening connection, {name}");
    // Published through the other instance's side while B's listener is gone or coming back.
    let missed: Vec<(i64, String)> = {
        let data: Vec<String> = (2..=5).map(|i| i.to_string()).collect();
        let events: Vec<(&str, String)> = data.iter().map(|d| ("progress", d.clone())).collect();
        publish(&channel, &events).into_iter().zip(data).collect()
    };
    wait_for(
        "B's listening connection back",
        Duration::from_secs(20),
        || {
            let pids: Vec<i32> = on_primary(async |db| {
                db.primary()
                    .query(backends, &[&name])
                    .await
                    .expect("pg_stat_activity")
                    .iter()
                    .map(|r| r.get(0))
                    .collect()
            });
            let (_, _, body) = request(
                b.addr,
                "GET /health/ready HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            );
            (pids.len() == 1 && pids[0] != killed[0] && body.contains(r#""listener":"up""#))
                .then_some(())
                .ok_or(format!("{pids:?} {body}"))
        },
    );
    let (_, again) = EventStream::open(
        b.addr,
        &path,
        &format!("{}Last-Event-ID: {first}\r\n", cookie_header(&user)),
    );
    let mut again = again.expect("the stream again");
    for (id, data) in &missed {
        let (name, got_id, got) = parts(&again.next_event().expect("a missed event"));
        assert_eq!(
            (name.as_str(), got_id.as_str(), got.as_str()),
            ("progress", id.to_string().as_str(), data.as_str())
        );
    }
    let _ = a;
}

#[test]
fn a_stream_that_never_reads_does_not_delay_a_reader_of_the_same_channel() {
    let [a, b] = two_instances();
    let (user, order) = user_with_order(a.addr);
    let path = format!("/events/order-{order}");
    let (_, slow) = EventStream::open(b.addr, &path, &cookie_header(&user));
    let slow = slow.expect("the slow stream");
    // Its socket takes little before the kernel stops the server's writes.
    let small: libc::c_int = 4096;
    // SAFETY: setsockopt(2) on a socket this test owns, with a c_int it points to.
    let rc = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&slow.socket),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            std::ptr::from_ref(&small).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
    let (_, reader) = EventStream::open(b.addr, &path, &cookie_header(&user));
    let mut reader = reader.expect("the reader");
    // 120 events of 50 000 bytes: 6 MB, more than the kernel buffers for the slow socket,
    // and far more than B's queue of 16.
    let data = "x".repeat(50_000);
    let published = Instant::now();
    let events: Vec<(&str, String)> = (0..120).map(|_| ("progress", data.clone())).collect();
    let ids = publish(&format!("order-{order}"), &events);
    for id in &ids {
        let (_, got, body) = parts(&reader.next_event().expect("every event"));
        assert_eq!(got, id.to_string());
        assert_eq!(body.len(), data.len());
    }
    let took = published.elapsed();
    assert!(took < Duration::from_secs(20), "the reader waited {took:?}");
    // The slow stream is still subscribed, holding at most its queue: the reader was not
    // held up by it, nor cut off by the bursts (it caught up from the log).
    let text = metrics(b.addr);
    assert_eq!(
        counter(&text, "pinion_events_cut_off_total", &[]),
        0,
        "{text}"
    );
    assert!(
        counter(&text, "pinion_events_subscribers", &[]) >= 2,
        "{text}"
    );
    drop(slow);
}
