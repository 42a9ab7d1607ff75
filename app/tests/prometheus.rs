//! A real Prometheus server (Debian's `prometheus`, found or installed by `scripts/prometheus`)
//! scrapes two real `pinion serve` instances on the private cluster, with the shipped rules
//! (`deploy/prometheus/rules/recording.yml` and `alerts.yml`) loaded, and the test reads what
//! it recorded through its HTTP API (`/api/v1/query`). It proves that:
//!
//! - `/metrics` of both instances is scraped (`up == 1`) and the request counters Prometheus
//!   holds account for every request sent to each instance, route by route;
//! - the shipped recording rule `job_route:pinion_http_request_duration_seconds:p99_5m` yields
//!   a finite p99 for `/db` from the histogram;
//! - series do not grow with the number of distinct paths requested: 201 distinct unknown
//!   paths land in one `route="unmatched"` series per instance, no label value carries a
//!   requested path, and the number of samples a scrape reads is the same before and after
//!   them;
//! - one instance killed (SIGKILL) → `up == 0` for it and the shipped `PinionInstanceAbsent`
//!   alert pending (or firing) for it, and for it alone;
//! - every expression of the shipped Grafana dashboard (`deploy/grafana/pinion.json`) is
//!   accepted by Prometheus's query API.
//!
//! It also prints (`-- --nocapture`) the scrape duration and the samples one instance exposes,
//! at rest and after the load.
//!
//! Prometheus runs on a free loopback port with a data directory of its own and scrapes (and
//! evaluates its rules) every second; every wait is a bounded poll of the API for the condition,
//! failing with the last answer; Prometheus's log is printed when the test fails. Prometheus and
//! the instances are stopped on drop, also when the test fails.

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::nginx::free_port;
use common::{database_env, repo, request, serve, wait_exit, wait_for, Served};

/// The shipped rules Prometheus loads, relative to the repository.
const RULE_FILES: [&str; 2] = [
    "deploy/prometheus/rules/recording.yml",
    "deploy/prometheus/rules/alerts.yml",
];

/// The shipped dashboard, relative to the repository.
const DASHBOARD: &str = "deploy/grafana/pinion.json";

/// How long any condition may take to show in Prometheus (scrapes and rule evaluations run
/// every second).
const WAIT: Duration = Duration::from_secs(30);

/// The distinct unknown paths the load requests of each instance, `/nope/1`…`/nope/200` (the
/// warm-up requested `/nope/0`).
const UNKNOWN_PATHS: usize = 200;

/// What the main load sends to each instance, besides the unknown paths: (path, requests).
const LOAD: [(&str, usize); 3] = [("/plaintext", 150), ("/json", 100), ("/db", 60)];

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 over a plain socket.

/// A response: status, headers (lowercased names) and body.
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// One HTTP/1.1 response read from `stream` (`buf` holds what was read past the previous one),
/// framed by `Content-Length`, chunked, or by the end of the connection. `None` when the
/// connection ended before a response began.
fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Response> {
    fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
        let mut chunk = [0u8; 65536];
        loop {
            match stream.read(&mut chunk) {
                Ok(0) => return false,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    return true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => panic!("read a response: {e}"),
            }
        }
    }
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        if !fill(stream, buf) {
            assert!(
                buf.is_empty(),
                "the connection ended inside a response head: {:?}",
                String::from_utf8_lossy(buf)
            );
            return None;
        }
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).expect("a UTF-8 response head");
    buf.drain(..head_end + 4);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a status line in {head:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        loop {
            let line = loop {
                if let Some(at) = buf.windows(2).position(|w| w == b"\r\n") {
                    break at;
                }
                assert!(
                    fill(stream, buf),
                    "the connection ended inside a chunk size"
                );
            };
            let size = std::str::from_utf8(&buf[..line])
                .ok()
                .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok())
                .unwrap_or_else(|| panic!("a chunk size in {:?}", String::from_utf8_lossy(buf)));
            while buf.len() < line + 2 + size + 2 {
                assert!(fill(stream, buf), "the connection ended inside a chunk");
            }
            body.extend_from_slice(&buf[line + 2..line + 2 + size]);
            buf.drain(..line + 2 + size + 2);
            if size == 0 {
                // No trailers are expected: the last chunk's CRLF ended the body.
                break body;
            }
        }
    } else if let Some(len) = header("content-length") {
        let len: usize = len.parse().expect("a numeric Content-Length");
        while buf.len() < len {
            assert!(fill(stream, buf), "the connection ended inside a body");
        }
        buf.drain(..len).collect()
    } else {
        while fill(stream, buf) {}
        std::mem::take(buf)
    };
    Some(Response {
        status,
        headers,
        body,
    })
}

