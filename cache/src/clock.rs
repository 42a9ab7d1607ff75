//! Wall-clock time for expiry: the system's coarse clock, or a manual one for tests.
//!
//! Expiry is wall-clock (`SystemTime`), not `Instant`, because entries cross processes: the
//! PostgreSQL tier stores the expiry as a timestamp every instance compares with its own clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The time source a cache checks expiry against.
///
/// [`Clock::system`] reads the kernel's coarse real-time clock (a few ns through the vDSO,
/// ~4 ms resolution, plenty for TTLs in seconds); [`Clock::manual`] is moved by hand, so
/// tests exercise expiry without sleeping.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    kind: ClockKind,
}

#[derive(Debug, Clone, Default)]
enum ClockKind {
    #[default]
    System,
    /// Nanoseconds since the Unix epoch, shared with the [`ManualClock`] handle.
    Manual(Arc<AtomicU64>),
}

impl Clock {
    /// The system clock. This is the default.
    pub fn system() -> Self {
        Clock {
            kind: ClockKind::System,
        }
    }

    /// A clock that stands still at `start` until its [`ManualClock`] handle moves it.
    pub fn manual(start: SystemTime) -> (Clock, ManualClock) {
        let nanos = Arc::new(AtomicU64::new(nanos_since_epoch(start)));
        let clock = Clock {
            kind: ClockKind::Manual(Arc::clone(&nanos)),
        };
        (clock, ManualClock { nanos })
    }

    /// The current time.
    #[inline]
    pub fn now(&self) -> SystemTime {
        match &self.kind {
            ClockKind::System => coarse_now(),
            ClockKind::Manual(nanos) => {
                UNIX_EPOCH + Duration::from_nanos(nanos.load(Ordering::Acquire))
            }
        }
    }
}

impl Clock {
    /// The current time in nanoseconds since the Unix epoch: what
    /// [`LocMemCache`](crate::LocMemCache) compares its stored deadlines with on every hit that
    /// has one, without building a `SystemTime`.
    #[inline]
    pub(crate) fn now_nanos(&self) -> u64 {
        match &self.kind {
            ClockKind::System => coarse_now_nanos(),
            ClockKind::Manual(nanos) => nanos.load(Ordering::Acquire),
        }
    }
}

/// The handle that moves a [`Clock::manual`] clock.
#[derive(Debug, Clone)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(by, Ordering::AcqRel);
    }

    /// Sets the clock to `to`.
    pub fn set(&self, to: SystemTime) {
        self.nanos.store(nanos_since_epoch(to), Ordering::Release);
    }
}

/// `t` in nanoseconds since the Unix epoch: 0 before it, `u64::MAX` from the year 2554.
pub(crate) fn nanos_since_epoch(t: SystemTime) -> u64 {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
}

/// `CLOCK_REALTIME_COARSE`: no TSC read, so several times cheaper than `SystemTime::now()` on
/// the get path (measured in `benches/locmem.rs`: every hit with a TTL reads the clock).
#[cfg(target_os = "linux")]
#[inline]
fn coarse_now() -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(coarse_now_nanos())
}

/// [`coarse_now`] in nanoseconds since the Unix epoch.
#[cfg(target_os = "linux")]
#[inline]
fn coarse_now_nanos() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call, and
    // CLOCK_REALTIME_COARSE exists on every Linux since 2.6.32.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    if rc != 0 {
        return nanos_since_epoch(SystemTime::now());
    }
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

#[cfg(not(target_os = "linux"))]
#[inline]
fn coarse_now() -> SystemTime {
    SystemTime::now()
}

#[cfg(not(target_os = "linux"))]
#[inline]
fn coarse_now_nanos() -> u64 {
    nanos_since_epoch(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_is_close_to_std() {
        let ours = Clock::system().now();
        let std = SystemTime::now();
        let gap = std.duration_since(ours).unwrap_or_else(|e| e.duration());
        assert!(gap < Duration::from_millis(50), "{gap:?}");
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let start = UNIX_EPOCH + Duration::from_secs(1_000);
        let (clock, hand) = Clock::manual(start);
        assert_eq!(clock.now(), start);
        hand.advance(Duration::from_secs(5));
        assert_eq!(clock.now(), start + Duration::from_secs(5));
        hand.set(start);
        assert_eq!(clock.now(), start);
        assert_eq!(clock.now_nanos(), 1_000_000_000_000);
    }
}
