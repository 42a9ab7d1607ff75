//! The shared side: folded totals, and the collector that turns them into metric families.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError};

use http::Method;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};

use super::source::{add_values, SourceMetric, SourceSink, SourceValues};
use super::{Shared, DURATION_BUCKETS};

/// Buckets of a [`Hist`]: one per bound in [`DURATION_BUCKETS`], plus `+Inf`.
const BUCKETS: usize = DURATION_BUCKETS.len() + 1;

/// [`DURATION_BUCKETS`] in nanoseconds (a test checks that they agree).
const DURATION_BOUNDS_NS: [u64; DURATION_BUCKETS.len()] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// A duration histogram in plain integers: per-bucket (not cumulative) counts, so that merging
/// two is adding arrays.
#[derive(Debug, Clone, Default)]
pub(super) struct Hist {
    buckets: [u64; BUCKETS],
    pub(super) count: u64,
    sum: f64,
}

impl Hist {
    /// Counts one observation.
    #[inline]
    pub(super) fn observe(&mut self, elapsed: std::time::Duration) {
        self.observe_n(elapsed, 1);
    }

    /// Counts `n` observations of the same duration: the requests of one pipelined batch,
    /// timed together when their write is issued.
    #[inline]
    pub(super) fn observe_n(&mut self, elapsed: std::time::Duration, n: u32) {
        // `le` buckets: the first bound at or above the value. In integer nanoseconds, and
        // scanned from the smallest bound: most requests fall in the first buckets, so this is
        // one or two comparisons where a binary search over floats took five.
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let i = DURATION_BOUNDS_NS
            .iter()
            .position(|&bound| nanos <= bound)
            .unwrap_or(DURATION_BOUNDS_NS.len());
        self.buckets[i] += u64::from(n);
        self.count += u64::from(n);
        self.sum += elapsed.as_secs_f64() * f64::from(n);
    }

    pub(super) fn merge(&mut self, other: &Hist) {
        for (a, b) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *a += b;
        }
        self.count += other.count;
        self.sum += other.sum;
    }

    pub(super) fn clear(&mut self) {
        *self = Hist::default();
    }

    /// The lower bound of the bucket that holds the median: a typical duration that one
    /// slow request (or a long stream) does not move. `None` when empty.
    pub(super) fn median_floor(&self) -> Option<std::time::Duration> {
        let half = self.count.div_ceil(2);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if self.count > 0 && seen >= half {
                let floor = if i == 0 { 0 } else { DURATION_BOUNDS_NS[i - 1] };
                return Some(std::time::Duration::from_nanos(floor));
            }
        }
        None
    }

    fn to_proto(&self) -> proto::Histogram {
        let mut cumulative = 0;
        let buckets = DURATION_BUCKETS
            .iter()
            .zip(self.buckets.iter())
            .map(|(&bound, &n)| {
                cumulative += n;
                let mut b = proto::Bucket::default();
                b.set_upper_bound(bound);
                b.set_cumulative_count(cumulative);
                b
            })
            .collect();
        let mut h = proto::Histogram::default();
        h.set_bucket(buckets); // the encoder adds `+Inf` = count
        h.set_sample_count(self.count);
        h.set_sample_sum(self.sum);
        h
    }
}

/// `method` label values, by [`method_index`].
pub(super) const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "OTHER",
];

/// The index in [`METHODS`] of a request method: extension methods all share `OTHER`, so a
/// client inventing methods cannot add series.
#[inline]
pub(super) fn method_index(m: &Method) -> u8 {
    match *m {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::DELETE => 4,
        Method::CONNECT => 5,
        Method::OPTIONS => 6,
        Method::TRACE => 7,
        Method::PATCH => 8,
        _ => 9,
    }
}

/// `status_class` label values, by [`status_class`].
const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

fn status_class(status: u16) -> u8 {
    match status {
        100..=599 => (status / 100 - 1) as u8,
        _ => 5,
    }
}

/// The `route` label of requests that matched no route.
pub(super) const UNMATCHED: &str = "unmatched";

