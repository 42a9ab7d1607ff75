//! Running the real `pinion` binary in tests.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod nginx;
pub mod pg;
pub mod site;

pub const BIN: &str = env!("CARGO_BIN_EXE_pinion");

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
}

/// The path a tool script prints (`scripts/nginx`, `scripts/promtool`, `scripts/prometheus`):
/// each finds the tool or installs it when missing, progress on stderr, the path on stdout.
pub fn tool_path(script: &str) -> String {
    let out = Command::new(repo().join("scripts").join(script))
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/{script}: {e}"));
    assert!(
        out.status.success(),
        "scripts/{script} failed: {:?}",
        out.status
    );
    String::from_utf8(out.stdout)
        .expect("a UTF-8 path")
        .trim()
        .to_string()
}

/// A `pinion` command without the developer's pinion and database variables, so they don't
/// leak into what a test checks, serving the repository's static files.
pub fn pinion() -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("PINION_")
            || k.starts_with("DATABASE_")
            || k == "PORT"
            || k == "WEB_CONCURRENCY"
        {
            cmd.env_remove(k);
        }
    }
    cmd.env("RUST_LOG", "info");
    // The tests run in app/, the repository's static files are one level up.
    cmd.env("PINION_STATIC_DIR", repo().join("static"));
    cmd
}

/// The shared private cluster's environment (`DATABASE_URL`, `DATABASE_REPLICA_URLS`, …),
/// started by `scripts/pg` if it is not running.
pub fn cluster_env() -> HashMap<String, String> {
    let out = Command::new(repo().join("scripts/pg"))
        .arg("start")
        .output()
        .expect("scripts/pg runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        .collect()
}

/// The environment that points `pinion serve` at the private cluster (primary and replica) and
/// the repository's migrations.
pub fn database_env() -> Vec<(String, String)> {
    let env = cluster_env();
    vec![
        ("DATABASE_URL".into(), env["DATABASE_URL"].clone()),
        (
            "DATABASE_REPLICA_URLS".into(),
            env["DATABASE_REPLICA_URLS"].clone(),
        ),
        (
            "PINION_MIGRATIONS_DIR".into(),
            repo()
                .join("migrations")
                .to_str()
                .expect("utf-8 path")
                .into(),
        ),
    ]
}

/// A `pinion serve` process on 127.0.0.1 with a free port; killed on drop if a test fails.
pub struct Served {
    pub child: Child,
    pub addr: SocketAddr,
    /// Every stderr line after the start-up line, as it arrives.
    pub logs: Arc<Mutex<Vec<String>>>,
    /// The stderr lines before the start-up line, and that line: what start-up logged.
    pub startup_logs: Vec<String>,
}

impl Served {
    /// Waits up to 10 s for log lines that contain every one of `needles`, and returns them
    /// once `count` such lines have arrived (or whatever matched by then).
    pub fn wait_for_logs(&self, needles: &[&str], count: usize) -> Vec<String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let found: Vec<String> = self
                .logs
                .lock()
                .expect("log lines")
                .iter()
                .filter(|l| needles.iter().all(|n| l.contains(n)))
                .cloned()
                .collect();
            if found.len() >= count || std::time::Instant::now() > deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `pinion serve --bind 127.0.0.1 --port 0 --threads 1` with `env`, and returns once
/// its start-up line names the address.
pub fn serve<K: AsRef<OsStr>, V: AsRef<OsStr>>(env: impl IntoIterator<Item = (K, V)>) -> Served {
    serve_threads(1, env)
}

/// As [`serve`], with `threads` worker threads.
pub fn serve_threads<K: AsRef<OsStr>, V: AsRef<OsStr>>(
    threads: usize,
    env: impl IntoIterator<Item = (K, V)>,
) -> Served {
    let mut cmd = pinion();
    let threads = threads.to_string();
    cmd.args([
        "serve",
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
        "--threads",
        threads.as_str(),
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn pinion");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut startup_logs = Vec::new();
    let addr = loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("pinion exited before listening: {startup_logs:#?}"))
            .expect("read stderr");
        let addr = line
            .split("listening on ")
            .nth(1)
            .map(|rest| rest.split_whitespace().next().expect("address").to_string());
        startup_logs.push(line);
        if let Some(addr) = addr {
            break addr.parse().expect("socket address");
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe; keep the lines for tests
    // that read logs.
    let logs = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&logs);
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            sink.lock().expect("log lines").push(line);
        }
    });
    Served {
        child,
        addr,
        logs,
        startup_logs,
    }
}

