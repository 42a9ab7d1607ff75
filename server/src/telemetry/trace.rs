//! Per-request phase timing for sampled traces: which request is running *right now* on this
//! thread, so that database and render time land on the request that spent it.
//!
//! A worker interleaves many requests on one thread, so a thread-wide "current request" would
//! be wrong across `.await`s. What is true is narrower: while a task is being *polled*, nothing
//! else runs on the thread. `Traced` wraps the handler future of a sampled request and marks
//! its recorder as current for the duration of each poll only; the ORM's query observer (through
//! [`ThreadTelemetry::observe_query`](super::ThreadTelemetry::observe_query)) and
//! [`render`] add to whatever recorder is current, which is the sampled request's, or none.
//!
//! A request that is not sampled is never wrapped, so the cost for it is one thread-local read
//! per query and per rendered body.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// One sampled request, as logged: what `ThreadTelemetry::log_trace`
/// (super::ThreadTelemetry::log_trace) hands to a [`TraceWriter`], or logs as a `tracing`
/// event (target `pinion::trace`, level INFO, message `sampled request`) without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceRecord<'a> {
    /// The request id (`-` when the request-id middleware is off).
    pub request_id: &'a str,
    /// The method, upper case (`OTHER` for an extension method, as in the metrics).
    pub method: &'static str,
    /// The route template, or `unmatched`.
    pub route: &'a str,
    /// The response status.
    pub status: u16,
    /// Read, handler and write time together, in microseconds.
    pub total_us: u64,
    /// From the request's bytes arriving to its handler starting, in microseconds.
    pub read_us: u64,
    /// The handler, in microseconds.
    pub handler_us: u64,
    /// Wall time with at least one query in flight, in microseconds.
    pub database_us: u64,
    /// Template rendering, in microseconds.
    pub render_us: u64,
    /// From encoding the response to its batch being written, in microseconds.
    pub write_us: u64,
}

impl TraceRecord<'_> {
    /// Logs the trace as its `tracing` event: target `pinion::trace`, level INFO, message
    /// `sampled request`, the id as text and every other field as itself.
    pub fn log(&self) {
        tracing::info!(
            target: "pinion::trace",
            request_id = %self.request_id,
            method = self.method,
            route = self.route,
            status = self.status,
            total_us = self.total_us,
            read_us = self.read_us,
            handler_us = self.handler_us,
            database_us = self.database_us,
            render_us = self.render_us,
            write_us = self.write_us,
            "sampled request"
        );
    }
}

/// Writes sampled traces in place of the `tracing` event: a binary that knows its log format
/// and sink can write the line directly. Through `tracing`'s formatting machinery a trace cost
/// about 11 000 instructions, one hundred per request at the default 1 % sampling, a tenth of
/// the default middleware chain's cost (callgrind, pipelined plaintext).
///
/// The writer decides itself whether the line is wanted (a log filter).
pub type TraceWriter = Arc<dyn Fn(&TraceRecord<'_>) + Send + Sync>;

/// Database and render time of one sampled request, added to while its handler is polled.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    /// Each query's `(start, end)`. Pipelined queries overlap, so their durations cannot just
    /// be summed: the database phase is the length of the union of these intervals.
    queries: RefCell<Vec<(Instant, Instant)>>,
    render: Cell<Duration>,
}

impl Recorder {
    /// Wall time during which at least one query of this request was in flight.
    pub(crate) fn database(&self) -> Duration {
        let mut spans = self.queries.borrow().clone();
        spans.sort_unstable();
        let mut total = Duration::ZERO;
        let mut covered: Option<(Instant, Instant)> = None;
        for (start, end) in spans {
            match &mut covered {
                Some((_, until)) if start <= *until => *until = (*until).max(end),
                _ => {
                    if let Some((s, e)) = covered {
                        total += e - s;
                    }
                    covered = Some((start, end));
                }
            }
        }
        if let Some((s, e)) = covered {
            total += e - s;
        }
        total
    }

    /// Time spent rendering bodies so far.
    pub(crate) fn render(&self) -> Duration {
        self.render.get()
    }
}

thread_local! {
    /// The recorder of the sampled request being polled on this thread, if any.
    static CURRENT: RefCell<Option<Rc<Recorder>>> = const { RefCell::new(None) };
}

/// Whether a sampled request is being polled on this thread right now.
fn active() -> bool {
    CURRENT.with(|c| c.borrow().is_some())
}

fn with_current(f: impl FnOnce(&Recorder)) {
    CURRENT.with(|c| {
        if let Some(rec) = c.borrow().as_deref() {
            f(rec);
        }
    });
}

