//! The crate's [`Error`].

use std::fmt;

use pinion_server::{IntoResponse, Response, StatusCode};

/// Why a subscription was refused: opaque, with predicates; as a response, 403 or 503.
pub struct Error {
    kind: Kind,
}

enum Kind {
    /// No rule allows the channel, or its rule refused this client.
    Denied,
    /// The replay could not be read.
    Database(pinion_orm::Error),
}

impl Error {
    pub(crate) fn denied() -> Error {
        Error { kind: Kind::Denied }
    }

    /// Whether the client may not subscribe to the channel (403).
    pub fn is_denied(&self) -> bool {
        matches!(self.kind, Kind::Denied)
    }

    /// The database's error, when the replay could not be read (503: try again).
    pub fn as_database(&self) -> Option<&pinion_orm::Error> {
        match &self.kind {
            Kind::Database(e) => Some(e),
            Kind::Denied => None,
        }
    }
}

impl From<pinion_orm::Error> for Error {
    fn from(e: pinion_orm::Error) -> Error {
        Error {
            kind: Kind::Database(e),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Denied => f.write_str("not allowed to subscribe to this channel"),
            Kind::Database(e) => write!(f, "the events cannot be replayed: {e}"),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            Kind::Database(e) => Some(e),
            Kind::Denied => None,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = if self.is_denied() {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        if let Some(e) = self.as_database() {
            tracing::warn!(error = %e, "an event stream could not replay its events");
        }
        pinion_server::Error::new(status, self.to_string()).into_response()
    }
}
