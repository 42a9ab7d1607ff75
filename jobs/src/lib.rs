//! # pinion-jobs
//!
//! Background jobs on the PostgreSQL the application already has: no broker to run.
//!
//! A [`Job`] is a serde payload with a kind and an async `run`. [`Enqueue`] puts one in
//! `pinion_jobs` (from a handler, or inside the caller's transaction so that the job exists
//! only if it commits), with a queue, a priority, a `run_at`, a unique key, `max_attempts`.
//! Worker threads ([`Runner`]) claim due jobs in batches (`FOR UPDATE SKIP LOCKED`) under a
//! lease they renew while the job runs; a worker that dies leaves a lease that runs out, and
//! the job runs again elsewhere (at least once). Failures are retried with exponential
//! backoff and jitter ([`RetryPolicy`]), then kept as failed with their last error.
//! Enqueues wake idle workers through the process's listening connection
//! ([`Wakeups::subscriber`]); polling covers the rest. On shutdown workers stop claiming,
//! let running jobs finish within `drain_timeout`, and release the others. Periodic jobs
//! ([`Registry::every`]) are enqueued once per tick by one leader across every instance.
//!
//! # Layout
//! - [`job`]: the [`Job`] trait and its [`JobContext`];
//! - [`registry`]: kinds to code, shared values, schedules;
//! - [`enqueue`]: [`Enqueue`], [`enqueue()`], unique keys;
//! - `worker`: one worker thread — producers, executors, the completer, the heartbeat,
//!   maintenance (reaper, sampler, pruning), the drain; `worker::store` holds its SQL;
//! - [`runner`]: worker threads and their runtimes;
//! - `cron`: the leader and the ticks;
//! - [`wake`]: `NOTIFY` wake-ups;
//! - [`admin`]: list, retry, cancel (`pinion jobs`);
//! - [`metrics`], [`config`], [`error`].

pub mod admin;
pub mod config;
mod cron;
pub mod enqueue;
pub mod error;
pub mod job;
pub mod metrics;
pub mod registry;
pub mod runner;
pub mod wake;
mod worker;

pub use config::{QueueConfig, RetryPolicy, WorkerConfig};
pub use enqueue::{enqueue, Enqueue, JobId, OnConflict, JOBS_CHANNEL, JOBS_TABLE};
pub use error::{Error, JobError};
pub use job::{Job, JobContext, DEFAULT_MAX_ATTEMPTS, DEFAULT_QUEUE};
pub use metrics::Metrics;
pub use registry::Registry;
pub use runner::{Runner, Workers};
pub use wake::Wakeups;
