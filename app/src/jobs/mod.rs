//! Background jobs in the application: the kinds it runs, its workers' configuration, and
//! starting them (in `serve` beside the HTTP workers, or alone in `pinion worker`).
//!
//! A job is a serde payload with a kind and the code a worker runs, at least once (a worker
//! that dies mid-job leaves a lease that runs out, and another runs it again), so it should
//! be idempotent. Enqueued in the request's transaction, it exists only if the transaction
//! commits; its worker may be in another instance. This example is the README's:
//!
//! ```
//! use std::rc::Rc;
//!
//! use pinion_jobs::{Enqueue, Job, JobContext, JobError, OnConflict, Registry};
//! use pinion_orm::{ConnectionManager, Model};
//! use pinion_server::extract::Form;
//! use pinion_server::{Ctx, StatusCode};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Clone, Model)]
//! #[model(table = "subscribers")]
//! struct Subscriber {
//!     #[model(primary_key, auto)]
//!     id: i64,
//!     email: String,
//! }
//!
//! #[derive(Serialize, Deserialize)]
//! struct WelcomeMail {
//!     subscriber: i64,
//! }
//!
//! impl Job for WelcomeMail {
//!     const KIND: &'static str = "welcome_mail";
//!     const QUEUE: &'static str = "mail";
//!     const MAX_ATTEMPTS: i32 = 5;
//!
//!     async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
//!         let subscriber = Subscriber::objects()
//!             .filter(Subscriber::ID.eq(self.subscriber))
//!             .first(ctx.db())
//!             .await?
//!             // Retrying cannot bring it back: failed at once, with this as its error.
//!             .ok_or_else(|| JobError::permanent("the subscriber left"))?;
//!         tracing::info!(email = %subscriber.email, attempt = ctx.attempt(), "welcome mail sent");
//!         Ok(())
//!     }
//! }
//!
//! struct App {
//!     db: Rc<ConnectionManager>,
//! }
//!
//! #[derive(Deserialize)]
//! struct SignUp {
//!     email: String,
//! }
//!
//! // POST /subscribe: the row and its mail commit together, or neither exists.
//! async fn subscribe(ctx: &Ctx<App>, Form(form): Form<SignUp>) -> pinion_web::Result<StatusCode> {
//!     ctx.state()
//!         .db
//!         .transaction(async |tx| {
//!             let mut subscriber = Subscriber { id: 0, email: form.email.clone() };
//!             subscriber.save(tx).await?;
//!             Enqueue::new(WelcomeMail { subscriber: subscriber.id })
//!                 .unique(format!("welcome:{}", subscriber.id), OnConflict::Skip)
//!                 .send(tx)
//!                 .await?;
//!             Ok::<_, pinion_web::Error>(())
//!         })
//!         .await?;
//!     Ok(StatusCode::ACCEPTED)
//! }
//!
//! #[derive(Serialize, Deserialize)]
//! struct Digest;
//!
//! impl Job for Digest {
//!     const KIND: &'static str = "digest";
//!
//!     async fn run(self, _ctx: &JobContext) -> Result<(), JobError> {
//!         Ok(())
//!     }
//! }
//!
//! // What the workers run (`registry()` below), with a periodic job: every day at 03:00 UTC,
//! // once across all instances.
//! let registry = Registry::new()
//!     .register::<WelcomeMail>()
//!     .every("nightly-digest", "0 0 3 * * *", |_tick| Digest)
//!     .expect("a valid cron expression");
//! let _router: pinion_server::Router<App> = pinion_server::Router::new().post("/subscribe", subscribe);
//! ```

pub mod cli;
pub mod demo;
pub mod ops;

use std::sync::Arc;
use std::time::Duration;

use pinion_config::Settings;
use pinion_jobs::{Metrics, Registry, RetryPolicy, Runner, Wakeups, WorkerConfig, Workers};
use pinion_orm::DbConfig;
use pinion_server::ShutdownTrigger;

/// The longest delay between retries.
const RETRY_CAP: Duration = Duration::from_secs(3600);

/// Every kind of job the application runs.
pub fn registry() -> Registry {
    Registry::new()
        .register::<demo::ConfirmOrder>()
        .register::<demo::Noop>()
        .register::<demo::Mark>()
}

/// The workers' configuration from the settings, with `threads` worker threads.
pub fn worker_config(settings: &Settings, threads: usize) -> WorkerConfig {
    WorkerConfig {
        queues: settings.jobs_queues.clone(),
        lease: settings.jobs_lease,
        poll_interval: settings.jobs_poll_interval,
        drain_timeout: settings.drain_timeout,
        retry: RetryPolicy {
            base: settings.jobs_retry_base,
            cap: RETRY_CAP.max(settings.jobs_retry_base),
        },
        threads,
        ..WorkerConfig::default()
    }
}

/// Starts `threads` worker threads on `db`, draining when `shutdown` fires; their metrics go
/// to `metrics_registry` (the one `/metrics` renders) when there is one.
///
/// # Errors
/// When a thread cannot start.
pub fn start(
    settings: &Settings,
    db: &DbConfig,
    threads: usize,
    metrics_registry: Option<&prometheus::Registry>,
    wakeups: Arc<Wakeups>,
    shutdown: ShutdownTrigger,
) -> Result<Runner, pinion_jobs::Error> {
    let metrics = match metrics_registry.map(Metrics::new) {
        Some(Ok(m)) => m,
        Some(Err(e)) => {
            tracing::warn!(error = %e, "jobs metrics not registered");
            Metrics::unregistered()
        }
        None => Metrics::unregistered(),
    };
    let config = worker_config(settings, threads);
    tracing::info!(
        threads,
        queues = %pinion_config::JobQueue::render_list(&config.queues),
        "background-job workers starting"
    );
    Runner::start(Workers {
        db: db.clone(),
        registry: Arc::new(registry()),
        config,
        metrics,
        wakeups,
        shutdown,
    })
}