#[derive(Debug, PartialEq, Eq, Hash)]
struct RequestKey {
    method: u8,
    route: Arc<str>,
    status: u16,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct DurationKey {
    method: u8,
    route: Arc<str>,
    class: u8,
}

/// Totals folded from every thread, and the latest values of each thread's sources.
#[derive(Debug, Default)]
pub(super) struct Store {
    requests: HashMap<RequestKey, u64>,
    durations: HashMap<DurationKey, Hist>,
    connections_open: i64,
    streams_open: i64,
    rate_limit_hits: HashMap<Box<str>, u64>,
    queries: HashMap<Box<str>, Hist>,
    /// Per thread (by reporter id): the values its sources reported at its last fold. Kept
    /// apart and summed at scrape, so that one thread's fold never overwrites another's level.
    reporters: HashMap<u64, SourceValues>,
    /// Counter values of threads that have gone away: a counter must not fall when its
    /// thread exits.
    retired: SourceValues,
    next_reporter: u64,
}

impl Store {
    /// A fresh id for a thread's source values.
    pub(super) fn new_reporter(&mut self) -> u64 {
        self.next_reporter += 1;
        self.next_reporter
    }

    /// Adds a batch of requests that share method, route and status.
    pub(super) fn add_requests(&mut self, method: u8, route: &Arc<str>, status: u16, hist: &Hist) {
        let key = RequestKey {
            method,
            route: Arc::clone(route),
            status,
        };
        *self.requests.entry(key).or_insert(0) += hist.count;
        let key = DurationKey {
            method,
            route: Arc::clone(route),
            class: status_class(status),
        };
        self.durations.entry(key).or_default().merge(hist);
    }

    pub(super) fn add_connections(&mut self, delta: i64) {
        self.connections_open += delta;
    }

    pub(super) fn add_streams(&mut self, delta: i64) {
        self.streams_open += delta;
    }

    pub(super) fn add_rate_limit_hits(&mut self, policy: &str, n: u64) {
        match self.rate_limit_hits.get_mut(policy) {
            Some(total) => *total += n,
            None => {
                self.rate_limit_hits.insert(Box::from(policy), n);
            }
        }
    }

    pub(super) fn add_queries(&mut self, database: &str, hist: &Hist) {
        match self.queries.get_mut(database) {
            Some(total) => total.merge(hist),
            None => {
                self.queries.insert(Box::from(database), hist.clone());
            }
        }
    }

    /// Replaces a thread's source values with those it just read.
    pub(super) fn set_reporter(&mut self, id: u64, values: SourceValues) {
        self.reporters.insert(id, values);
    }

    /// Forgets a thread's levels but keeps its counters.
    pub(super) fn retire_reporter(&mut self, id: u64) {
        if let Some(values) = self.reporters.remove(&id) {
            let counters: SourceValues = values
                .into_iter()
                .filter(|((metric, _), _)| metric.is_counter())
                .collect();
            add_values(&mut self.retired, &counters);
        }
    }
}

/// Name, help and label names of one metric family.
pub(super) struct Def {
    pub(super) name: &'static str,
    pub(super) help: &'static str,
    pub(super) labels: &'static [&'static str],
}

const REQUESTS: Def = Def {
    name: "pinion_http_requests_total",
    help: "HTTP requests answered, by method, route template and status code.",
    labels: &["method", "route", "status"],
};
const DURATION: Def = Def {
    name: "pinion_http_request_duration_seconds",
    help: "Time taken to answer HTTP requests, by method, route template and status class.",
    labels: &["method", "route", "status_class"],
};
const CONNECTIONS: Def = Def {
    name: "pinion_http_connections_open",
    help: "HTTP connections currently open.",
    labels: &[],
};
const STREAMS: Def = Def {
    name: "pinion_http_streams_open",
    help: "Streamed HTTP responses (downloads, Server-Sent Events) currently being sent.",
    labels: &[],
};
const RATE_LIMIT: Def = Def {
    name: "pinion_rate_limit_hits_total",
    help: "Requests denied by a rate-limit policy.",
    labels: &["policy"],
};
const QUERIES: Def = Def {
    name: "pinion_db_query_duration_seconds",
    help: "Database query round trips, by database.",
    labels: &["database"],
};