/// A keep-alive connection to one instance, reopened when the server closes it.
struct KeepAlive {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    /// Connections opened so far.
    opened: usize,
}

impl KeepAlive {
    fn new(addr: SocketAddr) -> KeepAlive {
        KeepAlive {
            addr,
            stream: None,
            buf: Vec::new(),
            opened: 0,
        }
    }

    /// `GET path` on the open connection (opening one when there is none); the status.
    fn get(&mut self, path: &str) -> u16 {
        let addr = self.addr;
        if self.stream.is_none() {
            let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
            s.set_read_timeout(Some(Duration::from_secs(10)))
                .expect("set a read timeout");
            self.stream = Some(s);
            self.opened += 1;
        }
        let stream = self.stream.as_mut().expect("an open connection");
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: pinion.test\r\n\r\n").as_bytes())
            .unwrap_or_else(|e| panic!("send GET {path} to {addr}: {e}"));
        let response = read_response(stream, &mut self.buf)
            .unwrap_or_else(|| panic!("{addr} closed the connection before answering {path}"));
        if response
            .headers
            .iter()
            .any(|(n, v)| n == "connection" && v.eq_ignore_ascii_case("close"))
        {
            self.stream = None;
            self.buf.clear();
        }
        response.status
    }
}

/// `GET path` of `addr` on a connection of its own: status and body.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("set a read timeout");
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap_or_else(|e| panic!("send GET {path} to {addr}: {e}"));
    let response = read_response(&mut s, &mut Vec::new())
        .unwrap_or_else(|| panic!("{addr} closed the connection before answering {path}"));
    (
        response.status,
        String::from_utf8_lossy(&response.body).into_owned(),
    )
}

/// `s` percent-encoded for a query string: every byte but the unreserved ones.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Prometheus.

/// A running Prometheus server and its folder (configuration, data, log); stopped and its
/// folder removed on drop, its log printed first when the test is failing.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        // SIGTERM first: Prometheus closes its TSDB and exits within a second or so.
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        if wait_exit(&mut self.child, Duration::from_secs(5)).is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "---- prometheus log ({}) ----\n{}\n---- end of the prometheus log ----",
                self.log_path().display(),
                self.log()
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A sample of an instant vector: its labels and its value.
type Sample = (BTreeMap<String, String>, f64);

