//! `/db` under a load generator (`wrk`) while the database fails under it: the replica
//! stopped with `pg_ctl stop -m immediate`, or every backend of the app terminated with
//! `pg_terminate_backend`. A read whose connection is lost before its answer is retried by
//! the ORM on another connection, so no client may see an error: the load generator must
//! count no answer other than 2xx/3xx and no socket error (connect, read, write, timeout).
//!
//! Each test has a private cluster of its own (`target/pg-app-faults-*`), which it breaks; the
//! tests run one at a time, as two loads on a small machine would starve each other.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

mod common;

use common::pg::PrivateCluster;
use common::{request, Served};

/// Connections the load generator keeps open (one wrk thread).
const CONNECTIONS: &str = "32";
/// `/db` answers served before the fault, so that it lands in steady load.
const BEFORE_FAULT: u64 = 3_000;
/// `/db` answers served after the fault (and after the server noticed it) before the load ends.
const AFTER_FAULT: u64 = 3_000;
/// The least time the load goes on after the fault: the replica checker (every 200 ms here)
/// and the reconnecting connections act in it.
const AFTER_FAULT_TIME: Duration = Duration::from_secs(2);
/// The load generator's own limit (`wrk -d`); the tests stop it (SIGINT) well before.
const LOAD_LIMIT: &str = "60s";
/// How long any one awaited state may take to arrive.
const WAIT: Duration = Duration::from_secs(20);
/// How many times the terminate test kills every backend of the app in one load.
const TERMINATE_ROUNDS: usize = 3;

/// The SQL that terminates every client backend of the app (role `pinion`), never the session
/// that runs it (which is the superuser's anyway).
const TERMINATE: &str = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
     WHERE usename = 'pinion' AND pid <> pg_backend_pid() AND backend_type = 'client backend'";

/// One load test at a time.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Polls `check` every 20 ms until it returns `Some`, or panics with `what` after [`WAIT`].
fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let (status, _, body) = request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
    );
    (status, body)
}

/// `pinion serve` on two threads against `cluster`, once `/health/ready` answers 200 with
/// both databases up.
fn serve(cluster: &PrivateCluster) -> Served {
    let mut env = cluster.database_env();
    env.push(("PINION_REPLICA_CHECK_INTERVAL".into(), "200ms".into()));
    // `/metrics` at most 100 ms behind, for the counts the tests wait on.
    env.push(("PINION_TELEMETRY_DRAIN_INTERVAL".into(), "100ms".into()));
    // The ORM's "read retried on another connection" lines (debug), to tell how many reads
    // the fault caught in flight.
    env.push(("RUST_LOG".into(), "info,pinion_orm::exec=debug".into()));
    let served = common::serve_threads(2, env);
    wait_for("both databases up", || {
        let (status, body) = get(served.addr, "/health/ready");
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        (status == 200
            && v["databases"]["default"]["state"] == "up"
            && v["databases"]["replica1"]["state"] == "up")
            .then_some(())
    });
    served
}

/// What `/metrics` says of `/db` and of the databases.
#[derive(Debug, Default, Clone)]
struct Metrics {
    /// `/db` answers by status code.
    db_answers: BTreeMap<u16, u64>,
    /// Queries by database (`default`, `replica1`).
    queries: BTreeMap<String, u64>,
}

impl Metrics {
    fn of(addr: SocketAddr) -> Metrics {
        let (status, text) = get(addr, "/metrics");
        assert_eq!(status, 200, "{text}");
        let mut m = Metrics::default();
        for line in text.lines() {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let value = value as u64;
            if let Some(labels) = series.strip_prefix("pinion_http_requests_total{") {
                if labels.contains("route=\"/db\"") {
                    let status = label(labels, "status")
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    *m.db_answers.entry(status).or_default() += value;
                }
            } else if let Some(labels) =
                series.strip_prefix("pinion_db_query_duration_seconds_count{")
            {
                if let Some(db) = label(labels, "database") {
                    m.queries.insert(db.to_string(), value);
                }
            }
        }
        m
    }

    fn ok(&self) -> u64 {
        self.db_answers.get(&200).copied().unwrap_or(0)
    }

    fn failed(&self) -> u64 {
        self.db_answers
            .iter()
            .filter(|(s, _)| **s != 200)
            .map(|(_, n)| n)
            .sum()
    }

    fn on(&self, db: &str) -> u64 {
        self.queries.get(db).copied().unwrap_or(0)
    }
}