/// The definition of a source-fed metric.
fn source_def(metric: SourceMetric) -> Def {
    match metric {
        SourceMetric::PoolAvailable => Def {
            name: "pinion_pool_available",
            help: "Pooled database connections available without waiting, summed over threads.",
            labels: &["database"],
        },
        SourceMetric::PoolWaiters => Def {
            name: "pinion_pool_waiters",
            help: "Tasks waiting for a pooled database connection, summed over threads.",
            labels: &["database"],
        },
        SourceMetric::CacheHits => Def {
            name: "pinion_cache_hits_total",
            help: "Cache lookups that found a live entry.",
            labels: &["cache"],
        },
        SourceMetric::CacheMisses => Def {
            name: "pinion_cache_misses_total",
            help: "Cache lookups that found no live entry.",
            labels: &["cache"],
        },
        SourceMetric::QueryCacheHits => Def {
            name: "pinion_query_cache_hits_total",
            help: "ORM reads answered from the query cache.",
            labels: &[],
        },
        SourceMetric::QueryCacheMisses => Def {
            name: "pinion_query_cache_misses_total",
            help: "ORM reads that ran and filled the query cache.",
            labels: &[],
        },
        SourceMetric::QueryCacheBypasses => Def {
            name: "pinion_query_cache_bypasses_total",
            help: "Cacheable ORM reads that skipped the query cache (in a transaction, or while its listener was down).",
            labels: &[],
        },
        SourceMetric::QueryCacheInvalidations => Def {
            name: "pinion_query_cache_invalidations_total",
            help: "Table versions bumped in the query cache, by a write here or a notification from another instance.",
            labels: &[],
        },
        SourceMetric::QueryCacheInSync => Def {
            name: "pinion_query_cache_in_sync",
            help: "1 while other instances' writes reach the query cache (its listening connection is up), else 0.",
            labels: &[],
        },
    }
}

fn source_type(metric: SourceMetric) -> MetricType {
    if metric.is_counter() {
        MetricType::COUNTER
    } else {
        MetricType::GAUGE
    }
}

/// The registry's view of a [`Store`] and the process-wide sources.
pub(super) struct StoreCollector {
    shared: Arc<Shared>,
    descs: Vec<Desc>,
}

impl StoreCollector {
    pub(super) fn new(shared: Arc<Shared>) -> StoreCollector {
        let defs = [REQUESTS, DURATION, CONNECTIONS, RATE_LIMIT, QUERIES]
            .into_iter()
            .chain(SourceMetric::ALL.into_iter().map(source_def));
        let descs = defs.map(|d| desc(&d)).collect();
        StoreCollector { shared, descs }
    }

    /// Reads the process-wide sources, outside every lock.
    fn process_values(&self) -> SourceValues {
        let sources = self
            .shared
            .sources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut sink = SourceSink::default();
        for source in &sources {
            source(&mut sink);
        }
        sink.into_values()
    }
}

impl Collector for StoreCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut sources = self.process_values();
        let store = self.shared.store();

        let requests = store
            .requests
            .iter()
            .map(|(k, &n)| {
                let mut status = itoa::Buffer::new();
                let labels = [
                    METHODS[k.method as usize],
                    &k.route,
                    status.format(k.status),
                ];
                counter(&REQUESTS, &labels, n as f64)
            })
            .collect();
        let durations = store
            .durations
            .iter()
            .map(|(k, h)| {
                let labels = [
                    METHODS[k.method as usize],
                    &k.route,
                    STATUS_CLASSES[k.class as usize],
                ];
                histogram(&DURATION, &labels, h)
            })
            .collect();
        let connections = vec![gauge(&CONNECTIONS, &[], store.connections_open as f64)];
        let streams = vec![gauge(&STREAMS, &[], store.streams_open as f64)];
        let rate_limit = store
            .rate_limit_hits
            .iter()
            .map(|(policy, &n)| counter(&RATE_LIMIT, &[policy], n as f64))
            .collect();
        let queries = store
            .queries
            .iter()
            .map(|(db, h)| histogram(&QUERIES, &[db], h))
            .collect();

        add_values(&mut sources, &store.retired);
        for values in store.reporters.values() {
            add_values(&mut sources, values);
        }
        drop(store);

        let mut out = vec![
            family(&REQUESTS, MetricType::COUNTER, requests),
            family(&DURATION, MetricType::HISTOGRAM, durations),
            family(&CONNECTIONS, MetricType::GAUGE, connections),
            family(&STREAMS, MetricType::GAUGE, streams),
            family(&RATE_LIMIT, MetricType::COUNTER, rate_limit),
            family(&QUERIES, MetricType::HISTOGRAM, queries),
        ];
        for metric in SourceMetric::ALL {
            let def = source_def(metric);
            let ty = source_type(metric);
            let metrics = sources
                .iter()
                .filter(|((m, _), _)| *m == metric)
                .map(|((_, label), &v)| {
                    let one = [&**label];
                    let labels: &[&str] = if def.labels.is_empty() { &[] } else { &one };
                    if metric.is_counter() {
                        counter(&def, labels, v as f64)
                    } else {
                        gauge(&def, labels, v as f64)
                    }
                })
                .collect();
            out.push(family(&def, ty, metrics));
        }
        out
    }
}

