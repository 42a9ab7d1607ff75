//! [`Ratio`]: a share of requests, for the sampling settings.

use std::fmt;

/// A share in `0.0..=1.0`, such as the fraction of requests sampled for a log.
///
/// A type rather than a bare `f64` so that the range is checked once, when the setting is
/// loaded, and so that [`Settings`](crate::Settings) keeps `Eq`: a `Ratio` is never NaN, which
/// makes its equality total.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Ratio(f64);

impl Ratio {
    /// None of the requests.
    pub const ZERO: Ratio = Ratio(0.0);
    /// Every request.
    pub const ONE: Ratio = Ratio(1.0);

    /// The ratio `value`, if it is in `0.0..=1.0` (so neither NaN nor infinite). `-0.0` is
    /// taken as `0.0`, so that it prints as a share rather than as a negative number.
    pub const fn new(value: f64) -> Option<Ratio> {
        if value >= 0.0 && value <= 1.0 {
            // `-0.0 + 0.0` is `+0.0`; every other value is unchanged.
            Some(Ratio(value + 0.0))
        } else {
            None
        }
    }

    /// The share as a float in `0.0..=1.0`.
    pub const fn get(self) -> f64 {
        self.0
    }
}

// NaN is the only `f64` that is not equal to itself, and `Ratio::new` refuses it.
impl Eq for Ratio {}

impl fmt::Display for Ratio {
    /// The shortest decimal that reads back as the same float (`0.01`, `1.0`, `1e-7`), which is
    /// also valid TOML.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range() {
        for ok in [0.0, -0.0, 0.01, 0.5, 1.0, f64::MIN_POSITIVE] {
            assert_eq!(Ratio::new(ok).map(Ratio::get), Some(ok), "{ok}");
        }
        for bad in [
            -0.1,
            1.000_000_1,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            assert_eq!(Ratio::new(bad), None, "{bad}");
        }
        assert!(Ratio::new(-0.0).is_some_and(|r| r.get().is_sign_positive()));
    }

    #[test]
    fn display_is_short_and_exact() {
        for (value, text) in [(0.0, "0.0"), (1.0, "1.0"), (0.01, "0.01"), (1e-7, "1e-7")] {
            let ratio = Ratio::new(value).expect("in range");
            assert_eq!(ratio.to_string(), text);
            assert_eq!(text.parse::<f64>(), Ok(value));
        }
    }
}
