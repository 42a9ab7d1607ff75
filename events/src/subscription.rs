//! [`Subscription`]: one client's events — its replay, then what comes live — as the stream
//! an [`Sse`](pinion_server::sse::Sse) response sends.

use std::cell::Cell;
use std::collections::{HashSet, VecDeque};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_channel::mpsc;
use futures_util::{Stream, StreamExt};
use pinion_server::sse::{Event, Sse};

use crate::log::{Log, Stored};
use crate::Stats;

/// The name of the event that ends a subscription cut off for falling behind (further than
/// the process's log reaches) or for having more to replay than one answer holds. The
/// stream ends after it, and the browser's `EventSource` reconnects with `Last-Event-ID`,
/// which replays what it missed: a page need not listen for it, but may
/// (`sse-swap="resync"`, to show it).
pub const RESYNC_EVENT: &str = "resync";

/// What a subscriber and the worker's dispatcher share.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Cut off: the stream ends (after what is queued) with a resync event.
    pub(crate) cut: Cell<bool>,
    /// Its queue was full at this seq: the dispatcher stops feeding it, and it catches up
    /// from the log by itself once it has sent what is queued.
    pub(crate) behind_from: Cell<Option<u64>>,
}

/// Where a subscription catches up from when its queue overflowed.
pub(crate) struct CatchUp {
    pub(crate) log: Arc<Log>,
    pub(crate) channel: Box<str>,
    /// The worker's cursor: what the dispatcher has handed on so far.
    pub(crate) cursor: Rc<Cell<u64>>,
    pub(crate) stats: Arc<Stats>,
}

/// One subscriber's events: first its replay, then the live events of its channel, then, if
/// it was cut off, a [`RESYNC_EVENT`] and the end.
///
/// Live events come through a bounded queue that the worker's dispatcher fills without
/// waiting. A client that falls behind (a burst, a slow network) is no longer fed once its
/// queue is full: it catches up from the process's log when it has sent what is queued, so
/// that it holds no more than its queue, and the dispatcher never waits for it. One that
/// falls further behind than the log reaches (a client that does not read) is cut off.
pub struct Subscription {
    backlog: VecDeque<Bytes>,
    live: mpsc::Receiver<Arc<Stored>>,
    /// Ids the replay from the table already sent, skipped when they come live.
    skip: HashSet<i64>,
    shared: Rc<Shared>,
    catch_up: CatchUp,
    /// Only the backlog, then a resync (the replay was truncated).
    backlog_only: bool,
    ended: bool,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("channel", &self.catch_up.channel)
            .field("backlog", &self.backlog.len())
            .field("cut", &self.shared.cut.get())
            .finish_non_exhaustive()
    }
}

impl Subscription {
    pub(crate) fn new(
        live: mpsc::Receiver<Arc<Stored>>,
        shared: Rc<Shared>,
        catch_up: CatchUp,
        backlog: Vec<Bytes>,
        skip: HashSet<i64>,
        backlog_only: bool,
    ) -> Subscription {
        Subscription {
            backlog: backlog.into(),
            live,
            skip,
            shared,
            catch_up,
            backlog_only,
            ended: false,
        }
    }

    /// The Server-Sent Events response that sends it.
    pub fn into_sse(self) -> Sse {
        Sse::rendered(self)
    }

    fn resync(&mut self) -> Poll<Option<Bytes>> {
        self.ended = true;
        Poll::Ready(Some(Event::new().event(RESYNC_EVENT).data("").to_bytes()))
    }

    /// What it missed while its queue was full, from the log; false when the log no longer
    /// has it (the subscriber is then cut off).
    fn catch_up(&mut self, from: u64) -> bool {
        let c = &self.catch_up;
        let Some(missed) = c.log.channel_since(&c.channel, from, c.cursor.get()) else {
            self.shared.cut.set(true);
            c.stats.cut_off.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        self.shared.behind_from.set(None);
        c.stats
            .delivered
            .fetch_add(missed.len() as u64, Ordering::Relaxed);
        for stored in missed {
            if self.skip.is_empty() || !self.skip.remove(&stored.event.id) {
                self.backlog.push_back(stored.bytes.clone());
            }
        }
        true
    }
}

impl Stream for Subscription {
    type Item = Bytes;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        loop {
            if self.ended {
                return Poll::Ready(None);
            }
            if let Some(next) = self.backlog.pop_front() {
                return Poll::Ready(Some(next));
            }
            if self.backlog_only {
                return self.resync();
            }
            match self.live.poll_next_unpin(cx) {
                Poll::Ready(Some(stored)) => {
                    if !self.skip.is_empty() && self.skip.remove(&stored.event.id) {
                        continue;
                    }
                    return Poll::Ready(Some(stored.bytes.clone()));
                }
                // The dispatcher let go: it cut this subscriber off (or its worker stops).
                Poll::Ready(None) if self.shared.cut.get() => return self.resync(),
                Poll::Ready(None) => {
                    self.ended = true;
                    return Poll::Ready(None);
                }
                Poll::Pending => match self.shared.behind_from.get() {
                    // Sent what was queued: now what did not fit.
                    Some(from) if !self.catch_up(from) => return self.resync(),
                    Some(_) => continue,
                    None => return Poll::Pending,
                },
            }
        }
    }
}
