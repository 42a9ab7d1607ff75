//! A queue's producer: claims due jobs while the queue has free slots on this thread, then
//! waits for a wake-up (an enqueue's `NOTIFY`), a freed slot or the polling interval.

use std::rc::Rc;
use std::time::Duration;

use futures_util::future::{select, Either};

use super::{execute, store, Local};

/// The first pause after a failed claim (the database is down); doubled up to
/// [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub(crate) async fn produce(local: Rc<Local>, q: usize) {
    let queue = &local.queues[q];
    let mut backoff = FIRST_BACKOFF;
    loop {
        if local.stopping() {
            return;
        }
        let free = queue.concurrency.saturating_sub(queue.running.get());
        if free == 0 {
            wait(&local, queue.slot.notified(), local.config.poll_interval).await;
            continue;
        }
        let asked = free.min(local.config.batch.max(1));
        let claimed = store::claim(
            local.db.primary(),
            &queue.name,
            asked,
            local.config.lease,
            &local.worker,
        )
        .await;
        match claimed {
            Ok(jobs) => {
                backoff = FIRST_BACKOFF;
                let got = jobs.len();
                for job in jobs {
                    execute::start(&local, q, job);
                }
                if got == asked {
                    // There may be more: claim again as soon as slots allow.
                    continue;
                }
            }
            Err(e) => {
                tracing::warn!(
                    queue = %queue.name,
                    error = %e,
                    retry_in = ?backoff,
                    "jobs: cannot claim; retrying"
                );
                wait(&local, std::future::pending::<()>(), backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        }
        wait(&local, queue.wake.notified(), local.config.poll_interval).await;
    }
}

/// Waits for `event`, at most `limit`, or until shutdown.
async fn wait(local: &Local, event: impl std::future::Future<Output = ()>, limit: Duration) {
    let event = std::pin::pin!(event);
    let stop = std::pin::pin!(local.shutdown.triggered());
    let timed = std::pin::pin!(monoio::time::timeout(limit, async move {
        match select(event, stop).await {
            Either::Left(_) | Either::Right(_) => {}
        }
    }));
    let _ = timed.await;
}
