//! [`Error`]: any error a handler meets, classified into the answer its client gets.

use std::fmt;
use std::time::Duration;

use pinion_server::extract::Rejection;
use pinion_server::{IntoResponse, Response, StatusCode};

/// A handler's result: `Ok` is answered as it is, `Err` as its classified [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Any error a handler meets, already turned into the answer its client gets (see the
/// [crate](crate) docs for the table).
///
/// `?` converts every `std::error::Error + Send + Sync + 'static` into it — a database error,
/// a template error, an I/O error — classifying the known ones by type, so handlers need no
/// `map_err`. Like `anyhow::Error`, it is not itself a `std::error::Error` (that blanket
/// conversion would otherwise conflict with `From<T> for T`); use
/// [`into_inner`](Self::into_inner) where a [`pinion_server::Error`] is wanted.
pub struct Error {
    inner: pinion_server::Error,
}

impl Error {
    /// An error answered with `status` and `detail`; the detail is shown to the client as-is.
    pub fn new(status: StatusCode, detail: impl Into<Box<str>>) -> Error {
        Error {
            inner: pinion_server::Error::new(status, detail),
        }
    }

    /// `400 Bad Request` with `detail`, for input a handler refuses after extraction.
    pub fn bad_request(detail: impl Into<Box<str>>) -> Error {
        Error::new(StatusCode::BAD_REQUEST, detail)
    }

    /// `404 Not Found`, for a resource that does not exist.
    pub fn not_found() -> Error {
        Error {
            inner: pinion_server::Error::not_found(),
        }
    }

    /// `409 Conflict` with `detail`, for a request that clashes with what is stored.
    pub fn conflict(detail: impl Into<Box<str>>) -> Error {
        Error::new(StatusCode::CONFLICT, detail)
    }

    /// `503 Service Unavailable` with `Retry-After`, for a dependency that is down for now.
    pub fn unavailable(retry_after: Duration) -> Error {
        Error {
            inner: pinion_server::Error::unavailable(retry_after),
        }
    }

    /// A 500 whose `source` only the log sees, for failures the client can do nothing about.
    pub fn internal(
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Error {
        Error {
            inner: pinion_server::Error::internal(source),
        }
    }

    /// Keeps `source` for the log line of this answer (never shown to the client).
    pub fn with_source(
        self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Error {
        Error {
            inner: self.inner.with_source(source),
        }
    }

    /// The status the client gets.
    pub fn status(&self) -> StatusCode {
        self.inner.status()
    }

    /// What the client is told.
    pub fn detail(&self) -> &str {
        self.inner.detail()
    }

    /// The `Retry-After` the answer carries, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        self.inner.retry_after()
    }

    /// The server's error this answers as, for a raw handler that returns
    /// `Result<Response, pinion_server::Error>`.
    pub fn into_inner(self) -> pinion_server::Error {
        self.inner
    }
}

/// What a database error means for the client: the pure part of the classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// No connection could be had, or it was lost: retry after this.
    Unavailable(Duration),
    /// The statement outlived the query deadline.
    Timeout,
    /// What was asked for is not there.
    NoRow,
    /// A unique key would be duplicated.
    Conflict,
    /// Anything else: the server's fault.
    Internal,
}

impl Failure {
    /// Reads the database error's predicates; the first that holds decides.
    fn of(e: &pinion_orm::Error) -> Failure {
        if let Some(wait) = e.retry_after() {
            Failure::Unavailable(wait)
        } else if e.is_query_timeout() {
            Failure::Timeout
        } else if e.is_no_row() {
            Failure::NoRow
        } else if e.is_unique_violation() {
            Failure::Conflict
        } else {
            Failure::Internal
        }
    }

