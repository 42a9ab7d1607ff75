//! Read and write deadlines of a worker's connections, enforced by one sweeper task instead of
//! a timer per read.
//!
//! Every read of a connection has a deadline (the head, body and keep-alive timeouts). A
//! `monoio::time::timeout` per read inserted a timer into the runtime's wheel and removed it
//! again for every request that arrives one per read (json, the database shapes): about 400
//! instructions of a 7 000-instruction `/json` request (callgrind). Instead, each connection
//! holds one [`Deadline`] for its life and arms it before each read (two `Cell` writes); the
//! worker's [`Sweeper`] wakes every [`Sweeper::tick`] and expires the armed deadlines that have
//! passed, which cancels those reads. A timeout therefore fires up to one tick late; the tick
//! is a small fraction of the shortest configured timeout.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// One connection's deadline for its read or write in progress (a connection does one at a
/// time).
#[derive(Debug, Default)]
pub(crate) struct Deadline {
    /// When the read in progress must have completed; `None` when no read waits.
    at: Cell<Option<Instant>>,
    /// Set by the sweeper once `at` passed.
    expired: Cell<bool>,
    /// The connection's task, woken on expiry.
    waker: RefCell<Option<Waker>>,
}

impl Deadline {
    /// `fut`, or `None` once `at` passes (up to one sweeper tick late).
    pub(crate) fn limit<F: Future>(&self, at: Instant, fut: F) -> Limited<'_, F> {
        self.at.set(Some(at));
        self.expired.set(false);
        Limited {
            deadline: self,
            fut,
        }
    }

    fn disarm(&self) {
        self.at.set(None);
    }
}

pin_project_lite::pin_project! {
    /// A future with a [`Deadline`]; see [`Deadline::limit`].
    pub(crate) struct Limited<'a, F> {
        deadline: &'a Deadline,
        #[pin]
        fut: F,
    }

    impl<F> PinnedDrop for Limited<'_, F> {
        fn drop(this: Pin<&mut Self>) {
            this.project().deadline.disarm();
        }
    }
}

impl<F: Future> Future for Limited<'_, F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(out) = this.fut.poll(cx) {
            this.deadline.disarm();
            return Poll::Ready(Some(out));
        }
        if this.deadline.expired.get() {
            this.deadline.disarm();
            return Poll::Ready(None);
        }
        let mut waker = this.deadline.waker.borrow_mut();
        match waker.as_ref() {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => *waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

/// The deadlines of one worker's connections, and the task that expires them.
#[derive(Debug)]
pub(crate) struct Sweeper {
    deadlines: RefCell<Vec<Weak<Deadline>>>,
    tick: Duration,
    /// When the last sweep ran: a clock that costs no system call to read, for deadlines that
    /// are armed far more often than they fire (the write deadline, armed for every flush).
    swept_at: Cell<Instant>,
}

impl Sweeper {
    /// A sweeper precise to `tick`.
    pub(crate) fn new(tick: Duration) -> Rc<Sweeper> {
        Rc::new(Sweeper {
            deadlines: RefCell::new(Vec::new()),
            tick,
            swept_at: Cell::new(Instant::now()),
        })
    }

    /// A deadline `timeout` from now, read from the sweeper's clock instead of the system's:
    /// not early while sweeps run on time (one a tick), and up to two ticks late.
    pub(crate) fn coarse_deadline(&self, timeout: Duration) -> Instant {
        self.swept_at.get() + self.tick + timeout
    }

    /// The tick for timeouts as short as `shortest`: an eighth of it, between 5 ms and 250 ms.
    pub(crate) fn tick_for(shortest: Duration) -> Duration {
        (shortest / 8).clamp(Duration::from_millis(5), Duration::from_millis(250))
    }

    /// A deadline for a new connection, swept until the connection drops it.
    pub(crate) fn register(&self) -> Rc<Deadline> {
        let d = Rc::new(Deadline::default());
        self.deadlines.borrow_mut().push(Rc::downgrade(&d));
        d
    }

    /// Expires the armed deadlines that passed by `now` and forgets closed connections.
    fn sweep(&self, now: Instant) {
        self.swept_at.set(now);
        let mut expired = Vec::new();
        self.deadlines.borrow_mut().retain(|weak| {
            let Some(d) = weak.upgrade() else {
                return false;
            };
            if d.at.get().is_some_and(|at| at <= now) && !d.expired.get() {
                d.expired.set(true);
                expired.push(d);
            }
            true
        });
        // Woken outside the borrow: a woken task may register a new connection.
        for d in expired {
            if let Some(w) = d.waker.borrow_mut().take() {
                w.wake();
            }
        }
    }

    /// Sweeps every tick until the worker stops (spawn it on the worker's runtime).
    pub(crate) async fn run(self: Rc<Sweeper>) {
        loop {
            monoio::time::sleep(self.tick).await;
            self.sweep(Instant::now());
        }
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
    fn a_read_past_its_deadline_is_cut_within_a_tick() {
        rt().block_on(async {
            let sweeper = Sweeper::new(Duration::from_millis(10));
            monoio::spawn(Rc::clone(&sweeper).run());
            let d = sweeper.register();
            let began = Instant::now();
            let out = d
                .limit(
                    began + Duration::from_millis(50),
                    std::future::pending::<()>(),
                )
                .await;
            let took = began.elapsed();
            assert_eq!(out, None);
            assert!(took >= Duration::from_millis(50), "{took:?}");
            assert!(took < Duration::from_millis(500), "{took:?}");
            // Re-armed, a read that finishes in time keeps its output.
            let out = d
                .limit(Instant::now() + Duration::from_millis(200), async {
                    monoio::time::sleep(Duration::from_millis(20)).await;
                    3
                })
                .await;
            assert_eq!(out, Some(3));
        });
    }

    #[test]
    fn a_coarse_deadline_is_never_early() {
        let sweeper = Sweeper::new(Duration::from_millis(10));
        let before = Instant::now();
        sweeper.sweep(before);
        let at = sweeper.coarse_deadline(Duration::from_secs(1));
        assert!(at >= before + Duration::from_secs(1));
        assert!(at <= before + Duration::from_millis(1010));
    }

    #[test]
    fn only_passed_and_armed_deadlines_expire_and_closed_ones_are_forgotten() {
        let sweeper = Sweeper::new(Duration::from_millis(10));
        let now = Instant::now();
        let passed = sweeper.register();
        passed.at.set(Some(now - Duration::from_millis(1)));
        let pending = sweeper.register();
        pending.at.set(Some(now + Duration::from_secs(1)));
        let idle = sweeper.register();
        drop(sweeper.register());
        sweeper.sweep(now);
        assert!(passed.expired.get());
        assert!(!pending.expired.get());
        assert!(!idle.expired.get());
        assert_eq!(
            sweeper.deadlines.borrow().len(),
            3,
            "the dropped one is forgotten"
        );
    }

    #[test]
    fn ticks_follow_the_shortest_timeout() {
        assert_eq!(
            Sweeper::tick_for(Duration::from_millis(200)),
            Duration::from_millis(25)
        );
        assert_eq!(
            Sweeper::tick_for(Duration::from_secs(60)),
            Duration::from_millis(250)
        );
        assert_eq!(
            Sweeper::tick_for(Duration::from_millis(1)),
            Duration::from_millis(5)
        );
    }
}
