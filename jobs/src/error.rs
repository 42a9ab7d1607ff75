//! The crate's errors: [`Error`] for what the framework does (enqueue, claim, the CLI), and
//! [`JobError`] for what a job's own code returns.

use std::fmt;

/// What went wrong enqueueing, claiming or administering jobs.
#[derive(Debug)]
pub struct Error {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Db(pinion_orm::Error),
    Payload(serde_json::Error),
    Config(String),
}

impl Error {
    pub(crate) fn config(message: impl Into<String>) -> Error {
        Error {
            kind: Kind::Config(message.into()),
        }
    }

    /// Whether the database failed (or could not be reached); the job was not enqueued.
    pub fn is_database(&self) -> bool {
        matches!(self.kind, Kind::Db(_))
    }

    /// Whether the payload did not serialize.
    pub fn is_payload(&self) -> bool {
        matches!(self.kind, Kind::Payload(_))
    }

    /// Whether the configuration is wrong (a cron expression, a queue's concurrency).
    pub fn is_config(&self) -> bool {
        matches!(self.kind, Kind::Config(_))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Db(e) => write!(f, "jobs: {e}"),
            Kind::Payload(e) => write!(f, "jobs: the payload does not serialize: {e}"),
            Kind::Config(m) => write!(f, "jobs: {m}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            Kind::Db(e) => Some(e),
            Kind::Payload(e) => Some(e),
            Kind::Config(_) => None,
        }
    }
}

impl From<pinion_orm::Error> for Error {
    fn from(e: pinion_orm::Error) -> Error {
        Error { kind: Kind::Db(e) }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Error {
        Error {
            kind: Kind::Payload(e),
        }
    }
}

/// Why a job did not succeed: it is retried with backoff until its `max_attempts` are spent,
/// unless it is [permanent](JobError::permanent). Any error converts with `?`, so a job's
/// body reads like a handler's.
pub struct JobError {
    message: String,
    permanent: bool,
}

impl JobError {
    /// A failure worth retrying (a mail server that did not answer).
    pub fn new(message: impl Into<String>) -> JobError {
        JobError {
            message: message.into(),
            permanent: false,
        }
    }

    /// A failure no retry can mend (an order that no longer exists): the job is failed at
    /// once, with `message` as its last error.
    pub fn permanent(message: impl Into<String>) -> JobError {
        JobError {
            message: message.into(),
            permanent: true,
        }
    }

    /// Whether the job must not be retried.
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }

    /// The message kept as the job's `last_error`.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl<E: std::error::Error> From<E> for JobError {
    fn from(e: E) -> JobError {
        JobError::new(e.to_string())
    }
}

impl fmt::Debug for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobError")
            .field("message", &self.message)
            .field("permanent", &self.permanent)
            .finish()
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}
