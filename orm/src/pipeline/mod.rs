//! Batches of one prepared statement with one `Sync` per batch, on a connection of this
//! client's own.
//!
//! tokio-postgres ends every statement with a `Sync`, and PostgreSQL flushes its output at
//! every `Sync`: twenty pipelined reads come back in up to twenty sends, and the worker wakes
//! for most of them (12 wake-ups per `/queries?q=20` request, `perf stat` on the io_uring
//! tracepoints, bench/ANALYSIS.md). A batch here is twenty `Bind`/`Execute` pairs and one
//! `Sync`: one send each way. tokio-postgres has no way to leave the `Sync`s out, so this
//! speaks the protocol itself, with the messages and SCRAM of `postgres-protocol` (the crate
//! under tokio-postgres), on a connection of its own per database and thread, opened on
//! first use.
//!
//! A batch is one implicit transaction, as every pipeline with one `Sync` is: an error in
//! one statement skips the rest of that batch (never another caller's), and the whole batch
//! fails with it. Meant for reads; a write in a batch commits with the batch. `COPY` has no
//! place in a batch: a statement that starts one ends the connection (its batches fail as
//! "connection lost") — use [`Database::pooled`](crate::Database::pooled) for it.

mod conn;
mod row;

use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Config;

use crate::dial::{self, ConnectOptions, Stream};
use crate::error::Error;
use crate::pinned::{wait_live, BACKOFF_MAX, BACKOFF_START};
pub(crate) use conn::Outcome;
use conn::{Conn, Prepared};
pub use row::PipelineRow;

/// Ids of [`PipelineStatement`]s, process-wide: a connection keeps its prepared statements in
/// a table indexed by them.
static NEXT_STATEMENT: AtomicUsize = AtomicUsize::new(0);

/// A new statement id.
pub(crate) fn next_id() -> usize {
    NEXT_STATEMENT.fetch_add(1, Ordering::Relaxed)
}

/// A statement to run in batches with
/// [`Database::query_pipelined`](crate::Database::query_pipelined): its SQL and the types of
/// its parameters, declared (the pipeline encodes parameters before PostgreSQL has seen the
/// statement). Make it once, at start-up, and share it: each connection prepares it on first
/// use.
///
/// ```
/// use pinion_orm::PipelineStatement;
/// use pinion_orm::tokio_postgres::types::Type;
/// let select = PipelineStatement::new("SELECT id, randomnumber FROM world WHERE id = $1", &[Type::INT4]);
/// assert_eq!(select.sql(), "SELECT id, randomnumber FROM world WHERE id = $1");
/// ```
#[derive(Clone, Debug)]
pub struct PipelineStatement {
    id: usize,
    sql: Arc<str>,
    /// `None`: the server infers them when the statement is prepared (the ORM's statements).
    types: Option<Arc<[Type]>>,
}

impl PipelineStatement {
    /// A statement with parameters of `types` (`$1` is `types[0]`).
    pub fn new(sql: &str, types: &[Type]) -> PipelineStatement {
        PipelineStatement {
            id: next_id(),
            sql: sql.into(),
            types: Some(types.into()),
        }
    }

    /// A statement whose parameter types the server infers from the SQL when it prepares it
    /// (the ORM's statements, whose values come typed from the model's columns), under `id`
    /// ([`next_id`]; the ORM gives one SQL text one id in the whole process).
    pub(crate) fn inferred(id: usize, sql: &str) -> PipelineStatement {
        PipelineStatement {
            id,
            sql: sql.into(),
            types: None,
        }
    }

    /// Its process-wide id.
    pub(crate) fn id(&self) -> usize {
        self.id
    }

    /// The SQL text.
    pub fn sql(&self) -> &str {
        &self.sql
    }
}

/// One job of [`Pipeline::run_jobs`]: statements with their parameters, ended by one `Sync`.
pub(crate) struct Job<'s, 'p> {
    pub(crate) parts: &'s [(&'s PipelineStatement, &'s [&'p (dyn ToSql + Sync)])],
    pub(crate) counts: bool,
}

enum State {
    Live(Rc<Conn>),
    Connecting,
}

/// The pipeline connection of one database on one thread; it re-establishes itself.
pub(crate) struct Pipeline {
    name: Rc<str>,
    config: Config,
    opts: ConnectOptions,
    /// Longest a batch waits for a connection while one is being dialed.
    wait: std::time::Duration,
    state: RefCell<State>,
    /// Woken when a connection becomes live.
    up: Notify,
    /// Why the last dial failed, for callers that waited in vain (a wrong password says so).
    last_error: RefCell<Option<String>>,
}

impl Pipeline {
    /// Starts the supervisor, which dials right away.
    pub(crate) fn start(
        name: Rc<str>,
        config: Config,
        opts: ConnectOptions,
        wait: std::time::Duration,
    ) -> Rc<Pipeline> {
        let pipeline = Rc::new(Pipeline {
            name,
            config,
            opts,
            wait,
            state: RefCell::new(State::Connecting),
            up: Notify::new(),
            last_error: RefCell::new(None),
        });
        monoio::spawn(Pipeline::supervise(Rc::downgrade(&pipeline)));
        pipeline
    }

