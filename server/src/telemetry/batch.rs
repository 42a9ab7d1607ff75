//! Timing a connection's batch of pipelined requests: the requests the chain left to be timed
//! at the write that carries their responses, and the sampled requests whose trace is logged
//! once their write phase ends.

use std::rc::Rc;

use http::Method;

use super::{Phases, RequestSlot, ThreadTelemetry};
use crate::clock;
use crate::middleware::RequestIdValue;

/// What one connection has answered and not yet timed or traced.
#[derive(Default)]
pub(crate) struct BatchTiming {
    /// Sampled requests of the current batch. Empty, and unallocated, for almost every batch.
    traces: Vec<PendingTrace>,
    /// Requests answered but not yet timed, when the chain times them at the flush (see
    /// `Chain::times_at_flush` in `middleware`).
    untimed: Option<Untimed>,
}

/// A run of answered requests in one telemetry series that arrived together (one read):
/// timed with one clock read when the write that carries their responses is issued.
#[derive(Clone, Copy)]
struct Untimed {
    slot: RequestSlot,
    start: clock::Instant,
    count: u32,
}

/// A sampled request whose response is encoded but not yet written.
pub(crate) struct PendingTrace {
    pub(crate) request_id: Option<RequestIdValue>,
    pub(crate) method: Method,
    pub(crate) route: Option<Rc<str>>,
    pub(crate) status: u16,
    /// Every phase but `write`, which ends when the batch is flushed.
    pub(crate) phases: Phases,
    /// When encoding began: the start of the write phase.
    pub(crate) encode_start: clock::Instant,
}

impl BatchTiming {
    /// Counts a request to time at the next flush: one more in the current run when it is of
    /// the same series and read, otherwise the run is timed now and a new one begins.
    #[inline]
    pub(crate) fn add_untimed(
        &mut self,
        slot: RequestSlot,
        start: clock::Instant,
        telemetry: Option<&Rc<ThreadTelemetry>>,
    ) {
        match &mut self.untimed {
            Some(run) if run.slot == slot && run.start == start && run.count < u32::MAX => {
                run.count += 1;
            }
            _ => {
                self.time_untimed(telemetry);
                self.untimed = Some(Untimed {
                    slot,
                    start,
                    count: 1,
                });
            }
        }
    }

    /// Times the requests not yet timed: their responses are ready to be sent.
    #[inline]
    pub(crate) fn time_untimed(&mut self, telemetry: Option<&Rc<ThreadTelemetry>>) {
        if let Some(run) = self.untimed.take() {
            if let Some(telemetry) = telemetry {
                let elapsed = clock::now().saturating_duration_since(run.start);
                telemetry.observe_requests(run.slot, run.count, elapsed);
            }
        }
    }

    /// Keeps a sampled request's trace until its batch is written.
    pub(crate) fn push_trace(&mut self, trace: PendingTrace) {
        self.traces.push(trace);
    }

    /// Whether a sampled request waits for its write to end.
    #[inline]
    pub(crate) fn has_traces(&self) -> bool {
        !self.traces.is_empty()
    }

    /// Logs the sampled requests of the batch just written, now that their write phase ended.
    pub(crate) fn log_traces(&mut self, telemetry: Option<&Rc<ThreadTelemetry>>) {
        let Some(telemetry) = telemetry else {
            self.traces.clear();
            return;
        };
        let now = clock::now();
        for t in self.traces.drain(..) {
            let phases = Phases {
                write: now.saturating_duration_since(t.encode_start),
                ..t.phases
            };
            let id = t.request_id.as_ref().map_or("-", |id| id.as_str());
            telemetry.log_trace(id, &t.method, t.route.as_deref(), t.status, &phases);
        }
    }
}
