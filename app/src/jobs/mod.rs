//! Background jobs in the application: the kinds it runs, its workers' configuration, and
//! starting them (in `serve` beside the HTTP workers, or alone in `pinion worker`).

pub mod cli;
pub mod demo;

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
