//! Query deadlines without a timer per query.
//!
//! Every statement must fail with a timeout once `query_timeout` has passed, even when the
//! server never answers (a stopped process still ACKs TCP, so keepalives do not help). A
//! `monoio::time::timeout` per statement did that with a timer-wheel insertion and removal per
//! statement: ~430 instructions of each query, 20 times per `/queries?q=20` (callgrind).
//!
//! All statements of one database share one timeout, so their deadlines come in the order
//! the statements start. [`Deadlines`] keeps them in that order and one watchdog task per
//! database sleeps until the oldest one: a statement costs a queue entry and, only if it is
//! still running at its deadline, a wake-up. Statements of one pinned connection finish in
//! order, so the finished ones leave from the front as they complete and the queue stays as
//! long as the statements in flight.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// One statement's deadline, shared by its future and the queue.
#[derive(Debug)]
struct Slot {
    deadline: Instant,
    /// Set by the watchdog once `deadline` passed with the statement unfinished.
    expired: Cell<bool>,
    /// Set when the statement's future completed or was dropped: the queue can forget it.
    done: Cell<bool>,
    /// The statement's task, to wake when it expires.
    waker: RefCell<Option<Waker>>,
}

#[derive(Debug)]
struct Inner {
    timeout: Duration,
    /// Unfinished (and some finished) statements, oldest first; deadlines are non-decreasing.
    queue: RefCell<VecDeque<Rc<Slot>>>,
    /// The watchdog, when it waits for the queue to fill.
    watchdog: RefCell<Option<Waker>>,
}

impl Inner {
    /// Drops finished statements from the front.
    fn trim(&self) {
        let mut queue = self.queue.borrow_mut();
        while queue.front().is_some_and(|s| s.done.get()) {
            queue.pop_front();
        }
    }
}

/// The deadlines of one database's statements on one thread; see the module doc.
#[derive(Debug, Clone)]
pub(crate) struct Deadlines {
    inner: Rc<Inner>,
}

impl Deadlines {
    /// Deadlines of `timeout`, and the watchdog task that enforces them (spawned on the current
    /// monoio runtime; it ends when the `Deadlines` are dropped).
    pub(crate) fn start(timeout: Duration) -> Deadlines {
        let inner = Rc::new(Inner {
            timeout,
            queue: RefCell::new(VecDeque::new()),
            watchdog: RefCell::new(None),
        });
        monoio::spawn(watchdog(Rc::downgrade(&inner)));
        Deadlines { inner }
    }

    /// `run`, failing with `None` once the timeout passed since `started`.
    pub(crate) fn limit<F: Future>(&self, started: Instant, run: F) -> Limited<F> {
        let slot = Rc::new(Slot {
            deadline: started + self.inner.timeout,
            expired: Cell::new(false),
            done: Cell::new(false),
            waker: RefCell::new(None),
        });
        let was_empty = {
            let mut queue = self.inner.queue.borrow_mut();
            queue.push_back(Rc::clone(&slot));
            queue.len() == 1
        };
        if was_empty {
            if let Some(w) = self.inner.watchdog.borrow_mut().take() {
                w.wake();
            }
        }
        Limited {
            run,
            slot,
            inner: Rc::clone(&self.inner),
        }
    }
}

pin_project_lite::pin_project! {
    /// A statement with its deadline: `Some(output)`, or `None` when the deadline passed first.
    pub(crate) struct Limited<F> {
        #[pin]
        run: F,
        slot: Rc<Slot>,
        inner: Rc<Inner>,
    }

    impl<F> PinnedDrop for Limited<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            this.slot.done.set(true);
            this.inner.trim();
        }
    }
}

impl<F: Future> Future for Limited<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(out) = this.run.poll(cx) {
            this.slot.done.set(true);
            this.inner.trim();
            return Poll::Ready(Some(out));
        }
        if this.slot.expired.get() {
            this.slot.done.set(true);
            this.inner.trim();
            return Poll::Ready(None);
        }
        let mut waker = this.slot.waker.borrow_mut();
        match waker.as_ref() {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => *waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

/// Sleeps until the oldest unfinished statement's deadline, expires it, repeats; parks while
/// nothing is queued. Ends when its database is gone.
async fn watchdog(inner: Weak<Inner>) {
    loop {
        let next = {
            let Some(inner) = inner.upgrade() else { return };
            inner.trim();
            let now = Instant::now();
            let mut queue = inner.queue.borrow_mut();
            // Expire everything due.
            while let Some(front) = queue.front() {
                if front.done.get() {
                    queue.pop_front();
                } else if front.deadline <= now {
                    front.expired.set(true);
                    if let Some(w) = front.waker.borrow_mut().take() {
                        w.wake();
                    }
                    queue.pop_front();
                } else {
                    break;
                }
            }
            queue.front().map(|s| s.deadline)
        };
        match next {
            Some(deadline) => monoio::time::sleep_until(deadline.into()).await,
            None => Park(&inner).await,
        }
    }
}

/// Waits until a statement is queued (or the database is dropped).
struct Park<'a>(&'a Weak<Inner>);

impl Future for Park<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(inner) = self.0.upgrade() else {
            return Poll::Ready(());
        };
        if !inner.queue.borrow().is_empty() {
            return Poll::Ready(());
        }
        *inner.watchdog.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> monoio::Runtime<monoio::time::TimeDriver<monoio::LegacyDriver>> {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime")
    }

    #[test]
    fn a_statement_that_finishes_in_time_keeps_its_output() {
        rt().block_on(async {
            let d = Deadlines::start(Duration::from_millis(200));
            let out = d
                .limit(Instant::now(), async {
                    monoio::time::sleep(Duration::from_millis(10)).await;
                    7
                })
                .await;
            assert_eq!(out, Some(7));
            assert!(d.inner.queue.borrow().is_empty());
        });
    }

    #[test]
    fn a_statement_past_its_deadline_fails_at_the_deadline() {
        rt().block_on(async {
            let d = Deadlines::start(Duration::from_millis(100));
            let began = Instant::now();
            let out = d.limit(began, std::future::pending::<()>()).await;
            let took = began.elapsed();
            assert_eq!(out, None);
            assert!(took >= Duration::from_millis(100), "{took:?}");
            assert!(took < Duration::from_millis(1000), "{took:?}");
            // A later statement is measured from its own start, not the expired one's.
            let began = Instant::now();
            let out = d
                .limit(began, async {
                    monoio::time::sleep(Duration::from_millis(50)).await;
                    1
                })
                .await;
            assert_eq!(out, Some(1));
        });
    }

    #[test]
    fn expiry_reaches_only_the_late_statements() {
        rt().block_on(async {
            let d = Deadlines::start(Duration::from_millis(150));
            let slow = d.limit(Instant::now(), std::future::pending::<u8>());
            let quick = d.limit(Instant::now(), async {
                monoio::time::sleep(Duration::from_millis(20)).await;
                2u8
            });
            let (slow, quick) = futures_util::future::join(slow, quick).await;
            assert_eq!(quick, Some(2));
            assert_eq!(slow, None);
            // A dropped statement leaves the queue too.
            drop(d.limit(Instant::now(), std::future::pending::<u8>()));
            assert!(d.inner.queue.borrow().is_empty());
        });
    }
}