/// One request on a fresh connection; returns status, headers (lowercased names) and body.
pub fn request(addr: SocketAddr, raw: &str) -> (u16, HashMap<String, String>, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    s.write_all(raw.as_bytes()).expect("write");
    let mut out = Vec::new();
    loop {
        let mut buf = [0u8; 65536];
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    let text = String::from_utf8(out).expect("utf-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("a response");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

/// Opens a connection and sends `head` (a request head with a body to follow, ending in
/// `\r\n\r\n`) with `Expect: 100-continue`, and returns once the server answered
/// `100 Continue`: it has accepted the connection and read the head, and is waiting for the
/// body. The synchronisation point for tests that signal the server with a request in flight.
pub fn body_awaited(addr: SocketAddr, head: &str) -> TcpStream {
    let head = head
        .strip_suffix("\r\n\r\n")
        .expect("a head ending in an empty line");
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(format!("{head}\r\nExpect: 100-continue\r\n\r\n").as_bytes())
        .expect("write");
    let want = b"HTTP/1.1 100 Continue\r\n\r\n";
    let mut got = vec![0u8; want.len()];
    s.read_exact(&mut got).expect("the interim response");
    assert_eq!(got, want, "{}", String::from_utf8_lossy(&got));
    s
}

/// Waits (at most 5 s) until nothing accepts connections on `addr`: a server told to stop
/// has closed its listener and is draining.
pub fn wait_listener_closed(addr: SocketAddr) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(addr).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "still accepting connections"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `/metrics` every 50 ms (at most 10 s, the drain interval being 1 s at most in
/// tests) until `ready` accepts its text, which it returns.
pub fn metrics_when(addr: SocketAddr, ready: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, _, text) = request(
            addr,
            "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        );
        if ready(&text) || std::time::Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for `child` to exit, at most `bound`, on the exit event itself (a pidfd becomes
/// readable when the process ends): `None` when it is still running after `bound`.
pub fn wait_exit(
    child: &mut std::process::Child,
    bound: Duration,
) -> Option<std::process::ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    // SAFETY: pidfd_open(2) on our own child's pid; the descriptor is closed below.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id() as libc::pid_t, 0) };
    assert!(
        pidfd >= 0,
        "pidfd_open: {}",
        std::io::Error::last_os_error()
    );
    let pidfd = pidfd as libc::c_int;
    let deadline = Instant::now() + bound;
    let exited = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut fd = libc::pollfd {
            fd: pidfd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(left.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut fd, 1, ms) };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        break n > 0;
    };
    // SAFETY: the descriptor pidfd_open returned, closed once.
    unsafe { libc::close(pidfd) };
    exited.then(|| child.wait().expect("wait"))
}

/// Polls `check` every 20 ms until it returns `Ok`, and returns its value and how long that
/// took; panics with `what` and the last `Err` (what `check` saw instead) after `limit`.
pub fn wait_for<T>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> (T, Duration) {
    let start = Instant::now();
    loop {
        match check() {
            Ok(v) => return (v, start.elapsed()),
            Err(last) => assert!(
                start.elapsed() < limit,
                "timed out after {limit:?} waiting for {what}; last: {last}"
            ),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `/metrics` of `addr`.
pub fn metrics(addr: SocketAddr) -> String {
    let (status, _, text) = request(
        addr,
        "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200, "{text}");
    text
}

/// The sum of the samples of metric `name` whose labels contain every one of `labels`
/// (`route="/json"`).
pub fn counter(text: &str, name: &str, labels: &[&str]) -> u64 {
    text.lines()
        .filter_map(|line| line.rsplit_once(' '))
        .filter(|(series, _)| {
            let bare = series.split('{').next().unwrap_or_default();
            bare == name && labels.iter().all(|l| series.contains(l))
        })
        .filter_map(|(_, value)| value.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}