/// The value of label `name` in `a="x",b="y"`.
fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
    let len = labels[start..].find('"')?;
    Some(&labels[start..start + len])
}

/// Makes sure `wrk` is installed (with apt-get when it is not); `false` only when it cannot
/// be installed here at all (no apt-get, or not root).
fn have_wrk() -> bool {
    let runs = || {
        Command::new("wrk")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    };
    if runs() {
        return true;
    }
    // SAFETY: geteuid(2) has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let apt = Command::new("apt-get")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok();
    if !root || !apt {
        eprintln!(
            "SKIPPED: wrk is not installed and cannot be installed here (root: {root}, \
             apt-get: {apt}); install it with `apt-get install -y wrk`"
        );
        return false;
    }
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "wrk"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    if !install() {
        let _ = Command::new("apt-get")
            .arg("update")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status();
        assert!(install(), "apt-get install -y wrk failed");
    }
    assert!(runs(), "wrk still does not run after apt-get installed it");
    true
}

/// The Lua script that counts wrk's answers by status and keeps the first few that were not
/// 2xx/3xx, printed as `faults: …` lines when the load ends.
fn status_script() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("faults-statuses.lua");
    std::fs::write(
        &path,
        r#"local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {}; bad = {} end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if (status < 200 or status > 399) and #bad < 5 then
    bad[#bad + 1] = status .. " " .. (body:gsub("%s+", " "))
  end
end
function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("statuses")) do
      io.write(string.format("faults: status %d %d\n", status, n))
    end
    for _, b in ipairs(t:get("bad")) do io.write("faults: bad " .. b .. "\n") end
  end
end
"#,
    )
    .expect("write the wrk script");
    path
}

/// A running `wrk` against `/db`; killed on drop if a test fails.
struct Load {
    child: Child,
    output: Option<JoinHandle<String>>,
}

/// What wrk reported.
#[derive(Debug, Default)]
struct Report {
    requests: u64,
    non_2xx_3xx: u64,
    connect: u64,
    read: u64,
    write: u64,
    timeout: u64,
    /// Answers by status (the Lua script's count).
    statuses: BTreeMap<u16, u64>,
    /// The first answers that were not 2xx/3xx: status and body.
    bad: Vec<String>,
    text: String,
}

impl Report {
    fn socket_errors(&self) -> u64 {
        self.connect + self.read + self.write + self.timeout
    }

    fn parse(text: String) -> Report {
        let mut r = Report::default();
        let num = |s: &str| s.trim().trim_end_matches(',').parse::<u64>().ok();
        for line in text.lines() {
            let line = line.trim();
            if let Some((n, _)) = line.split_once(" requests in ") {
                r.requests = num(n).expect("request count");
            } else if let Some(rest) = line.strip_prefix("Socket errors:") {
                // `connect 0, read 0, write 0, timeout 0`
                for part in rest.split(',') {
                    let mut words = part.split_whitespace();
                    let (Some(kind), Some(n)) = (words.next(), words.next().and_then(num)) else {
                        continue;
                    };
                    match kind {
                        "connect" => r.connect = n,
                        "read" => r.read = n,
                        "write" => r.write = n,
                        "timeout" => r.timeout = n,
                        _ => {}
                    }
                }
            } else if let Some(n) = line.strip_prefix("Non-2xx or 3xx responses:") {
                r.non_2xx_3xx = num(n).expect("non-2xx count");
            } else if let Some(rest) = line.strip_prefix("faults: status ") {
                let mut words = rest.split_whitespace();
                if let (Some(s), Some(n)) = (
                    words.next().and_then(|s| s.parse().ok()),
                    words.next().and_then(num),
                ) {
                    *r.statuses.entry(s).or_default() += n;
                }
            } else if let Some(rest) = line.strip_prefix("faults: bad ") {
                r.bad.push(rest.to_string());
            }
        }
        r.text = text;
        r
    }
}

impl Load {
    fn start(addr: SocketAddr, script: &std::path::Path) -> Load {
        let mut child = Command::new("wrk")
            .args([
                "-t1",
                "-c",
                CONNECTIONS,
                "-d",
                LOAD_LIMIT,
                "--latency",
                "-s",
            ])
            .arg(script)
            .arg(format!("http://{addr}/db"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn wrk");
        let mut stdout = child.stdout.take().expect("wrk stdout");
        let output = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stdout.read_to_string(&mut text);
            text
        });
        Load {
            child,
            output: Some(output),
        }
    }

