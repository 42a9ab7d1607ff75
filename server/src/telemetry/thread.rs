//! The per-thread half: hot-path recording into thread-local tables, folded periodically.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasher;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::Duration;

use http::Method;

use super::source::SourceSink;
use super::store::{method_index, Hist, METHODS, UNMATCHED};
use super::trace::TraceRecord;
use super::Telemetry;

/// Most distinct route templates one thread labels. A router has a few dozen; this only guards
/// against a caller passing raw paths as templates, which would otherwise grow the series count
/// (and the tables here) without bound. Past it, requests are counted as `unmatched`.
const MAX_ROUTES: usize = 1024;

/// Shortest interval [`ThreadTelemetry::run_folder`] accepts, so a zero cannot make it spin.
const MIN_DRAIN_INTERVAL: Duration = Duration::from_millis(1);

/// The route id of [`UNMATCHED`].
const UNMATCHED_ID: u16 = 0;

/// A local source, as [`ThreadTelemetry::add_local_source`] keeps it.
type LocalSource = Rc<dyn Fn(&mut SourceSink)>;

/// How long each phase of a request took, for a sampled trace ([`ThreadTelemetry::log_trace`]).
///
/// Phases that did not happen (no database access) stay zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Phases {
    /// Reading and parsing the request head and body.
    pub read: Duration,
    /// Running the handler, database time included.
    pub handler: Duration,
    /// Waiting on the database, inside `handler`.
    pub database: Duration,
    /// Rendering the response body (templates, JSON), inside `handler`.
    pub render: Duration,
    /// Encoding and writing the response.
    pub write: Duration,
}

/// One worker thread's telemetry: the hot path.
///
/// Every method takes `&self` and touches only this thread's tables (`Cell`/`RefCell`, no
/// atomics), so recording a request contends with no other core. The counts reach the shared
/// [`Telemetry`] when [`fold`](Self::fold) runs: every drain interval from
/// [`run_folder`](Self::run_folder), and once more when this value is dropped.
///
/// `!Send` by design: create one on each worker thread, keep it in an `Rc`.
pub struct ThreadTelemetry {
    telemetry: Arc<Telemetry>,
    /// This thread's id for its source values in the shared store.
    reporter: u64,
    enabled: bool,
    /// ln(1 − [`sample_ratio`](super::TelemetryConfig::sample_ratio)), for drawing the gap to
    /// the next sampled request; `None` never samples (a ratio not above 0, or telemetry off).
    /// A ratio of 1 or more gives −∞, and every gap is 0.
    sample_ln_keep: Option<f64>,
    /// Requests still to let pass before the next sampled one.
    sample_skip: Cell<u64>,
    /// xorshift64* state; never zero.
    rng: Cell<u64>,
    local: RefCell<Local>,
    sources: RefCell<Vec<LocalSource>>,
}

/// Counts since the last fold.
#[derive(Default)]
struct Local {
    /// Route template → id (an index into `routes`).
    route_ids: HashMap<Box<str>, u16, FastHash>,
    /// The router's template, method index and status of the last request the chain recorded,
    /// with its slot: a run of one endpoint's requests (a busy route; every benchmark) skips
    /// hashing and the tables. The `Rc` is held so its address cannot be reused by another
    /// template while cached, which makes comparing addresses sound.
    last_template: Option<(Option<Rc<str>>, u8, u16, RequestSlot)>,
    /// Route label by id; id 0 is [`UNMATCHED`].
    routes: Vec<Arc<str>>,
    /// Whether [`MAX_ROUTES`] was reached (and said so in the log).
    routes_full: bool,
    /// Requests by [`request_key`], each with its histogram. Entries are zeroed, not removed,
    /// by a fold: the steady state allocates nothing.
    requests: Vec<(u64, Hist)>,
    /// [`request_key`] → index into `requests`.
    request_slots: HashMap<u64, u32, FastHash>,
    /// The last key recorded and its index: a run of one endpoint's 200s (a busy route; every
    /// benchmark) skips the hash lookup. The key `u64::MAX` is never made by [`request_key`].
    last_request: (u64, u32),
    /// Connections opened minus closed.
    connections: i64,
    streams: i64,
    rate_limited: HashMap<Box<str>, u64, FastHash>,
    queries: HashMap<Box<str>, Hist, FastHash>,
}

