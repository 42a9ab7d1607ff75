//! Middleware, rate limits and telemetry through the real binary: rate-limit numbers and
//! headers, trusted and untrusted X-Forwarded-For, one limit shared by two processes through
//! PostgreSQL, /metrics checked by the real promtool, and readiness during drain.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    body_awaited, cluster_env, database_env, metrics_when, repo, request, serve,
    wait_listener_closed, Served,
};

fn get(addr: SocketAddr, path: &str, extra: &str) -> (u16, HashMap<String, String>, String) {
    request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: t\r\n{extra}Connection: close\r\n\r\n"),
    )
}

#[test]
fn rate_limit_allows_the_quota_then_denies_with_headers() {
    let s = serve([
        ("PINION_RATE_LIMIT_POLICIES", "api=5/1m"),
        ("PINION_RATE_LIMIT_DEFAULT", "api"),
    ]);
    for remaining in (0..5).rev() {
        let (status, h, _) = get(s.addr, "/json", "");
        assert_eq!(status, 200);
        assert_eq!(
            h.get("ratelimit-policy").map(String::as_str),
            Some("\"api\";q=5;w=60")
        );
        let t = (5 - remaining) * 12;
        assert_eq!(
            h.get("ratelimit").map(String::as_str),
            Some(format!("\"api\";r={remaining};t={t}").as_str())
        );
    }
    let (status, h, body) = get(s.addr, "/json", "");
    assert_eq!(status, 429);
    assert_eq!(h.get("retry-after").map(String::as_str), Some("12"));
    assert_eq!(
        h.get("content-type").map(String::as_str),
        Some("application/problem+json")
    );
    assert!(body.contains("\"status\":429"), "{body}");
    // Probes are exempt.
    assert_eq!(get(s.addr, "/health", "").0, 200);
    // The denial is counted (once the worker's counters are drained into the registry).
    let counted = "pinion_rate_limit_hits_total{policy=\"api\"} 1";
    let metrics = metrics_when(s.addr, |m| m.contains(counted));
    assert!(metrics.contains(counted), "{metrics}");
}

#[test]
fn x_forwarded_for_counts_only_from_trusted_proxies() {
    // Loopback (the test client) untrusted: every request counts against 127.0.0.1, whatever
    // X-Forwarded-For says.
    let s = serve([
        ("PINION_RATE_LIMIT_POLICIES", "api=1/1m"),
        ("PINION_RATE_LIMIT_DEFAULT", "api"),
        ("PINION_TRUSTED_PROXIES", "10.0.0.0/8"),
    ]);
    assert_eq!(
        get(s.addr, "/json", "X-Forwarded-For: 203.0.113.1\r\n").0,
        200
    );
    assert_eq!(
        get(s.addr, "/json", "X-Forwarded-For: 203.0.113.2\r\n").0,
        429
    );
    drop(s);
    // Loopback trusted: each forwarded client has its own budget.
    let s = serve([
        ("PINION_RATE_LIMIT_POLICIES", "api=1/1m"),
        ("PINION_RATE_LIMIT_DEFAULT", "api"),
        ("PINION_TRUSTED_PROXIES", "127.0.0.1/32"),
    ]);
    assert_eq!(
        get(s.addr, "/json", "X-Forwarded-For: 203.0.113.1\r\n").0,
        200
    );
    assert_eq!(
        get(s.addr, "/json", "X-Forwarded-For: 203.0.113.2\r\n").0,
        200
    );
    assert_eq!(
        get(s.addr, "/json", "X-Forwarded-For: 203.0.113.1\r\n").0,
        429
    );
}