    /// Ends the load (SIGINT: wrk stops and prints its summary) and returns what wrk reported.
    fn finish(mut self) -> Report {
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGINT) };
        assert_eq!(rc, 0, "cannot signal wrk");
        let status = wait_for("wrk to exit", || self.child.try_wait().expect("wrk status"));
        let text = self
            .output
            .take()
            .expect("wrk output")
            .join()
            .expect("wrk output reader");
        assert!(status.success(), "wrk failed ({status}):\n{text}");
        Report::parse(text)
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The log lines that tell about the databases and about failed requests.
fn relevant_logs(server: &Served) -> String {
    server
        .logs
        .lock()
        .expect("log lines")
        .iter()
        .filter(|l| {
            ["request failed", "connection", "replica", "retried"]
                .iter()
                .any(|n| l.contains(n))
        })
        .take(200)
        .cloned()
        .collect::<Vec<_>>()
        .join("\n")
}

/// How many reads the ORM retried, by the database whose connection failed (its log lines).
fn retries(server: &Served) -> BTreeMap<String, usize> {
    let mut by_db = BTreeMap::new();
    for line in server.logs.lock().expect("log lines").iter() {
        if line.contains("read retried on another connection") {
            let db = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("failed="))
                .unwrap_or("?")
                .trim_matches('"')
                .to_string();
            *by_db.entry(db).or_default() += 1;
        }
    }
    by_db
}

/// Waits until `/metrics` counts at least `n` successful `/db` answers.
fn wait_for_answers(server: &Served, n: u64, what: &str) -> Metrics {
    wait_for(what, || {
        let m = Metrics::of(server.addr);
        (m.ok() >= n).then_some(m)
    })
}

/// The load's outcome: no answer but 2xx/3xx, no socket error, and enough answers; the
/// server's own count of `/db` answers other than 200 is zero too.
fn assert_no_failed_read(report: &Report, end: &Metrics, server: &Served, fault: &str) {
    let summary = format!(
        "{fault}: wrk: {} requests, {} non-2xx/3xx (by status: {:?}; first: {:?}), socket \
         errors connect {} read {} write {} timeout {}; server /db answers by status {:?}, \
         queries by database {:?}; reads retried by failed database {:?}",
        report.requests,
        report.non_2xx_3xx,
        report.statuses,
        report.bad,
        report.connect,
        report.read,
        report.write,
        report.timeout,
        end.db_answers,
        end.queries,
        retries(server),
    );
    eprintln!("{summary}\n{}", report.text);
    assert!(
        report.non_2xx_3xx == 0 && report.socket_errors() == 0 && end.failed() == 0,
        "failed reads: {summary}\n--- wrk ---\n{}\n--- server log ---\n{}",
        report.text,
        relevant_logs(server)
    );
    assert!(
        report.requests > 1_000,
        "too few requests: {summary}\n{}",
        report.text
    );
}

#[test]
fn db_reads_survive_the_replica_stopping_under_load() {
    if !have_wrk() {
        return;
    }
    let _one = one_at_a_time();
    let cluster = PrivateCluster::start("faults-replica-stop");
    let server = serve(&cluster);
    let load = Load::start(server.addr, &status_script());

    let before = wait_for_answers(&server, BEFORE_FAULT, "load before the stop");
    assert!(
        before.on("replica1") > 0,
        "reads do not go to the replica: {before:?}"
    );
    cluster.pg(&["stop-replica", "immediate"]);
    let stopped = Instant::now();
    let at_stop = Metrics::of(server.addr);
    // The ORM noticed: its connections to the replica were lost, its health check says the
    // replica is out of rotation (although a lost read had marked it unhealthy first), and
    // readiness reports it down.
    let noticed = server.wait_for_logs(&["connection lost", "replica1"], 1);
    assert!(
        !noticed.is_empty(),
        "the replica's stop went unnoticed:\n{}",
        relevant_logs(&server)
    );
    let told = server.wait_for_logs(&["replica unhealthy, reads fall back", "replica1"], 1);
    assert!(
        !told.is_empty(),
        "the health check did not report the replica:\n{}",
        relevant_logs(&server)
    );
    wait_for("readiness to report the replica down", || {
        let (_, body) = get(server.addr, "/health/ready");
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        (v["databases"]["replica1"]["state"] == "down").then_some(())
    });
    // Reads go on, on the primary, for a while.
    let after = wait_for("load on the primary after the stop", || {
        let m = Metrics::of(server.addr);
        (m.ok() >= at_stop.ok() + AFTER_FAULT
            && m.on("default") >= at_stop.on("default") + AFTER_FAULT
            && stopped.elapsed() >= AFTER_FAULT_TIME)
            .then_some(m)
    });
    let report = load.finish();
    let end = wait_for("the last answers in /metrics", || {
        let m = Metrics::of(server.addr);
        (m.ok() + m.failed() >= report.requests).then_some(m)
    });
    eprintln!(
        "replica stop: /db answers before the stop {}, at it {}, after it {}",
        before.ok(),
        at_stop.ok(),
        end.ok() - at_stop.ok()
    );
    assert!(after.ok() > at_stop.ok());
    assert_no_failed_read(&report, &end, &server, "replica stopped (-m immediate)");
    // Leave the cluster whole for the next run (dropping it stops both servers).
    cluster.pg(&["start-replica"]);
}

