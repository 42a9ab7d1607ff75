//! Running one claimed job as a task of its own on the worker thread.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use super::{store::Claimed, Local, Outcome, Running};
use crate::job::{Cancel, JobContext};

/// Starts `job`, claimed from queue `q`: it takes a slot until it finishes.
pub(crate) fn start(local: &Rc<Local>, q: usize, job: Claimed) {
    let queue = &local.queues[q];
    queue.running.set(queue.running.get() + 1);
    let cancelled = Rc::new(Cancel::default());
    local.running.borrow_mut().insert(
        job.id,
        Running {
            attempt: job.attempt,
            cancelled: Rc::clone(&cancelled),
        },
    );
    let local = Rc::clone(local);
    monoio::spawn(async move {
        let ctx = JobContext {
            id: job.id,
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            queue: Rc::clone(&local.queues[q].name),
            db: Rc::clone(&local.db),
            cancelled,
            registry: Arc::clone(&local.registry),
        };
        let started = Instant::now();
        let result = local.registry.run(&job.kind, &job.payload, &ctx).await;
        if let Err(e) = &result {
            tracing::warn!(
                job = job.id,
                kind = %job.kind,
                queue = %ctx.queue,
                attempt = job.attempt,
                max_attempts = job.max_attempts,
                error = %e,
                "jobs: attempt failed"
            );
        }
        finish(
            &local,
            Outcome {
                id: job.id,
                attempt: job.attempt,
                queue: q,
                result,
                elapsed: started.elapsed(),
            },
        );
    });
}

fn finish(local: &Local, outcome: Outcome) {
    let queue = &local.queues[outcome.queue];
    queue.running.set(queue.running.get().saturating_sub(1));
    queue.slot.notify_one();
    let none_left = {
        let mut running = local.running.borrow_mut();
        running.remove(&outcome.id);
        running.is_empty()
    };
    local.outcomes.borrow_mut().push(outcome);
    local.outcome_ready.notify_one();
    if none_left {
        local.settled.notify_waiters();
    }
}
