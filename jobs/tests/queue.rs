//! The job queue against the real PostgreSQL `scripts/pg` starts, with real worker threads
//! and the real listening connection: transactions, retries, unique keys, cancellation,
//! periodic jobs across three runners. (Processes killed and drained: `app/tests/jobs.rs`.)

#[path = "../../orm/tests/common/mod.rs"]
mod common;
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{eventually, primary_only, run, Cluster};
use pinion_jobs::{admin, Enqueue, Job, JobContext, JobError, OnConflict, Registry};
use pinion_orm::ConnectionManager;
use support::Workers1;

const SCHEMA: &str = include_str!("../../migrations/0004_jobs.sql");
const RUNS: &str =
    "CREATE TABLE runs (tag text NOT NULL, job bigint NOT NULL, attempt int NOT NULL, \
                    at timestamptz NOT NULL DEFAULT clock_timestamp())";

/// Records each run in `runs`; fails its first `fail` attempts; waits `sleep_ms` first.
#[derive(serde::Serialize, serde::Deserialize)]
struct Record {
    tag: String,
    fail: i32,
    sleep_ms: u64,
}

impl Job for Record {
    const KIND: &'static str = "record";
    const MAX_ATTEMPTS: i32 = 3;

    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        // The polling test's jobs (tags `p0`…) count how many of them run at once.
        let _running = self.tag.starts_with('p').then(Running::start);
        if self.sleep_ms > 0 {
            // Its "work", cut short when it is cancelled.
            let work = std::pin::pin!(monoio::time::sleep(Duration::from_millis(self.sleep_ms)));
            let cancelled = std::pin::pin!(ctx.cancelled());
            futures_util::future::select(work, cancelled).await;
        }
        ctx.db()
            .primary()
            .execute(
                "INSERT INTO runs (tag, job, attempt) VALUES ($1, $2, $3)",
                &[&self.tag, &ctx.id(), &ctx.attempt()],
            )
            .await?;
        if ctx.attempt() <= self.fail {
            return Err(JobError::new(format!(
                "failing on purpose, attempt {}",
                ctx.attempt()
            )));
        }
        Ok(())
    }
}

/// The polling test's jobs running now, and the most that ran at once (worker threads run
/// in this process).
static RUNNING: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

struct Running;

impl Running {
    fn start() -> Running {
        let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
        PEAK.fetch_max(now, Ordering::SeqCst);
        Running
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::SeqCst);
    }
}

fn record(tag: &str) -> Record {
    Record {
        tag: tag.into(),
        fail: 0,
        sleep_ms: 0,
    }
}

/// A periodic job: records its tick.
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
                "INSERT INTO runs (tag, job, attempt) VALUES ('tick', $1, $2)",
                &[&self.at, &ctx.attempt()],
            )
            .await?;
        Ok(())
    }
}

/// A database of the test's own with the jobs schema and the `runs` table.
fn database(cluster: &Cluster, prefix: &str) -> String {
    let url = cluster.fresh_database(prefix);
    run(async {
        let db = primary_only(&url);
        db.primary().batch_execute(SCHEMA).await.expect("schema");
        db.primary().batch_execute(RUNS).await.expect("runs");
    });
    url
}

async fn count(db: &ConnectionManager, sql: &str) -> i64 {
    db.primary()
        .query_one(sql, &[])
        .await
        .expect(sql)
        .get::<_, i64>(0)
}

#[test]
fn a_job_enqueued_in_a_transaction_exists_only_if_it_commits_and_runs_once() {
    let cluster = Cluster::shared();
    let url = database(&cluster, "jobs_tx");
    let workers = Workers1::start(&url, Registry::new().register::<Record>());
    run(async {
        let db = primary_only(&url);
        let rolled_back: Result<(), common::Abort> = db
            .transaction(async |tx| {
                Enqueue::new(record("rolled back")).send(tx).await?;
                Err(common::Abort::Changed)
            })
            .await;
        assert!(rolled_back.is_err());
        let id = db
            .transaction(async |tx| Enqueue::new(record("committed")).send(tx).await)
            .await
            .expect("commit")
            .expect("an id");
        assert!(
            eventually(Duration::from_secs(10), async || {
                count(&db, "SELECT count(*) FROM runs WHERE tag = 'committed'").await == 1
                    && count(&db, "SELECT count(*) FROM pinion_jobs").await == 0
            })
            .await,
            "the committed job ran and was deleted"
        );
        assert_eq!(
            count(&db, "SELECT job FROM runs WHERE tag = 'committed'").await,
            id.0
        );
        assert_eq!(
            count(&db, "SELECT count(*) FROM runs WHERE tag = 'rolled back'").await,
            0
        );
    });
    drop(workers);
    cluster.drop_database(&url);
}

