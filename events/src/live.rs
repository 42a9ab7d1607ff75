//! [`Live`]: one worker thread's subscribers, fed from the process's log by a dispatcher
//! task, and the handler helper that turns a subscription into an event stream.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::{Rc, Weak};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use futures_channel::mpsc;
use futures_util::task::AtomicWaker;
use pinion_orm::{raw, Executor, PRIMARY};
use pinion_server::sse::Sse;
use pinion_server::Request;

use crate::authorize::Authorize;
use crate::log::{render, Log, Stored};
use crate::payload::Published;
use crate::publish::TABLE;
use crate::subscription::{CatchUp, Shared, Subscription};
use crate::{Error, Stats};

/// One channel's events after an id, in id order, for a replay the log cannot answer.
const REPLAY_SQL: &str = "SELECT id, event, data FROM pinion_events \
     WHERE channel = $1 AND id > $2 ORDER BY id LIMIT $3";

/// How many subscriptions between two sweeps of the subscribers that left (a channel that
/// gets no event would keep them otherwise).
const SWEEP_EVERY: usize = 256;

/// One subscriber as the dispatcher holds it.
struct Sub {
    tx: mpsc::Sender<Arc<Stored>>,
    shared: Rc<Shared>,
}

/// The worker's subscribers by channel, and how far into the log it has read.
struct Subscribers {
    by_channel: HashMap<Box<str>, Vec<Sub>>,
    /// The seq of the last event handed on (shared with the subscriptions, which catch up
    /// to it).
    cursor: Rc<Cell<u64>>,
    /// The log's resync epoch last seen.
    epoch: u64,
    since_sweep: usize,
    stats: Arc<Stats>,
}

impl Subscribers {
    /// Hands `event` to every subscriber of its channel that has room. One whose queue is
    /// full is left to catch up from the log (seq `first` is the oldest the log still has),
    /// and cut off once the log no longer has what it missed; one that left is forgotten.
    fn deliver(&mut self, event: &Arc<Stored>, first: u64) {
        let Some(subs) = self.by_channel.get_mut(&*event.event.channel) else {
            return;
        };
        let (mut delivered, mut cut, mut gone) = (0u64, 0u64, 0i64);
        subs.retain_mut(|sub| {
            if sub.shared.cut.get() {
                // Cut off by itself (it found the log had moved on), and counted then.
                gone += 1;
                return false;
            }
            if let Some(from) = sub.shared.behind_from.get() {
                if sub.tx.is_closed() {
                    gone += 1;
                    return false;
                }
                if from < first {
                    // Dropping the sender ends its stream after what it has queued, with a
                    // resync event: the browser reconnects and replays from the table.
                    sub.shared.cut.set(true);
                    cut += 1;
                    return false;
                }
                return true;
            }
            match sub.tx.try_send(Arc::clone(event)) {
                Ok(()) => {
                    delivered += 1;
                    true
                }
                Err(e) if e.is_full() => {
                    sub.shared.behind_from.set(Some(event.seq));
                    true
                }
                Err(_) => {
                    gone += 1;
                    false
                }
            }
        });
        if subs.is_empty() {
            self.by_channel.remove(&*event.event.channel);
        }
        self.stats.delivered.fetch_add(delivered, Ordering::Relaxed);
        self.stats.cut_off.fetch_add(cut, Ordering::Relaxed);
        self.stats
            .subscribers
            .fetch_sub(cut as i64 + gone, Ordering::Relaxed);
    }

    /// Cuts off every subscriber: they missed events the log no longer has.
    fn cut_all(&mut self) {
        let mut n = 0u64;
        for sub in self.by_channel.drain().flat_map(|(_, subs)| subs) {
            if !sub.tx.is_closed() && !sub.shared.cut.get() {
                sub.shared.cut.set(true);
                n += 1;
            }
            self.stats.subscribers.fetch_sub(1, Ordering::Relaxed);
        }
        self.stats.cut_off.fetch_add(n, Ordering::Relaxed);
    }

