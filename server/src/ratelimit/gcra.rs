//! The generic cell rate algorithm, as a pure function over integer nanoseconds.
//!
//! A key's whole state is its **theoretical arrival time** (TAT): when the key's requests
//! would have arrived had they come exactly one emission interval `T` apart. At `now`, with
//! `tat = max(stored, now)`, a request is allowed iff `tat − now ≤ τ`, and an allowed request
//! moves the TAT to `tat + T`. A stored TAT ≤ `now` means the same as no state at all, which
//! is why idle keys can be forgotten. Times are `u64` nanoseconds on any clock that does not
//! go backwards (a store's own monotonic clock, or the database's Unix time): no floats, no
//! rounding beyond the one in `T = window / quota`.

use std::time::Duration;

use super::policy::Policy;

/// The outcome of one decision for one key, with what the headers report.
///
/// Let `ahead = tat' − now`, where `tat'` is the key's TAT after the decision (`new_tat`), and
/// `D = τ + T = burst × T` the depth of the bucket:
/// - `remaining = ⌊(D − ahead) / T⌋`, or 0 when `ahead > D`: how many more requests would be
///   allowed if they all came now (at most `burst`; 0 on every denial). The `r` of `RateLimit`.
/// - `reset_after = ahead`: when the TAT falls back to the clock, that is, when the key is
///   idle again and the full burst is available. Its seconds, rounded up, are the `t` of
///   `RateLimit`.
/// - `retry_after = max(ahead − τ, 0)`: when the next request will be allowed; zero while
///   `remaining > 0`. Its seconds, rounded up and at least 1, are `Retry-After` on a 429.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// Requests that would still be allowed right now.
    pub remaining: u32,
    /// Until the key is idle again (the whole burst replenished).
    pub reset_after: Duration,
    /// Until one more request will be allowed.
    pub retry_after: Duration,
    /// The TAT to store: advanced by `T` when allowed, unchanged when denied.
    pub new_tat: u64,
}

/// One GCRA decision: `prev_tat` is the key's stored TAT (`None` for a key without state), and
/// `now` the current time on the same clock, both in nanoseconds.
///
/// A key without state (or with a TAT in the past) is always allowed: `burst ≥ 1`. Arithmetic
/// saturates at `u64::MAX` rather than wrapping.
pub fn gcra(prev_tat: Option<u64>, now: u64, policy: &Policy) -> Decision {
    let tat = prev_tat.map_or(now, |prev| prev.max(now));
    if tat - now <= policy.tolerance_nanos() {
        Decision::from_tat(
            policy,
            true,
            tat.saturating_add(policy.interval_nanos()),
            now,
        )
    } else {
        Decision::from_tat(policy, false, tat, now)
    }
}

impl Decision {
    /// The decision a store reached elsewhere (in PostgreSQL, say), rebuilt from whether it
    /// allowed the request, the TAT it left (`tat`) and the `now` it used, in nanoseconds on
    /// one clock. `gcra(…)` and `from_tat` agree on every field.
    pub fn from_tat(policy: &Policy, allowed: bool, tat: u64, now: u64) -> Decision {
        let t = policy.interval_nanos();
        let tau = policy.tolerance_nanos();
        let ahead = tat.saturating_sub(now);
        let depth = tau + t;
        let remaining = depth.saturating_sub(ahead) / t;
        Decision {
            allowed,
            remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
            reset_after: Duration::from_nanos(ahead),
            retry_after: Duration::from_nanos(ahead.saturating_sub(tau)),
            new_tat: tat,
        }
    }

    /// `reset_after` in whole seconds, rounded up: the `t` parameter of `RateLimit`.
    pub fn reset_secs(&self) -> u64 {
        ceil_secs(self.reset_after)
    }

