//! `?` on real database errors in handlers, over real sockets, against the private PostgreSQL
//! that `scripts/pg` starts: each failure's status, what the client sees (never the
//! database's text), and the log line the internal ones leave, with the request id.

#[path = "../../orm/tests/common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use pinion_config::{IoDriver, Settings};
use pinion_orm::{ConnectionManager, DbConfig};
use pinion_server::middleware::RequestId;
use pinion_server::{Ctx, Response, Router, ServerHandle, Stack};
use pinion_web::Result;

/// A database that is up, and one on a port nothing listens on.
struct App {
    up: Rc<ConnectionManager>,
    down: Rc<ConnectionManager>,
}

async fn missing(ctx: &Ctx<App>) -> Result<Response> {
    let row = ctx
        .state()
        .up
        .primary()
        .query_one("SELECT 1::int4 WHERE false", &[])
        .await?;
    let one: i32 = row.try_get(0)?;
    Ok(Response::text(one.to_string()))
}

async fn duplicate(ctx: &Ctx<App>) -> Result<Response> {
    // A temporary table on this connection: the second insert of key 1 is refused (and the
    // whole batch rolled back, so every request meets the same state).
    ctx.state()
        .up
        .primary()
        .batch_execute(
            "CREATE TEMP TABLE IF NOT EXISTS web_errors_t (id int PRIMARY KEY); \
             INSERT INTO web_errors_t VALUES (1) ON CONFLICT DO NOTHING; \
             INSERT INTO web_errors_t VALUES (1)",
        )
        .await?;
    Ok(Response::text("inserted twice"))
}

async fn slow(ctx: &Ctx<App>) -> Result<Response> {
    ctx.state()
        .up
        .primary()
        .query("SELECT pg_sleep(3)", &[])
        .await?;
    Ok(Response::text("slept"))
}

async fn broken(ctx: &Ctx<App>) -> Result<Response> {
    let rows = ctx
        .state()
        .up
        .primary()
        .query("SELECT 1 / (random() * 0)::int4 AS secret_column", &[])
        .await?;
    Ok(Response::text(rows.len().to_string()))
}

async fn down(ctx: &Ctx<App>) -> Result<Response> {
    let rows = ctx.state().down.primary().query("SELECT 1", &[]).await?;
    Ok(Response::text(rows.len().to_string()))
}

/// A port that was free a moment ago: bound, then released.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A one-thread server with the routes above, shut down on drop.
struct Server {
    handle: Option<ServerHandle>,
    addr: SocketAddr,
}

impl Server {
    fn start() -> Server {
        let cluster = common::Cluster::shared();
        let mut up_cfg = DbConfig::new(cluster.primary.clone(), vec![]);
        up_cfg.query_timeout = Duration::from_millis(300);
        let mut down_cfg = DbConfig::new(
            format!(
                "postgres://pinion:pinion@127.0.0.1:{}/pinion",
                closed_port()
            ),
            vec![],
        );
        down_cfg.connect.connect_timeout = Duration::from_millis(200);
        let settings = Settings {
            bind: "127.0.0.1".parse().expect("loopback"),
            port: 0,
            threads: Some(1),
            io_driver: IoDriver::Epoll,
            ..Settings::default()
        };
        // Distinct ids in every server of this binary, so a log line is found by its id alone.
        static SEED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let seed = SEED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) << 8;
        let handle = pinion_server::start(&settings, move |worker| {
            let app = App {
                up: ConnectionManager::start(&up_cfg).expect("a valid URL"),
                down: ConnectionManager::start(&down_cfg).expect("a valid URL"),
            };
            let router = Router::new()
                .get("/missing", missing)
                .get("/duplicate", duplicate)
                .get("/slow", slow)
                .get("/broken", broken)
                .get("/down", down)
                .middleware(
                    Stack::new().request_id(RequestId::new(|_| false, seed + worker as u64)),
                );
            (router, app)
        })
        .expect("server starts");
        let addr = handle.local_addr();
        Server {
            handle: Some(handle),
            addr,
        }
    }

    /// One request on a fresh connection: status, headers (lowercased names), body.
    fn get(&self, path: &str, accept: &str) -> (u16, Vec<(String, String)>, String) {
        let mut s = TcpStream::connect(self.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: t\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
        )
        .expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("a response");
        let (head, body) = out.split_once("\r\n\r\n").expect("a head");
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .expect("a status");
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        (status, headers, body.to_string())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown();
            let _ = h.join();
        }
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The problem document of an answer, checked against its status.
fn problem(status: u16, headers: &[(String, String)], body: &str) -> serde_json::Value {
    assert_eq!(
        header(headers, "content-type"),
        Some("application/problem+json"),
        "{body}"
    );
    let v: serde_json::Value = serde_json::from_str(body).expect("a problem document");
    assert_eq!(v["status"], status, "{body}");
    v
}

