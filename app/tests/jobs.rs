//! Background jobs on the real binary: `pinion worker` processes on one PostgreSQL database,
//! killed (SIGKILL) and drained (SIGTERM), and `pinion jobs` on what they left.

mod common;

#[path = "../../orm/tests/common/mod.rs"]
mod pg;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{pinion, repo, wait_exit, wait_for};
use pinion_app::jobs::demo::Mark;
use pinion_jobs::Enqueue;

/// A `pinion worker` process, its pid, and its log lines as they arrive.
struct WorkerProcess {
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
}

impl WorkerProcess {
    /// Starts `pinion worker -t 1` on `url` (2 s leases, a 3 s drain) and waits until it
    /// says it runs jobs.
    fn start(url: &str) -> WorkerProcess {
        WorkerProcess::start_with(url, &[])
    }

    /// As [`start`](Self::start), with more arguments.
    fn start_with(url: &str, args: &[&str]) -> WorkerProcess {
        let mut cmd = pinion();
        cmd.args(["worker", "-t", "1"])
            .args(args)
            .env("DATABASE_URL", url)
            .env("PINION_MIGRATIONS_DIR", repo().join("migrations"))
            .env("PINION_JOBS_LEASE", "2s")
            .env("PINION_JOBS_POLL_INTERVAL", "200ms")
            .env("PINION_JOBS_QUEUES", "default:20")
            .env("PINION_DRAIN_TIMEOUT", "3s")
            .env("PINION_DRAIN_GRACE", "1s")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn pinion worker");
        let stderr = child.stderr.take().expect("stderr");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().expect("logs").push(line);
            }
        });
        let worker = WorkerProcess { child, logs };
        worker.wait_for_log("ready: running background jobs");
        worker
    }

    /// Where `--metrics-port` serves, from its log line.
    fn metrics_addr(&self) -> std::net::SocketAddr {
        self.wait_for_log("metrics on http://");
        let logs = self.logs.lock().expect("logs");
        let line = logs
            .iter()
            .find(|l| l.contains("metrics on http://"))
            .expect("the line");
        line.split("http://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .expect("address")
            .parse()
            .expect("socket address")
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn wait_for_log(&self, needle: &str) {
        wait_for(needle, Duration::from_secs(30), || {
            let logs = self.logs.lock().expect("logs");
            if logs.iter().any(|l| l.contains(needle)) {
                Ok(())
            } else {
                Err(logs.join("\n"))
            }
        });
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid.
        let sent = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(sent, 0);
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A database of the test's own, with the migrations applied and the drill's table.
fn database(prefix: &str) -> (pg::Cluster, String) {
    let cluster = pg::Cluster::shared();
    let url = cluster.fresh_database(prefix);
    let out = pinion()
        .args(["migrate"])
        .env("DATABASE_URL", &url)
        .env("PINION_MIGRATIONS_DIR", repo().join("migrations"))
        .output()
        .expect("pinion migrate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    sql(&url, "CREATE TABLE job_marks (n bigint NOT NULL, job bigint NOT NULL, attempt int NOT NULL, pid int NOT NULL)");
    (cluster, url)
}

fn sql(url: &str, statement: &str) {
    let (url, statement) = (url.to_string(), statement.to_string());
    pg::run(async move {
        pg::primary_only(&url)
            .primary()
            .batch_execute(&statement)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    });
}

/// The rows of `query` (every column cast to int8 by the caller).
fn rows(url: &str, query: &str) -> Vec<Vec<i64>> {
    let (url, query) = (url.to_string(), query.to_string());
    pg::run(async move {
        pg::primary_only(&url)
            .primary()
            .query(&query, &[])
            .await
            .unwrap_or_else(|e| panic!("{query}: {e}"))
            .iter()
            .map(|r| (0..r.len()).map(|i| r.get::<_, i64>(i)).collect())
            .collect()
    })
}

fn one(url: &str, query: &str) -> i64 {
    rows(url, query)[0][0]
}

fn enqueue_marks(url: &str, from: i64, to: i64, sleep_ms: u64) {
    let url = url.to_string();
    pg::run(async move {
        let db = pg::primary_only(&url);
        let jobs = (from..to).map(|n| Enqueue::new(Mark { n, sleep_ms }));
        let ids = Enqueue::send_many(jobs, &*db).await.expect("enqueue");
        assert_eq!(ids.len() as i64, to - from);
    });
}

#[test]
fn ten_thousand_jobs_on_two_workers_one_killed_none_lost_and_only_its_jobs_run_twice() {
    let (cluster, url) = database("jobs_many");
    let a = WorkerProcess::start(&url);
    let b = WorkerProcess::start(&url);
    enqueue_marks(&url, 0, 10_000, 0);
    // Kill A once it is well into the queue: some of its jobs are mid-flight.
    wait_for("worker A at work", Duration::from_secs(60), || {
        let n = one(
            &url,
            &format!(
                "SELECT count(*)::int8 FROM job_marks WHERE pid = {}",
                a.pid()
            ),
        );
        if n >= 1000 {
            Ok(())
        } else {
            Err(format!("{n} marks by A"))
        }
    });
    a.signal(libc::SIGKILL);
    let mut a = a;
    assert!(wait_exit(&mut a.child, Duration::from_secs(5)).is_some());
    // B finishes the queue, A's leased jobs included once their leases run out.
    wait_for("every job done", Duration::from_secs(120), || {
        let left = one(&url, "SELECT count(*)::int8 FROM pinion_jobs");
        let done = one(&url, "SELECT count(DISTINCT n)::int8 FROM job_marks");
        if left == 0 && done == 10_000 {
            Ok(())
        } else {
            Err(format!("{left} left, {done} done"))
        }
    });
    let by_pid: HashMap<i64, i64> = rows(
        &url,
        "SELECT pid::int8, count(*)::int8 FROM job_marks GROUP BY pid",
    )
    .into_iter()
    .map(|r| (r[0], r[1]))
    .collect();
    assert_eq!(by_pid.len(), 2, "both ran jobs: {by_pid:?}");
    // Run twice: only jobs A had started when it was killed (a mark of A's, then B's again).
    let twice = rows(
        &url,
        &format!(
            "SELECT n, count(*)::int8, bool_or(pid = {a})::int::int8 FROM job_marks GROUP BY n HAVING count(*) > 1",
            a = a.pid()
        ),
    );
    assert!(twice.iter().all(|r| r[1] == 2 && r[2] == 1), "{twice:?}");
    assert!(
        twice.len() <= 20,
        "at most A's 20 running jobs: {}",
        twice.len()
    );
    assert_eq!(
        one(&url, &format!("SELECT count(*)::int8 FROM (SELECT n FROM job_marks WHERE pid = {} GROUP BY n HAVING count(*) > 1) d", b.pid())),
        0,
        "B never ran a job twice"
    );
    drop(b);
    cluster.drop_database(&url);
}

#[test]
fn a_job_whose_worker_is_killed_runs_again_on_the_other_after_the_lease() {
    let (cluster, url) = database("jobs_killed");
    let a = WorkerProcess::start(&url);
    enqueue_marks(&url, 1, 2, 60_000);
    wait_for("A runs the job", Duration::from_secs(30), || {
        let n = one(&url, &format!("SELECT count(*)::int8 FROM pinion_jobs WHERE state = 'running' AND worker LIKE '%:{}/%'", a.pid()));
        if n == 1 {
            Ok(())
        } else {
            Err(format!("{n} running on A"))
        }
    });
    let b = WorkerProcess::start_with(&url, &["--metrics-port", "0"]);
    let killed = Instant::now();
    a.signal(libc::SIGKILL);
    wait_for("B ran it", Duration::from_secs(30), || {
        let r = rows(&url, "SELECT pid::int8, attempt::int8 FROM job_marks");
        if r.len() == 1 {
            Ok(())
        } else {
            Err(format!("{r:?}"))
        }
    });
    // Not before the 2 s lease ran out.
    assert!(
        killed.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        killed.elapsed()
    );
    assert_eq!(
        rows(&url, "SELECT pid::int8, attempt::int8 FROM job_marks"),
        vec![vec![b.pid() as i64, 2]]
    );
    b.wait_for_log("lease ran out");
    wait_for("the job deleted", Duration::from_secs(10), || {
        match one(&url, "SELECT count(*)::int8 FROM pinion_jobs") {
            0 => Ok(()),
            n => Err(format!("{n}")),
        }
    });
    // B's own /metrics counts what it saw: the expired lease, the job run to success.
    let text = common::metrics(b.metrics_addr());
    assert_eq!(
        common::counter(&text, "pinion_jobs_lease_expiries_total", &[]),
        1,
        "{text}"
    );
    assert_eq!(
        common::counter(&text, "pinion_jobs_completed_total", &["queue=\"default\""]),
        1,
        "{text}"
    );
    assert!(
        text.contains("pinion_job_duration_seconds_bucket{outcome=\"completed\",queue=\"default\""),
        "{text}"
    );
    drop((a, b));
    cluster.drop_database(&url);
}

#[test]
fn sigterm_lets_short_jobs_finish_releases_long_ones_and_exits_zero_by_the_drain_timeout() {
    let (cluster, url) = database("jobs_drain");
    let mut a = WorkerProcess::start(&url);
    // Two that finish within the 3 s drain, one that cannot.
    enqueue_marks(&url, 1, 3, 1_000);
    enqueue_marks(&url, 100, 101, 60_000);
    wait_for("all three running", Duration::from_secs(30), || {
        match one(
            &url,
            "SELECT count(*)::int8 FROM pinion_jobs WHERE state = 'running'",
        ) {
            3 => Ok(()),
            n => Err(format!("{n} running")),
        }
    });
    let signalled = Instant::now();
    a.signal(libc::SIGTERM);
    let status = wait_exit(&mut a.child, Duration::from_secs(6)).expect("exited");
    assert!(status.success(), "{status:?}");
    assert!(
        signalled.elapsed() < Duration::from_millis(4500),
        "{:?}",
        signalled.elapsed()
    );
    assert_eq!(
        rows(&url, "SELECT n FROM job_marks ORDER BY n"),
        vec![vec![1], vec![2]]
    );
    // The long one is back, available at once, its interrupted attempt not counted.
    assert_eq!(
        rows(&url, "SELECT attempts::int8, (run_at <= now())::int::int8 FROM pinion_jobs WHERE state = 'available'"),
        vec![vec![0, 1]]
    );
    // The operator's view of it, then cancelling it.
    let list = pinion()
        .args(["jobs", "list", "--state", "available"])
        .env("DATABASE_URL", &url)
        .output()
        .expect("jobs list");
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    assert!(
        text.lines()
            .nth(1)
            .is_some_and(|l| l.contains("\tdefault\tmark\tavailable\t0/25\t")),
        "{text}"
    );
    let id = one(&url, "SELECT id FROM pinion_jobs");
    let cancel = |expect_ok: bool| {
        let out = pinion()
            .args(["jobs", "cancel", &id.to_string()])
            .env("DATABASE_URL", &url)
            .output()
            .expect("jobs cancel");
        assert_eq!(
            out.status.success(),
            expect_ok,
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    cancel(true);
    cancel(false);
    let retry = pinion()
        .args(["jobs", "retry", &id.to_string()])
        .env("DATABASE_URL", &url)
        .output()
        .expect("jobs retry");
    assert!(retry.status.success());
    assert_eq!(
        one(
            &url,
            "SELECT count(*)::int8 FROM pinion_jobs WHERE state = 'available'"
        ),
        1
    );
    cluster.drop_database(&url);
}

#[test]
fn an_order_is_confirmed_by_a_job_on_a_worker_whose_progress_reaches_the_order_page() {
    use common::site::{parts, Browser, EventStream};
    let (cluster, url) = database("jobs_order");
    let served = common::serve([
        ("DATABASE_URL", url.as_str()),
        (
            "PINION_MIGRATIONS_DIR",
            repo().join("migrations").to_str().expect("path"),
        ),
        (
            "PINION_SECRET_KEY",
            "jobs-test-secret-key-of-at-least-32-bytes",
        ),
        ("PINION_TRUSTED_PROXIES", "127.0.0.1/32"),
        // The confirmation runs on the worker process, not in serve.
        ("PINION_JOBS_THREADS", "0"),
    ]);
    let worker = WorkerProcess::start(&url);
    let mut user = Browser::new();
    user.sign_up(served.addr);
    let product = user.create_product(served.addr, "Confirmed cog", "3.00");
    user.get(served.addr, &product);
    let placed = user.post(
        served.addr,
        &format!("{product}/order"),
        &[("quantity", "2")],
    );
    assert_eq!(placed.status, 303, "{placed:?}");
    let order: i64 = placed
        .header("location")
        .and_then(|l| l.strip_prefix("/orders/"))
        .and_then(|id| id.parse().ok())
        .expect("the order's page");
    // From the first event on (`Last-Event-ID: 0`): the job may have started already.
    let (status, stream) = EventStream::open(
        served.addr,
        &format!("/events/order-{order}"),
        &format!("{}Last-Event-ID: 0\r\n", user.headers()),
    );
    let mut stream = stream.unwrap_or_else(|| panic!("order-{order}: {status}"));
    let mut percents = Vec::new();
    while percents.last() != Some(&100) {
        let (name, _, data) = parts(&stream.next_event().expect("a progress event"));
        assert_eq!(name, "progress", "{data}");
        assert!(data.contains(&format!("data-order=\"{order}\"")), "{data}");
        let percent: u32 = data
            .split("data-percent=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .and_then(|p| p.parse().ok())
            .expect("a percentage");
        percents.push(percent);
    }
    assert_eq!(percents, vec![20, 60, 100]);
    assert_eq!(
        one(
            &url,
            &format!("SELECT (confirmed_at IS NOT NULL)::int::int8 FROM orders WHERE id = {order}")
        ),
        1
    );
    wait_for("the job deleted", Duration::from_secs(10), || {
        match one(&url, "SELECT count(*)::int8 FROM pinion_jobs") {
            0 => Ok(()),
            n => Err(format!("{n} left")),
        }
    });
    // A reload shows it confirmed.
    let page = user.get(served.addr, &format!("/orders/{order}"));
    assert!(page.body.contains("data-percent=\"100\""), "{}", page.body);
    worker.wait_for_log("order confirmed");
    drop((served, worker));
    cluster.drop_database(&url);
}