impl Prometheus {
    /// Starts Prometheus on a free loopback port, scraping `targets` as job `pinion` every
    /// second, with `rule_files` evaluated every second; returns once it is ready (`/-/ready`).
    fn start(targets: &[SocketAddr], rule_files: &[PathBuf]) -> Prometheus {
        let dir = std::env::temp_dir().join(format!("pinion-prometheus-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the prometheus folder");
        let targets: Vec<String> = targets.iter().map(|a| format!("'{a}'")).collect();
        let rules: Vec<String> = rule_files
            .iter()
            .map(|p| {
                assert!(p.is_file(), "the rule file {} is missing", p.display());
                format!("  - '{}'\n", p.display())
            })
            .collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n{}\
             scrape_configs:\n  - job_name: pinion\n    static_configs:\n      - targets: [{}]\n",
            rules.concat(),
            targets.join(", ")
        );
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus.yml");

        let addr: SocketAddr = format!("127.0.0.1:{}", free_port())
            .parse()
            .expect("a socket address");
        let log = File::create(dir.join("prometheus.log")).expect("create prometheus.log");
        let child = Command::new(binary())
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("a second handle on prometheus.log"))
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        // Stopped on drop, also when the wait below fails.
        let mut prometheus = Prometheus { child, addr, dir };
        let (_, took) = wait_for("prometheus to be ready", WAIT, || {
            if let Ok(Some(status)) = prometheus.child.try_wait() {
                panic!("prometheus exited ({status}) before it was ready");
            }
            let ready = TcpStream::connect(addr).is_ok() && get(addr, "/-/ready").0 == 200;
            ready.then_some(()).ok_or_else(|| "not ready".to_string())
        });
        eprintln!(
            "prometheus ready on {addr} in {took:?}, scraping {}",
            targets.join(", ")
        );
        prometheus
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("prometheus.log")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_else(|e| format!("(unreadable: {e})"))
    }

    /// `GET /api/v1/query?query=…` (evaluated now): the `data.result` of a successful answer,
    /// or the whole answer as the error.
    fn query(&self, promql: &str) -> Result<Value, String> {
        let (status, body) = get(
            self.addr,
            &format!("/api/v1/query?query={}", percent_encode(promql)),
        );
        let answer: Value = serde_json::from_str(&body)
            .map_err(|e| format!("{promql}: {status}, not JSON ({e}): {body}"))?;
        if status != 200 || answer["status"] != "success" {
            return Err(format!("{promql}: {status} {body}"));
        }
        Ok(answer["data"]["result"].clone())
    }

    /// The samples of the instant vector `promql` evaluates to.
    fn samples(&self, promql: &str) -> Result<Vec<Sample>, String> {
        let result = self.query(promql)?;
        let items = result
            .as_array()
            .ok_or_else(|| format!("{promql}: not a vector: {result}"))?;
        items
            .iter()
            .map(|item| {
                let labels = item["metric"]
                    .as_object()
                    .ok_or_else(|| format!("{promql}: no labels in {item}"))?
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect();
                let value = item["value"][1]
                    .as_str()
                    .and_then(|v| v.parse::<f64>().ok())
                    .ok_or_else(|| format!("{promql}: no value in {item}"))?;
                Ok((labels, value))
            })
            .collect()
    }

    /// The value of `promql` for each instance (label `instance`).
    fn by_instance(&self, promql: &str) -> Result<BTreeMap<String, f64>, String> {
        Ok(self
            .samples(promql)?
            .into_iter()
            .filter_map(|(labels, v)| Some((labels.get("instance")?.clone(), v)))
            .collect())
    }

    /// Polls `check` until it returns `Ok` (at most [`WAIT`], through `common::wait_for`); panics with `what`
    /// and the last `Err` (what the API answered instead). Returns the value and how long the
    /// wait took.
    fn wait_until<T>(
        &self,
        what: &str,
        mut check: impl FnMut(&Prometheus) -> Result<T, String>,
    ) -> (T, Duration) {
        wait_for(what, WAIT, || check(self))
    }
}

/// The path of the prometheus server, installed by `scripts/prometheus` when missing.
fn binary() -> String {
    common::tool_path("prometheus")
}

// ---------------------------------------------------------------------------------------------
// The dashboard.

/// Every `targets[].expr` of every panel of `dashboard`, panels nested in rows included.
fn dashboard_exprs(dashboard: &Value) -> Vec<(String, String)> {
    fn walk(panels: &Value, out: &mut Vec<(String, String)>) {
        for panel in panels.as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or("(untitled)");
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push((title.to_string(), expr.to_string()));
                }
            }
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    // Old-style dashboards keep their panels in `rows[].panels`.
    for row in dashboard["rows"].as_array().into_iter().flatten() {
        walk(&row["panels"], &mut out);
    }
    out
}