    /// Runs `stmt` once per parameter set of `sets`, all in one batch with one `Sync`, and
    /// returns each run's rows in order.
    ///
    /// # Errors
    /// The first error PostgreSQL reported (the batch stopped there); a query error when a
    /// parameter does not fit its declared type; connection lost; unavailable while
    /// reconnecting.
    pub(crate) async fn query<'p, I>(
        &self,
        stmt: &PipelineStatement,
        sets: I,
    ) -> Result<Vec<Vec<PipelineRow>>, Error>
    where
        I: IntoIterator,
        I::Item: AsRef<[&'p (dyn ToSql + Sync)]>,
    {
        Ok(self.run(stmt, sets, false).await?.results)
    }

    /// As [`query`](Self::query), with the rows each run affected too when `counts`.
    pub(crate) async fn run<'p, I>(
        &self,
        stmt: &PipelineStatement,
        sets: I,
        counts: bool,
    ) -> Result<Outcome, Error>
    where
        I: IntoIterator,
        I::Item: AsRef<[&'p (dyn ToSql + Sync)]>,
    {
        let conn = self.get().await?;
        let prepared = Self::prepared(&conn, stmt).await?;
        let rx = conn.query(&prepared, sets, counts)?;
        let outcome = rx.await.map_err(|_| Error::connection_lost(None))?;
        match outcome.error {
            Some(e) => Err(e),
            None => Ok(outcome),
        }
    }

    /// `stmt` as prepared on `conn`, preparing it there first if needed.
    async fn prepared(conn: &Conn, stmt: &PipelineStatement) -> Result<Prepared, Error> {
        if let Some(p) = conn.prepared(stmt.id) {
            return Ok(p);
        }
        let declared = stmt.types.as_deref().unwrap_or(&[]);
        let (name, rx) = conn.prepare(&stmt.sql, declared)?;
        let outcome = rx.await.map_err(|_| Error::connection_lost(None))?;
        if let Some(e) = outcome.error {
            return Err(e);
        }
        let prepared = Prepared {
            name,
            columns: outcome.described.unwrap_or_else(|| Arc::from([])),
            parameters: match &stmt.types {
                Some(types) => Arc::clone(types),
                None => outcome.parameters.unwrap_or_else(|| Arc::from([])),
            },
        };
        conn.remember(stmt.id, prepared.clone());
        Ok(prepared)
    }

    /// Runs `jobs` submitted together (one send each way): each job its statements in order
    /// and one `Sync`, so each job is one implicit transaction; with the affected counts
    /// when asked. The outcomes in order; the first error fails the whole call.
    pub(crate) async fn run_jobs(&self, jobs: &[Job<'_, '_>]) -> Result<Vec<Outcome>, Error> {
        let conn = self.get().await?;
        let mut prepared = Vec::with_capacity(jobs.len());
        for job in jobs {
            let mut parts = Vec::with_capacity(job.parts.len());
            for (stmt, _) in job.parts {
                parts.push(Self::prepared(&conn, stmt).await?);
            }
            prepared.push(parts);
        }
        let mut waiting = Vec::with_capacity(jobs.len());
        for (job, parts) in jobs.iter().zip(&prepared) {
            let each: Vec<(&Prepared, &[&(dyn ToSql + Sync)])> = parts
                .iter()
                .zip(job.parts)
                .map(|(p, (_, params))| (p, *params))
                .collect();
            waiting.push(conn.query_each(&each, job.counts)?);
        }
        let mut outcomes = Vec::with_capacity(waiting.len());
        for rx in waiting {
            let outcome = rx.await.map_err(|_| Error::connection_lost(None))?;
            if let Some(e) = outcome.error {
                return Err(e);
            }
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    /// The live connection, waiting up to the connect timeout while one is being dialed.
    async fn get(&self) -> Result<Rc<Conn>, Error> {
        let live = || match &*self.state.borrow() {
            State::Live(conn) if conn.is_open() => Some(Rc::clone(conn)),
            _ => None,
        };
        wait_live(&self.up, self.wait, live)
            .await
            .ok_or_else(|| match &*self.last_error.borrow() {
                Some(why) => Error::connect(format!("the last attempt failed: {why}")),
                None => Error::unavailable("reconnecting"),
            })
    }

    /// Dials the first host that answers and runs the handshake, within the connect timeout.
    async fn connect(&self) -> Result<Rc<Conn>, Error> {
        dial::connect_with(&self.config, &self.opts, |stream| async move {
            match stream {
                Stream::Tcp(s) => Conn::open(s, &self.config).await,
                Stream::Unix(s) => Conn::open(s, &self.config).await,
            }
        })
        .await
    }

    /// Dials, waits for the connection to end, re-dials with backoff: until the `Pipeline` is
    /// dropped (it holds only a weak reference while it waits). Then it closes the connection.
    async fn supervise(weak: Weak<Pipeline>) {
        let mut backoff = BACKOFF_START;
        let mut was_up = false;
        loop {
            let Some(this) = weak.upgrade() else { return };
            match this.connect().await {
                Ok(conn) => {
                    backoff = BACKOFF_START;
                    *this.last_error.borrow_mut() = None;
                    if was_up {
                        tracing::info!(database = %this.name, "database pipeline connection re-established");
                    }
                    was_up = true;
                    *this.state.borrow_mut() = State::Live(Rc::clone(&conn));
                    this.up.notify_waiters();
                    drop(this);
                    // Dropping the pipeline closes the connection, so this also ends then.
                    conn.wait_closed().await;
                    let Some(this) = weak.upgrade() else { return };
                    *this.state.borrow_mut() = State::Connecting;
                    tracing::warn!(database = %this.name, "database pipeline connection lost, reconnecting");
                }
                Err(e) => {
                    tracing::warn!(database = %this.name, error = %e, retry_in = ?backoff, "cannot open the database pipeline connection");
                    *this.last_error.borrow_mut() = Some(e.to_string());
                    drop(this);
                    monoio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        if let State::Live(conn) = &*self.state.borrow() {
            conn.close();
        }
    }
}