impl Local {
    fn new() -> Local {
        Local {
            routes: vec![Arc::from(UNMATCHED)],
            last_request: (u64::MAX, 0),
            ..Local::default()
        }
    }

    /// The index in `requests` of `key`'s histogram, made on first use.
    #[inline]
    fn request_slot(&mut self, key: u64) -> usize {
        if self.last_request.0 == key {
            return self.last_request.1 as usize;
        }
        let next = self.requests.len() as u32;
        let slot = *self.request_slots.entry(key).or_insert(next);
        if slot == next {
            self.requests.push((key, Hist::default()));
        }
        self.last_request = (key, slot);
        slot as usize
    }

    #[inline]
    fn route_id(&mut self, route: &str) -> u16 {
        if let Some(&id) = self.route_ids.get(route) {
            return id;
        }
        // `routes` holds the unmatched label and then one entry per template.
        if self.routes.len() > MAX_ROUTES {
            if !self.routes_full {
                self.routes_full = true;
                tracing::warn!(
                    limit = MAX_ROUTES,
                    route,
                    "too many distinct routes in metrics; further ones are counted as unmatched"
                );
            }
            return UNMATCHED_ID;
        }
        let id = self.routes.len() as u16;
        self.routes.push(Arc::from(route));
        self.route_ids.insert(Box::from(route), id);
        id
    }
}

/// One table key for (route, method, status), so a request costs one hash of one integer.
#[inline]
fn request_key(route: u16, method: u8, status: u16) -> u64 {
    (u64::from(route) << 32) | (u64::from(method) << 16) | u64::from(status)
}

/// A request's series in this thread's tables (its route, method and status), from
/// [`ThreadTelemetry::request_slot`]. Valid for the thread that gave it, for as long as that
/// thread's telemetry lives: folds zero the tables, they never remove entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestSlot(u32);

fn split_key(key: u64) -> (u16, u8, u16) {
    ((key >> 32) as u16, (key >> 16) as u8, key as u16)
}

impl ThreadTelemetry {
    /// Creates this thread's telemetry, reporting into `telemetry`.
    pub fn new(telemetry: Arc<Telemetry>) -> ThreadTelemetry {
        let reporter = telemetry.shared().store().new_reporter();
        let config = telemetry.config();
        // A ratio not above 0 (NaN included) never samples, 1 or more always does. Disabled
        // telemetry traces nothing either.
        let ratio = config.sample_ratio;
        let sample_ln_keep = (config.enabled && ratio > 0.0).then(|| (-ratio.min(1.0)).ln_1p());
        // A per-thread random seed, without a dependency: std's hasher keys are random.
        let seed = std::collections::hash_map::RandomState::new().hash_one(reporter) | 1;
        let telemetry = ThreadTelemetry {
            enabled: config.enabled,
            telemetry,
            reporter,
            sample_ln_keep,
            sample_skip: Cell::new(u64::MAX),
            rng: Cell::new(seed),
            local: RefCell::new(Local::new()),
            sources: RefCell::new(Vec::new()),
        };
        if let Some(ln_keep) = sample_ln_keep {
            telemetry.sample_skip.set(telemetry.next_gap(ln_keep));
        }
        telemetry
    }

