//! How workers run: their queues and concurrency, leases, polling, retries and the drain.

use std::time::Duration;

use crate::job::DEFAULT_QUEUE;

/// How long a claimed job is leased to its worker before another may take it. Default
/// 30 s; the worker renews it every third of that while the job runs.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// How often an idle worker looks for due jobs without being woken. Default 1 s.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Jobs claimed in one statement at most. Default 100.
pub const DEFAULT_BATCH: usize = 100;
/// Jobs one worker thread runs at once per queue, unless the queue says. Default 10.
pub use pinion_config::DEFAULT_QUEUE_CONCURRENCY as DEFAULT_CONCURRENCY;

/// One queue a worker runs and its concurrency per thread (the `jobs_queues` setting's
/// entries); [`QueueConfig::parse_list`] reads `default:20,mail:2`.
pub use pinion_config::JobQueue as QueueConfig;

/// When a failed job runs again: after `base · 2^(attempt − 1)`, at most `cap`, with equal
/// jitter (a random point in the second half of that delay), so that jobs failing together
/// do not come back together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The delay after the first failure (before jitter). Default 1 s.
    pub base: Duration,
    /// The longest delay. Default 1 hour.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(3600),
        }
    }
}

impl RetryPolicy {
    /// The delay before trying again after failed attempt `attempt` (1 for the first), with
    /// `unit` in `[0, 1)` the jitter's random draw.
    pub fn delay(&self, attempt: i32, unit: f64) -> Duration {
        let exponent = attempt.saturating_sub(1).clamp(0, 30) as u32;
        let full = self
            .base
            .saturating_mul(1u32 << exponent.min(31))
            .min(self.cap);
        full.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
    }
}

/// Everything a worker process (or a server running workers) needs besides the database.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// The queues to run. Default: [`DEFAULT_QUEUE`] with [`DEFAULT_CONCURRENCY`].
    pub queues: Vec<QueueConfig>,
    /// The most jobs one claim takes. Default [`DEFAULT_BATCH`].
    pub batch: usize,
    /// The lease. Default [`DEFAULT_LEASE`].
    pub lease: Duration,
    /// The polling fallback. Default [`DEFAULT_POLL_INTERVAL`].
    pub poll_interval: Duration,
    /// On shutdown, how long running jobs may take to finish before they are released to
    /// run again elsewhere. Default 10 s (the server's `drain_timeout`).
    pub drain_timeout: Duration,
    /// Retries.
    pub retry: RetryPolicy,
    /// Worker threads, each with its own runtime and connections. Default 1.
    pub threads: usize,
    /// How long failed and cancelled jobs are kept (for `pinion jobs list` and retries)
    /// before they are pruned. Default 7 days.
    pub retention: Duration,
    /// What identifies this process in `worker` columns and logs. Default
    /// `hostname:pid`.
    pub name: String,
}

impl Default for WorkerConfig {
    fn default() -> WorkerConfig {
        WorkerConfig {
            queues: vec![QueueConfig {
                name: DEFAULT_QUEUE.to_owned(),
                concurrency: DEFAULT_CONCURRENCY,
            }],
            batch: DEFAULT_BATCH,
            lease: DEFAULT_LEASE,
            poll_interval: DEFAULT_POLL_INTERVAL,
            drain_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            threads: 1,
            retention: Duration::from_secs(7 * 24 * 3600),
            name: default_name(),
        }
    }
}

/// `hostname:pid`.
fn default_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned());
    format!("{host}:{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_in_the_second_half() {
        let p = RetryPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(10),
        };
        assert_eq!(p.delay(1, 1.0), Duration::from_secs(1));
        assert_eq!(p.delay(1, 0.0), Duration::from_millis(500));
        assert_eq!(p.delay(3, 1.0), Duration::from_secs(4));
        assert_eq!(p.delay(4, 1.0), Duration::from_secs(8));
        assert_eq!(p.delay(5, 1.0), Duration::from_secs(10));
        assert_eq!(p.delay(500, 0.0), Duration::from_secs(5));
    }
}
