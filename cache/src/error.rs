//! The crate's one error type: opaque, with a private kind and `is_*` predicates.

use std::error::Error as StdError;
use std::fmt;

/// The source of an [`Error`], when it has one.
type Source = Box<dyn StdError + Send + Sync>;

/// An error from a cache operation.
///
/// Opaque on purpose: match on the predicates ([`Error::is_missing_key`],
/// [`Error::is_not_integer`], …), never on the display text. Backends outside this crate (the
/// PostgreSQL `DatabaseCache`) wrap their own failures with [`Error::backend`].
pub struct Error {
    kind: Kind,
    source: Option<Source>,
}

/// What went wrong. Private so that kinds can be added without a breaking change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `incr`/`decr` on a key that is absent (Django raises `ValueError`).
    MissingKey,
    /// `incr`/`decr` on a value that is not an integer.
    NotInteger,
    /// `incr`/`decr` would leave the integer type's range.
    Overflow,
    /// The stored value is of another Rust type than the one asked for.
    TypeMismatch,
    /// The value could not be serialized for a remote tier.
    Encode,
    /// A remote tier's bytes could not be deserialized into the type asked for.
    Decode,
    /// The backend failed (connection lost, table missing, …).
    Backend,
}

impl Error {
    fn new(kind: Kind) -> Self {
        Error { kind, source: None }
    }

    fn with_source(mut self, source: impl Into<Source>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// No entry under the key (`incr`/`decr` on a missing key: Django's `ValueError`). Public
    /// so that a backend doing `incr` atomically in its store can report it.
    pub fn missing_key() -> Self {
        Error::new(Kind::MissingKey)
    }

    /// The stored value is not an integer (`incr`/`decr`). Public for backends, as above.
    pub fn not_integer() -> Self {
        Error::new(Kind::NotInteger)
    }

    /// The result of `incr`/`decr` does not fit. Public for backends, as above.
    pub fn overflow() -> Self {
        Error::new(Kind::Overflow)
    }

    pub(crate) fn type_mismatch(expected: &'static str) -> Self {
        Error::new(Kind::TypeMismatch).with_source(format!("expected {expected}"))
    }

    pub(crate) fn encode(source: serde_json::Error) -> Self {
        Error::new(Kind::Encode).with_source(source)
    }

    pub(crate) fn decode(source: serde_json::Error) -> Self {
        Error::new(Kind::Decode).with_source(source)
    }

    /// Wraps a backend's own failure (a lost database connection, a missing table, …).
    ///
    /// This is the constructor for backends written outside this crate; [`TwoTierCache`]
    /// treats every error from its L2 alike, whatever its kind.
    ///
    /// [`TwoTierCache`]: crate::TwoTierCache
    pub fn backend(source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Error::new(Kind::Backend).with_source(source)
    }

    /// Whether `incr`/`decr` found no value under the key.
    pub fn is_missing_key(&self) -> bool {
        self.kind == Kind::MissingKey
    }

    /// Whether `incr`/`decr` found a value that is not an integer.
    pub fn is_not_integer(&self) -> bool {
        self.kind == Kind::NotInteger
    }

    /// Whether `incr`/`decr` would have overflowed the stored integer's type.
    pub fn is_overflow(&self) -> bool {
        self.kind == Kind::Overflow
    }

    /// Whether the stored value is of another Rust type than the one asked for.
    pub fn is_type_mismatch(&self) -> bool {
        self.kind == Kind::TypeMismatch
    }

    /// Whether a value could not be serialized for a remote tier.
    pub fn is_encode(&self) -> bool {
        self.kind == Kind::Encode
    }

    /// Whether a remote tier's bytes could not be deserialized into the type asked for.
    pub fn is_decode(&self) -> bool {
        self.kind == Kind::Decode
    }

    /// Whether the backend itself failed (see [`Error::backend`]).
    pub fn is_backend(&self) -> bool {
        self.kind == Kind::Backend
    }

    fn description(&self) -> &'static str {
        match self.kind {
            Kind::MissingKey => "key not found",
            Kind::NotInteger => "value is not an integer",
            Kind::Overflow => "integer overflow",
            Kind::TypeMismatch => "cached value has another type",
            Kind::Encode => "cannot serialize value",
            Kind::Decode => "cannot deserialize value",
            Kind::Backend => "cache backend failed",
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_tuple("pinion_cache::Error");
        d.field(&self.kind);
        if let Some(source) = &self.source {
            d.field(source);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(source) => write!(f, "{}: {source}", self.description()),
            None => f.write_str(self.description()),
        }
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_ref().map(|s| &**s as _)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_lowercase_and_names_the_source() {
        let e = Error::backend("connection lost");
        assert!(e.is_backend());
        assert_eq!(e.to_string(), "cache backend failed: connection lost");
        assert_eq!(Error::missing_key().to_string(), "key not found");
        assert!(Error::type_mismatch("u32").is_type_mismatch());
    }
}
