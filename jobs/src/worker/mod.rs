//! One worker thread: for each queue a producer that claims due jobs while it has free
//! slots, an executor task per claimed job, one completer that records outcomes in batches,
//! a heartbeat that renews the leases of running jobs, and (on the first thread of the
//! process) the maintenance loop and the periodic jobs' leader.
//!
//! On shutdown the producers stop claiming; running jobs get `drain_timeout` to finish,
//! their outcomes are recorded, and those still running are released to run again at once
//! elsewhere.

mod complete;
mod execute;
mod maintain;
mod produce;
pub(crate) mod store;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use pinion_orm::ConnectionManager;
use pinion_server::ShutdownTrigger;
use tokio::sync::Notify;

use crate::config::WorkerConfig;
use crate::error::JobError;
use crate::job::Cancel;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::wake::Wakeups;

/// A queue as one thread runs it.
pub(crate) struct Queue {
    pub(crate) name: Rc<str>,
    pub(crate) concurrency: usize,
    pub(crate) running: Cell<usize>,
    /// Notified when one of its jobs finishes: a producer with no free slot waits on it.
    pub(crate) slot: Notify,
    /// Notified by an enqueue's `NOTIFY` (through [`Wakeups`]).
    pub(crate) wake: Arc<Notify>,
}

/// A job running on this thread.
pub(crate) struct Running {
    pub(crate) attempt: i32,
    pub(crate) cancelled: Rc<Cancel>,
}

/// How a job ended, waiting to be recorded.
pub(crate) struct Outcome {
    pub(crate) id: i64,
    pub(crate) attempt: i32,
    pub(crate) queue: usize,
    pub(crate) result: Result<(), JobError>,
    pub(crate) elapsed: Duration,
}

/// One worker thread's state.
pub(crate) struct Local {
    pub(crate) db: Rc<ConnectionManager>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) config: Arc<WorkerConfig>,
    pub(crate) metrics: Metrics,
    pub(crate) shutdown: ShutdownTrigger,
    /// This thread in the `worker` column: `host:pid/thread`.
    pub(crate) worker: String,
    pub(crate) queues: Vec<Queue>,
    pub(crate) running: RefCell<HashMap<i64, Running>>,
    pub(crate) outcomes: RefCell<Vec<Outcome>>,
    pub(crate) outcome_ready: Notify,
    /// Batches of outcomes being written now.
    pub(crate) flushing: Cell<usize>,
    /// Notified when the last running job finishes, and when a batch of outcomes is written.
    pub(crate) settled: Notify,
}

impl Local {
    pub(crate) fn new(
        db: Rc<ConnectionManager>,
        registry: Arc<Registry>,
        config: Arc<WorkerConfig>,
        metrics: Metrics,
        shutdown: ShutdownTrigger,
        wakeups: &Wakeups,
        thread: usize,
    ) -> Rc<Local> {
        let queues = config
            .queues
            .iter()
            .map(|q| Queue {
                name: q.name.as_str().into(),
                concurrency: q.concurrency,
                running: Cell::new(0),
                slot: Notify::new(),
                wake: wakeups.register(&q.name),
            })
            .collect();
        Rc::new(Local {
            worker: format!("{}/{thread}", config.name),
            db,
            registry,
            config,
            metrics,
            shutdown,
            queues,
            running: RefCell::default(),
            outcomes: RefCell::default(),
            outcome_ready: Notify::new(),
            flushing: Cell::new(0),
            settled: Notify::new(),
        })
    }

    pub(crate) fn stopping(&self) -> bool {
        self.shutdown.is_triggered()
    }
}

/// Runs one worker thread until shutdown has been triggered and the drain is over.
pub(crate) async fn run(local: Rc<Local>, leader_thread: bool) {
    for q in 0..local.queues.len() {
        monoio::spawn(produce::produce(Rc::clone(&local), q));
    }
    monoio::spawn(complete::complete(Rc::clone(&local)));
    monoio::spawn(maintain::heartbeat(Rc::clone(&local)));
    let mut cron = None;
    if leader_thread {
        monoio::spawn(maintain::maintain(Rc::clone(&local)));
        if !local.registry.schedules.is_empty() {
            cron = Some(monoio::spawn(crate::cron::lead(Rc::clone(&local))));
        }
    }
    local.shutdown.triggered().await;
    drain(&local).await;
    if let Some(cron) = cron {
        // It gives the lock up, so that another instance leads at once.
        let _ = monoio::time::timeout(Duration::from_secs(1), cron).await;
    }
}

/// Waits for running jobs (at most `drain_timeout`), records their outcomes, releases the
/// rest.
async fn drain(local: &Rc<Local>) {
    for q in &local.queues {
        // Producers waiting for a slot or a wake-up see the shutdown and end.
        q.slot.notify_one();
        q.wake.notify_one();
    }
    let running = local.running.borrow().len();
    if running > 0 {
        tracing::info!(
            worker = %local.worker,
            running,
            drain_timeout = ?local.config.drain_timeout,
            "jobs: draining, no new job is claimed"
        );
    }
    let finished = monoio::time::timeout(local.config.drain_timeout, async {
        while !local.running.borrow().is_empty() {
            local.settled.notified().await;
        }
    })
    .await
    .is_ok();
    complete::flush_all(local).await;
    if !finished {
        let (ids, attempts): (Vec<i64>, Vec<i32>) = local
            .running
            .borrow()
            .iter()
            .map(|(id, r)| (*id, r.attempt))
            .unzip();
        match store::release(local.db.primary(), &ids, &attempts).await {
            Ok(n) => {
                local.metrics.released.inc_by(n as u64);
                tracing::warn!(
                    worker = %local.worker,
                    released = n,
                    ids = ?ids,
                    "jobs: still running at drain_timeout, released to run again elsewhere"
                );
            }
            Err(e) => tracing::error!(
                worker = %local.worker,
                error = %e,
                ids = ?ids,
                "jobs: could not release the unfinished jobs; they run again once their lease runs out"
            ),
        }
    }
}
