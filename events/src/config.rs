//! [`EventsConfig`]: how many events are kept, where, and for how long.

use std::time::Duration;

/// Default for [`EventsConfig::retention`]: an hour, longer than a laptop's lid is usually
/// closed on an open page, short enough for the table to stay small.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(3600);

/// Default for [`EventsConfig::retention_rows`].
pub const DEFAULT_RETENTION_ROWS: u64 = 100_000;

/// Default for [`EventsConfig::subscriber_queue`]: what a client that stopped reading holds
/// in memory at most (the events themselves are shared by every subscriber).
pub const DEFAULT_SUBSCRIBER_QUEUE: usize = 64;

/// Default for [`EventsConfig::log_capacity`].
pub const DEFAULT_LOG_CAPACITY: usize = 4096;

/// Default for [`EventsConfig::replay_limit`].
pub const DEFAULT_REPLAY_LIMIT: usize = 1000;

/// Default for [`EventsConfig::prune_interval`].
pub const DEFAULT_PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// The events' settings (the binary fills them from `events_*` settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsConfig {
    /// How long published events are kept in the table for clients that reconnect; older
    /// ones are pruned. Default is [`DEFAULT_RETENTION`] (`events_retention`).
    pub retention: Duration,
    /// At most this many of the latest events are kept, whatever their age (by id, so a
    /// rolled-back publish's gap counts too). Default is [`DEFAULT_RETENTION_ROWS`]
    /// (`events_retention_rows`).
    pub retention_rows: u64,
    /// Events each subscriber may have waiting; past that it is no longer fed and catches up
    /// from the log once it has sent them (so that a burst cuts nobody off), and one that
    /// falls further behind than the log reaches is cut off (its stream ends with a resync
    /// event and the browser reconnects). Default is [`DEFAULT_SUBSCRIBER_QUEUE`]
    /// (`events_subscriber_queue`).
    pub subscriber_queue: usize,
    /// Events the process keeps in memory, in the order they arrived: what its workers read
    /// from, slow subscribers catch up from and most replays are answered from. Default is
    /// [`DEFAULT_LOG_CAPACITY`].
    pub log_capacity: usize,
    /// Events one answer replays at most; past that the stream ends with a resync event
    /// after them, and the browser's reconnection asks for the next ones. Default is
    /// [`DEFAULT_REPLAY_LIMIT`].
    pub replay_limit: usize,
    /// How often an instance prunes the table. Default is [`DEFAULT_PRUNE_INTERVAL`].
    pub prune_interval: Duration,
}

impl Default for EventsConfig {
    fn default() -> EventsConfig {
        EventsConfig {
            retention: DEFAULT_RETENTION,
            retention_rows: DEFAULT_RETENTION_ROWS,
            subscriber_queue: DEFAULT_SUBSCRIBER_QUEUE,
            log_capacity: DEFAULT_LOG_CAPACITY,
            replay_limit: DEFAULT_REPLAY_LIMIT,
            prune_interval: DEFAULT_PRUNE_INTERVAL,
        }
    }
}