    /// Forgets the subscribers that left, now and then.
    fn maybe_sweep(&mut self) {
        self.since_sweep += 1;
        if self.since_sweep < SWEEP_EVERY {
            return;
        }
        self.since_sweep = 0;
        let mut gone = 0i64;
        self.by_channel.retain(|_, subs| {
            let before = subs.len();
            subs.retain(|s| !s.tx.is_closed() && !s.shared.cut.get());
            gone += (before - subs.len()) as i64;
            !subs.is_empty()
        });
        self.stats.subscribers.fetch_sub(gone, Ordering::Relaxed);
    }
}

/// A registered authorisation rule.
struct Rule {
    prefix: Box<str>,
    check: Rc<dyn Authorize>,
}

/// One worker thread's side of the events: its subscribers, and
/// [`sse`](Live::sse), the handler helper. Made by [`Events::join`](crate::Events::join) on
/// the worker's thread and kept in its state (it is `!Send`, as the connections it feeds).
///
/// A per-thread dispatcher task reads the process's log (written by the listener's thread)
/// and hands each event to the subscribers of its channel with `try_send` on a bounded
/// `futures-channel` queue. Not crossbeam: a monoio task must await its queue, and
/// futures-channel's receiver is a `Stream` whose wake-up is the task's own waker, where a
/// crossbeam channel would need a thread to block on it. The log itself is shared through
/// a mutex and a waker per worker, so the listener's thread pays one wake per worker, not
/// one send per subscriber. A subscriber whose queue is full is skipped and catches up from
/// the log itself (see [`Subscription`]): a burst larger than the queue, handed on before
/// any connection could write, cuts nobody off.
pub struct Live {
    log: Arc<Log>,
    subs: Rc<RefCell<Subscribers>>,
    rules: RefCell<Vec<Rule>>,
    queue: usize,
    replay_limit: usize,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("channels", &self.subs.borrow().by_channel.len())
            .finish_non_exhaustive()
    }
}

impl Live {
    pub(crate) fn start(
        log: Arc<Log>,
        stats: Arc<Stats>,
        queue: usize,
        replay_limit: usize,
    ) -> Live {
        let (head, epoch) = log.position();
        let subs = Rc::new(RefCell::new(Subscribers {
            by_channel: HashMap::new(),
            cursor: Rc::new(Cell::new(head)),
            epoch,
            since_sweep: 0,
            stats,
        }));
        let waker = log.register();
        monoio::spawn(dispatch(Arc::clone(&log), waker, Rc::downgrade(&subs)));
        Live {
            log,
            subs,
            rules: RefCell::new(Vec::new()),
            queue: queue.max(1),
            replay_limit: replay_limit.max(1),
        }
    }

    /// Lets [`sse`](Live::sse) subscribe a client to the channels that start with `prefix`
    /// when `check` allows it. The longest matching prefix decides; a channel no prefix
    /// matches is refused, so that a channel is private unless said otherwise.
    pub fn authorize(&self, prefix: &str, check: impl Authorize) {
        self.rules.borrow_mut().push(Rule {
            prefix: prefix.into(),
            check: Rc::new(check),
        });
    }

    /// The rule for `channel`: the longest matching prefix.
    fn rule(&self, channel: &str) -> Option<Rc<dyn Authorize>> {
        self.rules
            .borrow()
            .iter()
            .filter(|r| channel.starts_with(&*r.prefix))
            .max_by_key(|r| r.prefix.len())
            .map(|r| Rc::clone(&r.check))
    }

    /// The handler helper: subscribes the client making `req` to `channel`, if the channel's
    /// [rule](Live::authorize) allows it, and answers with the event stream, which the htmx
    /// SSE extension consumes (`hx-ext="sse" sse-connect="…" sse-swap="{event name}"`). A
    /// reconnecting browser's `Last-Event-ID` is replayed from first.
    ///
    /// # Errors
    /// [`Error::is_denied`] (403) when the rule refuses or no rule matches; a database
    /// error (503) when the replay cannot be read.
    pub async fn sse(
        &self,
        req: &Request,
        db: &impl Executor,
        channel: &str,
    ) -> Result<Sse, Error> {
        let rule = self.rule(channel).ok_or_else(Error::denied)?;
        if !rule.allows(req, channel).await {
            return Err(Error::denied());
        }
        let last = req
            .header_str("last-event-id")
            .and_then(|id| id.trim().parse::<i64>().ok());
        Ok(self.subscribe(db, channel, last).await?.into_sse())
    }