#[test]
fn a_failing_job_is_retried_with_backoff_then_kept_as_failed_with_its_error() {
    let cluster = Cluster::shared();
    let url = database(&cluster, "jobs_retry");
    let workers = Workers1::start(&url, Registry::new().register::<Record>());
    run(async {
        let db = primary_only(&url);
        let flaky = Enqueue::new(Record {
            tag: "flaky".into(),
            fail: 2,
            sleep_ms: 0,
        })
        .send(&*db)
        .await
        .expect("enqueue")
        .expect("id");
        let doomed = Enqueue::new(Record {
            tag: "doomed".into(),
            fail: 99,
            sleep_ms: 0,
        })
        .send(&*db)
        .await
        .expect("enqueue")
        .expect("id");
        assert!(
            eventually(Duration::from_secs(15), async || {
                count(&db, "SELECT count(*) FROM runs WHERE tag = 'flaky'").await == 3
                    && count(
                        &db,
                        "SELECT count(*) FROM pinion_jobs WHERE state = 'failed'",
                    )
                    .await
                        == 1
                    && count(&db, "SELECT count(*) FROM pinion_jobs").await == 1
            })
            .await,
            "flaky succeeded on its third attempt, doomed failed after its three"
        );
        let failed = admin::list(
            &*db,
            &admin::Filter {
                state: Some("failed".into()),
                ..Default::default()
            },
        )
        .await
        .expect("list");
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].id, doomed.0);
        assert_eq!(failed[0].attempts, 3);
        assert_eq!(
            failed[0].last_error.as_deref(),
            Some("failing on purpose, attempt 3")
        );
        assert_eq!(
            count(&db, "SELECT count(*) FROM runs WHERE tag = 'doomed'").await,
            3
        );
        // The attempts were spaced by the backoff (at least half the base, 10 ms, then 20 ms).
        let gaps: Vec<f64> = db
            .primary()
            .query(
                "SELECT extract(epoch FROM at - lag(at) OVER (ORDER BY attempt))::float8 FROM runs \
                 WHERE tag = 'flaky' ORDER BY attempt",
                &[],
            )
            .await
            .expect("gaps")
            .iter()
            .skip(1)
            .map(|r| r.get(0))
            .collect();
        assert_eq!(gaps.len(), 2);
        assert!(gaps[0] >= 0.010 && gaps[1] >= 0.020, "{gaps:?}");
        assert_ne!(flaky, doomed);
        // Retried by hand: it runs again (and fails again, three more times).
        assert!(admin::retry(&*db, doomed.0).await.expect("retry"));
        assert!(
            eventually(Duration::from_secs(15), async || {
                count(&db, "SELECT count(*) FROM runs WHERE tag = 'doomed'").await == 6
                    && count(
                        &db,
                        "SELECT count(*) FROM pinion_jobs WHERE state = 'failed'",
                    )
                    .await
                        == 1
            })
            .await
        );
    });
    drop(workers);
    cluster.drop_database(&url);
}

#[test]
fn a_unique_key_enqueued_twice_is_one_job_and_replace_takes_the_new_payload() {
    let cluster = Cluster::shared();
    let url = database(&cluster, "jobs_unique");
    run(async {
        let db = primary_only(&url);
        let first = Enqueue::new(record("first"))
            .delay(Duration::from_secs(3600))
            .unique("k", OnConflict::Skip)
            .send(&*db)
            .await
            .expect("enqueue");
        assert!(first.is_some());
        let second = Enqueue::new(record("second"))
            .unique("k", OnConflict::Skip)
            .send(&*db)
            .await
            .expect("enqueue");
        assert_eq!(second, None, "skipped");
        let replaced = Enqueue::new(record("replaced"))
            .delay(Duration::from_secs(3600))
            .unique("k", OnConflict::Replace)
            .send(&*db)
            .await
            .expect("enqueue");
        assert_eq!(replaced, first, "the same job, replaced");
        let rows = admin::list(&*db, &admin::Filter::default())
            .await
            .expect("list");
        assert_eq!(rows.len(), 1);
        assert!(rows[0].payload.contains("replaced"), "{}", rows[0].payload);
        // Once cancelled, the key is free again.
        assert!(admin::cancel(&*db, rows[0].id).await.expect("cancel"));
        assert!(!admin::cancel(&*db, rows[0].id).await.expect("cancel twice"));
        let again = Enqueue::new(record("again"))
            .unique("k", OnConflict::Skip)
            .send(&*db)
            .await
            .expect("enqueue");
        assert!(again.is_some() && again != first);
    });
    cluster.drop_database(&url);
}

