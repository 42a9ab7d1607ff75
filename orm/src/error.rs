//! The crate's error type.

use std::fmt;
use std::time::Duration;

use crate::pinned::BACKOFF_MAX;

/// An error from the database layer.
///
/// Opaque, with predicates for what callers act on: a lost connection (retry later), a
/// timeout, no database reachable, no row where one was required, a unique violation, or
/// another error PostgreSQL itself reported. [`retry_after`](Error::retry_after) says whether
/// (and when) the same statement may succeed later; an HTTP layer maps these to statuses
/// (`pinion-web` does), this crate knows nothing of HTTP.
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
    Timeout(Deadline),
    /// A statement that must return one row returned none.
    NoRow,
    /// A query that must match one row ([`QuerySet::get`](crate::QuerySet::get)) matched
    /// several.
    MultipleRows(&'static str),
    /// The ORM was asked for something it cannot do (an update of a sliced query set, a
    /// database that is not configured); the code is wrong, not the data.
    Invalid(String),
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

/// Which deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deadline {
    /// Dial plus startup handshake (`connect_timeout`).
    Connect,
    /// A statement (`query_timeout`).
    Query,
    /// Waiting for a pooled connection (`query_timeout`).
    PoolWait,
}

impl Deadline {
    fn what(self) -> &'static str {
        match self {
            Deadline::Connect => "connect",
            Deadline::Query => "query",
            Deadline::PoolWait => "waiting for a pooled connection",
        }
    }
}

/// The SQLSTATE of a unique violation.
const UNIQUE_VIOLATION: &str = "23505";

impl Error {
    pub(crate) fn connect(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
        Error::new(Kind::Connect(e.into()))
    }

    pub(crate) fn connection_lost(e: Option<tokio_postgres::Error>) -> Error {
        Error::new(Kind::ConnectionLost(e))
    }

    pub(crate) fn timeout(deadline: Deadline) -> Error {
        Error::new(Kind::Timeout(deadline))
    }

    pub(crate) fn no_row() -> Error {
        Error::new(Kind::NoRow)
    }

    pub(crate) fn multiple_rows(model: &'static str) -> Error {
        Error::new(Kind::MultipleRows(model))
    }

    pub(crate) fn invalid(msg: impl Into<String>) -> Error {
        Error::new(Kind::Invalid(msg.into()))
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

    /// Whether a deadline (connect, query, or waiting for a pooled connection) passed.
    pub fn is_timeout(&self) -> bool {
        matches!(self.kind, Kind::Timeout(_))
    }

    /// Whether a statement outlived the query deadline (`query_timeout`): the database is up
    /// but did not answer in time. Connect and pool-wait deadlines are not this: they mean
    /// the database could not be had, see [`retry_after`](Self::retry_after).
    pub fn is_query_timeout(&self) -> bool {
        matches!(self.kind, Kind::Timeout(Deadline::Query))
    }

    /// How long to wait before the same statement may succeed, when nothing but time stands
    /// in the way: no connection could be had (down, reconnecting, a failed or slow dial, an
    /// exhausted pool) or it was lost mid-query. The hint is the longest the layer waits
    /// between two dials, so a retry after it meets a fresh attempt. `None` for errors that
    /// a retry would meet again (a bad statement, a conflict) or may not (a query deadline).
    pub fn retry_after(&self) -> Option<Duration> {
        match self.kind {
            Kind::Connect(_)
            | Kind::ConnectionLost(_)
            | Kind::Unavailable(_)
            | Kind::Timeout(Deadline::Connect | Deadline::PoolWait) => Some(BACKOFF_MAX),
            _ => None,
        }
    }

    /// Whether a statement that must return exactly one row
    /// ([`Database::query_one`](crate::Database::query_one)) returned none: what was asked
    /// for does not exist. (Several rows are a query error: the statement is wrong.)
    pub fn is_no_row(&self) -> bool {
        matches!(self.kind, Kind::NoRow)
    }

    /// Whether a query that must match one row ([`QuerySet::get`](crate::QuerySet::get))
    /// matched several: the filter does not identify a row.
    pub fn is_multiple_rows(&self) -> bool {
        matches!(self.kind, Kind::MultipleRows(_))
    }

    /// Whether PostgreSQL aborted the transaction to keep it serializable (SQLSTATE
    /// `40001`) or to break a deadlock (`40P01`): run again, it may well succeed.
    pub fn is_serialization_failure(&self) -> bool {
        matches!(self.code(), Some("40001" | "40P01"))
    }

    /// Whether a read failed for want of a connection rather than for the query: lost
    /// mid-flight, unavailable, or not dialable. Another connection may answer it.
    pub(crate) fn is_retryable_read(&self) -> bool {
        matches!(
            self.kind,
            Kind::ConnectionLost(_) | Kind::Unavailable(_) | Kind::Connect(_)
        )
    }

    /// Whether PostgreSQL refused a write that would duplicate a unique key (SQLSTATE
    /// `23505`), on whichever client the statement ran.
    pub fn is_unique_violation(&self) -> bool {
        self.code() == Some(UNIQUE_VIOLATION)
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
            Kind::Timeout(deadline) => write!(f, "{} timed out", deadline.what()),
            Kind::NoRow => f.write_str("the query returned no row where one was required"),
            Kind::MultipleRows(model) => {
                write!(
                    f,
                    "the query matched several {model} rows where one was required"
                )
            }
            Kind::Invalid(m) => write!(f, "invalid use of the ORM: {m}"),
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

impl From<tokio_postgres::Error> for Error {
    /// Classifies an error of a tokio-postgres client used directly (a
    /// [`PooledClient`](crate::PooledClient)'s): a closed connection is "lost", the rest are
    /// query errors with their SQLSTATE. (tokio-postgres's own `query_one` reports a missing
    /// row as a query error; [`Database::query_one`](crate::Database::query_one) tells it
    /// apart.)
    fn from(e: tokio_postgres::Error) -> Error {
        Error::from_pg(e)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_retry_can_fix_has_a_hint_and_nothing_else_does() {
        for e in [
            Error::unavailable("reconnecting"),
            Error::connect("127.0.0.1:1: connection refused"),
            Error::connection_lost(None),
            Error::timeout(Deadline::Connect),
            Error::timeout(Deadline::PoolWait),
        ] {
            assert_eq!(e.retry_after(), Some(BACKOFF_MAX), "{e}");
            assert!(!e.is_query_timeout() && !e.is_no_row() && !e.is_unique_violation());
        }
        for e in [
            Error::timeout(Deadline::Query),
            Error::no_row(),
            Error::server(UNIQUE_VIOLATION, "duplicate key value"),
            Error::server("22012", "division by zero"),
            Error::types("column 0 is int4"),
        ] {
            assert_eq!(e.retry_after(), None, "{e}");
        }
    }

    #[test]
    fn each_predicate_names_its_own_case() {
        let timeout = Error::timeout(Deadline::Query).on("default");
        assert!(timeout.is_query_timeout() && timeout.is_timeout());
        assert_eq!(timeout.to_string(), "database `default`: query timed out");
        assert!(!Error::timeout(Deadline::Connect).is_query_timeout());

        let none = Error::no_row();
        assert!(none.is_no_row() && !none.is_query());

        let dup = Error::server(UNIQUE_VIOLATION, "duplicate key value violates \"t_pkey\"");
        assert!(dup.is_unique_violation() && dup.is_query());
        let other = Error::server("23503", "foreign key violation");
        assert!(!other.is_unique_violation());
    }
}
