//! Which code runs which kind of job, and the periodic jobs: built once by the application,
//! shared by every worker thread.

use std::any::{Any, TypeId};
use std::collections::HashMap;

use futures_util::future::LocalBoxFuture;

use crate::cron::Schedule;
use crate::enqueue::Enqueue;
use crate::error::{Error, JobError};
use crate::job::{Job, JobContext};

/// A job's code with its payload still JSON: decodes it, then runs it.
type Handler = for<'a> fn(&'a str, &'a JobContext) -> LocalBoxFuture<'a, Result<(), JobError>>;

fn handle<'a, J: Job>(
    payload: &'a str,
    ctx: &'a JobContext,
) -> LocalBoxFuture<'a, Result<(), JobError>> {
    match serde_json::from_str::<J>(payload) {
        Ok(job) => Box::pin(job.run(ctx)),
        // Retrying cannot make it decode.
        Err(e) => Box::pin(std::future::ready(Err(JobError::permanent(format!(
            "the payload does not decode as a `{}` job: {e}",
            J::KIND
        ))))),
    }
}

/// The kinds of job this application runs, the values their code needs, and its periodic
/// jobs:
///
/// ```
/// # use pinion_jobs::{Job, JobContext, JobError, Registry};
/// # #[derive(serde::Serialize, serde::Deserialize)]
/// # struct Welcome { user: i64 }
/// # impl Job for Welcome {
/// #     const KIND: &'static str = "welcome";
/// #     async fn run(self, _: &JobContext) -> Result<(), JobError> { Ok(()) }
/// # }
/// # #[derive(serde::Serialize, serde::Deserialize)]
/// # struct Report;
/// # impl Job for Report {
/// #     const KIND: &'static str = "report";
/// #     async fn run(self, _: &JobContext) -> Result<(), JobError> { Ok(()) }
/// # }
/// let registry = Registry::new()
///     .register::<Welcome>()
///     // Every day at 03:00 UTC, once across all instances.
///     .every("nightly-report", "0 0 3 * * *", |_tick| Report)
///     .expect("a valid cron expression");
/// ```
#[derive(Default)]
pub struct Registry {
    handlers: HashMap<&'static str, Handler>,
    pub(crate) data: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
    pub(crate) schedules: Vec<Schedule>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kinds: Vec<&str> = self.handlers.keys().copied().collect();
        kinds.sort_unstable();
        f.debug_struct("Registry")
            .field("kinds", &kinds)
            .field("schedules", &self.schedules.len())
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Runs jobs of kind `J::KIND` with `J::run`.
    pub fn register<J: Job>(mut self) -> Registry {
        self.handlers.insert(J::KIND, handle::<J>);
        self
    }

    /// Makes `value` available to every job's code through
    /// [`JobContext::data`](crate::JobContext::data).
    pub fn with<T: Any + Send + Sync>(mut self, value: T) -> Registry {
        self.data.insert(TypeId::of::<T>(), Box::new(value));
        self
    }

    /// Enqueues the job `make` builds (it is given the tick's time) at every tick of `cron`
    /// (UTC; five fields, or six with seconds first), once per tick across every instance,
    /// and registers its kind. A tick
    /// missed while no instance ran (or during a leader's hand-over) is made up once: the
    /// latest missed tick is enqueued, earlier ones are skipped.
    ///
    /// # Errors
    /// A configuration error naming the schedule when `cron` does not parse.
    pub fn every<J: Job>(
        mut self,
        name: &str,
        cron: &str,
        make: impl Fn(std::time::SystemTime) -> J + Send + Sync + 'static,
    ) -> Result<Registry, Error> {
        let schedule = Schedule::new(name, cron, move |tick| Enqueue::new(make(tick)))?;
        self.schedules.push(schedule);
        Ok(self.register::<J>())
    }

    /// Whether jobs of `kind` can run here.
    pub fn knows(&self, kind: &str) -> bool {
        self.handlers.contains_key(kind)
    }

    /// Runs a claimed job; a kind this registry does not know is an error worth retrying
    /// (another release of the application may know it).
    pub(crate) fn run<'a>(
        &self,
        kind: &str,
        payload: &'a str,
        ctx: &'a JobContext,
    ) -> LocalBoxFuture<'a, Result<(), JobError>> {
        match self.handlers.get(kind) {
            Some(handler) => handler(payload, ctx),
            None => Box::pin(std::future::ready(Err(JobError::new(format!(
                "no code is registered for jobs of kind `{kind}` in this worker"
            ))))),
        }
    }
}