/// Adds a query that just finished after `elapsed` to the sampled request being polled, if any.
pub(crate) fn add_database(elapsed: Duration) {
    with_current(|r| {
        let end = Instant::now();
        let start = end.checked_sub(elapsed).unwrap_or(end);
        r.queries.borrow_mut().push((start, end));
    });
}

/// Runs `f`, a body renderer (a template, a JSON encoder), and counts its time as the *render*
/// phase of the sampled request being polled, if any; otherwise just runs it (no clock read).
///
/// [`Response::json`](crate::Response::json) already goes through this; call it around a
/// template's `render()` so that sampled traces show where rendering time goes.
pub fn render<T>(f: impl FnOnce() -> T) -> T {
    if !active() {
        return f();
    }
    let started = Instant::now();
    let out = f();
    let elapsed = started.elapsed();
    with_current(|r| r.render.set(r.render.get() + elapsed));
    out
}

/// A handler future whose polls run with its [`Recorder`] current.
pub(crate) struct Traced<F> {
    inner: Pin<Box<F>>,
    recorder: Rc<Recorder>,
}

impl<F> Traced<F> {
    /// Wraps `inner`; only sampled requests pay for the box.
    pub(crate) fn new(inner: F, recorder: Rc<Recorder>) -> Traced<F> {
        Traced {
            inner: Box::pin(inner),
            recorder,
        }
    }
}

impl<F: Future> Future for Traced<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let previous = CURRENT.with(|c| c.replace(Some(Rc::clone(&self.recorder))));
        // Restore on the way out even if the handler panics (with panic=unwind in tests).
        struct Restore(Option<Rc<Recorder>>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let previous = self.0.take();
                CURRENT.with(|c| *c.borrow_mut() = previous);
            }
        }
        let _restore = Restore(previous);
        self.inner.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    /// A future that records database time when polled the first time, pends once, then
    /// renders.
    struct Steps(u8);

    impl Future for Steps {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.0 += 1;
            if self.0 == 1 {
                add_database(Duration::from_millis(3));
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            render(|| std::thread::sleep(Duration::from_millis(2)));
            Poll::Ready(())
        }
    }

    fn poll_to_end<F: Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
                return out;
            }
        }
    }

    #[test]
    fn time_lands_on_the_request_being_polled() {
        let rec = Rc::new(Recorder::default());
        poll_to_end(Traced::new(Steps(0), Rc::clone(&rec)));
        assert_eq!(rec.database(), Duration::from_millis(3));
        assert!(
            rec.render() >= Duration::from_millis(2),
            "{:?}",
            rec.render()
        );
        // Nothing is current once the traced future has returned.
        assert!(!active());
    }

    #[test]
    fn untraced_work_between_polls_is_not_counted() {
        let rec = Rc::new(Recorder::default());
        let mut traced = std::pin::pin!(Traced::new(Steps(0), Rc::clone(&rec)));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(traced.as_mut().poll(&mut cx).is_pending());
        // Another (unsampled) request runs between two polls of the sampled one.
        add_database(Duration::from_secs(1));
        render(|| ());
        assert!(traced.as_mut().poll(&mut cx).is_ready());
        assert_eq!(rec.database(), Duration::from_millis(3));
    }

    #[test]
    fn nested_traces_restore_the_outer_one() {
        let outer = Rc::new(Recorder::default());
        let inner = Rc::new(Recorder::default());
        let inner2 = Rc::clone(&inner);
        poll_to_end(Traced::new(
            async move {
                add_database(Duration::from_millis(1));
                poll_to_end(Traced::new(
                    async { add_database(Duration::from_millis(5)) },
                    inner2,
                ));
                add_database(Duration::from_millis(1));
            },
            Rc::clone(&outer),
        ));
        assert!(
            outer.database() >= Duration::from_millis(1),
            "{:?}",
            outer.database()
        );
        assert!(
            outer.database() <= Duration::from_millis(2),
            "{:?}",
            outer.database()
        );
        assert_eq!(inner.database(), Duration::from_millis(5));
    }

    #[test]
    fn overlapping_queries_count_once() {
        let rec = Recorder::default();
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // Three pipelined queries (0–10, 2–12, 4–9 ms) and a later one (20–25 ms).
        for (s, e) in [(0, 10), (2, 12), (4, 9), (20, 25)] {
            rec.queries.borrow_mut().push((t0 + ms(s), t0 + ms(e)));
        }
        assert_eq!(rec.database(), ms(12 + 5));
    }
}