/// `expr` with the dashboard's variables replaced as Grafana would for job `pinion`, every
/// instance (the `instance` variable's "All", `allValue: ".+"`, used as `instance=~"$instance"`),
/// a 1m rate interval, a 15 s step and a 5 m range.
fn substitute(expr: &str) -> String {
    let values = [
        ("__rate_interval", "1m"),
        ("__interval_ms", "15000"),
        ("__interval", "15s"),
        ("__range_s", "300"),
        ("__range_ms", "300000"),
        ("__range", "5m"),
        ("job", "pinion"),
        ("instance", ".+"),
    ];
    let mut out = expr.to_string();
    for (name, value) in values {
        for form in [
            format!("${{{name}:regex}}"),
            format!("${{{name}}}"),
            format!("[[{name}]]"),
        ] {
            out = out.replace(&form, value);
        }
    }
    // `$name` last, longest names first (the list above), so that `$__interval` does not eat
    // the start of `$__interval_ms`.
    for (name, value) in values {
        out = out.replace(&format!("${name}"), value);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The test.

/// A `pinion serve` on the private cluster, `/metrics` at most 100 ms behind, ready.
fn instance() -> Served {
    let mut env = database_env();
    env.push(("PINION_TELEMETRY_DRAIN_INTERVAL".into(), "100ms".into()));
    let served = serve(env);
    wait_for(
        &format!("{} to be ready", served.addr),
        Duration::from_secs(10),
        || {
            let (status, _, body) = request(
                served.addr,
                "GET /health/ready HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            );
            (status == 200)
                .then_some(())
                .ok_or(format!("{status} {body}"))
        },
    );
    served
}

/// `scrape_duration_seconds` and `scrape_samples_scraped` of `instance`'s last scrape.
fn scrape_figures(prometheus: &Prometheus, instance: &str) -> (f64, f64) {
    let one = |metric: &str| {
        let found = prometheus
            .by_instance(&format!("{metric}{{job=\"pinion\"}}"))
            .unwrap_or_else(|e| panic!("query {metric}: {e}"));
        *found
            .get(instance)
            .unwrap_or_else(|| panic!("no {metric} for {instance}: {found:?}"))
    };
    (
        one("scrape_duration_seconds"),
        one("scrape_samples_scraped"),
    )
}

/// The value of `up{job="pinion"}` for each instance Prometheus has it for.
fn up(p: &Prometheus) -> Result<BTreeMap<String, f64>, String> {
    p.by_instance(r#"up{job="pinion"}"#)
}

#[test]
fn prometheus_scrapes_two_instances_records_alerts_and_runs_the_dashboard() {
    let started = Instant::now();
    let rule_files: Vec<PathBuf> = RULE_FILES.iter().map(|f| repo().join(f)).collect();
    let mut a = instance();
    let b = instance();
    let (ia, ib) = (a.addr.to_string(), b.addr.to_string());
    let prometheus = Prometheus::start(&[a.addr, b.addr], &rule_files);

    // Both scraped.
    let (_, took) = prometheus.wait_until("up == 1 for both instances", |p| {
        let up = up(p)?;
        (up.get(&ia) == Some(&1.0) && up.get(&ib) == Some(&1.0))
            .then_some(())
            .ok_or(format!("{up:?}"))
    });
    eprintln!("both instances up in Prometheus after {took:?}");
    let (rest_duration, rest_samples) = scrape_figures(&prometheus, &ia);
    eprintln!(
        "at rest ({ia}): scrape_duration_seconds = {rest_duration:.6} ({:.2} ms), \
         scrape_samples_scraped = {rest_samples}",
        rest_duration * 1e3
    );

    // Warm-up: one request of each kind, so that every series the load touches exists in
    // Prometheus before the load (a rate needs two samples of a series; a series first scraped
    // with its whole count would show no increase).
    let mut sent: BTreeMap<(String, &str), usize> = BTreeMap::new();
    for served in [&a, &b] {
        let mut conn = KeepAlive::new(served.addr);
        for (path, route, want) in [
            ("/plaintext", "/plaintext", 200),
            ("/json", "/json", 200),
            ("/db", "/db", 200),
            ("/nope/0", "unmatched", 404),
        ] {
            assert_eq!(conn.get(path), want, "GET {path} of {}", served.addr);
            *sent.entry((served.addr.to_string(), route)).or_default() += 1;
        }
    }
    let routes = r#"route=~"/plaintext|/json|/db|unmatched""#;
    prometheus.wait_until("the warm-up's four routes of both instances", |p| {
        let found = p.by_instance(&format!(
            "count by (instance) (pinion_http_requests_total{{job=\"pinion\",{routes}}})"
        ))?;
        (found.get(&ia) == Some(&4.0) && found.get(&ib) == Some(&4.0))
            .then_some(())
            .ok_or(format!("{found:?}"))
    });
    // The series with a route once every route the load requests has its series, and the
    // samples of a scrape then: the load adds 200 distinct paths and must add no series with a
    // route (other series may appear in the meantime, as background polls report, e.g. the
    // first round-trips to the primary).
    let route_series = |p: &Prometheus| {
        p.by_instance(r#"count by (instance) ({job="pinion",route!=""})"#)
            .expect("count the series with a route")
    };
    let warm_routes = route_series(&prometheus);
    let (_, warm_samples) = scrape_figures(&prometheus, &ia);

    // The load: keep-alive connections, one per instance, in parallel.
    let load_start = Instant::now();
    let loads: Vec<_> = [a.addr, b.addr]
        .into_iter()
        .map(|addr| {
            std::thread::spawn(move || {
                let mut conn = KeepAlive::new(addr);
                let mut requests = 0;
                for (path, count) in LOAD {
                    for _ in 0..count {
                        assert_eq!(conn.get(path), 200, "GET {path} of {addr}");
                        requests += 1;
                    }
                }
                for n in 1..=UNKNOWN_PATHS {
                    let path = format!("/nope/{n}");
                    assert_eq!(conn.get(&path), 404, "GET {path} of {addr}");
                    requests += 1;
                }
                (requests, conn.opened)
            })
        })
        .collect();
    let mut connections = Vec::new();
    for load in loads {
        let (requests, opened) = load.join().expect("a load thread");
        assert_eq!(
            requests,
            LOAD.iter().map(|(_, n)| n).sum::<usize>() + UNKNOWN_PATHS
        );
        connections.push(opened);
    }
    for addr in [&ia, &ib] {
        for (path, count) in LOAD {
            *sent.entry((addr.clone(), path)).or_default() += count;
        }
        *sent.entry((addr.clone(), "unmatched")).or_default() += UNKNOWN_PATHS;
    }
    eprintln!(
        "load: {} requests per instance (warm-up included) in {:?}, over {connections:?} \
         keep-alive connection(s) per instance",
        sent.iter()
            .filter(|((i, _), _)| *i == ia)
            .map(|(_, n)| n)
            .sum::<usize>(),
        load_start.elapsed()
    );

    // The counters: every request sent, per instance and route, and in the instance's total.
    let (_, took) = prometheus.wait_until("the request counters of the load", |p| {
        let found: BTreeMap<(String, String), f64> = p
            .samples(r#"sum by (instance, route) (pinion_http_requests_total{job="pinion"})"#)?
            .into_iter()
            .map(|(l, v)| {
                let get = |k: &str| l.get(k).cloned().unwrap_or_default();
                ((get("instance"), get("route")), v)
            })
            .collect();
        let short: Vec<String> = sent
            .iter()
            .filter(|((i, r), n)| {
                found
                    .get(&(i.clone(), r.to_string()))
                    .is_none_or(|v| *v < **n as f64)
            })
            .map(|((i, r), n)| format!("{i} {r}: sent {n}"))
            .collect();
        let totals =
            p.by_instance(r#"sum by (instance) (pinion_http_requests_total{job="pinion"})"#)?;
        let total_short: Vec<String> = [&ia, &ib]
            .into_iter()
            .filter_map(|i| {
                let want: usize = sent
                    .iter()
                    .filter(|((j, _), _)| j == i)
                    .map(|(_, n)| n)
                    .sum();
                let got = totals.get(i).copied().unwrap_or(0.0);
                (got < want as f64).then(|| format!("{i} total: sent {want}, has {got}"))
            })
            .collect();
        (short.is_empty() && total_short.is_empty())
            .then_some(())
            .ok_or(format!(
                "short: {short:?} {total_short:?}; Prometheus has {found:?}"
            ))
    });
    eprintln!("the load's counters in Prometheus after {took:?}");

    // The recording rule: a finite p99 for /db.
    let (p99, took) = prometheus.wait_until(
        "a finite job_route:pinion_http_request_duration_seconds:p99_5m for route /db",
        |p| {
            let found = p.samples(r#"job_route:pinion_http_request_duration_seconds:p99_5m"#)?;
            found
                .iter()
                .find(|(l, v)| l.get("route").map(String::as_str) == Some("/db") && v.is_finite())
                .map(|(_, v)| *v)
                .ok_or(format!("{found:?}"))
        },
    );
    assert!(p99 > 0.0, "the p99 of /db is {p99}");
    eprintln!(
        "job_route:pinion_http_request_duration_seconds:p99_5m{{route=\"/db\"}} = {p99} \
         (after {took:?})"
    );

    // Series do not grow with distinct paths: one unmatched series per instance (GET, 404),
    // no label value with a requested path, as many series with a route as before the load,
    // and fewer new samples per scrape than distinct paths.
    let unmatched = prometheus
        .by_instance(
            r#"count by (instance) (pinion_http_requests_total{job="pinion",route="unmatched"})"#,
        )
        .expect("count the unmatched series");
    assert_eq!(
        unmatched,
        BTreeMap::from([(ia.clone(), 1.0), (ib.clone(), 1.0)]),
        "one route=\"unmatched\" series per instance after {} distinct unknown paths",
        UNKNOWN_PATHS + 1
    );
    let everything = prometheus
        .samples(r#"{job="pinion"}"#)
        .expect("every series of job pinion");
    let leaked: Vec<&Sample> = everything
        .iter()
        .filter(|(labels, _)| labels.values().any(|v| v.contains("/nope")))
        .collect();
    assert!(
        leaked.is_empty(),
        "series labelled with a requested path: {leaked:?}"
    );
    let (load_duration, load_samples) = scrape_figures(&prometheus, &ia);
    eprintln!(
        "after the load ({ia}): scrape_duration_seconds = {load_duration:.6} ({:.2} ms), \
         scrape_samples_scraped = {load_samples} (at rest {rest_samples}, after the warm-up \
         {warm_samples})",
        load_duration * 1e3
    );
    let load_routes = route_series(&prometheus);
    eprintln!("series with a route label: {load_routes:?} (before the load {warm_routes:?})");
    assert_eq!(
        load_routes, warm_routes,
        "the series with a route changed with {UNKNOWN_PATHS} more distinct paths"
    );
    assert!(
        load_samples - warm_samples < UNKNOWN_PATHS as f64,
        "a scrape of {ia} read {warm_samples} samples before {UNKNOWN_PATHS} more distinct \
         paths, {load_samples} after"
    );

    // The dashboard: every expression accepted by the query API.
    let dashboard_path = repo().join(DASHBOARD);
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(&dashboard_path)
            .unwrap_or_else(|e| panic!("read {}: {e}", dashboard_path.display())),
    )
    .unwrap_or_else(|e| panic!("{} is not JSON: {e}", dashboard_path.display()));
    let exprs = dashboard_exprs(&dashboard);
    assert!(
        !exprs.is_empty(),
        "no targets[].expr in {}",
        dashboard_path.display()
    );
    let mut rejected = Vec::new();
    let mut empty = Vec::new();
    for (title, expr) in &exprs {
        let promql = substitute(expr);
        let left = promql
            .match_indices('$')
            .filter(|(at, _)| {
                promql[at + 1..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '{')
            })
            .count();
        if left > 0 {
            rejected.push(format!("{title}: a variable left in {promql:?}"));
            continue;
        }
        match prometheus.query(&promql) {
            Ok(result) if result.as_array().is_some_and(Vec::is_empty) => {
                empty.push(format!("{title}: {promql}"));
            }
            Ok(_) => {}
            Err(e) => rejected.push(format!("{title}: {e}")),
        }
    }
    eprintln!(
        "dashboard: {} expressions, all accepted; {} with an empty result now:",
        exprs.len(),
        empty.len()
    );
    for e in &empty {
        eprintln!("  {e}");
    }
    assert!(
        rejected.is_empty(),
        "dashboard expressions Prometheus rejected:\n{}",
        rejected.join("\n")
    );

    // One instance killed: up == 0 for it and PinionInstanceAbsent pending (or firing) for it
    // alone.
    let alerts = |p: &Prometheus| p.samples(r#"ALERTS{alertname="PinionInstanceAbsent"}"#);
    let before = alerts(&prometheus).expect("query ALERTS");
    assert!(
        before.is_empty(),
        "PinionInstanceAbsent before any instance stopped: {before:?}"
    );
    a.child.kill().expect("kill the first instance");
    a.child.wait().expect("reap the first instance");
    let killed = Instant::now();
    let (_, took) = prometheus.wait_until(&format!("up == 0 for the killed {ia}"), |p| {
        let up = up(p)?;
        (up.get(&ia) == Some(&0.0))
            .then_some(())
            .ok_or(format!("{up:?}"))
    });
    eprintln!("up == 0 for {ia} {took:?} after the kill");
    let (state, _) = prometheus.wait_until(
        &format!("PinionInstanceAbsent pending or firing for {ia}"),
        |p| {
            let found = alerts(p)?;
            found
                .iter()
                .find(|(l, _)| l.get("instance") == Some(&ia))
                .and_then(|(l, _)| l.get("alertstate").cloned())
                .filter(|s| s == "pending" || s == "firing")
                .ok_or(format!("{found:?}"))
        },
    );
    eprintln!(
        "PinionInstanceAbsent {state} for {ia} {:?} after the kill",
        killed.elapsed()
    );
    let after = alerts(&prometheus).expect("query ALERTS");
    assert!(
        after.iter().all(|(l, _)| l.get("instance") == Some(&ia)),
        "PinionInstanceAbsent for an instance that is up: {after:?}"
    );
    let up_now = up(&prometheus).expect("query up");
    assert_eq!(
        up_now.get(&ib),
        Some(&1.0),
        "the other instance: {up_now:?}"
    );

    eprintln!("the whole test took {:?}", started.elapsed());
    drop(prometheus);
    drop(b);
}