    /// The answer, with the generic detail of its status: nothing of the database's own
    /// message (which names tables, constraints and values) is shown.
    fn answer(self) -> pinion_server::Error {
        match self {
            Failure::Unavailable(wait) => pinion_server::Error::unavailable(wait),
            Failure::Timeout => pinion_server::Error::status_only(StatusCode::GATEWAY_TIMEOUT),
            Failure::NoRow => pinion_server::Error::not_found(),
            Failure::Conflict => pinion_server::Error::status_only(StatusCode::CONFLICT),
            Failure::Internal => {
                pinion_server::Error::status_only(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }
}

/// Classifies `e` by its type: the database's errors by what they mean, the server's own
/// errors and rejections as they are, everything else as a logged 500.
fn classify(e: Box<dyn std::error::Error + Send + Sync + 'static>) -> pinion_server::Error {
    let e = match e.downcast::<pinion_server::Error>() {
        Ok(server) => return *server,
        Err(e) => e,
    };
    let e = match e.downcast::<Rejection>() {
        Ok(r) => return pinion_server::Error::new(r.status(), r.detail()),
        Err(e) => e,
    };
    let e = match e.downcast::<pinion_orm::tokio_postgres::Error>() {
        // A tokio-postgres client used directly (a pooled connection's): the same rules.
        Ok(pg) => Box::new(pinion_orm::Error::from(*pg)),
        Err(e) => e,
    };
    match e.downcast::<pinion_orm::Error>() {
        Ok(db) => Failure::of(&db).answer().with_source(db),
        Err(other) => pinion_server::Error::internal(other),
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for Error {
    /// Classifies `e` (see the [crate](crate) docs): what `?` calls.
    fn from(e: E) -> Error {
        Error {
            inner: classify(Box::new(e)),
        }
    }
}

impl From<Error> for pinion_server::Error {
    /// The server's error the answer is, so raw handlers can `?` a [`Result`] too.
    fn from(e: Error) -> pinion_server::Error {
        e.inner
    }
}

impl IntoResponse for Error {
    /// The classified answer: a problem document (HTML for a browser), its source logged with
    /// the request id.
    fn into_response(self) -> Response {
        self.inner.into_response()
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}

impl fmt::Display for Error {
    /// The status, the detail and the source: for logs and tests, never for clients.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

impl pinion_orm::TransactionError for Error {
    /// Whether the database error behind this one is a serialization failure or a deadlock,
    /// so that `transaction_with(TxOptions::serializable(), …)` runs a handler's transaction
    /// again.
    fn is_serialization_failure(&self) -> bool {
        std::error::Error::source(&self.inner)
            .and_then(|s| s.downcast_ref::<pinion_orm::Error>())
            .is_some_and(pinion_orm::Error::is_serialization_failure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_database_failure_has_its_status_and_a_generic_detail() {
        let wait = Duration::from_secs(2);
        let cases = [
            (Failure::Unavailable(wait), 503, Some(wait)),
            (Failure::Timeout, 504, None),
            (Failure::NoRow, 404, None),
            (Failure::Conflict, 409, None),
            (Failure::Internal, 500, None),
        ];
        for (failure, status, retry) in cases {
            let e = failure.answer();
            assert_eq!(e.status().as_u16(), status, "{failure:?}");
            assert_eq!(e.retry_after(), retry, "{failure:?}");
            assert!(!e.detail().is_empty());
        }
    }

    #[test]
    fn server_errors_and_rejections_keep_their_status_and_detail() {
        let e = Error::from(pinion_server::Error::new(StatusCode::GONE, "moved away"));
        assert_eq!((e.status(), e.detail()), (StatusCode::GONE, "moved away"));
        let e = Error::from(Rejection::unprocessable("name: too long"));
        assert_eq!(
            (e.status(), e.detail()),
            (StatusCode::UNPROCESSABLE_ENTITY, "name: too long")
        );
    }

    #[test]
    fn any_other_error_is_a_500_that_shows_nothing_of_it() {
        let io = std::io::Error::other("/etc/pinion/secret.toml: permission denied");
        let e = Error::from(io);
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!e.detail().contains("secret"));
        assert!(
            e.to_string().contains("secret.toml"),
            "the log sees it: {e}"
        );
        let resp = e.into_response();
        assert!(!String::from_utf8_lossy(resp.body()).contains("secret"));
    }

    #[test]
    fn an_orm_error_is_classified_by_its_predicates() {
        // A bad URL fails before any connection: a configuration error, the server's fault.
        let e = match pinion_orm::ConnectionManager::start(&pinion_orm::DbConfig::new(
            "no-scheme",
            vec![],
        )) {
            Ok(_) => panic!("a URL without a scheme was accepted"),
            Err(e) => e,
        };
        assert_eq!(Failure::of(&e), Failure::Internal, "{e}");
        assert_eq!(Error::from(e).status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
