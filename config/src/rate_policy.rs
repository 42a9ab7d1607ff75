//! [`RatePolicy`]: a named rate limit, for `rate_limit_policies`.

use std::time::Duration;

use crate::value;

/// A named GCRA rate-limit policy: `quota` requests per `window`, with bursts of up to
/// `burst` requests.
///
/// Written `name=quota/window` or `name=quota/window/burst` (`"api=100/60s"`,
/// `"login=5/1m/5"`); without a burst, the whole quota may be spent at once. Fields are public
/// like those of [`Settings`](crate::Settings); values set in code are not re-validated.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RatePolicy {
    /// The name routes and `rate_limit_default` refer to it by: `[a-z0-9_-]+`.
    pub name: String,
    /// Requests allowed per window; at least 1.
    pub quota: u32,
    /// The period the quota is for; greater than zero, at most 24 hours.
    pub window: Duration,
    /// Requests that may arrive at once before the steady rate (`quota / window`) applies; at
    /// least 1.
    pub burst: u32,
}

impl RatePolicy {
    /// Parses `name=quota/window[/burst]`; `max_window` bounds the window.
    pub(crate) fn parse(text: &str, max_window: Duration) -> Result<RatePolicy, String> {
        const EXPECTED: &str =
            "name=quota/window or name=quota/window/burst, such as \"api=100/60s\"";
        let (name, limit) = text
            .split_once('=')
            .ok_or_else(|| format!("must be {EXPECTED}"))?;
        let name = policy_name(name.trim())?;
        let mut parts = limit.split('/').map(str::trim);
        let (Some(quota), Some(window), burst, None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("must be {EXPECTED}"));
        };
        let quota = count(quota).map_err(|reason| format!("quota {reason}"))?;
        let window = value::parse_duration(window)
            .map_err(|reason| format!("window `{window}`: {reason}"))?;
        if window.is_zero() {
            return Err("window must be greater than 0".to_string());
        }
        if window > max_window {
            return Err("window must be at most 24h".to_string());
        }
        let burst = match burst {
            Some(burst) => count(burst).map_err(|reason| format!("burst {reason}"))?,
            None => quota,
        };
        Ok(RatePolicy {
            name: name.to_string(),
            quota,
            window,
            burst,
        })
    }

    /// The policy as written in `pinion.toml`; the burst only when it differs from the quota.
    pub(crate) fn render(&self) -> String {
        let window = value::render_duration_unquoted(self.window);
        match self.burst == self.quota {
            true => format!("{}={}/{window}", self.name, self.quota),
            false => format!("{}={}/{window}/{}", self.name, self.quota, self.burst),
        }
    }
}

/// A policy name: `[a-z0-9_-]+`, so it can be written in a route option or a header without
/// quoting.
pub(crate) fn policy_name(name: &str) -> Result<&str, String> {
    if name.is_empty() {
        return Err("policy name must not be empty".to_string());
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err(format!(
            "policy name `{name}` must be lowercase letters, digits, `_` and `-`"
        ));
    }
    Ok(name)
}

/// A count of requests: an integer in `1..=u32::MAX`.
fn count(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(n) if n >= 1 && text.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(format!("must be an integer in 1..={}", u32::MAX)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn policy(name: &str, quota: u32, window: u64, burst: u32) -> RatePolicy {
        RatePolicy {
            name: name.to_string(),
            quota,
            window: Duration::from_secs(window),
            burst,
        }
    }

    #[test]
    fn parses() {
        for (text, expected, shown) in [
            ("api=100/60s", policy("api", 100, 60, 100), "api=100/1m"),
            ("x=5/1m/2", policy("x", 5, 60, 2), "x=5/1m/2"),
            (
                " login = 5 / 1m / 5 ",
                policy("login", 5, 60, 5),
                "login=5/1m",
            ),
            ("a-b_9=1/1", policy("a-b_9", 1, 1, 1), "a-b_9=1/1s"),
            (
                "day=10000/24h/50",
                policy("day", 10_000, 86_400, 50),
                "day=10000/24h/50",
            ),
        ] {
            let parsed = RatePolicy::parse(text, DAY).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(parsed, expected, "{text}");
            assert_eq!(parsed.render(), shown);
            assert_eq!(RatePolicy::parse(shown, DAY), Ok(parsed));
        }
        let fine = RatePolicy::parse("b=3/250ms", DAY).expect("ms");
        assert_eq!(fine.window, Duration::from_millis(250));
        assert_eq!(fine.render(), "b=3/250ms");
    }

    #[test]
    fn rejects() {
        for (text, reason) in [
            ("=5/1s", "policy name must not be empty"),
            ("API=5/1s", "policy name `API` must be lowercase"),
            ("a b=5/1s", "policy name `a b`"),
            ("a=0/1s", "quota must be an integer in 1..="),
            ("a=-1/1s", "quota must be an integer"),
            ("a=+5/1s", "quota must be an integer"),
            ("a=5", "must be name=quota/window"),
            ("a", "must be name=quota/window"),
            ("a=5/1s/2/3", "must be name=quota/window"),
            ("a=5/0s", "window must be greater than 0"),
            ("a=5/25h", "window must be at most 24h"),
            ("a=5/1d", "window `1d`: unknown duration unit `d`"),
            ("a=5/1s/0", "burst must be an integer in 1..="),
            ("a=99999999999/1s", "quota must be an integer"),
        ] {
            let err = RatePolicy::parse(text, DAY).expect_err(text);
            assert!(err.contains(reason), "{text}: {err}");
        }
    }
}