    /// How many requests to let pass before the next sampled one. Each request is sampled
    /// with probability p independently, so the gaps are geometric: ⌊ln U / ln(1 − p)⌋ for
    /// U uniform in (0, 1] (inverse transform). Drawn once per sample, it spares every other
    /// request a random number (a countdown is three instructions, xorshift about sixteen).
    fn next_gap(&self, ln_keep: f64) -> u64 {
        // xorshift64* (Vigna, 2016): a full period over non-zero states.
        let mut x = self.rng.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.set(x);
        let bits = x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11;
        let u = (bits + 1) as f64 / (1u64 << 53) as f64;
        // `as` saturates: a tiny ratio (ln_keep near −0) gives gaps past u64::MAX, kept there.
        (u.ln() / ln_keep) as u64
    }

    /// The process-wide telemetry this thread folds into.
    pub fn telemetry(&self) -> &Arc<Telemetry> {
        &self.telemetry
    }

    /// Records one answered request.
    ///
    /// `route` is the matched route's template (`/users/{id}`), `None` when no route matched:
    /// all of those share the label `route="unmatched"`, so a scanner probing random paths adds
    /// no series. Methods other than the nine standard ones are labelled `OTHER`. `elapsed` is
    /// observed in `pinion_http_request_duration_seconds` under the status' class (`2xx`…).
    #[inline]
    pub fn record_request(
        &self,
        method: &Method,
        route: Option<&str>,
        status: u16,
        elapsed: Duration,
    ) {
        if let Some(slot) = self.request_slot(method, route, status) {
            self.observe_requests(slot, 1, elapsed);
        }
    }

    /// The series of a request (labelled as [`record_request`](Self::record_request) does),
    /// to be timed later with [`observe_requests`](Self::observe_requests); `None` when
    /// telemetry is off.
    ///
    /// The split lets a connection time the requests of one pipelined batch together, with
    /// one clock read when their write is issued, instead of one per request.
    #[inline]
    pub fn request_slot(
        &self,
        method: &Method,
        route: Option<&str>,
        status: u16,
    ) -> Option<RequestSlot> {
        if !self.enabled {
            return None;
        }
        let mut local = self.local.borrow_mut();
        let route = match route {
            Some(r) => local.route_id(r),
            None => UNMATCHED_ID,
        };
        let key = request_key(route, method_index(method), status);
        Some(RequestSlot(local.request_slot(key) as u32))
    }

    /// [`request_slot`](Self::request_slot) for the chain, whose routes are the router's
    /// templates: a request of the same template (the same `Rc`), method and status as the
    /// last one gets its slot without a lookup.
    #[inline]
    pub(crate) fn template_slot(
        &self,
        method: &Method,
        template: Option<&Rc<str>>,
        status: u16,
    ) -> Option<RequestSlot> {
        if !self.enabled {
            return None;
        }
        let method = method_index(method);
        if let Some((last, m, s, slot)) = &self.local.borrow().last_template {
            let same_route = match (last, template) {
                (Some(a), Some(b)) => Rc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            };
            if same_route && *m == method && *s == status {
                return Some(*slot);
            }
        }
        Some(self.template_slot_miss(method, template, status))
    }

    /// [`template_slot`](Self::template_slot) when the last series does not match: looks the
    /// route up and remembers the answer. Out of line, so that the hit — nearly every request
    /// under load — is a few inlined comparisons without this path's stack frame (the whole
    /// function called cost 48 instructions per hit, callgrind on pipelined plaintext).
    #[cold]
    #[inline(never)]
    fn template_slot_miss(
        &self,
        method: u8,
        template: Option<&Rc<str>>,
        status: u16,
    ) -> RequestSlot {
        let mut local = self.local.borrow_mut();
        let route = match template {
            Some(r) => local.route_id(r),
            None => UNMATCHED_ID,
        };
        let slot = RequestSlot(local.request_slot(request_key(route, method, status)) as u32);
        local.last_template = Some((template.cloned(), method, status, slot));
        slot
    }

