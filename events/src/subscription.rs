//! [`Subscription`]: one client's events — its replay, then what comes live — as the stream
//! an [`Sse`](pinion_server::sse::Sse) response sends.

use std::cell::Cell;
use std::collections::{HashSet, VecDeque};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_channel::mpsc;
use futures_util::{Stream, StreamExt};
use pinion_server::sse::{Event, Sse};

use crate::log::Stored;

/// The name of the event that ends a subscription cut off for falling behind (its queue
/// was full) or for having more to replay than one answer holds. The stream ends after it,
/// and the browser's `EventSource` reconnects with `Last-Event-ID`, which replays what it
/// missed: a page need not listen for it, but may (`sse-swap="resync"`, to show it).
pub const RESYNC_EVENT: &str = "resync";

/// One subscriber's events: first its replay, then the live events of its channel, then, if
/// it was cut off, a [`RESYNC_EVENT`] and the end.
///
/// Live events come through a bounded queue that the worker's dispatcher fills without
/// waiting: a client that does not read fills it and is cut off instead of holding up the
/// others.
pub struct Subscription {
    backlog: VecDeque<Bytes>,
    live: mpsc::Receiver<Arc<Stored>>,
    /// Ids the replay from the table already sent, skipped when they come live.
    skip: HashSet<i64>,
    /// Set by the dispatcher when it cut this subscriber off.
    cut: Rc<Cell<bool>>,
    /// Only the backlog, then a resync (the replay was truncated).
    backlog_only: bool,
    ended: bool,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("backlog", &self.backlog.len())
            .field("cut", &self.cut.get())
            .finish_non_exhaustive()
    }
}

impl Subscription {
    pub(crate) fn new(
        live: mpsc::Receiver<Arc<Stored>>,
        cut: Rc<Cell<bool>>,
        backlog: Vec<Bytes>,
        skip: HashSet<i64>,
        backlog_only: bool,
    ) -> Subscription {
        Subscription {
            backlog: backlog.into(),
            live,
            skip,
            cut,
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
}

impl Stream for Subscription {
    type Item = Bytes;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if self.ended {
            return Poll::Ready(None);
        }
        if let Some(next) = self.backlog.pop_front() {
            return Poll::Ready(Some(next));
        }
        if self.backlog_only {
            return self.resync();
        }
        loop {
            match self.live.poll_next_unpin(cx) {
                Poll::Ready(Some(stored)) => {
                    if !self.skip.is_empty() && self.skip.remove(&stored.event.id) {
                        continue;
                    }
                    return Poll::Ready(Some(stored.bytes.clone()));
                }
                // The dispatcher let go: it cut this subscriber off (or its worker stops).
                Poll::Ready(None) if self.cut.get() => return self.resync(),
                Poll::Ready(None) => {
                    self.ended = true;
                    return Poll::Ready(None);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
