//! How workers run: their queues and concurrency, leases, polling, retries and the drain.

use std::time::Duration;

use crate::error::Error;
use crate::job::DEFAULT_QUEUE;

/// How long a claimed job is leased to its worker before another may take it. Default
/// 30 s; the worker renews it every third of that while the job runs.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// How often an idle worker looks for due jobs without being woken. Default 1 s.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Jobs claimed in one statement at most. Default 100.
pub const DEFAULT_BATCH: usize = 100;
/// Jobs one worker thread runs at once per queue, unless the queue says. Default 10.
pub const DEFAULT_CONCURRENCY: usize = 10;

/// One queue a worker runs, and how many of its jobs it runs at once per thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueConfig {
    /// The queue's name.
    pub name: String,
    /// Jobs of this queue running at once on each worker thread.
    pub concurrency: usize,
}

impl QueueConfig {
    /// Parses the `jobs_queues` setting: `name` or `name:concurrency`, separated by commas
    /// (`default:20,mail:2`).
    ///
    /// # Errors
    /// A configuration error saying which entry is wrong.
    pub fn parse_list(text: &str) -> Result<Vec<QueueConfig>, Error> {
        let mut queues: Vec<QueueConfig> = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, concurrency) = match entry.split_once(':') {
                Some((name, n)) => {
                    let n: usize = n.trim().parse().map_err(|_| {
                        Error::config(format!(
                            "queue `{entry}`: the concurrency must be a whole number"
                        ))
                    })?;
                    (name.trim(), n)
                }
                None => (entry, DEFAULT_CONCURRENCY),
            };
            if name.is_empty() || concurrency == 0 {
                return Err(Error::config(format!(
                    "queue `{entry}`: a name and a concurrency of at least 1 are needed"
                )));
            }
            if queues.iter().any(|q| q.name == name) {
                return Err(Error::config(format!("queue `{name}` is listed twice")));
            }
            queues.push(QueueConfig {
                name: name.to_owned(),
                concurrency,
            });
        }
        if queues.is_empty() {
            return Err(Error::config("no queue to run"));
        }
        Ok(queues)
    }
}

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
    fn queue_lists_parse_and_name_what_is_wrong() {
        let q = QueueConfig::parse_list("default:20, mail:2,reports").expect("parses");
        assert_eq!(
            q,
            vec![
                QueueConfig {
                    name: "default".into(),
                    concurrency: 20
                },
                QueueConfig {
                    name: "mail".into(),
                    concurrency: 2
                },
                QueueConfig {
                    name: "reports".into(),
                    concurrency: DEFAULT_CONCURRENCY
                },
            ]
        );
        for (bad, says) in [
            ("mail:x", "`mail:x`"),
            ("mail:0", "`mail:0`"),
            (":3", "`:3`"),
            ("a,a", "`a` is listed twice"),
            (" , ", "no queue"),
        ] {
            let e = QueueConfig::parse_list(bad).expect_err(bad).to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

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