    /// Records `n` requests of `slot` that each took `elapsed`.
    #[inline]
    pub fn observe_requests(&self, slot: RequestSlot, n: u32, elapsed: Duration) {
        let mut local = self.local.borrow_mut();
        if let Some((_, hist)) = local.requests.get_mut(slot.0 as usize) {
            hist.observe_n(elapsed, n);
        }
    }

    /// Records a connection accepted (`pinion_http_connections_open` goes up at the next fold).
    #[inline]
    pub fn connection_opened(&self) {
        if self.enabled {
            self.local.borrow_mut().connections += 1;
        }
    }

    /// Records a connection closed; pair each with one [`connection_opened`](Self::connection_opened).
    #[inline]
    pub fn connection_closed(&self) {
        if self.enabled {
            self.local.borrow_mut().connections -= 1;
        }
    }

    /// Records a streamed response begun (`pinion_http_streams_open` goes up at the next fold).
    #[inline]
    pub fn stream_opened(&self) {
        if self.enabled {
            self.local.borrow_mut().streams += 1;
        }
    }

    /// Records a streamed response ended, however it ended; pair each with one
    /// [`stream_opened`](Self::stream_opened).
    #[inline]
    pub fn stream_closed(&self) {
        if self.enabled {
            self.local.borrow_mut().streams -= 1;
        }
    }

    /// Records a request denied by the rate-limit policy named `policy`
    /// (`pinion_rate_limit_hits_total`). Policy names come from configuration: a bounded set.
    #[inline]
    pub fn rate_limited(&self, policy: &str) {
        if !self.enabled {
            return;
        }
        let mut local = self.local.borrow_mut();
        match local.rate_limited.get_mut(policy) {
            Some(n) => *n += 1,
            None => {
                local.rate_limited.insert(Box::from(policy), 1);
            }
        }
    }

    /// Records one database query round trip to `database` (the name the ORM gives it), observed
    /// in `pinion_db_query_duration_seconds`, and adds it to the database phase of the sampled
    /// request being polled, if any (see [`trace`](super::trace)).
    #[inline]
    pub fn observe_query(&self, database: &str, elapsed: Duration) {
        super::trace::add_database(elapsed);
        if !self.enabled {
            return;
        }
        let mut local = self.local.borrow_mut();
        match local.queries.get_mut(database) {
            Some(h) => h.observe(elapsed),
            None => {
                let mut h = Hist::default();
                h.observe(elapsed);
                local.queries.insert(Box::from(database), h);
            }
        }
    }

    /// Adds a source describing this thread's own objects (its connection pools), read at each
    /// [`fold`](Self::fold).
    ///
    /// The values of every thread's sources are summed at scrape, so each thread reports only
    /// what it owns. Objects shared by all threads belong in
    /// [`Telemetry::add_source`] instead, or they are counted once per thread.
    pub fn add_local_source<F>(&self, source: F)
    where
        F: Fn(&mut SourceSink) + 'static,
    {
        self.sources.borrow_mut().push(Rc::new(source));
    }

    /// Moves this thread's counts into the shared totals and replaces its source values with
    /// fresh ones. Takes the shared lock once.
    ///
    /// Called by [`run_folder`](Self::run_folder) and on drop; call it directly before reading
    /// the totals in a test, or at shutdown.
    pub fn fold(&self) {
        // Sources run before anything is borrowed, so one may record into this thread too.
        let sources: Vec<LocalSource> = self.sources.borrow().clone();
        let mut sink = SourceSink::default();
        for source in &sources {
            source(&mut sink);
        }
        let values = sink.into_values();

        let mut local = self.local.borrow_mut();
        let local = &mut *local;
        let mut store = self.telemetry.shared().store();
        let mut interval = super::store::Hist::default();
        for (key, hist) in local.requests.iter_mut() {
            let key = *key;
            if hist.count == 0 {
                continue;
            }
            interval.merge(hist);
            let (route, method, status) = split_key(key);
            store.add_requests(method, &local.routes[usize::from(route)], status, hist);
            hist.clear();
        }
        if local.connections != 0 {
            store.add_connections(local.connections);
            local.connections = 0;
        }
        if local.streams != 0 {
            store.add_streams(local.streams);
            local.streams = 0;
        }
        for (policy, n) in local.rate_limited.iter_mut() {
            if *n > 0 {
                store.add_rate_limit_hits(policy, *n);
                *n = 0;
            }
        }
        for (database, hist) in local.queries.iter_mut() {
            if hist.count > 0 {
                store.add_queries(database, hist);
                hist.clear();
            }
        }
        store.set_reporter(self.reporter, values);
        drop(store);
        if let Some(typical) = interval.median_floor() {
            crate::runtime::batch::tune(typical);
        }
    }

