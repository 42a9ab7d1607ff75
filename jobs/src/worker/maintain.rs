//! Keeping the table honest: leases renewed while jobs run (so a long job keeps its lease),
//! leases that ran out put back (their worker died), the queues sampled for the metrics,
//! old failed and cancelled jobs pruned.

use std::collections::HashSet;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::{store, Local};

/// How often the first thread samples the queues for the metrics.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// How often it prunes old failed and cancelled jobs.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Renews the leases of this thread's running jobs every third of the lease; a job whose
/// renewal finds it no longer running (cancelled) learns it through its context.
pub(crate) async fn heartbeat(local: Rc<Local>) {
    let every = local.config.lease / 3;
    loop {
        monoio::time::sleep(every).await;
        let (ids, attempts): (Vec<i64>, Vec<i32>) = local
            .running
            .borrow()
            .iter()
            .map(|(id, r)| (*id, r.attempt))
            .unzip();
        if ids.is_empty() {
            continue;
        }
        match store::renew(local.db.primary(), &ids, &attempts, local.config.lease).await {
            Ok(alive) => {
                let alive: HashSet<i64> = alive.into_iter().collect();
                for (id, running) in local.running.borrow().iter() {
                    if !alive.contains(id) && !running.cancelled.is_set() {
                        running.cancelled.set();
                        tracing::info!(
                            job = id,
                            "jobs: cancelled (or its lease lost) while it runs"
                        );
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "jobs: cannot renew leases"),
        }
    }
}

/// Reaps expired leases every quarter of the lease (at most every 5 s), samples the queues,
/// prunes old jobs; runs on the first worker thread of each process.
pub(crate) async fn maintain(local: Rc<Local>) {
    let every = (local.config.lease / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
    let (mut sampled, mut pruned) = (None::<Instant>, Instant::now());
    loop {
        if local.stopping() {
            return;
        }
        let db = local.db.primary();
        match store::reap(db).await {
            Ok(reaped) => {
                for r in &reaped {
                    local.metrics.lease_expiries.inc();
                    tracing::warn!(
                        job = r.id,
                        queue = %r.queue,
                        now = %r.state,
                        "jobs: lease ran out (its worker died or hung); the job runs again"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "jobs: cannot reap expired leases"),
        }
        if sampled.is_none_or(|at| at.elapsed() >= SAMPLE_EVERY) {
            sampled = Some(Instant::now());
            match store::sample(db).await {
                Ok(rows) => {
                    local.metrics.jobs.reset();
                    local.metrics.oldest.reset();
                    for (queue, state, count, oldest) in rows {
                        local
                            .metrics
                            .jobs
                            .with_label_values(&[queue.as_str(), state.as_str()])
                            .set(count);
                        if state == "available" {
                            local
                                .metrics
                                .oldest
                                .with_label_values(&[queue.as_str()])
                                .set(oldest);
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "jobs: cannot sample the queues"),
            }
        }
        if pruned.elapsed() >= PRUNE_EVERY {
            pruned = Instant::now();
            match store::prune(db, local.config.retention).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "jobs: old failed and cancelled jobs pruned"),
                Err(e) => tracing::warn!(error = %e, "jobs: cannot prune old jobs"),
            }
        }
        let stop = std::pin::pin!(local.shutdown.triggered());
        let _ = monoio::time::timeout(every, stop).await;
    }
}