#[test]
fn ipv6_clients_in_one_prefix_share_a_limit() {
    let xff = |ip: &str| format!("X-Forwarded-For: {ip}\r\n");
    // The default /64: two addresses of one /64 are one client; the next /64 is another.
    let s = serve([
        ("PINION_RATE_LIMIT_POLICIES", "api=1/1m"),
        ("PINION_RATE_LIMIT_DEFAULT", "api"),
    ]);
    assert_eq!(get(s.addr, "/json", &xff("2001:db8:1:2::a")).0, 200);
    assert_eq!(get(s.addr, "/json", &xff("2001:db8:1:2:ffff:1:2:3")).0, 429);
    assert_eq!(get(s.addr, "/json", &xff("2001:db8:1:3::a")).0, 200);
    drop(s);
    // A /128 prefix keys every address alone.
    let s = serve([
        ("PINION_RATE_LIMIT_POLICIES", "api=1/1m"),
        ("PINION_RATE_LIMIT_DEFAULT", "api"),
        ("PINION_RATE_LIMIT_IPV6_PREFIX", "128"),
    ]);
    assert_eq!(get(s.addr, "/json", &xff("2001:db8:1:2::a")).0, 200);
    assert_eq!(get(s.addr, "/json", &xff("2001:db8:1:2::b")).0, 200);
    assert_eq!(get(s.addr, "/json", &xff("2001:db8:1:2::a")).0, 429);
}

