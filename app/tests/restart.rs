//! Restarts under load on the real binary (README "Restarts that lose nothing"): with
//! `handoff_socket` set, a successor started on the same port takes the running process's
//! listening sockets, and the old process drains and exits 0 by itself. What an operator checks
//! after such a deployment, checked here:
//!
//! - wrk on `/json`, straight at pinion and through nginx (`nginx/proxy.conf`, upstream
//!   keep-alive), sees no socket error and no non-2xx response across three restarts, each
//!   made while the instance being replaced carries wrk's load, and nginx logs no upstream
//!   error (a retry it would hide);
//! - a request whose body is still arriving when the successor takes over, or when SIGTERM
//!   comes, is answered in full, with `Connection: close`;
//! - an open event stream ends with its last chunk at the hand-over, not a reset, and a stream
//!   opened afterwards is the successor's and carries its events.
//!
//! Every hand-over is also checked from both logs: the successor took the sockets (it did not
//! bind fresh ones), and the predecessor exited 0 by itself with its "stopped" line, its drain
//! deadline never passing.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use common::nginx::{free_port, main_conf, temp_dir, Nginx};
use common::{
    body_awaited, database_env, metrics_when, pinion, repo, request, wait_listener_closed,
};

/// Restarts per load test.
const RESTARTS: usize = 3;
/// wrk's `-d`: far longer than three restarts take, also on a loaded two-core machine; a run
/// that ends before they are done fails and says so.
const WRK_SECONDS: u64 = 8;
/// How long a successor may take to be ready (it migrates when it has a database).
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a predecessor may take to drain and exit once its successor is ready: its open
/// connections are answered with `Connection: close`, its idle ones wait `drain_grace` (1 s).
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// The two load tests run one at a time: each needs the machine's cores for wrk, nginx and two
/// pinions, and wrk's 2 s request timeout would count the other test's load as a loss.
static LOAD: Mutex<()> = Mutex::new(());

/// The settings of the instances under wrk: no sampled traces (their lines would be most of the
/// log), and request counts in `/metrics` within 100 ms.
fn load_env() -> Vec<(String, String)> {
    vec![
        ("PINION_TELEMETRY_SAMPLE_RATIO".into(), "0".into()),
        ("PINION_TELEMETRY_DRAIN_INTERVAL".into(), "100ms".into()),
    ]
}

/// The stderr lines of one instance as they arrive, and whether stderr has closed (the process
/// exited).
#[derive(Default)]
struct Log {
    state: Mutex<(Vec<String>, bool)>,
    changed: Condvar,
}

impl Log {
    /// Waits up to `timeout` for `done` to accept the lines and the closed flag; returns its
    /// last answer.
    fn wait(&self, timeout: Duration, done: impl Fn(&[String], bool) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.state.lock().expect("log lines");
        loop {
            if done(&state.0, state.1) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self.changed.wait_timeout(state, left).expect("log lines").0;
        }
    }
}

/// One `pinion serve` process of a [`Deployment`]; killed on drop.
struct Instance {
    name: String,
    child: Child,
    log: Arc<Log>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Instance {
    /// Its stderr so far, for failure messages.
    fn logs(&self) -> String {
        self.log.state.lock().expect("log lines").0.join("\n")
    }

    /// Whether some stderr line so far contains `needle`.
    fn logged(&self, needle: &str) -> bool {
        let state = self.log.state.lock().expect("log lines");
        state.0.iter().any(|l| l.contains(needle))
    }

    /// Waits up to `timeout` for a stderr line that contains `needle`.
    ///
    /// # Panics
    /// When the process exits or the time passes first; the message has its log.
    fn wait_for_line(&self, needle: &str, timeout: Duration) {
        self.wait_for_lines(needle, 1, timeout);
    }

    /// Waits up to `timeout` for `count` stderr lines that contain `needle`.
    ///
    /// # Panics
    /// When the process exits or the time passes first; the message has its log.
    fn wait_for_lines(&self, needle: &str, count: usize, timeout: Duration) {
        let matching = |lines: &[String]| lines.iter().filter(|l| l.contains(needle)).count();
        let seen = self
            .log
            .wait(timeout, |lines, closed| closed || matching(lines) >= count);
        let found = matching(&self.log.state.lock().expect("log lines").0);
        assert!(
            seen && found >= count,
            "{}: {found} of {count} {needle:?} lines within {timeout:?}{}:\n{}",
            self.name,
            if seen { " (it exited)" } else { "" },
            self.logs()
        );
    }

    /// Waits up to `timeout` for the process to exit by itself (its stderr closes as it does).
    ///
    /// # Panics
    /// When it is still running then; the message has its log.
    fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let closed = self.log.wait(timeout, |_, closed| closed);
        assert!(
            closed,
            "{} did not exit within {timeout:?}:\n{}",
            self.name,
            self.logs()
        );
        self.child.wait().expect("wait for pinion")
    }

