//! Periodic jobs across three real processes on one PostgreSQL database: each tick is
//! enqueued once, and when the leader is SIGKILLed another process takes the lead within the
//! period, with no tick lost. The processes are this test binary run again with only
//! [`cron_child_process`] selected, so that a process of the queue's own can be killed.

#[path = "../../orm/tests/common/mod.rs"]
mod common;
mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{eventually, primary_only, run, Cluster};
use pinion_jobs::{Job, JobContext, JobError, Registry};
use support::Workers1;

/// The database a child process works on; unset, the child test does nothing.
const CHILD_URL: &str = "PINION_JOBS_CRON_CHILD_URL";
const SCHEMA: &str = include_str!("../../migrations/0004_jobs.sql");
/// Every two seconds.
const EVERY: &str = "*/2 * * * * *";

#[derive(serde::Serialize, serde::Deserialize)]
struct Tick {
    at: i64,
}

impl Job for Tick {
    const KIND: &'static str = "tick";

    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        ctx.db()
            .primary()
            .execute(
                "INSERT INTO ticks (at, attempt, pid) VALUES ($1, $2, $3)",
                &[&self.at, &ctx.attempt(), &(std::process::id() as i32)],
            )
            .await?;
        Ok(())
    }
}

/// The body of each child process: workers with the periodic job, until killed.
#[test]
#[ignore = "a child process of a_periodic_job_ticks_once_per_tick_across_three_processes_and_a_killed_leader_is_replaced"]
fn cron_child_process() {
    let Ok(url) = std::env::var(CHILD_URL) else {
        return;
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let registry = Registry::new()
        .every("tick", EVERY, |at| Tick {
            at: at
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0),
        })
        .expect("schedule");
    let _workers = Workers1::start(&url, registry);
    eprintln!("child ready");
    // Until the test kills it.
    loop {
        std::thread::park();
    }
}

/// A child process and its log lines.
struct ChildProcess {
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
}

impl ChildProcess {
    fn start(url: &str) -> ChildProcess {
        let mut child = Command::new(std::env::current_exe().expect("this test binary"))
            .args(["cron_child_process", "--exact", "--ignored", "--nocapture"])
            .env(CHILD_URL, url)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("a child process");
        let stderr = child.stderr.take().expect("stderr");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().expect("logs").push(line);
            }
        });
        ChildProcess { child, logs }
    }

    fn leads(&self) -> bool {
        self.logs
            .lock()
            .expect("logs")
            .iter()
            .any(|l| l.contains("this process leads the periodic jobs"))
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `(at, attempt)` of every tick run so far, in order.
async fn ticks(db: &pinion_orm::ConnectionManager) -> Vec<(i64, i32)> {
    db.primary()
        .query("SELECT at, attempt FROM ticks ORDER BY at, attempt", &[])
        .await
        .expect("ticks")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[test]
fn a_periodic_job_ticks_once_per_tick_across_three_processes_and_a_killed_leader_is_replaced() {
    let cluster = Cluster::shared();
    let url = cluster.fresh_database("jobs_cron_procs");
    run(async {
        let db = primary_only(&url);
        db.primary().batch_execute(SCHEMA).await.expect("schema");
        db.primary()
            .batch_execute(
                "CREATE TABLE ticks (at bigint NOT NULL, attempt int NOT NULL, pid int NOT NULL)",
            )
            .await
            .expect("ticks");
    });
    let mut children: Vec<ChildProcess> = (0..3).map(|_| ChildProcess::start(&url)).collect();
    let (all, killed_at) = run(async {
        let db = primary_only(&url);
        assert!(
            eventually(Duration::from_secs(30), async || ticks(&db).await.len()
                >= 3)
            .await,
            "ticks every two seconds"
        );
        let leader = children
            .iter()
            .position(ChildProcess::leads)
            .expect("one child leads");
        assert_eq!(
            children.iter().filter(|c| c.leads()).count(),
            1,
            "one leader"
        );
        let killed_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let killed = Instant::now();
        let mut gone = children.remove(leader);
        gone.child.kill().expect("SIGKILL the leader");
        let _ = gone.child.wait();
        assert!(
            eventually(Duration::from_secs(10), async || children
                .iter()
                .any(ChildProcess::leads))
            .await,
            "another process leads"
        );
        // Within the two-second period of the kill.
        assert!(
            killed.elapsed() < Duration::from_secs(2),
            "{:?}",
            killed.elapsed()
        );
        assert!(
            eventually(Duration::from_secs(20), async || {
                ticks(&db)
                    .await
                    .iter()
                    .filter(|(at, _)| *at > killed_at)
                    .count()
                    >= 3
            })
            .await,
            "the ticks go on after the kill"
        );
        (ticks(&db).await, killed_at)
    });
    drop(children);
    // A tick runs twice only if its job's worker was the one killed (attempt 2).
    let firsts: Vec<i64> = all
        .iter()
        .filter(|(_, a)| *a == 1)
        .map(|(at, _)| *at)
        .collect();
    let mut distinct = firsts.clone();
    distinct.dedup();
    assert_eq!(firsts, distinct, "each tick enqueued once: {all:?}");
    // Every tick from the first to the last, none lost across the kill at {killed_at}.
    assert!(
        firsts.windows(2).all(|w| w[1] - w[0] == 2),
        "killed at {killed_at}: {all:?}"
    );
    cluster.drop_database(&url);
}