#[test]
fn a_cancelled_job_never_runs_and_a_running_one_is_told() {
    let cluster = Cluster::shared();
    let url = database(&cluster, "jobs_cancel");
    run(async {
        let db = primary_only(&url);
        let later = Enqueue::new(record("later"))
            .delay(Duration::from_secs(1))
            .send(&*db)
            .await
            .expect("enqueue")
            .expect("id");
        assert!(admin::cancel(&*db, later.0).await.expect("cancel"));
    });
    let workers = Workers1::start(&url, Registry::new().register::<Record>());
    run(async {
        let db = primary_only(&url);
        // Long enough for a lease renewal (every second with a 3 s lease) to see the cancel.
        let long = Enqueue::new(Record {
            tag: "long".into(),
            fail: 0,
            sleep_ms: 20_000,
        })
        .send(&*db)
        .await
        .expect("enqueue")
        .expect("id");
        assert!(
            eventually(Duration::from_secs(10), async || {
                count(
                    &db,
                    "SELECT count(*) FROM pinion_jobs WHERE state = 'running'",
                )
                .await
                    == 1
            })
            .await
        );
        assert!(admin::cancel(&*db, long.0).await.expect("cancel"));
        // The job saw it and stopped early (it records its run on the way out), and stays
        // cancelled.
        assert!(
            eventually(Duration::from_secs(10), async || {
                count(&db, "SELECT count(*) FROM runs WHERE tag = 'long'").await == 1
            })
            .await
        );
        let rows = admin::list(&*db, &admin::Filter::default())
            .await
            .expect("list");
        let states: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| (r.payload.as_str(), r.state.as_str()))
            .collect();
        assert!(
            rows.len() == 2 && rows.iter().all(|r| r.state == "cancelled"),
            "{states:?}"
        );
        assert_eq!(
            count(&db, "SELECT count(*) FROM runs WHERE tag = 'later'").await,
            0
        );
    });
    drop(workers);
    cluster.drop_database(&url);
}

#[test]
fn a_periodic_job_ticks_once_per_period_across_three_runners_and_survives_its_leader() {
    let cluster = Cluster::shared();
    let url = database(&cluster, "jobs_cron");
    let registry = || {
        Registry::new()
            .every("tick", "* * * * * *", |at| Tick {
                at: at
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0),
            })
            .expect("schedule")
    };
    let mut three: Vec<Workers1> = (0..3).map(|_| Workers1::start(&url, registry())).collect();
    let all = run(async {
        let db = primary_only(&url);
        let ticks = async || {
            db.primary()
                .query("SELECT job FROM runs WHERE tag = 'tick' ORDER BY job", &[])
                .await
                .expect("ticks")
                .iter()
                .map(|r| r.get::<_, i64>(0))
                .collect::<Vec<i64>>()
        };
        assert!(
            eventually(Duration::from_secs(15), async || ticks().await.len() >= 4).await,
            "ticks every second"
        );
        // Stop the runners one by one (the leader among them, sooner or later): each time,
        // the ticks go on.
        for (stopped, runner) in three.iter_mut().take(2).enumerate() {
            let before = ticks().await.last().copied().unwrap_or(0);
            runner.stop();
            assert!(
                eventually(Duration::from_secs(10), async || {
                    ticks().await.iter().filter(|t| **t > before).count() >= 3
                })
                .await,
                "another runner leads after {stopped} stopped"
            );
        }
        three.clear();
        ticks().await
    });
    let mut unique = all.clone();
    unique.dedup();
    assert_eq!(all, unique, "no tick ran twice");
    // No tick was lost but at the hand-overs, where the latest missed tick is made up.
    let gaps = all.windows(2).filter(|w| w[1] - w[0] > 1).count();
    assert!(gaps <= 2, "{all:?}");
    cluster.drop_database(&url);
}

#[test]
fn a_job_longer_than_its_lease_keeps_it_and_runs_once() {
    let cluster = Cluster::shared();
    let url = database(&cluster, "jobs_long");
    let workers = Workers1::start(&url, Registry::new().register::<Record>());
    run(async {
        let db = primary_only(&url);
        // Twice the 3 s lease: renewed every second, never reaped.
        Enqueue::new(Record {
            tag: "long".into(),
            fail: 0,
            sleep_ms: 6_000,
        })
        .send(&*db)
        .await
        .expect("enqueue");
        assert!(
            eventually(Duration::from_secs(20), async || {
                count(&db, "SELECT count(*) FROM pinion_jobs").await == 0
            })
            .await
        );
        assert_eq!(
            count(
                &db,
                "SELECT count(*) FROM runs WHERE tag = 'long' AND attempt = 1"
            )
            .await,
            1
        );
        assert_eq!(count(&db, "SELECT count(*) FROM runs").await, 1, "run once");
    });
    drop(workers);
    cluster.drop_database(&url);
}

#[test]
fn without_the_listening_connection_polling_runs_the_jobs_and_a_queue_keeps_its_concurrency() {
    let cluster = Cluster::shared();
    let url = database(&cluster, "jobs_poll");
    // Two threads, two jobs at once each: at most four at a time.
    let workers = Workers1::start_with(
        &url,
        Registry::new().register::<Record>(),
        false,
        "default:2",
    );
    run(async {
        let db = primary_only(&url);
        let jobs = (0..12).map(|i| {
            Enqueue::new(Record {
                tag: format!("p{i}"),
                fail: 0,
                sleep_ms: 300,
            })
        });
        Enqueue::send_many(jobs, &*db).await.expect("enqueue");
        assert!(
            eventually(Duration::from_secs(20), async || {
                count(&db, "SELECT count(*) FROM runs").await == 12
            })
            .await,
            "polling alone ran them all"
        );
        let most = PEAK.load(Ordering::SeqCst);
        assert!((2..=4).contains(&most), "{most} running at once");
    });
    drop(workers);
    cluster.drop_database(&url);
}
