//! `/metrics`: the rendered exposition passes the real `promtool check metrics` (parse and
//! lint), and a route rendering it serves it over a real socket.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use common::{drivers, settings, TestServer};
use pinion_config::IoDriver;
use pinion_server::telemetry::{render, Telemetry, TelemetryConfig, ThreadTelemetry};
use pinion_server::{Ctx, Error, Method, Request, Response, Router, Stack};

/// The path of a working promtool, from `scripts/promtool` (which installs it when missing).
fn promtool() -> PathBuf {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/promtool");
    let out = Command::new(&script)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "scripts/promtool failed: {:?}",
        out.status
    );
    let path = String::from_utf8(out.stdout).expect("utf-8 path");
    PathBuf::from(path.trim())
}

/// Runs `promtool check metrics` on `text`; returns its exit success and everything it printed.
fn promtool_check(text: &[u8]) -> (bool, String) {
    let mut child = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text)
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool runs");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), printed)
}

/// A telemetry with a series in every pinion family, recorded on two threads.
fn populated() -> Arc<Telemetry> {
    let t = Arc::new(Telemetry::new(TelemetryConfig::default()));
    t.add_source(|s| s.cache("pages", 12, 3));
    let threads: Vec<_> = (0..2)
        .map(|i| {
            let t = Arc::clone(&t);
            std::thread::spawn(move || {
                let tt = ThreadTelemetry::new(t);
                tt.add_local_source(move |s| s.pool("primary", 4 + i, i));
                tt.add_local_source(|s| s.cache("local", 5, 1));
                for (m, route, status, us) in [
                    (Method::GET, Some("/"), 200, 90),
                    (Method::GET, Some("/users/{id}"), 200, 1_500),
                    (Method::POST, Some("/users"), 201, 20_000),
                    (Method::HEAD, Some("/"), 304, 40),
                    (Method::GET, None, 404, 60),
                    (Method::DELETE, Some("/users/{id}"), 500, 3_000_000),
                    (
                        Method::from_bytes(b"PROPFIND").expect("token"),
                        None,
                        405,
                        30,
                    ),
                ] {
                    tt.record_request(&m, route, status, Duration::from_micros(us));
                }
                tt.connection_opened();
                tt.rate_limited("login");
                tt.observe_query("primary", Duration::from_micros(700));
                tt.fold();
            })
        })
        .collect();
    for th in threads {
        th.join().expect("recording thread");
    }
    // A thread that exits withdraws its pool levels (its pools are gone); a process-wide source
    // stands in for live ones.
    t.add_source(|s| s.pool("replica", 9, 1));
    t
}

#[test]
fn rendered_metrics_pass_promtool_check() {
    let t = populated();
    let (content_type, body) = render(&t);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    let text = String::from_utf8(body.clone()).expect("utf-8");
    for family in [
        "pinion_http_requests_total",
        "pinion_http_request_duration_seconds",
        "pinion_http_connections_open",
        "pinion_rate_limit_hits_total",
        "pinion_pool_available",
        "pinion_pool_waiters",
        "pinion_db_query_duration_seconds",
        "pinion_cache_hits_total",
        "pinion_cache_misses_total",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{family} missing from:\n{text}"
        );
    }
    let (ok, printed) = promtool_check(&body);
    assert!(
        ok && printed.trim().is_empty(),
        "promtool check metrics: ok={ok}\n{printed}\n--- input ---\n{text}"
    );
}

#[test]
fn promtool_catches_a_lint_problem() {
    // The check above means something only if promtool does reject bad input here.
    let (ok, printed) =
        promtool_check(b"# HELP bad_counter x\n# TYPE bad_counter counter\nbad_counter 1\n");
    assert!(!ok, "{printed}");
    assert!(printed.contains("_total"), "{printed}");
}

/// Per-worker state of the socket test: the shared telemetry and this worker's half.
struct State {
    telemetry: Arc<Telemetry>,
    thread: Rc<ThreadTelemetry>,
}

/// Takes 30 ms, so that its duration lands in a known part of the histogram.
async fn work(_req: Request, _ctx: &Ctx<State>) -> Result<Response, Error> {
    monoio::time::sleep(Duration::from_millis(30)).await;
    Ok(Response::text("done"))
}

