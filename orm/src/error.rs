//! The crate's error type.

use std::fmt;

/// An error from the database layer.
///
/// Opaque, with predicates for what callers act on: a lost connection (retry later), a
/// timeout, no database reachable, or an error PostgreSQL itself reported.
pub struct Error {
    kind: Kind,
    database: Option<Box<str>>,
}

enum Kind {
    /// Dialing or the startup handshake failed.
    Connect(Box<dyn std::error::Error + Send + Sync>),
    /// The connection closed while (or before) the query ran; it is being re-established.
    ConnectionLost(Option<tokio_postgres::Error>),
    /// The deadline passed.
    Timeout(&'static str),
    /// No connection is available (reconnecting, or the pool is shut).
    Unavailable(&'static str),
    /// PostgreSQL (or the protocol layer) reported an error for this query.
    Query(tokio_postgres::Error),
    /// PostgreSQL reported an error for a statement run through a [`Pipeline`](crate::Pipeline).
    Server {
        /// The SQLSTATE code (`22012`).
        code: Box<str>,
        /// The primary message.
        message: Box<str>,
    },
    /// A statement's parameters or result columns do not fit the Rust types given (a
    /// [`Pipeline`](crate::Pipeline) statement declared `INT4` and given an `i64`, say).
    Types(String),
    /// A migration could not be applied or verified.
    Migration(String),
    /// The configuration cannot work (a bad URL, say).
    Config(String),
}

impl Error {
    pub(crate) fn connect(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
        Error::new(Kind::Connect(e.into()))
    }

    pub(crate) fn connection_lost(e: Option<tokio_postgres::Error>) -> Error {
        Error::new(Kind::ConnectionLost(e))
    }

    pub(crate) fn timeout(what: &'static str) -> Error {
        Error::new(Kind::Timeout(what))
    }

    pub(crate) fn unavailable(what: &'static str) -> Error {
        Error::new(Kind::Unavailable(what))
    }

    pub(crate) fn server(code: &str, message: &str) -> Error {
        Error::new(Kind::Server {
            code: code.into(),
            message: message.into(),
        })
    }

    pub(crate) fn types(msg: impl Into<String>) -> Error {
        Error::new(Kind::Types(msg.into()))
    }

    pub(crate) fn migration(msg: impl Into<String>) -> Error {
        Error::new(Kind::Migration(msg.into()))
    }

    pub(crate) fn config(msg: impl Into<String>) -> Error {
        Error::new(Kind::Config(msg.into()))
    }

    /// Classifies a tokio-postgres error: a closed connection is "lost", the rest are query
    /// errors.
    pub(crate) fn from_pg(e: tokio_postgres::Error) -> Error {
        // Class 08 (connection exception) and 57P (the server is terminating this session:
        // pg_terminate_backend, shutdown, crash) mean the connection is gone, not the query.
        let fatal_for_session = e.as_db_error().is_some_and(|db| {
            let code = db.code().code();
            code.starts_with("08") || code.starts_with("57P")
        });
        if e.is_closed() || fatal_for_session {
            Error::connection_lost(Some(e))
        } else {
            Error::new(Kind::Query(e))
        }
    }

    fn new(kind: Kind) -> Error {
        Error {
            kind,
            database: None,
        }
    }

    /// Names the database (`default`, `replica1`, …) the error came from.
    pub(crate) fn on(mut self, database: &str) -> Error {
        if self.database.is_none() {
            self.database = Some(database.into());
        }
        self
    }

    /// Whether the connection was lost; the layer re-establishes it, a later query may succeed.
    pub fn is_connection_lost(&self) -> bool {
        matches!(self.kind, Kind::ConnectionLost(_))
    }

    /// Whether a deadline (connect or query) passed.
    pub fn is_timeout(&self) -> bool {
        matches!(self.kind, Kind::Timeout(_))
    }

    /// Whether no connection could be had (down, reconnecting, or a failed dial).
    pub fn is_unavailable(&self) -> bool {
        matches!(self.kind, Kind::Unavailable(_) | Kind::Connect(_))
    }

    /// Whether PostgreSQL reported an error for the statement itself (or its parameters did
    /// not fit its declared types).
    pub fn is_query(&self) -> bool {
        matches!(
            self.kind,
            Kind::Query(_) | Kind::Server { .. } | Kind::Types(_)
        )
    }

    /// The SQLSTATE code PostgreSQL sent (`23505` for a unique violation), whichever client
    /// ran the statement.
    pub fn code(&self) -> Option<&str> {
        match &self.kind {
            Kind::Query(e) => e.as_db_error().map(|db| db.code().code()),
            Kind::Server { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether a migration failed or an applied one changed.
    pub fn is_migration(&self) -> bool {
        matches!(self.kind, Kind::Migration(_))
    }

    /// The SQLSTATE error PostgreSQL sent, if any.
    pub fn as_db_error(&self) -> Option<&tokio_postgres::error::DbError> {
        match &self.kind {
            Kind::Query(e) => e.as_db_error(),
            _ => None,
        }
    }

    /// The database this error came from, if known.
    pub fn database(&self) -> Option<&str> {
        self.database.as_deref()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(db) = &self.database {
            write!(f, "database `{db}`: ")?;
        }
        match &self.kind {
            Kind::Connect(e) => write!(f, "cannot connect: {e}"),
            Kind::ConnectionLost(Some(e)) => write!(f, "connection lost: {e}"),
            Kind::ConnectionLost(None) => f.write_str("connection lost"),
            Kind::Timeout(what) => write!(f, "{what} timed out"),
            Kind::Unavailable(why) => write!(f, "unavailable: {why}"),
            Kind::Query(e) => match e.as_db_error() {
                Some(db) => write!(f, "query failed: {} ({})", db.message(), db.code().code()),
                None => write!(f, "query failed: {e}"),
            },
            Kind::Server { code, message } => write!(f, "query failed: {message} ({code})"),
            Kind::Types(m) => write!(f, "query failed: {m}"),
            Kind::Migration(m) => write!(f, "migration: {m}"),
            Kind::Config(m) => write!(f, "configuration: {m}"),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pinion_orm::Error({self})")
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            Kind::Connect(e) => Some(&**e),
            Kind::ConnectionLost(Some(e)) | Kind::Query(e) => Some(e),
            _ => None,
        }
    }
}
