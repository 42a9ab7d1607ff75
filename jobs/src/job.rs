//! What a job is: a typed payload with a kind, and the code that runs it.

use std::any::{Any, TypeId};
use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;

use pinion_orm::ConnectionManager;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::Notify;

use crate::error::JobError;
use crate::registry::Registry;

/// The queue a job goes to unless it names another.
pub const DEFAULT_QUEUE: &str = "default";

/// How many times a job is tried before it is kept as failed, unless it says otherwise.
pub const DEFAULT_MAX_ATTEMPTS: i32 = 25;

/// A background job: its fields are its payload (stored as JSON), [`KIND`](Job::KIND) names
/// its code, and [`run`](Job::run) is that code, run by a worker of any instance, at least
/// once: a job whose worker dies is run again, so it should be idempotent.
///
/// ```
/// use pinion_jobs::{Job, JobContext, JobError};
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Welcome {
///     user: i64,
/// }
///
/// impl Job for Welcome {
///     const KIND: &'static str = "welcome";
///     const QUEUE: &'static str = "mail";
///
///     async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
///         tracing::info!(user = self.user, attempt = ctx.attempt(), "sending the welcome mail");
///         Ok(())
///     }
/// }
/// ```
pub trait Job: Serialize + DeserializeOwned + 'static {
    /// The name stored with each job and looked up in the [`Registry`]: renaming it strands
    /// the jobs already enqueued under the old name.
    const KIND: &'static str;
    /// The queue it goes to ([`DEFAULT_QUEUE`] unless set); workers run each queue with a
    /// concurrency of its own.
    const QUEUE: &'static str = DEFAULT_QUEUE;
    /// Higher first among the jobs of a queue that are due. Default is 0.
    const PRIORITY: i16 = 0;
    /// Tries before the job is kept as failed. Default is [`DEFAULT_MAX_ATTEMPTS`].
    const MAX_ATTEMPTS: i32 = DEFAULT_MAX_ATTEMPTS;

    /// Does the work. An `Err` is retried after a backoff (see
    /// [`RetryPolicy`](crate::RetryPolicy)) unless it is [permanent](JobError::permanent).
    fn run(self, ctx: &JobContext) -> impl Future<Output = Result<(), JobError>>;
}

/// A running job's cancellation, set by its worker's lease renewal.
#[derive(Default)]
pub(crate) struct Cancel {
    flag: Cell<bool>,
    notify: Notify,
}

impl Cancel {
    /// Whether it was cancelled.
    pub(crate) fn is_set(&self) -> bool {
        self.flag.get()
    }

    /// Cancels it, waking a job waiting in [`JobContext::cancelled`].
    pub(crate) fn set(&self) {
        self.flag.set(true);
        self.notify.notify_waiters();
    }
}

/// What a running job knows about itself and its worker.
pub struct JobContext {
    pub(crate) id: i64,
    pub(crate) attempt: i32,
    pub(crate) max_attempts: i32,
    pub(crate) queue: Rc<str>,
    pub(crate) db: Rc<ConnectionManager>,
    pub(crate) cancelled: Rc<Cancel>,
    pub(crate) registry: Arc<Registry>,
}

impl JobContext {
    /// The job's id (as `pinion jobs list` shows it).
    pub fn id(&self) -> i64 {
        self.id
    }

    /// Which try this is: 1 the first time.
    pub fn attempt(&self) -> i32 {
        self.attempt
    }

    /// Whether a failure now keeps the job as failed rather than retrying it.
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }

    /// The queue it was claimed from.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The worker thread's connections: query sets and transactions take it as their
    /// executor, as a handler's do.
    pub fn db(&self) -> &Rc<ConnectionManager> {
        &self.db
    }

    /// Whether the job was cancelled (`pinion jobs cancel`) while it runs: seen at the
    /// lease's next renewal. A long job checks it between steps and returns early; whatever
    /// it returns then is ignored and the job stays cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.flag.get()
    }

    /// Completes once the job is cancelled (as [`is_cancelled`](Self::is_cancelled) learns
    /// it): for a job that waits, to stop waiting
    /// (`select(work, ctx.cancelled())`).
    pub async fn cancelled(&self) {
        // One thread: nothing sets the flag between the look and the wait's registration.
        while !self.cancelled.flag.get() {
            self.cancelled.notify.notified().await;
        }
    }

    /// A value the application gave the registry ([`Registry::with`]): a mailer, a client, a
    /// configuration.
    pub fn data<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.registry
            .data
            .get(&TypeId::of::<T>())
            .and_then(|d| d.downcast_ref::<T>())
    }
}