/// The descriptor of `def`.
///
/// # Panics
/// If `def`'s names are not valid Prometheus names: they are constants, checked by the tests.
pub(super) fn desc(def: &Def) -> Desc {
    Desc::new(
        def.name.to_owned(),
        def.help.to_owned(),
        def.labels.iter().map(|l| (*l).to_owned()).collect(),
        HashMap::new(),
    )
    .unwrap_or_else(|e| panic!("invalid metric descriptor {}: {e}", def.name))
}

fn label_pairs(def: &Def, values: &[&str]) -> Vec<proto::LabelPair> {
    debug_assert_eq!(def.labels.len(), values.len(), "{}", def.name);
    def.labels
        .iter()
        .zip(values)
        .map(|(name, value)| {
            let mut p = proto::LabelPair::default();
            p.set_name((*name).to_owned());
            p.set_value((*value).to_owned());
            p
        })
        .collect()
}

pub(super) fn counter(def: &Def, labels: &[&str], v: f64) -> proto::Metric {
    let mut m = proto::Metric::from_label(label_pairs(def, labels));
    let mut c = proto::Counter::default();
    c.set_value(v);
    m.set_counter(c);
    m
}

pub(super) fn gauge(def: &Def, labels: &[&str], v: f64) -> proto::Metric {
    let mut m = proto::Metric::from_label(label_pairs(def, labels));
    let mut g = proto::Gauge::default();
    g.set_value(v);
    m.set_gauge(g);
    m
}

fn histogram(def: &Def, labels: &[&str], h: &Hist) -> proto::Metric {
    let mut m = proto::Metric::from_label(label_pairs(def, labels));
    m.set_histogram(h.to_proto());
    m
}

pub(super) fn family(def: &Def, ty: MetricType, metrics: Vec<proto::Metric>) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(def.name.to_owned());
    f.set_help(def.help.to_owned());
    f.set_field_type(ty);
    f.set_metric(metrics);
    f
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_nanosecond_bounds_are_the_published_buckets() {
        for (ns, secs) in DURATION_BOUNDS_NS.iter().zip(DURATION_BUCKETS.iter()) {
            assert_eq!(*ns, Duration::from_secs_f64(*secs).as_nanos() as u64);
        }
    }

    #[test]
    fn an_observation_falls_in_the_first_bucket_at_or_above_it() {
        let mut h = Hist::default();
        h.observe(Duration::from_micros(100)); // exactly the first bound: `le`
        h.observe(Duration::from_nanos(100_001)); // just above it
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(11)); // past the last bound: +Inf
        let mut expected = [0u64; BUCKETS];
        expected[0] = 1;
        expected[1] = 1;
        expected[5] = 1;
        expected[BUCKETS - 1] = 1;
        assert_eq!(h.buckets, expected);
        assert_eq!(h.count, 4);
        assert!((h.sum - (0.0001 + 0.000100001 + 0.003 + 11.0)).abs() < 1e-9);
    }

    #[test]
    fn a_batch_counts_as_that_many_observations_of_its_duration() {
        let mut h = Hist::default();
        h.observe_n(Duration::from_millis(3), 16);
        h.observe(Duration::from_micros(50));
        let mut expected = [0u64; BUCKETS];
        expected[0] = 1;
        expected[5] = 16;
        assert_eq!(h.buckets, expected);
        assert_eq!(h.count, 17);
        assert!((h.sum - (16.0 * 0.003 + 0.00005)).abs() < 1e-9);
    }
}