/// Every log line of this test binary, as the fmt subscriber wrote it.
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&logs);
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || Sink(Arc::clone(&sink)))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one subscriber");
        logs
    })
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log_lines_with(needle: &str) -> Vec<String> {
    let logs = logs().lock().expect("log buffer");
    String::from_utf8_lossy(&logs)
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_database_that_is_down_gives_503_with_retry_after_through_the_question_mark() {
    let server = Server::start();
    let (status, headers, body) = server.get("/down", "application/json");
    assert_eq!(status, 503, "{body}");
    let retry: u64 = header(&headers, "retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("a Retry-After in seconds: {headers:?}"));
    assert!((1..=5).contains(&retry), "{retry}");
    let v = problem(503, &headers, &body);
    assert_eq!(v["detail"], "temporarily unavailable; try again later");
    for leak in [
        "127.0.0.1",
        "postgres",
        "default",
        "connect",
        "refused",
        "pinion:",
    ] {
        assert!(!body.contains(leak), "{leak} in {body}");
    }
    // A browser gets a page, with the same Retry-After and nothing more of the database.
    let (status, headers, page) = server.get("/down", "text/html");
    assert_eq!(status, 503);
    assert!(header(&headers, "retry-after").is_some());
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(page.contains("<h1>503 Service Unavailable</h1>"), "{page}");
    assert!(
        !page.contains("127.0.0.1") && !page.contains("refused"),
        "{page}"
    );
}

#[test]
fn no_row_where_one_was_required_is_404() {
    let server = Server::start();
    let (status, headers, body) = server.get("/missing", "*/*");
    assert_eq!(status, 404, "{body}");
    assert_eq!(problem(404, &headers, &body)["detail"], "not found");
    assert!(header(&headers, "retry-after").is_none());
}

#[test]
fn a_unique_violation_is_409_without_the_constraint_or_the_value() {
    let server = Server::start();
    for _ in 0..2 {
        let (status, headers, body) = server.get("/duplicate", "application/json");
        assert_eq!(status, 409, "{body}");
        problem(409, &headers, &body);
        for leak in ["web_errors_t", "pkey", "duplicate key", "(id)=(1)", "23505"] {
            assert!(!body.contains(leak), "{leak} in {body}");
        }
    }
}

#[test]
fn a_statement_that_outlives_the_query_deadline_is_504() {
    let server = Server::start();
    let started = std::time::Instant::now();
    let (status, headers, body) = server.get("/slow", "application/json");
    assert_eq!(status, 504, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered at the deadline, not after the statement: {:?}",
        started.elapsed()
    );
    problem(504, &headers, &body);
    assert!(
        !body.contains("pg_sleep") && !body.contains("query"),
        "{body}"
    );
}

#[test]
fn any_other_database_error_is_a_generic_500_logged_with_its_detail_and_the_request_id() {
    logs();
    let server = Server::start();
    let (status, headers, body) = server.get("/broken", "application/json");
    assert_eq!(status, 500, "{body}");
    let v = problem(500, &headers, &body);
    assert_eq!(v["detail"], "the server could not answer this request");
    for leak in ["division", "secret_column", "22012", "SELECT"] {
        assert!(!body.contains(leak), "{leak} in {body}");
    }
    let id = header(&headers, "x-request-id").expect("a request id");
    // Logged before the answer was written: it is there once the answer arrived.
    let lines = log_lines_with(id);
    assert_eq!(lines.len(), 1, "one line for the failure: {lines:?}");
    let line = &lines[0];
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains("division by zero"), "{line}");
    assert!(line.contains(&format!("request_id={id}")), "{line}");
    assert!(line.contains("status=500"), "{line}");
}