    /// `retry_after` in whole seconds, rounded up and at least 1: the `Retry-After` value.
    pub fn retry_after_secs(&self) -> u64 {
        ceil_secs(self.retry_after).max(1)
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn policy(quota: u32, window: u64, burst: u32) -> Policy {
        Policy::new("p", quota, Duration::from_secs(window))
            .and_then(|p| p.with_burst(burst))
            .expect("valid")
    }

    /// Runs `n` requests at `now` against `tat`, returning the decisions.
    fn burst_at(p: &Policy, tat: &mut Option<u64>, now: u64, n: usize) -> Vec<Decision> {
        (0..n)
            .map(|_| {
                let d = gcra(*tat, now, p);
                *tat = Some(d.new_tat);
                d
            })
            .collect()
    }

    #[test]
    fn burst_then_one_per_interval() {
        let p = policy(5, 60, 5);
        let start = 1_000 * S;
        let mut tat = None;
        let ds = burst_at(&p, &mut tat, start, 6);
        let allowed: Vec<bool> = ds.iter().map(|d| d.allowed).collect();
        assert_eq!(allowed, [true, true, true, true, true, false]);
        let remaining: Vec<u32> = ds.iter().map(|d| d.remaining).collect();
        assert_eq!(remaining, [4, 3, 2, 1, 0, 0]);
        let reset: Vec<u64> = ds.iter().map(Decision::reset_secs).collect();
        assert_eq!(reset, [12, 24, 36, 48, 60, 60]);
        assert_eq!(ds[5].retry_after, Duration::from_secs(12));
        assert_eq!(
            ds[5].new_tat,
            start + 60 * S,
            "a denial leaves the TAT alone"
        );
        // The fifth allowed request already says when the next one may come.
        assert_eq!(ds[4].retry_after, Duration::from_secs(12));
        assert_eq!(ds[3].retry_after, Duration::ZERO);

        // One nanosecond early: still denied, and told to wait that nanosecond (rounded to 1 s).
        let early = gcra(tat, start + 12 * S - 1, &p);
        assert!(!early.allowed);
        assert_eq!(early.retry_after, Duration::from_nanos(1));
        assert_eq!(early.retry_after_secs(), 1);
        // Exactly T later: one more, then denied again.
        let ds = burst_at(&p, &mut tat, start + 12 * S, 2);
        assert!(ds[0].allowed && !ds[1].allowed);
        assert_eq!(ds[0].remaining, 0);
        assert_eq!(ds[0].reset_secs(), 60);
    }

    #[test]
    fn idle_for_a_window_restores_the_whole_burst() {
        let p = policy(5, 60, 5);
        let mut tat = None;
        burst_at(&p, &mut tat, 0, 5);
        let ds = burst_at(&p, &mut tat, 60 * S, 6);
        assert_eq!(ds.iter().filter(|d| d.allowed).count(), 5);
        // Half a window restores half the burst (2.5, rounded down by T's granularity).
        let ds = burst_at(&p, &mut tat, 90 * S, 6);
        assert_eq!(ds.iter().filter(|d| d.allowed).count(), 2);
    }

    #[test]
    fn a_stale_tat_is_the_same_as_none() {
        let p = policy(10, 1, 3);
        assert_eq!(gcra(Some(5), 100 * S, &p), gcra(None, 100 * S, &p));
    }

    #[test]
    fn burst_one_spaces_every_request() {
        let p = policy(2, 10, 1);
        let d = gcra(None, 0, &p);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
        assert_eq!(d.retry_after, Duration::from_secs(5));
        let d = gcra(Some(d.new_tat), 0, &p);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_secs(), 5);
    }

    #[test]
    fn burst_above_quota_lets_an_idle_client_run_ahead() {
        let p = policy(2, 10, 4);
        let mut tat = None;
        let ds = burst_at(&p, &mut tat, 0, 5);
        assert_eq!(ds.iter().filter(|d| d.allowed).count(), 4);
        assert_eq!(ds[0].remaining, 3);
    }

    #[test]
    fn from_tat_agrees_with_gcra() {
        let p = policy(7, 3, 4);
        let mut tat = None;
        for step in 0..200u64 {
            let now = step * 97_000_000;
            let d = gcra(tat, now, &p);
            assert_eq!(Decision::from_tat(&p, d.allowed, d.new_tat, now), d);
            tat = Some(d.new_tat);
        }
    }

    #[test]
    fn saturates_instead_of_wrapping() {
        let p = policy(1, 1, 1);
        let d = gcra(None, u64::MAX - 1, &p);
        assert!(d.allowed);
        assert_eq!(d.new_tat, u64::MAX);
    }
}
