//! Telemetry: Prometheus metrics for `/metrics`, and sampled request traces.
//!
//! Two halves, split by who touches them:
//! - [`ThreadTelemetry`], one per worker thread (`Rc`, `!Send`), is the hot path. Recording a
//!   request, a connection or a rate-limit denial updates plain `Cell`/`RefCell` tables owned by
//!   that thread: no atomic, no lock, no cache line shared with another core.
//! - [`Telemetry`], one per process (`Arc`), owns the [`prometheus::Registry`] and the folded
//!   totals. Every drain interval ([`TelemetryConfig::drain_interval`]) each worker's
//!   [`ThreadTelemetry::run_folder`] task moves its thread's counts into those totals under one
//!   short lock: one lock per thread per second instead of one atomic per request.
//!
//! [`render`] gathers the registry into the text exposition format for a `/metrics` handler. A
//! scrape therefore sees each thread's counts as of its last fold, at most one drain interval old.
//!
//! # Metrics
//! | name | type | labels |
//! | --- | --- | --- |
//! | `pinion_http_requests_total` | counter | `method`, `route`, `status` |
//! | `pinion_http_request_duration_seconds` | histogram ([`DURATION_BUCKETS`]) | `method`, `route`, `status_class` |
//! | `pinion_http_connections_open` | gauge | |
//! | `pinion_http_streams_open` | gauge | |
//! | `pinion_rate_limit_hits_total` | counter | `policy` |
//! | `pinion_pool_available`, `pinion_pool_waiters` | gauge | `database` |
//! | `pinion_db_query_duration_seconds` | histogram ([`DURATION_BUCKETS`]) | `database` |
//! | `pinion_cache_hits_total`, `pinion_cache_misses_total` | counter | `cache` |
//! | `process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_virtual_memory_bytes`, `process_open_fds`, `process_max_fds`, `process_start_time_seconds` | | |
//!
//! Cardinality is bounded by construction: `route` is the matched route *template* (`/users/{id}`,
//! never the path), every unmatched request shares `route="unmatched"`, methods outside the
//! standard nine are `OTHER`, and `status` has at most a few dozen values.
//!
//! # Metrics from other crates
//! The pool and cache metrics belong to `pinion-orm` and `pinion-cache`, which this crate does not
//! depend on. The application bridges them with *sources*: callbacks that report current values
//! into a [`SourceSink`] when asked. A source registered on a [`ThreadTelemetry`]
//! ([`ThreadTelemetry::add_local_source`]) describes that thread's own objects (its connection
//! pools) and is read at each fold; the values of all threads are **summed** at scrape, so 24
//! threads with 10 idle connections each show 240. A source registered on [`Telemetry`]
//! ([`Telemetry::add_source`]) describes process-wide objects (a cache shared by all threads) and
//! is read at scrape. Query durations are recorded on the hot path with
//! [`ThreadTelemetry::observe_query`].
//!
//! # Process metrics
//! The standard `process_*` metrics are read from `/proc/self` at scrape time (the `prometheus`
//! crate's own `process` feature would pull in `procfs`); on systems without `/proc` they are
//! absent.

pub(crate) mod batch;
mod process;
mod source;
mod store;
mod thread;
pub mod trace;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::HeaderValue;
use prometheus::{Encoder, Registry, TextEncoder};

pub use source::SourceSink;
pub use thread::{Phases, RequestSlot, ThreadTelemetry};

use source::ProcessSource;
use store::{Store, StoreCollector};

/// Default [`TelemetryConfig::drain_interval`]: one second, so a scrape is at most a second
/// behind while each worker takes the shared lock only once a second.
pub const DEFAULT_DRAIN_INTERVAL: Duration = Duration::from_secs(1);

/// Default [`TelemetryConfig::sample_ratio`]: one request in a hundred is traced, enough to see
/// where time goes under load without a log line per request.
pub const DEFAULT_SAMPLE_RATIO: f64 = 0.01;

/// Default [`TelemetryConfig::enabled`]: on; metrics cost a few table updates per request.
pub const DEFAULT_ENABLED: bool = true;

/// Upper bounds, in seconds, of the request and query duration histograms.
///
/// From 100 µs (a cached plaintext answer) to 10 s (a request about to time out), roughly
/// 1-2.5-5 per decade, so that both a fast path and a slow query land in a meaningful bucket.
pub const DURATION_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// The content type of [`render`]'s body: version 0.0.4 of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How telemetry behaves; the binary fills it from its settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    /// Whether requests are recorded at all. When off, the [`ThreadTelemetry`] recording methods
    /// return at once and [`render`] shows only process metrics. Default is
    /// [`DEFAULT_ENABLED`].
    pub enabled: bool,
    /// How often each worker folds its thread-local counts into the shared registry: the
    /// staleness a scrape may see, traded against how often workers take the shared lock.
    /// Default is [`DEFAULT_DRAIN_INTERVAL`].
    pub drain_interval: Duration,
    /// Share of requests, from 0 to 1, for which [`ThreadTelemetry::should_sample`] is true and
    /// a phase trace is logged. 0 (or anything not above 0) never samples, 1 always does; nothing
    /// is sampled while [`enabled`](Self::enabled) is off.
    /// Default is [`DEFAULT_SAMPLE_RATIO`].
    pub sample_ratio: f64,
}

