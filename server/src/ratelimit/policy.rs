//! A named limit: `quota` requests per `window`, with a burst tolerance.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;

use super::client::ClientKey;
use super::error::InvalidConfig;

/// The longest policy name accepted: it travels in every `RateLimit` header.
pub const MAX_POLICY_NAME: usize = 64;

/// The most nanoseconds a policy may keep ahead of the clock (`burst × T`): 2⁶² ns, about
/// 146 years, so that `now + burst × T` never overflows a `u64` of nanoseconds since 1970.
const MAX_DEPTH_NANOS: u128 = 1 << 62;

/// A rate-limit policy: at most `quota` requests per `window` on average, of which up to
/// `burst` may arrive back to back.
///
/// GCRA parameters, derived once here:
/// - the **emission interval** `T = window / quota` (rounded down to the nanosecond): the
///   steady-state spacing of requests;
/// - the **tolerance** `τ = T × (burst − 1)`: how far ahead of the clock a client's theoretical
///   arrival time may run. A fresh client may send `burst` requests at once, then one per `T`.
///
/// The name identifies the policy to clients (`RateLimit-Policy: "name";q=…;w=…`) and keys
/// its state, so two different policies must not share a name. The `RateLimit-Policy` value
/// is rendered once, here. `Send + Sync`.
///
/// Cloning copies the name and the rendered header rather than sharing them: give each worker
/// its own clone at start-up, and answering a request touches no reference count that another
/// core also writes. (Do not clone per request; borrow.)
#[derive(Debug)]
pub struct Policy {
    name: Arc<str>,
    quota: u32,
    window: Duration,
    burst: u32,
    interval: u64,
    tolerance: u64,
    /// `"name"`: the name as a structured-field String, quotes and escapes included.
    pub(super) sf_name: Box<str>,
    policy_header: HeaderValue,
}

impl Policy {
    /// `quota` requests per `window`, with a burst of `quota` (a client that was idle for a
    /// whole window may spend the whole quota at once). See [`with_burst`](Self::with_burst).
    ///
    /// # Errors
    /// When `name` is empty, longer than [`MAX_POLICY_NAME`] or not printable ASCII; when
    /// `quota` or `window` is 0; when `window / quota` is under a nanosecond.
    pub fn new(name: &str, quota: u32, window: Duration) -> Result<Policy, InvalidConfig> {
        Policy::build(name, quota, window, quota)
    }

    /// The same policy with `burst` requests allowed back to back (`τ = T × (burst − 1)`).
    /// `burst = 1` spaces every request by `T`; `burst > quota` lets an idle client exceed
    /// the quota within one window. Default is `quota`.
    ///
    /// # Errors
    /// When `burst` is 0, or so large that `burst × T` exceeds about 146 years.
    pub fn with_burst(self, burst: u32) -> Result<Policy, InvalidConfig> {
        Policy::build(&self.name, self.quota, self.window, burst)
    }

    fn build(
        name: &str,
        quota: u32,
        window: Duration,
        burst: u32,
    ) -> Result<Policy, InvalidConfig> {
        if name.is_empty() || name.len() > MAX_POLICY_NAME {
            return Err(InvalidConfig::new(format!(
                "rate-limit policy name {name:?} must have 1 to {MAX_POLICY_NAME} characters"
            )));
        }
        if !name.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            return Err(InvalidConfig::new(format!(
                "rate-limit policy name {name:?} must be printable ASCII"
            )));
        }
        if quota == 0 {
            return Err(InvalidConfig::new(format!(
                "rate-limit policy {name:?}: quota must be at least 1"
            )));
        }
        if window.is_zero() {
            return Err(InvalidConfig::new(format!(
                "rate-limit policy {name:?}: window must be greater than 0"
            )));
        }
        if burst == 0 {
            return Err(InvalidConfig::new(format!(
                "rate-limit policy {name:?}: burst must be at least 1"
            )));
        }
        let interval = window.as_nanos() / u128::from(quota);
        if interval == 0 {
            return Err(InvalidConfig::new(format!(
                "rate-limit policy {name:?}: quota {quota} is over one per nanosecond"
            )));
        }
        if interval * u128::from(burst) > MAX_DEPTH_NANOS {
            return Err(InvalidConfig::new(format!(
                "rate-limit policy {name:?}: burst {burst} with window {window:?} is too long to track"
            )));
        }
        // Both fit: interval × burst ≤ 2⁶².
        let interval = interval as u64;
        let tolerance = interval * u64::from(burst - 1);

        let mut sf_name = String::with_capacity(name.len() + 2);
        sf_name.push('"');
        for c in name.chars() {
            if matches!(c, '"' | '\\') {
                sf_name.push('\\');
            }
            sf_name.push(c);
        }
        sf_name.push('"');
        let mut q = itoa::Buffer::new();
        let mut w = itoa::Buffer::new();
        let rendered = format!(
            "{sf_name};q={};w={}",
            q.format(quota),
            w.format(window_secs(window))
        );
        let policy_header = HeaderValue::from_str(&rendered).map_err(|_| {
            InvalidConfig::new(format!(
                "rate-limit policy name {name:?} is not a header value"
            ))
        })?;

