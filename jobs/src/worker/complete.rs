//! Recording outcomes: completed jobs are deleted in one statement per batch (the batch is
//! whatever finished while the previous statement ran), failed attempts are retried after a
//! backoff or kept as failed.

use std::rc::Rc;
use std::time::Duration;

use super::{store, Local, Outcome};

/// The pause before writing outcomes again after the database failed: they are kept, and
/// written once it is back (past the lease, another worker may have run the jobs again).
const RETRY: Duration = Duration::from_millis(200);

pub(crate) async fn complete(local: Rc<Local>) {
    loop {
        if local.outcomes.borrow().is_empty() {
            local.outcome_ready.notified().await;
        }
        if !flush(&local).await {
            monoio::time::sleep(RETRY).await;
        }
    }
}

/// Writes every outcome waiting and waits for the batches in flight: the drain calls it
/// before the thread ends.
pub(crate) async fn flush_all(local: &Local) {
    let mut tries = 0;
    while !local.outcomes.borrow().is_empty() && tries < 10 {
        if !flush(local).await {
            tries += 1;
            monoio::time::sleep(RETRY).await;
        }
    }
    while local.flushing.get() > 0 {
        local.settled.notified().await;
    }
}

/// Writes the outcomes waiting now; false when the database failed (they wait again).
async fn flush(local: &Local) -> bool {
    let batch: Vec<Outcome> = std::mem::take(&mut *local.outcomes.borrow_mut());
    if batch.is_empty() {
        return true;
    }
    local.flushing.set(local.flushing.get() + 1);
    let written = write(local, batch).await;
    local.flushing.set(local.flushing.get() - 1);
    local.settled.notify_waiters();
    match written {
        Ok(()) => true,
        Err((unwritten, e)) => {
            tracing::warn!(
                error = %e,
                outcomes = unwritten.len(),
                "jobs: cannot record outcomes; retrying"
            );
            local.outcomes.borrow_mut().extend(unwritten);
            false
        }
    }
}

async fn write(
    local: &Local,
    batch: Vec<Outcome>,
) -> Result<(), (Vec<Outcome>, pinion_orm::Error)> {
    let db = local.db.primary();
    let (done, failed): (Vec<Outcome>, Vec<Outcome>) =
        batch.into_iter().partition(|o| o.result.is_ok());
    if !done.is_empty() {
        let ids: Vec<i64> = done.iter().map(|o| o.id).collect();
        let attempts: Vec<i32> = done.iter().map(|o| o.attempt).collect();
        if let Err(e) = store::complete(db, &ids, &attempts).await {
            let mut back = done;
            back.extend(failed);
            return Err((back, e));
        }
        for o in &done {
            let queue: &str = &local.queues[o.queue].name;
            local.metrics.completed.with_label_values(&[queue]).inc();
            local
                .metrics
                .duration
                .with_label_values(&[queue, "completed"])
                .observe(o.elapsed.as_secs_f64());
        }
    }
    let mut left = failed.into_iter();
    while let Some(o) = left.next() {
        let Err(error) = &o.result else { continue };
        let delay = local.config.retry.delay(o.attempt, rand::random::<f64>());
        let state = store::fail(
            db,
            o.id,
            o.attempt,
            error.message(),
            error.is_permanent(),
            delay,
        )
        .await;
        let queue: &str = &local.queues[o.queue].name;
        match state {
            Ok(Some(state)) if state == "failed" => {
                local.metrics.failed.with_label_values(&[queue]).inc();
                tracing::error!(
                    job = o.id,
                    queue,
                    attempt = o.attempt,
                    error = %error,
                    "jobs: failed for good; kept with its error (pinion jobs retry {} runs it again)",
                    o.id
                );
            }
            Ok(Some(_)) => {
                local.metrics.retried.with_label_values(&[queue]).inc();
            }
            // Cancelled meanwhile, or no longer this worker's.
            Ok(None) => {}
            Err(e) => {
                let mut back = vec![o];
                back.extend(left);
                return Err((back, e));
            }
        }
        local
            .metrics
            .duration
            .with_label_values(&[queue, "failed"])
            .observe(o.elapsed.as_secs_f64());
    }
    Ok(())
}