impl Default for TelemetryConfig {
    fn default() -> TelemetryConfig {
        TelemetryConfig {
            enabled: DEFAULT_ENABLED,
            drain_interval: DEFAULT_DRAIN_INTERVAL,
            sample_ratio: DEFAULT_SAMPLE_RATIO,
        }
    }
}

/// The process-wide half of telemetry: the registry and the totals folded from every thread.
///
/// Create one in the binary, wrap it in an `Arc`, and give each worker a [`ThreadTelemetry`]
/// made from it. Serve [`render`] on `/metrics`.
pub struct Telemetry {
    config: TelemetryConfig,
    registry: Registry,
    shared: Arc<Shared>,
    trace_writer: Option<trace::TraceWriter>,
}

/// What the registry's collector and the threads share.
pub(crate) struct Shared {
    /// Folded totals and each thread's latest source values. A `Mutex` is the right lock: each
    /// worker takes it once per drain interval and a scrape takes it once, never on the request
    /// path and never across an `.await`.
    store: Mutex<Store>,
    /// Process-wide sources, read at scrape. Cloned out before they are called, so a source may
    /// itself call [`Telemetry::add_source`] without deadlocking.
    sources: Mutex<Vec<ProcessSource>>,
}

impl Shared {
    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        // A panic while folding leaves at worst a half-added batch of counts: keep serving them.
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Telemetry {
    /// Creates the registry with every pinion and process metric registered.
    ///
    /// # Panics
    /// Only if the built-in metric names were invalid, which the unit tests rule out.
    pub fn new(config: TelemetryConfig) -> Telemetry {
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::default()),
            sources: Mutex::new(Vec::new()),
        });
        let registry = Registry::new();
        registry
            .register(Box::new(StoreCollector::new(Arc::clone(&shared))))
            .expect("pinion metric descriptors are valid");
        registry
            .register(Box::new(process::ProcessCollector::new()))
            .expect("process metric descriptors are valid");
        Telemetry {
            config,
            registry,
            shared,
            trace_writer: None,
        }
    }

    /// Sampled traces go to `writer` instead of a `tracing` event (see
    /// [`TraceWriter`](trace::TraceWriter)).
    pub fn with_trace_writer(mut self, writer: trace::TraceWriter) -> Telemetry {
        self.trace_writer = Some(writer);
        self
    }

    /// Where sampled traces go, if not to `tracing`.
    pub(crate) fn trace_writer(&self) -> Option<&trace::TraceWriter> {
        self.trace_writer.as_ref()
    }

    /// The configuration this telemetry was created with.
    pub fn config(&self) -> &TelemetryConfig {
        &self.config
    }

    /// The registry [`render`] gathers: an application may register collectors of its own here.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Adds a process-wide source, called at every scrape to report the current values of
    /// objects shared by all threads (a cache behind an `Arc`, say).
    ///
    /// Its values are added to the per-thread sources' values for the same series. Report an
    /// object either here or per thread ([`ThreadTelemetry::add_local_source`]), never both, or
    /// it is counted twice. A source must not call [`render`] (it would recurse).
    pub fn add_source<F>(&self, source: F)
    where
        F: Fn(&mut SourceSink) + Send + Sync + 'static,
    {
        self.shared
            .sources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::new(source));
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Renders every registered metric in the Prometheus text format, for a `/metrics` response.
///
/// Per-thread counts appear as of each thread's last fold (see
/// [`TelemetryConfig::drain_interval`]); process-wide sources and process metrics are read now.
///
/// # Return
/// The `Content-Type` to answer with ([`CONTENT_TYPE`]) and the body. Should encoding ever fail
/// (it cannot for the built-in metrics), the error is logged and the families encoded so far
/// are returned.
pub fn render(telemetry: &Telemetry) -> (HeaderValue, Vec<u8>) {
    let families = telemetry.registry.gather();
    let mut body = Vec::with_capacity(16 * 1024);
    if let Err(e) = TextEncoder::new().encode(&families, &mut body) {
        tracing::error!(error = %e, "cannot encode metrics");
    }
    (HeaderValue::from_static(CONTENT_TYPE), body)
}

#[cfg(test)]
mod tests;
