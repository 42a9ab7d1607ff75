//! Worker threads: each runs its own monoio runtime with its own connections (as the
//! server's workers do), until the shutdown trigger fires and its drain is over.

use std::sync::Arc;
use std::thread::JoinHandle;

use pinion_orm::{ConnectionManager, DbConfig};
use pinion_server::ShutdownTrigger;

use crate::config::WorkerConfig;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::wake::Wakeups;
use crate::worker::{self, Local};

/// Running worker threads.
#[derive(Debug)]
pub struct Runner {
    threads: Vec<JoinHandle<()>>,
    shutdown: ShutdownTrigger,
}

/// What the worker threads share.
pub struct Workers {
    /// The database (the primary is where jobs live).
    pub db: DbConfig,
    /// The kinds of job and the periodic ones.
    pub registry: Arc<Registry>,
    /// Queues, leases, retries, the drain.
    pub config: WorkerConfig,
    /// Where the metrics go.
    pub metrics: Metrics,
    /// Fed by the process's listening connection ([`Wakeups::subscriber`]).
    pub wakeups: Arc<Wakeups>,
    /// Fired on SIGTERM (or by the server's own shutdown, when workers run in `serve`).
    pub shutdown: ShutdownTrigger,
}

impl Runner {
    /// Starts `workers.config.threads` worker threads. Each connects to the database on its
    /// own and retries while it cannot (claims fail and are retried with backoff).
    ///
    /// # Errors
    /// A configuration error when a thread or its runtime cannot start.
    pub fn start(workers: Workers) -> Result<Runner, Error> {
        let Workers {
            db,
            registry,
            config,
            metrics,
            wakeups,
            shutdown,
        } = workers;
        let config = Arc::new(config);
        let mut threads = Vec::with_capacity(config.threads);
        for index in 0..config.threads.max(1) {
            let (db, registry, config, metrics, wakeups, shutdown) = (
                db.clone(),
                Arc::clone(&registry),
                Arc::clone(&config),
                metrics.clone(),
                Arc::clone(&wakeups),
                shutdown.clone(),
            );
            let thread = std::thread::Builder::new()
                .name(format!("pinion-jobs-{index}"))
                .spawn(move || {
                    let runtime = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
                        .enable_timer()
                        .build();
                    let mut rt = match runtime {
                        Ok(rt) => rt,
                        Err(e) => {
                            tracing::error!(error = %e, "jobs: a worker thread cannot start its runtime");
                            return;
                        }
                    };
                    rt.block_on(async move {
                        let manager = match ConnectionManager::start(&db) {
                            Ok(m) => m,
                            Err(e) => {
                                tracing::error!(error = %e, "jobs: a worker thread cannot start");
                                return;
                            }
                        };
                        let local = Local::new(
                            manager, registry, config, metrics, shutdown, &wakeups, index,
                        );
                        worker::run(local, index == 0).await;
                    });
                })
                .map_err(|e| Error::config(format!("cannot start a worker thread: {e}")))?;
            threads.push(thread);
        }
        Ok(Runner { threads, shutdown })
    }

    /// Starts the drain (as SIGTERM does).
    pub fn stop(&self) {
        self.shutdown.shutdown();
    }

    /// Waits until every worker thread has drained and ended.
    pub fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }
}
