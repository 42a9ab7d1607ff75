//! The error for a rate-limit setting that cannot work.

use std::fmt;

/// A policy or trusted-proxy list that cannot be used, found when it is built from
/// configuration (never on the request path).
///
/// The message is lowercase and names the offending value; the configuration layer wraps it
/// with the key it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidConfig {
    message: Box<str>,
}

impl InvalidConfig {
    pub(crate) fn new(message: impl Into<Box<str>>) -> InvalidConfig {
        InvalidConfig {
            message: message.into(),
        }
    }
}

impl fmt::Display for InvalidConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for InvalidConfig {}