    /// Waits for a draining instance to exit, and checks that it ended as a clean drain does:
    /// status 0, its "stopped" line, and no drain deadline that cut connections off (the
    /// process also exits 0 when the deadline passes).
    fn assert_drained(&mut self) {
        let status = self.wait_exit(EXIT_TIMEOUT);
        let logs = self.logs();
        assert!(status.success(), "{} exited {status}:\n{logs}", self.name);
        assert!(
            self.logged("stopped"),
            "{} exited without its \"stopped\" line:\n{logs}",
            self.name
        );
        assert!(
            !self.logged("drain deadline passed"),
            "{} was cut off by its drain deadline:\n{logs}",
            self.name
        );
    }
}

/// One port and one handoff socket, which a deployment's successive instances share; the
/// socket's folder is removed on drop.
struct Deployment {
    addr: SocketAddr,
    dir: PathBuf,
    env: Vec<(String, String)>,
    started: usize,
}

impl Drop for Deployment {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Deployment {
    /// A free loopback port and an empty folder for the handoff socket; `name` keeps the
    /// folders of tests running at once apart. `env` is given to every instance.
    fn new(name: &str, env: Vec<(String, String)>) -> Deployment {
        let dir =
            std::env::temp_dir().join(format!("pinion-restart-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("handoff folder");
        Deployment {
            addr: SocketAddr::from(([127, 0, 0, 1], free_port())),
            dir,
            env,
            started: 0,
        }
    }

    /// Starts the next instance (two worker threads, so two listeners to hand over) and returns
    /// once it logs "ready for traffic": with a predecessor running, that one is draining by
    /// then.
    fn start(&mut self) -> Instance {
        let name = format!("instance {}", self.started);
        self.started += 1;
        let port = self.addr.port().to_string();
        let mut cmd = pinion();
        cmd.args([
            "serve",
            "--bind",
            "127.0.0.1",
            "--port",
            port.as_str(),
            "--threads",
            "2",
        ])
        .env("PINION_HANDOFF_SOCKET", self.dir.join("handoff.sock"))
        .envs(self.env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn pinion");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Log::default());
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.state.lock().expect("log lines").0.push(line);
                sink.changed.notify_all();
            }
            sink.state.lock().expect("log lines").1 = true;
            sink.changed.notify_all();
        });
        let instance = Instance { name, child, log };
        instance.wait_for_line("ready for traffic", READY_TIMEOUT);
        instance
    }

