//! `io_batch_wait`: how long a busy io_uring worker may gather completions before it wakes
//! (the patched monoio's `set_uring_batch`, vendor/README.md), scaled to this thread's
//! requests.
//!
//! A batch wait lengthens every wake-up of a busy worker by up to the wait, so it is cheap
//! only where requests already take much longer (hundreds of connections, each request
//! waiting milliseconds on the database) and costly for a few clients that wait for each
//! answer in a fraction of a millisecond. The wait is therefore a sixteenth of the typical
//! (median) request duration of the last telemetry interval, at most `io_batch_wait`: about
//! 6 % more latency per wake-up, whatever the load. A wait under [`MIN_WAIT`] is not worth its
//! timer (measured: `/db` with 16 connections, a 6 µs wait cost 75 % more CPU per request),
//! so requests faster than about 0.8 ms are never batched. Without telemetry, no duration is
//! known and the worker never batches.

use std::cell::Cell;
use std::time::Duration;

/// Completions a batched wake-up waits for at most.
const COMPLETIONS: u32 = 64;

/// The share of the typical request duration a wake-up may wait: 1/16.
const SHARE: u32 = 16;

/// The shortest wait worth arming a timer for; shorter ones are no batching at all.
const MIN_WAIT: Duration = Duration::from_micros(50);

thread_local! {
    /// This worker's `io_batch_wait` (zero: off, and never tuned).
    static MAX: Cell<Duration> = const { Cell::new(Duration::ZERO) };
}

/// Sets this worker thread's `io_batch_wait`; batching starts once a typical request
/// duration is known ([`tune`]).
pub(crate) fn start(max: Duration) {
    MAX.with(|m| m.set(max));
    monoio::set_uring_batch(COMPLETIONS, Duration::ZERO);
}

/// The wait for a worker whose requests typically take `typical`, at most `max`.
pub(crate) fn wait_for(typical: Duration, max: Duration) -> Duration {
    let wait = (typical / SHARE).min(max);
    if wait < MIN_WAIT {
        Duration::ZERO
    } else {
        wait
    }
}

/// Scales this worker's batch wait to `typical`, the median request duration it just
/// measured; nothing on a thread that did not [`start`] batching.
pub(crate) fn tune(typical: Duration) {
    let max = MAX.with(Cell::get);
    if !max.is_zero() {
        monoio::set_uring_batch(COMPLETIONS, wait_for(typical, max));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_is_a_sixteenth_of_the_typical_request_capped_by_the_setting_and_off_when_short() {
        let max = Duration::from_micros(200);
        assert_eq!(
            wait_for(Duration::from_millis(1), max),
            Duration::from_micros(62) + Duration::from_nanos(500)
        );
        assert_eq!(wait_for(Duration::from_millis(25), max), max);
        // Too short to be worth a timer: off.
        assert_eq!(wait_for(Duration::from_micros(500), max), Duration::ZERO);
        assert_eq!(wait_for(Duration::ZERO, max), Duration::ZERO);
    }
}