        Ok(Policy {
            name: name.into(),
            quota,
            window,
            burst,
            interval,
            tolerance,
            sf_name: sf_name.into_boxed_str(),
            policy_header,
        })
    }

    /// The policy's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Requests per window.
    pub fn quota(&self) -> u32 {
        self.quota
    }

    /// The window the quota is counted over.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Requests that may arrive back to back.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// `T = window / quota`, in nanoseconds.
    pub fn interval_nanos(&self) -> u64 {
        self.interval
    }

    /// `τ = T × (burst − 1)`, in nanoseconds.
    pub fn tolerance_nanos(&self) -> u64 {
        self.tolerance
    }

    /// `T` as a duration (what `pinion_orm::PgRateStore::decide` takes).
    pub fn emission_interval(&self) -> Duration {
        Duration::from_nanos(self.interval)
    }

    /// `τ` as a duration (what `pinion_orm::PgRateStore::decide` takes).
    pub fn tolerance(&self) -> Duration {
        Duration::from_nanos(self.tolerance)
    }

    /// The `RateLimit-Policy` value, `"name";q=<quota>;w=<window seconds>`, rendered at
    /// construction. The draft counts windows in whole seconds: a window with a fraction is
    /// shown rounded up (`1500ms` as `w=2`).
    pub fn policy_header(&self) -> &HeaderValue {
        &self.policy_header
    }

    /// The key of `client` under this policy in a store shared by several policies (the
    /// PostgreSQL table): the quoted name, a space, the client key — `"burst" ip:192.0.2.7`.
    /// The name is quoted and escaped as in the header, so where it ends is never in doubt and
    /// keys of different policies never meet.
    pub fn store_key(&self, client: &ClientKey) -> String {
        format!("{} {client}", self.sf_name)
    }

    pub(super) fn name_arc(&self) -> &Arc<str> {
        &self.name
    }
}

impl Clone for Policy {
    fn clone(&self) -> Policy {
        Policy {
            name: Arc::from(&*self.name),
            quota: self.quota,
            window: self.window,
            burst: self.burst,
            interval: self.interval,
            tolerance: self.tolerance,
            sf_name: self.sf_name.clone(),
            // A fresh buffer, not a shared one.
            policy_header: HeaderValue::from_bytes(self.policy_header.as_bytes())
                .unwrap_or_else(|_| self.policy_header.clone()),
        }
    }
}

/// `window` in whole seconds, rounded up (at least 1).
fn window_secs(window: Duration) -> u64 {
    (window.as_secs() + u64::from(window.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn parameters_are_derived_exactly() {
        let p = Policy::new("burst", 5, MIN).expect("valid");
        assert_eq!(p.interval_nanos(), 12_000_000_000);
        assert_eq!(p.tolerance_nanos(), 48_000_000_000);
        assert_eq!(p.burst(), 5);
        let p = p.with_burst(1).expect("valid");
        assert_eq!(p.tolerance_nanos(), 0);
        // A remainder is dropped: 10 s / 3 = 3.333333333 s.
        let p = Policy::new("x", 3, Duration::from_secs(10)).expect("valid");
        assert_eq!(p.interval_nanos(), 3_333_333_333);
        assert_eq!(p.tolerance_nanos(), 6_666_666_666);
    }

    #[test]
    fn policy_header_is_a_structured_field() {
        let p = Policy::new("burst", 100, MIN).expect("valid");
        assert_eq!(p.policy_header().as_bytes(), b"\"burst\";q=100;w=60");
        let p = Policy::new(r#"say "hi" \o/"#, 1, Duration::from_secs(1)).expect("valid");
        assert_eq!(
            p.policy_header().as_bytes(),
            br#""say \"hi\" \\o/";q=1;w=1"#
        );
        // Fractions of a second are rounded up; the rate itself is exact.
        let p = Policy::new("fast", 3, Duration::from_millis(1500)).expect("valid");
        assert_eq!(p.policy_header().as_bytes(), b"\"fast\";q=3;w=2");
        assert_eq!(p.interval_nanos(), 500_000_000);
        let p = Policy::new("tiny", 1, Duration::from_millis(10)).expect("valid");
        assert_eq!(p.policy_header().as_bytes(), b"\"tiny\";q=1;w=1");
    }

    #[test]
    fn a_clone_is_the_same_policy_with_its_own_buffers() {
        let p = Policy::new("api", 100, MIN)
            .and_then(|p| p.with_burst(20))
            .expect("valid");
        let c = p.clone();
        assert_eq!(
            (c.name(), c.quota(), c.window(), c.burst()),
            (p.name(), p.quota(), p.window(), p.burst())
        );
        assert_eq!(c.tolerance_nanos(), p.tolerance_nanos());
        assert_eq!(c.policy_header(), p.policy_header());
        assert!(!Arc::ptr_eq(c.name_arc(), p.name_arc()));
        assert_ne!(
            c.policy_header().as_bytes().as_ptr(),
            p.policy_header().as_bytes().as_ptr()
        );
    }

    #[test]
    fn bad_policies_are_refused() {
        for (name, quota, window, burst) in [
            ("", 1, MIN, 1),
            ("caf\u{e9}", 1, MIN, 1),
            ("tab\t", 1, MIN, 1),
            ("q0", 0, MIN, 1),
            ("w0", 1, Duration::ZERO, 1),
            ("b0", 1, MIN, 0),
            ("tiny", u32::MAX, Duration::from_secs(1), 1),
            ("deep", 1, Duration::from_secs(86_400 * 365), u32::MAX),
        ] {
            let r = Policy::new(name, quota, window).and_then(|p| p.with_burst(burst));
            assert!(r.is_err(), "{name:?} accepted");
        }
        assert!(Policy::new(&"n".repeat(65), 1, MIN).is_err());
        assert!(Policy::new(&"n".repeat(64), 1, MIN).is_ok());
    }
}
