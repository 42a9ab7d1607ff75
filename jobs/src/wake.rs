//! Waking idle workers when a job is enqueued: the process's listening connection receives
//! `NOTIFY pinion_jobs, '<queue>'` (sent by the enqueue's own statement, delivered at its
//! commit) and wakes every worker thread of this process that runs that queue. Polling
//! (`jobs_poll_interval`) covers the rest: jobs whose `run_at` comes, retries, a listening
//! connection that is down.

use std::sync::Arc;

use futures_util::future::LocalBoxFuture;
use parking_lot::Mutex;
use pinion_orm::listener::Subscriber;
use pinion_orm::tokio_postgres::Client;
use tokio::sync::Notify;

use crate::enqueue::JOBS_CHANNEL;

/// The worker threads' wake-ups, by queue; shared by the listener and the workers.
#[derive(Debug, Default)]
pub struct Wakeups {
    /// Written when a worker thread starts, read per notification batch: a mutex held for a
    /// few pointer copies, never across an await.
    waiters: Mutex<Vec<(String, Arc<Notify>)>>,
}

impl Wakeups {
    /// No waiter yet.
    pub fn new() -> Arc<Wakeups> {
        Arc::new(Wakeups::default())
    }

    /// The notification one worker thread's producer for `queue` waits on.
    pub(crate) fn register(&self, queue: &str) -> Arc<Notify> {
        let notify = Arc::new(Notify::new());
        self.waiters
            .lock()
            .push((queue.to_owned(), Arc::clone(&notify)));
        notify
    }

    /// Wakes every producer of `queue` (one permit each: a producer busy now claims again
    /// as soon as it is done, rather than sleeping till the next poll).
    pub fn wake(&self, queue: &str) {
        for (q, notify) in self.waiters.lock().iter() {
            if q == queue {
                notify.notify_one();
            }
        }
    }

    /// Wakes every producer: after the listening connection was down, notifications sent
    /// meanwhile are gone.
    pub fn wake_all(&self) {
        for (_, notify) in self.waiters.lock().iter() {
            notify.notify_one();
        }
    }

    /// This as a subscriber of the process's listening connection.
    pub fn subscriber(self: &Arc<Wakeups>) -> Arc<dyn Subscriber> {
        Arc::new(JobsChannel(Arc::clone(self)))
    }
}

struct JobsChannel(Arc<Wakeups>);

impl Subscriber for JobsChannel {
    fn channel(&self) -> &str {
        JOBS_CHANNEL
    }

    fn received<'a>(
        &'a self,
        mut payloads: Vec<String>,
        _conn: &'a Client,
    ) -> LocalBoxFuture<'a, Result<(), pinion_orm::Error>> {
        payloads.sort_unstable();
        payloads.dedup();
        for queue in &payloads {
            self.0.wake(queue);
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn up<'a>(
        &'a self,
        reconnected: bool,
        _conn: &'a Client,
    ) -> LocalBoxFuture<'a, Result<(), pinion_orm::Error>> {
        if reconnected {
            self.0.wake_all();
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn down(&self) {}
}