#[test]
fn db_reads_survive_every_backend_being_terminated_under_load() {
    terminate_under_load(Kill::PrimaryThenReplica);
}

/// Both databases' backends terminated at once: a read whose replica connection was lost is
/// retried on the primary's, which may be lost a millisecond later too; its second retry
/// waits for a connection dialed after the failure. (With one retry, 2 of 5 loads of three
/// rounds failed: 23 and 20 of ~170 000 reads got 503.)
#[test]
fn db_reads_survive_every_backend_being_terminated_at_once_under_load() {
    terminate_under_load(Kill::Simultaneously);
}

/// How the backends of the primary and the replica are terminated in one round.
#[derive(Debug, Clone, Copy)]
enum Kill {
    /// The primary's, then (once that psql returned) the replica's: reads on the replica
    /// fail over to a primary connection that is already fresh.
    PrimaryThenReplica,
    /// Both at once, from two psql sessions started together.
    Simultaneously,
}

fn terminate_under_load(kill: Kill) {
    if !have_wrk() {
        return;
    }
    let _one = one_at_a_time();
    let cluster = PrivateCluster::start("faults-terminate");
    let server = serve(&cluster);
    let load = Load::start(server.addr, &status_script());

    let mut last = wait_for_answers(&server, BEFORE_FAULT, "load before the first kill");
    let mut terminated = Vec::new();
    for round in 0..TERMINATE_ROUNDS {
        assert!(
            last.on("replica1") > 0,
            "round {round}: reads do not go to the replica: {last:?}"
        );
        let lost_before = server.wait_for_logs(&["connection lost"], 0).len();
        let killed = |role: &str| {
            cluster
                .psql(role, TERMINATE)
                .lines()
                .filter(|l| l.trim() == "t")
                .count()
        };
        let (primary, replica) = match kill {
            Kill::PrimaryThenReplica => (killed("primary"), killed("replica")),
            Kill::Simultaneously => std::thread::scope(|scope| {
                let primary = scope.spawn(|| killed("primary"));
                let replica = scope.spawn(|| killed("replica"));
                (
                    primary.join().expect("psql on the primary"),
                    replica.join().expect("psql on the replica"),
                )
            }),
        };
        terminated.push((primary, replica));
        // Two workers, each with its own connection to each database.
        assert!(
            primary >= 2 && replica >= 2,
            "round {round}: terminated {primary} backends on the primary, {replica} on the \
             replica"
        );
        let killed_at = Instant::now();
        let at_kill = Metrics::of(server.addr);
        // The app saw its connections go…
        let lost = server.wait_for_logs(&["connection lost"], lost_before + 1);
        assert!(
            lost.len() > lost_before,
            "round {round}: no lost connection logged:\n{}",
            relevant_logs(&server)
        );
        // …and reads are back on the replica, on fresh connections; readiness (the primary's
        // connection, terminated too) is back below.
        last = wait_for("reads on fresh connections", || {
            let m = Metrics::of(server.addr);
            (m.ok() >= at_kill.ok() + AFTER_FAULT
                && m.on("replica1") > at_kill.on("replica1") + AFTER_FAULT / 2
                && killed_at.elapsed() >= AFTER_FAULT_TIME)
                .then_some(m)
        });
        let (status, body) = get(server.addr, "/health/ready");
        assert_eq!(status, 200, "round {round}: {body}");
    }
    let report = load.finish();
    let end = wait_for("the last answers in /metrics", || {
        let m = Metrics::of(server.addr);
        (m.ok() + m.failed() >= report.requests).then_some(m)
    });
    eprintln!("terminated (primary, replica) backends per round: {terminated:?}");
    assert_no_failed_read(
        &report,
        &end,
        &server,
        &format!("every backend terminated ({kill:?}), {TERMINATE_ROUNDS} times"),
    );
}
