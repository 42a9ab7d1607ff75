//! The clock request durations are measured with.
//!
//! `std::time::Instant::now()` is `clock_gettime` through the vDSO: ~24 ns a read on the bench
//! VM. With the middleware chain on, every request reads the clock twice (its start, with the
//! read that brought it, and its end, for `Server-Timing` and the duration histogram), so the
//! clock alone was a fifth of what the chain costs. [`quanta`] reads the TSC instead, ~10 ns,
//! scaled to nanoseconds against the OS clock once per process, and uses the OS clock itself
//! where the TSC is not invariant across cores. Deadlines and timers keep `std` (monoio's timer
//! wheel takes `std::time::Instant`); only durations use this clock.

/// A point on the duration clock; subtract two for a `Duration`.
pub(crate) type Instant = quanta::Instant;

/// The process's clock. `quanta::Instant::now()` would do the same work behind a
/// thread-local check for a mocked clock (45 instructions a read, callgrind); the clock itself
/// is a `rdtsc` and a multiply-shift.
static CLOCK: std::sync::OnceLock<quanta::Clock> = std::sync::OnceLock::new();

/// Now, on the duration clock.
#[inline]
pub(crate) fn now() -> Instant {
    CLOCK.get_or_init(quanta::Clock::new).now()
}

/// Calibrates the clock (~1 ms, once per process), so that the first request does not pay it.
pub(crate) fn calibrate() {
    let _ = now();
}

/// The `std` instant at which `at` (on the duration clock) happened: for the public API, which
/// speaks `std::time::Instant`. Exact to the two clocks' read times, tens of nanoseconds.
pub(crate) fn to_std(at: Instant) -> std::time::Instant {
    let (std_now, now) = (std::time::Instant::now(), now());
    std_now
        .checked_sub(now.saturating_duration_since(at))
        .unwrap_or(std_now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A duration-clock read bracketed by two OS-clock reads, so that a preemption between
    /// them widens the bounds instead of failing the test.
    fn bracketed() -> (std::time::Instant, Instant, std::time::Instant) {
        (std::time::Instant::now(), now(), std::time::Instant::now())
    }

    /// Calibration error: quanta scales the TSC against the OS clock; 1 % is far looser than
    /// it achieves and far tighter than a broken scale (a wrong frequency is off by 10 % or more).
    fn slack(d: Duration) -> Duration {
        d / 100 + Duration::from_micros(100)
    }

    #[test]
    fn durations_agree_with_the_os_clock() {
        let (a0, q0, b0) = bracketed();
        std::thread::sleep(Duration::from_millis(50));
        let (a1, q1, b1) = bracketed();
        let q = q1.duration_since(q0);
        let (shortest, longest) = (a1 - b0, b1 - a0);
        assert!(
            q + slack(q) >= shortest && q <= longest + slack(q),
            "tsc {q:?}, os between {shortest:?} and {longest:?}"
        );
    }

    #[test]
    fn a_point_converts_to_the_matching_std_instant() {
        let (before, at, after) = bracketed();
        std::thread::sleep(Duration::from_millis(20));
        let back = to_std(at);
        let s = slack(Duration::from_millis(20));
        assert!(
            back + s >= before && back <= after + s,
            "{back:?} not within {before:?}..{after:?}"
        );
    }
}
