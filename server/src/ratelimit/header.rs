//! What a client is told: the `RateLimit-Policy` and `RateLimit` fields of
//! draft-ietf-httpapi-ratelimit-headers-10, and the 429 answer.
//!
//! Both fields are structured-field Lists (RFC 9651) of one Item, the policy name as a String:
//! - `RateLimit-Policy: "burst";q=100;w=60` — quota `q` per window of `w` seconds;
//! - `RateLimit: "burst";r=42;t=18` — `r` requests remain, and the quota is whole again in
//!   `t` seconds. Under GCRA "whole again" means the key is idle: `t` is
//!   [`Decision::reset_after`] rounded up to the second (see [`Decision`] for the
//!   definitions).

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, RETRY_AFTER};
use http::StatusCode;

use super::gcra::Decision;
use super::policy::Policy;
use crate::extract::Rejection;
use crate::h1::Response;

/// `RateLimit-Policy`.
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// `RateLimit`.
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// The default of the `ratelimit_ietf_headers` setting: the fields are sent.
pub const DEFAULT_IETF_HEADERS: bool = true;

/// Whether responses advertise the limit with the draft's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeaderMode {
    /// `RateLimit-Policy` and `RateLimit` on every response the limiter saw, 429s included.
    #[default]
    Ietf,
    /// Neither field; a 429 still carries `Retry-After`.
    Off,
}

impl HeaderMode {
    /// The mode the `ratelimit_ietf_headers` setting selects.
    pub fn from_setting(ietf_headers: bool) -> HeaderMode {
        if ietf_headers {
            HeaderMode::Ietf
        } else {
            HeaderMode::Off
        }
    }

    /// Adds the fields for `decision` to `response` (nothing when [`Off`](Self::Off)).
    pub fn apply(self, response: &mut Response, policy: &Policy, decision: &Decision) {
        if self == HeaderMode::Ietf {
            response.insert_header(RATELIMIT_POLICY, policy.policy_header().clone());
            response.insert_header(RATELIMIT, rate_limit_value(policy, decision));
        }
    }
}

/// The `RateLimit` value for `decision`: `"name";r=<remaining>;t=<reset seconds>`, rendered
/// into one buffer of the exact size, which becomes the value without a copy.
pub fn rate_limit_value(policy: &Policy, decision: &Decision) -> HeaderValue {
    let mut r = itoa::Buffer::new();
    let mut t = itoa::Buffer::new();
    let r = r.format(decision.remaining);
    let t = t.format(decision.reset_secs());
    let mut buf = Vec::with_capacity(policy.sf_name.len() + 6 + r.len() + t.len());
    buf.extend_from_slice(policy.sf_name.as_bytes());
    buf.extend_from_slice(b";r=");
    buf.extend_from_slice(r.as_bytes());
    buf.extend_from_slice(b";t=");
    buf.extend_from_slice(t.as_bytes());
    // Printable ASCII throughout: the name was checked when the policy was built.
    HeaderValue::from_maybe_shared(Bytes::from(buf))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The answer to a denied request: `429 Too Many Requests`, `Retry-After` (seconds, rounded
/// up, at least 1), the `RateLimit` fields unless `mode` is [`HeaderMode::Off`], and an
/// `application/problem+json` body:
///
/// ```json
/// {"type":"about:blank","title":"Too Many Requests","status":429,"detail":"rate limit \"burst\" exceeded; retry in 12 s"}
/// ```
pub fn too_many_requests(policy: &Policy, decision: &Decision, mode: HeaderMode) -> Response {
    let retry = decision.retry_after_secs();
    let mut response = Rejection::new(
        StatusCode::TOO_MANY_REQUESTS,
        format!(
            "rate limit \"{}\" exceeded; retry in {retry} s",
            policy.name()
        ),
    )
    .into_problem()
    .header(RETRY_AFTER, HeaderValue::from(retry));
    mode.apply(&mut response, policy, decision);
    response
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::ratelimit::gcra;

    #[test]
    fn rate_limit_value_is_byte_exact() {
        let p = Policy::new("burst", 100, Duration::from_secs(60)).expect("valid");
        let d = Decision {
            allowed: true,
            remaining: 42,
            reset_after: Duration::from_millis(17_001),
            retry_after: Duration::ZERO,
            new_tat: 0,
        };
        assert_eq!(rate_limit_value(&p, &d).as_bytes(), b"\"burst\";r=42;t=18");
        let p = Policy::new("a\"b", 1, Duration::from_secs(1)).expect("valid");
        let d = gcra(None, 0, &p);
        assert_eq!(rate_limit_value(&p, &d).as_bytes(), b"\"a\\\"b\";r=0;t=1");
    }

    #[test]
    fn off_adds_nothing() {
        let p = Policy::new("p", 1, Duration::from_secs(1)).expect("valid");
        let d = gcra(None, 0, &p);
        let mut r = Response::text("ok");
        HeaderMode::Off.apply(&mut r, &p, &d);
        assert!(r.header_value(&RATELIMIT).is_none());
        HeaderMode::from_setting(DEFAULT_IETF_HEADERS).apply(&mut r, &p, &d);
        assert_eq!(
            r.header_value(&RATELIMIT).map(HeaderValue::as_bytes),
            Some(&b"\"p\";r=0;t=1"[..])
        );
    }
}