    /// Starts `current`'s successor, and checks the hand-over from both sides: the successor
    /// took the listening sockets, and `current` drained and exited 0 by itself.
    fn restart(&mut self, mut current: Instance) -> Instance {
        let next = self.start();
        assert_took_over(&current, &next);
        current.assert_drained();
        next
    }
}

/// Checks, once `next` is ready, that it serves `previous`'s sockets rather than listeners of
/// its own (whose accept queues a restart would reset).
fn assert_took_over(previous: &Instance, next: &Instance) {
    let line = "took the listening sockets from the running process";
    assert!(
        next.logged(line),
        "{} has no {line:?} line:\n{}\n{}:\n{}",
        next.name,
        next.logs(),
        previous.name,
        previous.logs()
    );
}

/// Waits until the instance on `addr` has answered wrk's `/json` requests: the load is on it.
fn assert_carries_load(addr: SocketAddr, instance: &Instance) {
    let answered = |metrics: &str| -> u64 {
        metrics
            .lines()
            .filter(|l| {
                l.starts_with("pinion_http_requests_total{") && l.contains("route=\"/json\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    let metrics = metrics_when(addr, |m| answered(m) > 0);
    assert!(
        answered(&metrics) > 0,
        "{} answered no /json request within 10 s:\n{metrics}\n{}",
        instance.name,
        instance.logs()
    );
}

/// A wrk run in the background; killed on drop.
struct Wrk {
    child: Child,
    output: mpsc::Receiver<(String, String)>,
}

impl Drop for Wrk {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What wrk printed, and the counts an operator reads from it.
struct WrkReport {
    text: String,
    requests: u64,
    /// connect, read, write, timeout; `None` when wrk printed no such line (no error).
    socket_errors: Option<Vec<u64>>,
    non_2xx: Option<u64>,
}

impl Wrk {
    /// `wrk -t1 -c32 -d<WRK_SECONDS>s url`.
    fn start(url: &str) -> Wrk {
        let mut child = std::process::Command::new("wrk")
            .args(["-t1", "-c32", &format!("-d{WRK_SECONDS}s"), url])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("wrk is installed (/usr/bin/wrk)");
        let mut stdout = child.stdout.take().expect("stdout");
        let mut stderr = child.stderr.take().expect("stderr");
        let (tx, output) = mpsc::channel();
        std::thread::spawn(move || {
            let errors = std::thread::spawn(move || {
                let mut text = String::new();
                let _ = stderr.read_to_string(&mut text);
                text
            });
            let mut text = String::new();
            let _ = stdout.read_to_string(&mut text);
            let _ = tx.send((text, errors.join().unwrap_or_default()));
        });
        Wrk { child, output }
    }

    /// Whether wrk is still running.
    fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the end of the run (its duration plus 15 s at most) and reads the report.
    fn finish(mut self) -> WrkReport {
        let (text, errors) = self
            .output
            .recv_timeout(Duration::from_secs(WRK_SECONDS + 15))
            .expect("wrk ends after its duration");
        let status = self.child.wait().expect("wait for wrk");
        assert!(status.success(), "wrk exited {status}:\n{text}\n{errors}");
        let requests = text
            .lines()
            .find(|l| l.contains(" requests in "))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no request count in wrk's output:\n{text}\n{errors}"));
        let socket_errors = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Socket errors:"))
            .map(|l| {
                l.split(',')
                    .map(|part| {
                        part.split_whitespace()
                            .nth(1)
                            .and_then(|n| n.parse().ok())
                            .unwrap_or_else(|| panic!("socket errors {l:?}"))
                    })
                    .collect()
            });
        let non_2xx = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Non-2xx or 3xx responses:"))
            .map(|n| n.trim().parse().expect("a count"));
        WrkReport {
            text: format!("{text}{errors}"),
            requests,
            socket_errors,
            non_2xx,
        }
    }
}

impl WrkReport {
    /// Requests were made, none failed at the socket and none was answered with an error.
    fn assert_nothing_lost(&self) {
        let text = &self.text;
        assert!(self.requests > 0, "wrk made no request:\n{text}");
        if let Some(errors) = &self.socket_errors {
            assert!(
                errors.iter().all(|&n| n == 0),
                "socket errors (connect, read, write, timeout) {errors:?}:\n{text}"
            );
        }
        assert_eq!(self.non_2xx, None, "non-2xx responses:\n{text}");
    }
}

/// Runs wrk on `url` and restarts `deployment` [`RESTARTS`] times during the run, each time
/// once wrk's load has reached the instance being replaced; returns wrk's report.
fn restarts_under_wrk(deployment: &mut Deployment, url: &str) -> WrkReport {
    let mut current = deployment.start();
    let began = Instant::now();
    let mut wrk = Wrk::start(url);
    assert_carries_load(deployment.addr, &current);
    for _ in 0..RESTARTS {
        let restart = Instant::now();
        current = deployment.restart(current);
        println!(
            "{} took over {:?} after the restart began, {:?} into wrk's run",
            current.name,
            restart.elapsed(),
            began.elapsed()
        );
        assert_carries_load(deployment.addr, &current);
    }
    assert!(
        wrk.is_running(),
        "wrk's {WRK_SECONDS} s ended before the {RESTARTS} restarts were done ({:?}): raise \
         WRK_SECONDS",
        began.elapsed()
    );
    let report = wrk.finish();
    // The last instance served the end of the run, and still serves.
    assert!(
        matches!(current.child.try_wait(), Ok(None)),
        "{} exited:\n{}",
        current.name,
        current.logs()
    );
    report
}

#[test]
fn a_restart_under_load_loses_no_request_straight_at_pinion() {
    let _load = LOAD.lock().unwrap_or_else(|e| e.into_inner());
    let mut deployment = Deployment::new("direct", load_env());
    let url = format!("http://{}/json", deployment.addr);
    let report = restarts_under_wrk(&mut deployment, &url);
    println!("{}", report.text);
    report.assert_nothing_lost();
}

#[test]
fn a_restart_under_load_through_nginx_loses_no_request() {
    let _load = LOAD.lock().unwrap_or_else(|e| e.into_inner());
    let mut deployment = Deployment::new("nginx", load_env());
    let dir = temp_dir("restart");
    let port = free_port();
    // Upstream errors go to a file of their own: nginx retries a request whose cached upstream
    // connection failed, so the client would not see what this log shows.
    let upstream_log = dir.join("upstream-errors.log");
    let http = format!(
        "error_log {log} warn;\n\
         upstream pinion {{ server {upstream}; keepalive 32; }}\n\
         server {{\n\
           listen 127.0.0.1:{port};\n\
           location / {{\n\
             proxy_pass http://pinion;\n\
             include {proxy};\n\
           }}\n\
         }}",
        log = upstream_log.display(),
        upstream = deployment.addr,
        proxy = repo().join("nginx/proxy.conf").display(),
    );
    // wrk's 32 connections and as many to the upstream need more than main_conf's 64.
    let conf = main_conf(&dir, &http);
    assert!(conf.contains("worker_connections 64;"), "{conf}");
    let conf = conf.replace("worker_connections 64;", "worker_connections 256;");
    let nginx = Nginx::start(dir, &conf);
    let report = restarts_under_wrk(&mut deployment, &format!("http://127.0.0.1:{port}/json"));
    println!("{}", report.text);
    let upstream_errors = std::fs::read_to_string(&upstream_log).expect("nginx's error log");
    drop(nginx);
    report.assert_nothing_lost();
    assert_eq!(upstream_errors, "", "nginx logged upstream errors");
}

/// The settings of the instances whose drain a test waits for: each worker logs (at debug) when
/// its drain begins.
fn drain_logged_env() -> Vec<(String, String)> {
    vec![(
        "RUST_LOG".into(),
        "info,pinion_server::runtime::worker=debug".into(),
    )]
}

/// Waits until both of `instance`'s workers have begun their drain: a response written from
/// then on carries `Connection: close`.
fn wait_workers_draining(instance: &Instance) {
    instance.wait_for_lines("runtime::worker: draining", 2, EXIT_TIMEOUT);
}

/// A `POST /echo` of 100 000 bytes, the first half sent: returns the connection, once the
/// server has read the head (it answered `100 Continue`) and the half, and the whole body.
fn half_sent_echo(addr: SocketAddr) -> (TcpStream, Vec<u8>) {
    let body: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut s = body_awaited(
        addr,
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n",
    );
    s.write_all(&body[..50_000]).expect("write the first half");
    (s, body)
}

/// Sends the rest of `body` on `s` and checks the answer: 200, the whole body echoed, and
/// `Connection: close` (the server is draining).
fn assert_echo_completes(mut s: TcpStream, body: &[u8], server: &Instance) {
    s.write_all(&body[50_000..]).unwrap_or_else(|e| {
        panic!(
            "{} refused the rest of the body: {e}\n{}",
            server.name,
            server.logs()
        )
    });
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap_or_else(|e| {
        panic!(
            "reading the answer from {}: {e}\n{}",
            server.name,
            server.logs()
        )
    });
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no answer: {:?}", String::from_utf8_lossy(&out)));
    // With the last field's line end.
    let head = String::from_utf8_lossy(&out[..split + 2]).into_owned();
    assert!(
        head.starts_with("HTTP/1.1 200 OK\r\n"),
        "{head}\n{}",
        server.logs()
    );
    assert!(head.contains("\r\nConnection: close\r\n"), "{head}");
    assert!(head.contains("\r\nContent-Length: 100000\r\n"), "{head}");
    let echoed = &out[split + 4..];
    assert!(
        echoed == body,
        "{} bytes echoed, not the body sent",
        echoed.len()
    );
}

#[test]
fn a_slow_request_in_flight_when_the_successor_takes_over_completes() {
    let mut deployment = Deployment::new("slow", drain_logged_env());
    let mut a = deployment.start();
    let (s, body) = half_sent_echo(deployment.addr);
    let b = deployment.start();
    assert_took_over(&a, &b);
    // B's "ready for traffic" comes once A has been told to drain, and A's workers begin a
    // moment later: a response they write before then has no `Connection: close`. Wait for
    // them, so that the request is surely half read when the drain begins.
    wait_workers_draining(&a);
    assert_echo_completes(s, &body, &a);
    a.assert_drained();
    // B serves the port alone now.
    let (status, _, _) = request(
        deployment.addr,
        "GET /json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200, "{}", b.logs());
}

#[test]
fn a_slow_request_in_flight_at_sigterm_completes() {
    // The same deployment, stopped by a signal instead of a successor.
    let mut deployment = Deployment::new("sigterm", drain_logged_env());
    let mut a = deployment.start();
    let (s, body) = half_sent_echo(deployment.addr);
    // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
    let rc = unsafe { libc::kill(a.child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
    a.wait_for_line("shutting down gracefully", EXIT_TIMEOUT);
    // Draining: its listeners are closed, and no successor holds the port.
    wait_listener_closed(deployment.addr);
    wait_workers_draining(&a);
    assert_echo_completes(s, &body, &a);
    a.assert_drained();
}

/// An open `GET /worlds/live`: its socket, and what was read from it.
struct Stream {
    socket: TcpStream,
    seen: Vec<u8>,
}

impl Stream {
    /// Opens `/worlds/live` and reads the head: once it arrived, the stream is subscribed.
    fn open(addr: SocketAddr) -> Stream {
        let mut socket = TcpStream::connect(addr).expect("connect");
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        socket
            .write_all(b"GET /worlds/live HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n")
            .expect("write");
        let mut stream = Stream {
            socket,
            seen: Vec::new(),
        };
        let head = stream.until("\r\n\r\n").to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
        assert!(
            head.contains("\r\ntransfer-encoding: chunked\r\n"),
            "{head}"
        );
        stream
    }

    /// Reads until `needle` has arrived; returns everything read so far.
    fn until(&mut self, needle: &str) -> String {
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&self.seen).contains(needle) {
            match self.socket.read(&mut buf) {
                Ok(0) => panic!(
                    "closed before {needle:?}: {}",
                    String::from_utf8_lossy(&self.seen)
                ),
                Ok(n) => self.seen.extend_from_slice(&buf[..n]),
                Err(e) => panic!("read: {e}; so far {}", String::from_utf8_lossy(&self.seen)),
            }
        }
        String::from_utf8_lossy(&self.seen).into_owned()
    }

    /// Reads until the server closes the connection (10 s at most); returns the bytes after
    /// what was seen.
    ///
    /// # Panics
    /// When the connection is reset or stays open.
    fn read_to_close(&mut self) -> String {
        let start = self.seen.len();
        self.socket.read_to_end(&mut self.seen).unwrap_or_else(|e| {
            panic!(
                "the stream did not end cleanly: {e}; so far {:?}",
                String::from_utf8_lossy(&self.seen)
            )
        });
        String::from_utf8_lossy(&self.seen[start..]).into_owned()
    }
}

#[test]
fn an_open_event_stream_ends_cleanly_at_the_hand_over() {
    let mut deployment = Deployment::new("live", database_env());
    let mut a = deployment.start();
    // Several, so that both of A's workers likely hold one.
    let mut streams: Vec<Stream> = (0..4).map(|_| Stream::open(deployment.addr)).collect();
    let b = deployment.start();
    assert_took_over(&a, &b);
    for stream in &mut streams {
        // The last chunk, then the close: a browser reconnects, to B.
        let rest = stream.read_to_close();
        assert!(rest.ends_with("0\r\n\r\n"), "{rest:?}\n{}", a.logs());
    }
    a.assert_drained();
    // A is gone: this stream is B's, and a write through B reaches it.
    let mut after = Stream::open(deployment.addr);
    let number = 1 + std::process::id() % 9_999;
    let (status, _, body) = request(
        deployment.addr,
        &format!(
            "POST /worlds/42?randomNumber={number} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
    );
    assert_eq!(status, 303, "{body}\n{}", b.logs());
    let seen = after.until(&format!("\"randomNumber\":{number}}}\n\n"));
    assert!(seen.contains("event: world\nid: 42\n"), "{seen}");
}