#[test]
fn two_processes_share_one_limit_through_postgresql() {
    let env = cluster_env();
    // A policy name of this test's own, so earlier runs' state (same table) cannot interfere.
    let name = format!("shared{}", std::process::id());
    let policy = format!("{name}=6/1h");
    let start = || {
        serve([
            ("DATABASE_URL", env["DATABASE_URL"].as_str()),
            (
                "PINION_MIGRATIONS_DIR",
                repo().join("migrations").to_str().expect("path"),
            ),
            ("PINION_RATE_LIMIT_POLICIES", policy.as_str()),
            ("PINION_RATE_LIMIT_DEFAULT", name.as_str()),
            ("PINION_RATE_LIMIT_STORE", "postgres"),
        ])
    };
    let (a, b) = (start(), start());
    let mut allowed = 0;
    for i in 0..10 {
        let addr = if i % 2 == 0 { a.addr } else { b.addr };
        match get(addr, "/json", "").0 {
            200 => allowed += 1,
            429 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(allowed, 6, "two instances enforce one limit, not two");
}

fn promtool() -> String {
    common::tool_path("promtool")
}

fn metric(metrics: &str, line_prefix: &str) -> u64 {
    metrics
        .lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[test]
fn metrics_pass_promtool_count_requests_and_bound_series() {
    let s = serve([("PINION_TELEMETRY_DRAIN_INTERVAL", "100ms")]);
    let (_, _, before) = get(s.addr, "/metrics", "");
    let key = "pinion_http_requests_total{method=\"GET\",route=\"/plaintext\",status=\"200\"}";
    let scanned = "pinion_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"}";
    let n0 = metric(&before, key);
    for _ in 0..25 {
        assert_eq!(get(s.addr, "/plaintext", "").0, 200);
    }
    // A scanner: 200 distinct unknown paths.
    for i in 0..200 {
        assert_eq!(get(s.addr, &format!("/wp-admin/{i}.php"), "").0, 404);
    }
    // Once the workers' counters are drained into the registry.
    metrics_when(s.addr, |m| {
        metric(m, key) >= n0 + 25 && metric(m, scanned) >= 200
    });
    let (status, h, after) = get(s.addr, "/metrics", "");
    assert_eq!(status, 200);
    assert_eq!(
        h.get("content-type").map(String::as_str),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(
        metric(&after, key) - n0,
        25,
        "counter moved by the number of requests"
    );
    let unmatched: Vec<&str> = after
        .lines()
        .filter(|l| {
            l.starts_with("pinion_http_requests_total{") && l.contains("route=\"unmatched\"")
        })
        .collect();
    assert_eq!(unmatched.len(), 1, "{unmatched:?}");
    assert!(!after.contains("wp-admin"), "paths must not become labels");
    assert!(metric(&after, scanned) >= 200);
    assert!(after.contains("process_resident_memory_bytes"));
    // The real promtool accepts it, lint included.
    let mut check = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    check
        .stdin
        .take()
        .expect("stdin")
        .write_all(after.as_bytes())
        .expect("write");
    let out = check.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn readiness_turns_503_during_drain() {
    let mut s: Served = serve([("PINION_DRAIN_TIMEOUT", "10s")]);
    // A request in flight keeps the server draining: its body is half sent (the server read
    // its head: it answered 100 Continue).
    let mut slow = body_awaited(
        s.addr,
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\n",
    );
    slow.write_all(b"ab").expect("write");
    // A pipelined readiness probe on a connection that is busy with the first request: it is
    // answered after the body arrives, during drain.
    let mut probe = body_awaited(
        s.addr,
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n",
    );
    // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
    let rc = unsafe { libc::kill(s.child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
    // Draining: the listener is closed.
    wait_listener_closed(s.addr);
    // The rest of the body and the probe in one write, so that they arrive together: during
    // drain the server closes after the in-flight response unless another request is already
    // buffered, and a probe sent in a second write could arrive after that close (a reset;
    // seen once in CI).
    probe
        .write_all(b"okGET /health/ready HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("write");
    probe
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !text.contains("draining") && Instant::now() < deadline {
        let mut buf = [0u8; 4096];
        match probe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    let ready = text
        .split("HTTP/1.1 ")
        .nth(2)
        .unwrap_or_else(|| panic!("no readiness answer: {text}"));
    assert!(ready.starts_with("503"), "{text}");
    assert!(ready.contains("\"draining\":true"), "{text}");
    slow.write_all(b"cd").expect("finish");
    let _ = s.child.wait();
}

/// A field of a JSON log line, whether the formatter flattens event fields or nests them
/// under `fields`.
fn log_field<'a>(line: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    line.get(name)
        .or_else(|| line.get("fields").and_then(|f| f.get(name)))
        .unwrap_or(&serde_json::Value::Null)
}

fn trace_lines(s: &Served, needle: &str) -> Vec<serde_json::Value> {
    s.wait_for_logs(&["pinion::trace", needle], 1)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn micros(line: &serde_json::Value, name: &str) -> u64 {
    log_field(line, name)
        .as_u64()
        .unwrap_or_else(|| panic!("{name} in {line}"))
}

#[test]
fn sampled_requests_log_their_phases_with_database_and_render_time() {
    let mut env = database_env();
    env.push(("PINION_TELEMETRY_SAMPLE_RATIO".into(), "1".into()));
    env.push(("PINION_LOG_FORMAT".into(), "json".into()));
    let s = serve(env);
    // A database request: its trace carries the id echoed on the response.
    let (status, h, _) = get(s.addr, "/queries?q=5", "");
    assert_eq!(status, 200);
    let id = h.get("x-request-id").expect("a request id").clone();
    let lines = trace_lines(&s, &id);
    assert_eq!(lines.len(), 1, "one trace per request: {lines:?}");
    let t = &lines[0];
    assert_eq!(log_field(t, "route"), "/queries");
    assert_eq!(log_field(t, "method"), "GET");
    assert_eq!(log_field(t, "status"), 200);
    let (db, handler, render) = (
        micros(t, "database_us"),
        micros(t, "handler_us"),
        micros(t, "render_us"),
    );
    assert!(db > 0, "five queries take time: {t}");
    assert!(
        handler >= db + render,
        "database and render are inside the handler: {t}"
    );
    let parts = micros(t, "read_us") + handler + micros(t, "write_us");
    assert!(
        micros(t, "total_us").abs_diff(parts) <= 2,
        "total is read + handler + write: {t}"
    );

    // JSON rendering is timed, and no database time leaks in from elsewhere.
    let (_, h, _) = get(s.addr, "/json", "");
    let t = &trace_lines(&s, &h["x-request-id"])[0];
    assert_eq!(log_field(t, "route"), "/json");
    assert_eq!(micros(t, "database_us"), 0, "{t}");

    // An unmatched path runs no handler.
    let (status, h, _) = get(s.addr, "/no/such/page", "");
    assert_eq!(status, 404);
    let t = &trace_lines(&s, &h["x-request-id"])[0];
    assert_eq!(log_field(t, "route"), "unmatched");
    assert_eq!(micros(t, "handler_us"), 0, "{t}");
}

#[test]
fn a_zero_sample_ratio_logs_no_traces() {
    // The access log on: its line for a request is written after anything the request
    // logged itself, so once every access line is in, so is any trace line.
    let s = serve_logging_every_request();
    for _ in 0..50 {
        assert_eq!(get(s.addr, "/json", "").0, 200);
    }
    let accessed = s.wait_for_logs(&["pinion::access", "\"/json\""], 50);
    assert_eq!(accessed.len(), 50);
    let logs = s.logs.lock().expect("logs");
    assert!(
        !logs.iter().any(|l| l.contains("pinion::trace")),
        "{logs:?}"
    );
}

#[test]
fn text_traces_name_the_request_and_the_log_filter_can_drop_them() {
    let s = serve([
        ("PINION_TELEMETRY_SAMPLE_RATIO", "1"),
        ("PINION_LOG_FORMAT", "text"),
    ]);
    let (status, h, _) = get(s.addr, "/plaintext", "");
    assert_eq!(status, 200);
    let id = &h["x-request-id"];
    let lines = s.wait_for_logs(&["pinion::trace", id], 1);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let expected = format!(
        " INFO pinion::trace: sampled request request_id={id} method=\"GET\" \
         route=\"/plaintext\" status=200 total_us="
    );
    assert!(lines[0].contains(&expected), "{}", lines[0]);
    for field in [
        "read_us=",
        "handler_us=",
        "database_us=0",
        "render_us=0",
        "write_us=",
    ] {
        assert!(lines[0].contains(field), "{field} in {}", lines[0]);
    }
    drop(s);

    // `RUST_LOG` turns the trace target off while the access log stays on.
    let s = serve([
        ("PINION_TELEMETRY_SAMPLE_RATIO", "1"),
        ("PINION_ACCESS_LOG", "true"),
        ("PINION_ACCESS_LOG_SAMPLE", "1"),
        ("RUST_LOG", "info,pinion::trace=off"),
    ]);
    let (_, h, _) = get(s.addr, "/plaintext", "");
    let id = &h["x-request-id"];
    assert_eq!(s.wait_for_logs(&["pinion::access", id], 1).len(), 1);
    let logs = s.logs.lock().expect("logs");
    assert!(
        !logs.iter().any(|l| l.contains("pinion::trace")),
        "{logs:?}"
    );
}

/// The binary with every request in the access log, as JSON, and no trace lines.
fn serve_logging_every_request() -> Served {
    serve([
        ("PINION_ACCESS_LOG", "true"),
        ("PINION_ACCESS_LOG_SAMPLE", "1"),
        ("PINION_TELEMETRY_SAMPLE_RATIO", "0"),
        ("PINION_LOG_FORMAT", "json"),
    ])
}

#[test]
fn the_access_log_records_the_path_and_route_of_each_request() {
    let s = serve_logging_every_request();
    let (status, h, _) = get(s.addr, "/json?ignored=1", "");
    assert_eq!(status, 200);
    let id = h.get("x-request-id").expect("a request id").clone();
    let lines: Vec<serde_json::Value> = s
        .wait_for_logs(&["pinion::access", &id], 1)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert_eq!(
        log_field(line, "path"),
        "/json",
        "the path without the query"
    );
    assert_eq!(log_field(line, "route"), "/json");
    assert_eq!(log_field(line, "method"), "GET");
    assert_eq!(log_field(line, "status"), 200);
}

#[test]
fn the_access_log_escapes_control_and_non_ascii_bytes_of_a_path() {
    let s = serve_logging_every_request();
    // CSI (C2 9B) would start a terminal escape, NEL (C2 85) and U+2028 break lines.
    let (status, h, _) = get(s.addr, "/x\u{9b}31m\u{85}\u{2028}y", "");
    assert_eq!(status, 404);
    let id = h.get("x-request-id").expect("a request id").clone();
    let lines = s.wait_for_logs(&["pinion::access", &id], 1);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let raw = &lines[0];
    for c in ['\u{9b}', '\u{85}', '\u{2028}'] {
        assert!(!raw.contains(c), "raw {c:?} in {raw:?}");
    }
    let line: serde_json::Value = serde_json::from_str(raw).expect("json");
    assert_eq!(log_field(&line, "path"), "/x%C2%9B31m%C2%85%E2%80%A8y");
    assert_eq!(log_field(&line, "route"), "unmatched");
}
