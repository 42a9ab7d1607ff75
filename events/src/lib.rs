//! # pinion-events
//!
//! Publish/subscribe across instances on PostgreSQL alone, and live pages over Server-Sent
//! Events.
//!
//! [`publish`] writes the event to a table and notifies it (`NOTIFY pinion_events`, the
//! whole event, or only its id past `NOTIFY`'s 8000 bytes), in the caller's transaction if
//! it has one. Each process's one listening connection ([`pinion_orm::listener`], shared
//! with the query cache) hands the events to [`Events`], which keeps the recent ones in
//! memory; every worker thread's [`Live`] reads them from there and feeds its subscribers,
//! each through a bounded queue; one whose queue is full catches up from memory once it has
//! sent what is queued, and one that falls further behind than memory reaches is cut off (a
//! resync event, then the end of its stream: the browser reconnects). A client reconnecting with
//! `Last-Event-ID` is replayed what it missed, from memory or from the table, which keeps
//! the events for a bounded retention; the listener catches up from it too when its
//! connection comes back. [`Live::sse`] is the handler helper: a channel's
//! [authorisation rule](Live::authorize), the replay, the stream.
//!
//! ```rust
//! use std::sync::Arc;
//!
//! use pinion_events::{Events, EventsConfig, Live, Public};
//! use pinion_orm::listener::{listen_all, Listener};
//! use pinion_orm::{ConnectOptions, ConnectionManager};
//! use pinion_server::sse::Sse;
//! use pinion_server::Request;
//!
//! /// Once per process: the events, whose subscriber joins the one listening connection
//! /// (push the query cache's and the job queue's subscribers into the same Vec).
//! fn start(primary: &str) -> Result<(Arc<Events>, Listener), pinion_orm::Error> {
//!     let events = Events::new(EventsConfig::default());
//!     let listener = listen_all(primary, ConnectOptions::default(), vec![events.subscriber()])?;
//!     Ok((events, listener))
//! }
//!
//! /// On each worker thread: its live pages, and who may listen to which channels (a
//! /// channel no rule names is refused).
//! fn join(events: &Events) -> Live {
//!     let live = events.join();
//!     live.authorize("prices", Public);
//!     live.authorize("team-", |req: &Request, channel: &str| {
//!         req.header_str("x-team").is_some_and(|team| channel == format!("team-{team}"))
//!     });
//!     live
//! }
//!
//! /// `GET /prices/live`, for `<div hx-ext="sse" sse-connect="/prices/live" sse-swap="price">`:
//! /// a reconnecting browser's `Last-Event-ID` is replayed first.
//! async fn prices(live: &Live, db: &ConnectionManager, req: &Request) -> Result<Sse, pinion_events::Error> {
//!     live.sse(req, db, "prices").await
//! }
//!
//! /// From any handler or job on any instance; in a transaction, sent when it commits.
//! async fn reprice(db: &ConnectionManager) -> Result<i64, pinion_orm::Error> {
//!     pinion_events::publish(db, "prices", "price", "<span>4.20</span>").await
//! }
//! ```
//!
//! # Layout
//! - [`publish`](publish()): the statement that stores and notifies an event;
//! - `payload`: the notification's format, the whole event or its id;
//! - `listening`: the listening connection's subscriber, which fills the log (and catches
//!   up after a reconnection);
//! - `log`: the process's recent events, in arrival order, rendered once;
//! - [`Live`]: a worker's subscribers, its dispatcher and the handler helper;
//! - [`Subscription`]: one client's replay and live events, as a stream;
//! - [`Authorize`]: who may subscribe to which channel;
//! - [`prune`]: the retention;
//! - [`EventsCollector`]: the metrics;
//! - [`EventsConfig`], [`Error`].

mod authorize;
mod config;
mod error;
mod listening;
mod live;
mod log;
mod metrics;
mod payload;
mod publish;
mod retention;
mod subscription;

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use pinion_orm::listener::Subscriber;
use pinion_orm::ConnectionManager;

pub use authorize::{Authorize, Public};
pub use config::{
    EventsConfig, DEFAULT_LOG_CAPACITY, DEFAULT_PRUNE_INTERVAL, DEFAULT_REPLAY_LIMIT,
    DEFAULT_RETENTION, DEFAULT_RETENTION_ROWS, DEFAULT_SUBSCRIBER_QUEUE,
};
pub use error::Error;
pub use live::Live;
pub use metrics::EventsCollector;
pub use payload::Published;
pub use publish::{publish, published, CHANNEL, TABLE};
pub use retention::prune;
pub use subscription::{Subscription, RESYNC_EVENT};

/// Counts the workers share.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) delivered: AtomicU64,
    pub(crate) cut_off: AtomicU64,
    pub(crate) subscribers: AtomicI64,
}

/// What [`Events::stats`] reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventsStats {
    /// Events this process published.
    pub published: u64,
    /// Events received through the listening connection (from every instance).
    pub received: u64,
    /// Events handed to subscribers' queues.
    pub delivered: u64,
    /// Subscribers cut off for falling behind.
    pub cut_off: u64,
    /// Subscriptions open (as of the last delivery or sweep: one that left is counted until
    /// then).
    pub subscribers: i64,
}

/// The process's events: the log its listening connection fills and its workers read. Made
/// once, shared by the workers' states as an `Arc`.
pub struct Events {
    log: Arc<log::Log>,
    stats: Arc<Stats>,
    up: Arc<AtomicBool>,
    config: EventsConfig,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("listening", &self.is_listening())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Events {
    /// The process's events, with `config`'s log size, queues and retention.
    pub fn new(config: EventsConfig) -> Arc<Events> {
        Arc::new(Events {
            log: Arc::new(log::Log::new(config.log_capacity)),
            stats: Arc::default(),
            up: Arc::default(),
            config,
        })
    }

    /// The subscriber to hand the process's listener
    /// ([`listen_all`](pinion_orm::listener::listen_all)): nothing arrives without it.
    pub fn subscriber(&self) -> Arc<dyn Subscriber> {
        Arc::new(listening::Listening {
            log: Arc::clone(&self.log),
            up: Arc::clone(&self.up),
        })
    }

    /// The calling worker thread's [`Live`], with its dispatcher task started.
    ///
    /// # Panics
    /// Outside a monoio runtime (the dispatcher is spawned on it).
    pub fn join(&self) -> Live {
        Live::start(
            Arc::clone(&self.log),
            Arc::clone(&self.stats),
            self.config.subscriber_queue,
            self.config.replay_limit,
        )
    }

    /// Prunes the table every `prune_interval` on the calling worker thread (one worker per
    /// instance is enough).
    ///
    /// # Panics
    /// Outside a monoio runtime.
    pub fn start_pruning(&self, db: Rc<ConnectionManager>) {
        monoio::spawn(retention::prune_every(db, self.config.clone()));
    }

    /// Whether events arrive now: the listening connection is up and caught up.
    pub fn is_listening(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// The settings it was made with.
    pub fn config(&self) -> &EventsConfig {
        &self.config
    }

    /// The counts so far.
    pub fn stats(&self) -> EventsStats {
        EventsStats {
            published: published(),
            received: self.log.received.load(Ordering::Relaxed),
            delivered: self.stats.delivered.load(Ordering::Relaxed),
            cut_off: self.stats.cut_off.load(Ordering::Relaxed),
            subscribers: self.stats.subscribers.load(Ordering::Relaxed).max(0),
        }
    }
}