    /// Subscribes to `channel` without a rule (for a handler that checked by itself): the
    /// events after id `last` first (from this process's log, else from the table on the
    /// primary through `db`), then every event published to it from now on.
    ///
    /// # Errors
    /// The database's, when the replay cannot be read.
    pub async fn subscribe(
        &self,
        db: &impl Executor,
        channel: &str,
        last: Option<i64>,
    ) -> Result<Subscription, Error> {
        let (tx, rx) = mpsc::channel(self.queue - 1);
        let shared = Rc::new(Shared::default());
        // Subscribed before the replay is read: what commits meanwhile comes live, and what
        // comes both ways is skipped the second time.
        let (upto, catch_up) = {
            let mut subs = self.subs.borrow_mut();
            subs.maybe_sweep();
            subs.by_channel
                .entry(channel.into())
                .or_default()
                .push(Sub {
                    tx,
                    shared: Rc::clone(&shared),
                });
            subs.stats.subscribers.fetch_add(1, Ordering::Relaxed);
            let catch_up = CatchUp {
                log: Arc::clone(&self.log),
                channel: channel.into(),
                cursor: Rc::clone(&subs.cursor),
                stats: Arc::clone(&subs.stats),
            };
            (subs.cursor.get(), catch_up)
        };
        let Some(last) = last else {
            return Ok(Subscription::new(
                rx,
                shared,
                catch_up,
                Vec::new(),
                HashSet::new(),
                false,
            ));
        };
        if let Some(backlog) = self.log.after(channel, last, upto) {
            return Ok(Subscription::new(
                rx,
                shared,
                catch_up,
                backlog,
                HashSet::new(),
                false,
            ));
        }
        let limit = self.replay_limit;
        let rows: Vec<(i64, String, String)> = raw(REPLAY_SQL)
            .bind(channel.to_owned())
            .bind(last)
            .bind(limit as i64 + 1)
            .reads(TABLE)
            // A replica may not have replayed the latest events yet.
            .using(PRIMARY)
            .cache(false)
            .all(db)
            .await?;
        let truncated = rows.len() > limit;
        let mut skip = HashSet::with_capacity(rows.len());
        let backlog: Vec<Bytes> = rows
            .into_iter()
            .take(limit)
            .map(|(id, event, data)| {
                skip.insert(id);
                render(&Published {
                    id,
                    channel: channel.into(),
                    event: event.into(),
                    data: data.into(),
                })
            })
            .collect();
        Ok(Subscription::new(
            rx, shared, catch_up, backlog, skip, truncated,
        ))
    }
}

/// The worker's dispatcher: waits for the log to move, then hands what is new to the
/// subscribers; ends with the worker's [`Live`].
async fn dispatch(log: Arc<Log>, waker: Arc<AtomicWaker>, subs: Weak<RefCell<Subscribers>>) {
    loop {
        let behind = futures_util::future::poll_fn(|cx| {
            waker.register(cx.waker());
            let Some(subs) = subs.upgrade() else {
                return Poll::Ready(false);
            };
            let subs = subs.borrow();
            if log.position() != (subs.cursor.get(), subs.epoch) {
                Poll::Ready(true)
            } else {
                Poll::Pending
            }
        })
        .await;
        let Some(subs) = subs.upgrade().filter(|_| behind) else {
            return;
        };
        let mut subs = subs.borrow_mut();
        let batch = log.since(subs.cursor.get(), subs.epoch);
        if batch.lost {
            tracing::warn!("this worker fell behind the event log: its subscribers resynchronise");
            subs.cut_all();
        }
        subs.epoch = batch.epoch;
        for event in &batch.events {
            subs.deliver(event, batch.first);
        }
        subs.cursor.set(batch.head);
    }
}
