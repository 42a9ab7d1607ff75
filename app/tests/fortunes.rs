//! TechEmpower's fortunes test, `/fortunes`, through the real binary against the private
//! primary and replica (`scripts/pg`), whose `fortune` table migration 0001 fills.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

mod common;

use common::{database_env, request, Served};

/// The page for the 12 standard rows plus the one added at request time: sorted by message
/// (byte order), escaped as askama escapes (`"&'<>` as `&#34;` `&#38;` `&#39;` `&#60;` `&#62;`,
/// which TechEmpower's validator accepts: it compares the parsed text).
const EXPECTED: &str = concat!(
    "<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table>",
    "<tr><th>id</th><th>message</th></tr>",
    "<tr><td>11</td><td>&#60;script&#62;alert(&#34;This should not be displayed in a browser ",
    "alert box.&#34;);&#60;/script&#62;</td></tr>",
    "<tr><td>4</td><td>A bad random number generator: 1, 1, 1, 1, 1, 4.33e+67, 1, 1, 1</td></tr>",
    "<tr><td>5</td><td>A computer program does what you tell it to do, not what you want it to ",
    "do.</td></tr>",
    "<tr><td>2</td><td>A computer scientist is someone who fixes things that aren&#39;t ",
    "broken.</td></tr>",
    "<tr><td>8</td><td>A list is only as strong as its weakest link. — Donald Knuth</td></tr>",
    "<tr><td>0</td><td>Additional fortune added at request time.</td></tr>",
    "<tr><td>3</td><td>After enough decimal places, nobody gives a damn.</td></tr>",
    "<tr><td>7</td><td>Any program that runs right is obsolete.</td></tr>",
    "<tr><td>10</td><td>Computers make very fast, very accurate mistakes.</td></tr>",
    "<tr><td>6</td><td>Emacs is a nice operating system, but I prefer UNIX. — Tom ",
    "Christaensen</td></tr>",
    "<tr><td>9</td><td>Feature: A bug with seniority.</td></tr>",
    "<tr><td>1</td><td>fortune: No such file or directory</td></tr>",
    "<tr><td>12</td><td>フレームワークのベンチマーク</td></tr>",
    "</table></body></html>",
);

fn get(addr: SocketAddr, path: &str) -> (u16, HashMap<String, String>, String) {
    request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
    )
}

/// `pinion serve` against the private cluster, once its primary answers (`/health/ready`).
fn serve() -> Served {
    let served = common::serve(database_env());
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(served.addr, "/health/ready").0 != 200 {
        assert!(Instant::now() < deadline, "pinion never became ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    served
}

#[test]
fn fortunes_renders_the_sorted_escaped_page() {
    let s = serve();
    let (status, headers, body) = get(s.addr, "/fortunes");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        headers.get("content-type").map(String::as_str),
        Some("text/html; charset=utf-8")
    );
    // The parts of the page the test is about, each on its own, for a readable failure.
    assert!(!body.contains("<script"), "unescaped script: {body}");
    assert!(body.contains(
        "&#60;script&#62;alert(&#34;This should not be displayed in a browser alert box.&#34;);\
         &#60;/script&#62;"
    ));
    assert!(body.contains("<td>12</td><td>フレームワークのベンチマーク</td>"));
    let ids: Vec<&str> = body
        .split("<tr><td>")
        .skip(1)
        .filter_map(|row| row.split_once("</td>"))
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        ids,
        ["11", "4", "5", "2", "8", "0", "3", "7", "10", "6", "9", "1", "12"]
    );
    assert_eq!(body, EXPECTED);
    // The extra fortune is added per request, never stored: the next page is the same.
    assert_eq!(get(s.addr, "/fortunes").2, EXPECTED);
}

/// `/fortunes` and `/db` answer the same when the database is missing or unreachable.
fn assert_fails_like_db(served: &Served) {
    let (status, _, body) = get(served.addr, "/fortunes");
    assert!(status >= 500, "{status} {body}");
    let (db_status, _, db_body) = get(served.addr, "/db");
    assert_eq!((status, body), (db_status, db_body));
}

#[test]
fn fortunes_without_a_database_fails_like_db() {
    let s = common::serve(std::iter::empty::<(&str, &str)>());
    assert_fails_like_db(&s);
}

#[test]
fn fortunes_with_an_unreachable_database_fails_like_db() {
    // A port nothing listens on: bound, then released.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("postgres://pinion:pinion@127.0.0.1:{port}/pinion");
    let s = common::serve([
        ("DATABASE_URL", url.as_str()),
        ("PINION_MIGRATE_ON_START", "false"),
        ("PINION_DB_CONNECT_TIMEOUT", "200ms"),
    ]);
    assert_fails_like_db(&s);
}

#[test]
fn a_database_that_is_down_gives_503_with_retry_after_and_no_database_text() {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("postgres://pinion:pinion@127.0.0.1:{port}/pinion");
    let s = common::serve([
        ("DATABASE_URL", url.as_str()),
        ("PINION_MIGRATE_ON_START", "false"),
        ("PINION_DB_CONNECT_TIMEOUT", "200ms"),
    ]);
    // Every route that asks the database answers through `?` on its error.
    for path in [
        "/db",
        "/queries?q=3",
        "/updates?q=2",
        "/cached-queries?count=2",
        "/fortunes",
        "/worlds/7",
    ] {
        let (status, headers, body) = get(s.addr, path);
        assert_eq!(status, 503, "{path}: {body}");
        let retry: u64 = headers
            .get("retry-after")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{path}: a Retry-After in seconds: {headers:?}"));
        assert!(retry >= 1, "{path}: {retry}");
        assert_eq!(
            headers.get("content-type").map(String::as_str),
            Some("application/problem+json"),
            "{path}"
        );
        let v: serde_json::Value = serde_json::from_str(&body).expect("a problem document");
        assert_eq!(v["status"], 503, "{path}");
        for leak in [
            "127.0.0.1",
            &port.to_string(),
            "postgres",
            "default",
            "connect",
            "refused",
        ] {
            assert!(!body.contains(leak), "{path}: {leak} in {body}");
        }
    }
    // A browser gets a page instead, with the same Retry-After.
    let (status, headers, page) = request(
        s.addr,
        "GET /db HTTP/1.1\r\nHost: t\r\nAccept: text/html\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 503);
    assert!(headers.contains_key("retry-after"), "{headers:?}");
    assert!(page.contains("<h1>503 Service Unavailable</h1>"), "{page}");
    assert!(!page.contains("127.0.0.1"), "{page}");
}
