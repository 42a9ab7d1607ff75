//! The workers' metrics, registered in the process's Prometheus registry (the one `/metrics`
//! renders): what ran, what failed, what was retried, how long jobs took, and how deep and
//! how old each queue is (sampled from the table, since any instance may have enqueued).

use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts};

/// Job durations, in seconds: from a millisecond (a no-op) to ten minutes (a report).
const DURATION_BUCKETS: &[f64] = &[0.001, 0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0];

/// The metrics of every worker thread of the process.
#[derive(Clone, Debug)]
pub struct Metrics {
    pub(crate) completed: IntCounterVec,
    pub(crate) failed: IntCounterVec,
    pub(crate) retried: IntCounterVec,
    pub(crate) lease_expiries: IntCounter,
    pub(crate) released: IntCounter,
    pub(crate) duration: HistogramVec,
    pub(crate) jobs: IntGaugeVec,
    pub(crate) oldest: IntGaugeVec,
    pub(crate) cron_ticks: IntCounterVec,
}

impl Metrics {
    /// The metrics, registered in `registry`.
    ///
    /// # Errors
    /// When `registry` already holds metrics of these names.
    pub fn new(registry: &prometheus::Registry) -> Result<Metrics, prometheus::Error> {
        let queue = &["queue"];
        let m = Metrics {
            completed: IntCounterVec::new(
                Opts::new("pinion_jobs_completed_total", "Jobs that ran to success."),
                queue,
            )?,
            failed: IntCounterVec::new(
                Opts::new(
                    "pinion_jobs_failed_total",
                    "Jobs kept as failed: their attempts spent, or a permanent error.",
                ),
                queue,
            )?,
            retried: IntCounterVec::new(
                Opts::new(
                    "pinion_jobs_retries_total",
                    "Failed attempts that will be retried after a backoff.",
                ),
                queue,
            )?,
            lease_expiries: IntCounter::new(
                "pinion_jobs_lease_expiries_total",
                "Running jobs whose lease ran out (their worker died or hung): run again.",
            )?,
            released: IntCounter::new(
                "pinion_jobs_released_total",
                "Running jobs handed back unfinished at shutdown, to run again elsewhere.",
            )?,
            duration: HistogramVec::new(
                HistogramOpts::new("pinion_job_duration_seconds", "How long jobs ran.")
                    .buckets(DURATION_BUCKETS.to_vec()),
                &["queue", "outcome"],
            )?,
            jobs: IntGaugeVec::new(
                Opts::new(
                    "pinion_jobs",
                    "Jobs in the table by queue and state (available counts only due ones).",
                ),
                &["queue", "state"],
            )?,
            oldest: IntGaugeVec::new(
                Opts::new(
                    "pinion_jobs_oldest_age_seconds",
                    "How long the oldest due job of each queue has waited.",
                ),
                queue,
            )?,
            cron_ticks: IntCounterVec::new(
                Opts::new(
                    "pinion_cron_ticks_total",
                    "Periodic jobs enqueued by this process as leader, by schedule.",
                ),
                &["schedule"],
            )?,
        };
        registry.register(Box::new(m.completed.clone()))?;
        registry.register(Box::new(m.failed.clone()))?;
        registry.register(Box::new(m.retried.clone()))?;
        registry.register(Box::new(m.lease_expiries.clone()))?;
        registry.register(Box::new(m.released.clone()))?;
        registry.register(Box::new(m.duration.clone()))?;
        registry.register(Box::new(m.jobs.clone()))?;
        registry.register(Box::new(m.oldest.clone()))?;
        registry.register(Box::new(m.cron_ticks.clone()))?;
        Ok(m)
    }

    /// Metrics registered nowhere, for a worker whose figures nobody reads.
    pub fn unregistered() -> Metrics {
        // A fresh registry cannot hold these names already.
        Metrics::new(&prometheus::Registry::new()).expect("a fresh registry")
    }
}