/// Answers at once.
async fn fast(_req: Request, _ctx: &Ctx<State>) -> Result<Response, Error> {
    Ok(Response::text("quick"))
}

async fn metrics(_req: Request, ctx: &Ctx<State>) -> Result<Response, Error> {
    ctx.state().thread.fold();
    let (content_type, body) = render(&ctx.state().telemetry);
    Ok(Response::with_body(content_type, body.into()))
}

/// A server whose router has `/fast`, `/work` and `/metrics`, with this worker's telemetry.
fn serve_with_telemetry(d: IoDriver) -> TestServer {
    let t = Arc::new(Telemetry::new(TelemetryConfig::default()));
    TestServer::start(&settings(d), move |_| {
        let thread = Rc::new(ThreadTelemetry::new(Arc::clone(&t)));
        let router = Router::new()
            .get("/fast", fast)
            .get("/work", work)
            .get("/metrics", metrics)
            .middleware(Stack::new().telemetry(Rc::clone(&thread)));
        let state = State {
            telemetry: Arc::clone(&t),
            thread,
        };
        (router, state)
    })
}

/// The count of `route`'s 2xx GETs in the duration bucket `le` of the scraped `text`.
fn bucket(text: &str, route: &str, le: &str) -> String {
    let prefix = format!(
        "pinion_http_request_duration_seconds_bucket{{method=\"GET\",route=\"{route}\",status_class=\"2xx\",le=\"{le}\"}} "
    );
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("{prefix} in\n{text}"))
        .to_string()
}

#[test]
fn metrics_are_served_over_a_socket() {
    for d in drivers() {
        let server = serve_with_telemetry(d);
        let mut c = server.connect();
        for _ in 0..3 {
            assert_eq!(c.get("/work").status, 200, "{d:?}");
        }
        let r = c.get("/metrics");
        assert_eq!(r.status, 200, "{d:?}");
        assert_eq!(
            r.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        let text = r.text();
        assert!(
            text.contains(
                "pinion_http_requests_total{method=\"GET\",route=\"/work\",status=\"200\"} 3\n"
            ),
            "{d:?}:\n{text}"
        );
        // Each took at least 30 ms: none within 25 ms, all within +Inf.
        assert_eq!(bucket(&text, "/work", "0.025"), "0", "{d:?}:\n{text}");
        assert_eq!(bucket(&text, "/work", "+Inf"), "3", "{d:?}:\n{text}");
        let (ok, printed) = promtool_check(&r.body);
        assert!(ok && printed.trim().is_empty(), "{d:?}: {printed}");
        server.stop();
    }
}

/// Requests pipelined in one write are answered in one write: each is counted, and each is
/// timed when that write is issued, which is when its client gets the response. Four instant
/// requests queued ahead of a 30 ms one all wait for it, and the histogram says so.
#[test]
fn pipelined_requests_are_counted_each_and_timed_when_their_batch_is_sent() {
    for d in drivers() {
        let server = serve_with_telemetry(d);
        let mut c = server.connect();
        let fast_get = "GET /fast HTTP/1.1\r\nHost: t\r\n\r\n";
        let batch = format!(
            "{}GET /work HTTP/1.1\r\nHost: t\r\n\r\n",
            fast_get.repeat(4)
        );
        c.send(batch.as_bytes());
        for i in 0..5 {
            assert_eq!(c.response().status, 200, "{d:?}: response {i}");
        }
        let text = c.get("/metrics").text();
        for (route, n) in [("/fast", 4), ("/work", 1)] {
            let count = format!(
                "pinion_http_requests_total{{method=\"GET\",route=\"{route}\",status=\"200\"}} {n}\n"
            );
            assert!(text.contains(&count), "{d:?}: no {count:?} in\n{text}");
        }
        assert_eq!(bucket(&text, "/fast", "0.025"), "0", "{d:?}:\n{text}");
        assert_eq!(bucket(&text, "/fast", "+Inf"), "4", "{d:?}:\n{text}");
        server.stop();
    }
}