    /// Folds every `interval` (at least 1 ms) until this `ThreadTelemetry` is dropped
    /// elsewhere; spawn it on the worker's runtime with `monoio::spawn`. The runtime needs its
    /// timer enabled.
    ///
    /// It holds only a weak reference between folds, so it does not keep the tables alive: the
    /// last fold is the one [`Drop`] does.
    pub async fn run_folder(self: Rc<Self>, interval: Duration) {
        let interval = interval.max(MIN_DRAIN_INTERVAL);
        let weak: Weak<Self> = Rc::downgrade(&self);
        drop(self);
        loop {
            monoio::time::sleep(interval).await;
            match weak.upgrade() {
                Some(this) => this.fold(),
                None => return,
            }
        }
    }

    /// Whether to trace this request: true for about
    /// [`sample_ratio`](super::TelemetryConfig::sample_ratio) of calls, each independently,
    /// by a countdown over random geometric gaps (`next_gap`): no shared
    /// state, and no random number except for the sampled requests.
    #[inline]
    pub fn should_sample(&self) -> bool {
        let skip = self.sample_skip.get();
        if skip > 0 {
            self.sample_skip.set(skip - 1);
            return false;
        }
        match self.sample_ln_keep {
            Some(ln_keep) => {
                self.sample_skip.set(self.next_gap(ln_keep));
                true
            }
            None => {
                self.sample_skip.set(u64::MAX);
                false
            }
        }
    }

    /// Logs one sampled request: to the telemetry's [`TraceWriter`](super::trace::TraceWriter)
    /// if it has one, otherwise as a structured `tracing` event (target `pinion::trace`, level
    /// INFO): its id, method, route template, status and each phase in microseconds.
    ///
    /// Call it only when [`should_sample`](Self::should_sample) said yes.
    pub fn log_trace(
        &self,
        request_id: &str,
        method: &Method,
        route: Option<&str>,
        status: u16,
        phases: &Phases,
    ) {
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let record = TraceRecord {
            request_id,
            method: METHODS[usize::from(method_index(method))],
            route: route.unwrap_or(UNMATCHED),
            status,
            total_us: micros(phases.read + phases.handler + phases.write),
            read_us: micros(phases.read),
            handler_us: micros(phases.handler),
            database_us: micros(phases.database),
            render_us: micros(phases.render),
            write_us: micros(phases.write),
        };
        match self.telemetry.trace_writer() {
            Some(write) => write(&record),
            None => record.log(),
        }
    }
}

impl Drop for ThreadTelemetry {
    /// Folds what is left, then withdraws this thread's pool levels (its pools are gone) while
    /// keeping its cache counters (a counter must not fall).
    fn drop(&mut self) {
        self.fold();
        self.telemetry
            .shared()
            .store()
            .retire_reporter(self.reporter);
    }
}

impl fmt::Debug for ThreadTelemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadTelemetry")
            .field("reporter", &self.reporter)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

/// FxHash for the thread-local tables: their keys are small integers and route templates or
/// policy names from the application's own code and configuration, never request data, so
/// SipHash's flooding resistance buys nothing there and would cost most of a request's
/// recording time.
type FastHash = rustc_hash::FxBuildHasher;
