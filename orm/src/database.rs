//! One named database as a worker thread sees it: its pinned connection for autocommit
//! statements, its pool for transactions, and its health.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use tokio_postgres::types::ToSql;
use tokio_postgres::{Config, Row};

use crate::deadline::Deadlines;
use crate::dial::ConnectOptions;
use crate::error::{Deadline, Error};
use crate::pinned::Pinned;
use crate::pipeline::{Outcome, Pipeline, PipelineRow, PipelineStatement};
use crate::pool::{Pool, PooledClient};

/// Longest a read waits for a replica's pipeline connection while it is being dialed, before
/// it fails over to the primary.
const REPLICA_WAIT: Duration = Duration::from_millis(250);

/// What a database is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Takes writes and transactions (`default`).
    Primary,
    /// A streaming standby: reads only.
    Replica,
    /// Another database, configured by name, for the models bound to it.
    Other,
}

impl Role {
    /// `primary` or `replica`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Replica => "replica",
            Role::Other => "other",
        }
    }
}

/// Connections a [`Database`] keeps on each thread besides its pool: the pinned one for
/// autocommit statements and the pipeline's (opened on first use). With the pool's
/// [`pool_size`](Database::pool_size), what one thread may hold open to one database, which
/// is what a deployment must fit under PostgreSQL's `max_connections`.
pub const CONNECTIONS_BESIDES_POOL: usize = 2;

/// A database on this worker thread.
pub struct Database {
    name: Rc<str>,
    role: Role,
    pinned: Rc<Pinned>,
    pool: Rc<Pool>,
    /// The per-statement deadline (`query_timeout`), one watchdog for all statements.
    deadlines: Deadlines,
    /// Cleared by a connection error or a failed ping, set again by a good ping; together with
    /// a live pinned connection it decides whether reads are routed here.
    healthy: Cell<bool>,
    /// Told the duration of every statement (for `pinion_db_query_duration_seconds`); the ORM
    /// does not depend on the server's telemetry, so the app plugs it in.
    observer: std::cell::RefCell<Option<QueryObserver>>,
    /// Where the pipeline connection dials, when first used.
    config: Config,
    opts: ConnectOptions,
    /// The connection for [`query_pipelined`](Self::query_pipelined), opened on first use.
    pipeline: std::cell::OnceCell<Rc<Pipeline>>,
    /// The WAL position this replica had replayed at its last health check (0 for the
    /// primary, and before the first check).
    replayed: Cell<u64>,
    /// The process's query cache, which this database's writes bump.
    query_cache: std::cell::RefCell<Option<std::sync::Arc<crate::query_cache::QueryCache>>>,
}

/// A callback told `(database name, duration)` after each statement run through a
/// [`Database`].
pub type QueryObserver = Rc<dyn Fn(&str, Duration)>;

impl Database {
    pub(crate) fn start(
        name: &str,
        role: Role,
        config: Config,
        opts: ConnectOptions,
        pool_size: usize,
        query_timeout: Duration,
    ) -> Database {
        let name: Rc<str> = name.into();
        let pinned = Pinned::start(Rc::clone(&name), config.clone(), opts);
        let pool = Pool::new(
            Rc::clone(&name),
            config.clone(),
            opts,
            pool_size,
            query_timeout,
        );
        Database {
            name,
            role,
            pinned,
            pool,
            deadlines: Deadlines::start(query_timeout),
            healthy: Cell::new(true),
            observer: std::cell::RefCell::new(None),
            config,
            opts,
            pipeline: std::cell::OnceCell::new(),
            replayed: Cell::new(0),
            query_cache: std::cell::RefCell::new(None),
        }
    }

    pub(crate) fn set_query_cache(
        &self,
        cache: Option<std::sync::Arc<crate::query_cache::QueryCache>>,
    ) {
        *self.query_cache.borrow_mut() = cache;
    }

    /// The query cache this database's writes bump, if any.
    pub(crate) fn query_cache(&self) -> Option<std::sync::Arc<crate::query_cache::QueryCache>> {
        self.query_cache.borrow().clone()
    }

    /// The WAL position this replica had replayed at its last health check.
    pub fn replayed_lsn(&self) -> u64 {
        self.replayed.get()
    }

    /// Pings a replica and reads how far it has replayed (`pg_last_wal_replay_lsn()`): the
    /// query cache fills from it only what it has replayed. Updates health as
    /// [`ping`](Self::ping) does.
    ///
    /// # Errors
    /// As `query`.
    pub async fn check_replay(&self) -> Result<u64, Error> {
        let result = async {
            let row = self
                .query_one("SELECT pg_last_wal_replay_lsn()", &[])
                .await?;
            let lsn: Option<tokio_postgres::types::PgLsn> =
                row.try_get(0).map_err(Error::from_pg)?;
            Ok(lsn.map_or(0, u64::from))
        }
        .await;
        self.healthy.set(result.is_ok());
        if let Ok(lsn) = result {
            self.replayed.set(lsn);
        }
        result
    }

    /// Runs the ORM's write `sql` with the `NOTIFY` of the tables it wrote in the same
    /// implicit transaction (so the notification is sent only if it commits), then reads the
    /// primary's WAL position after the commit, all in one send: the write's outcome (with
    /// affected counts) and that position.
    pub(crate) async fn run_write_notified(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        payload: &str,
    ) -> Result<(Outcome, u64), Error> {
        let write = crate::statements::by_text(sql);
        let notify = crate::statements::by_text("SELECT pg_notify($1, $2)");
        let lsn = crate::statements::by_text("SELECT pg_current_wal_lsn()");
        let channel = crate::query_cache::CHANNEL;
        let notify_params: [&(dyn ToSql + Sync); 2] = [&channel, &payload];
        let first = [(&*write, params), (&*notify, &notify_params[..])];
        let second = [(&*lsn, &[][..])];
        let jobs = [
            crate::pipeline::Job {
                parts: &first,
                counts: true,
            },
            crate::pipeline::Job {
                parts: &second,
                counts: false,
            },
        ];
        let run = std::pin::pin!(self.pipeline().run_jobs(&jobs));
        let mut outcomes = self.deadline(run).await?;
        let position = outcomes
            .pop()
            .and_then(|mut o| o.results.pop())
            .and_then(|mut rows| rows.pop())
            .map(|row| row.get::<tokio_postgres::types::PgLsn>(0))
            .transpose()?
            .map_or(0, u64::from);
        let mut outcome = outcomes
            .pop()
            .ok_or_else(|| Error::types("the write returned no result"))?;
        // Keep only the write's own result and count, not the notification's.
        outcome.results.truncate(1);
        outcome.counts.truncate(1);
        Ok((outcome, position))
    }

    /// The name it is configured under (`default`, `replica1`, …).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Primary or replica.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Sets the callback told the duration of every statement run here.
    pub fn set_query_observer(&self, observer: QueryObserver) {
        *self.observer.borrow_mut() = Some(observer);
    }

    /// Whether reads may be routed here: a live connection and no error since the last good
    /// ping.
    pub fn is_healthy(&self) -> bool {
        self.healthy.get() && self.pinned.is_live()
    }

    /// Whether the pinned connection is up right now.
    pub fn is_connected(&self) -> bool {
        self.pinned.is_live()
    }

    /// Pooled connections available without waiting (a metric).
    pub fn pool_available(&self) -> usize {
        self.pool.available()
    }

    /// Tasks waiting for a pooled connection (a metric).
    pub fn pool_waiters(&self) -> usize {
        self.pool.waiters()
    }

    /// Most pooled connections this thread opens to this database.
    pub fn pool_size(&self) -> usize {
        self.pool.size()
    }

    /// Waits until the pinned connection is up, at most the connect timeout.
    ///
    /// # Errors
    /// Unavailable when it did not come up.
    pub async fn wait_connected(&self) -> Result<(), Error> {
        self.pinned.get().await.map(|_| ())
    }

    /// Runs `sql` (prepared once per connection and cached) on the pinned connection and
    /// returns its rows. Concurrent calls on one thread are pipelined on that connection.
    ///
    /// # Errors
    /// Connection lost (the in-flight query failed; the connection is being re-established),
    /// unavailable, timeout, or the error PostgreSQL reported.
    pub async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, Error> {
        let run = std::pin::pin!(async {
            let live = self.pinned.get().await?;
            let stmt = live.statement(sql).await?;
            live.conn
                .client
                .query(&stmt, params)
                .await
                .map_err(Error::from_pg)
        });
        self.deadline(run).await
    }

    /// Like [`query`](Self::query), for exactly one row.
    ///
    /// # Errors
    /// As `query`; [`Error::is_no_row`] when the statement returned no row; a query error
    /// when it returned several.
    pub async fn query_one(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row, Error> {
        let run = std::pin::pin!(async {
            let live = self.pinned.get().await?;
            let stmt = live.statement(sql).await?;
            // tokio-postgres reports a missing row and extra rows alike: told apart here.
            live.conn
                .client
                .query_opt(&stmt, params)
                .await
                .map_err(Error::from_pg)?
                .ok_or_else(Error::no_row)
        });
        self.deadline(run).await
    }

    /// Like [`query`](Self::query), for at most one row.
    ///
    /// # Errors
    /// As `query`.
    pub async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, Error> {
        let run = std::pin::pin!(async {
            let live = self.pinned.get().await?;
            let stmt = live.statement(sql).await?;
            live.conn
                .client
                .query_opt(&stmt, params)
                .await
                .map_err(Error::from_pg)
        });
        self.deadline(run).await
    }

    /// Runs a statement and returns the number of rows it affected.
    ///
    /// # Errors
    /// As `query`.
    pub async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, Error> {
        let run = std::pin::pin!(async {
            let live = self.pinned.get().await?;
            let stmt = live.statement(sql).await?;
            live.conn
                .client
                .execute(&stmt, params)
                .await
                .map_err(Error::from_pg)
        });
        self.deadline(run).await
    }

    /// Runs several statements separated by `;` with no parameters (simple query protocol),
    /// e.g. DDL.
    ///
    /// # Errors
    /// As `query`.
    pub async fn batch_execute(&self, sql: &str) -> Result<(), Error> {
        let run = std::pin::pin!(async {
            let live = self.pinned.get().await?;
            live.conn
                .client
                .batch_execute(sql)
                .await
                .map_err(Error::from_pg)
        });
        self.deadline(run).await
    }

    /// Runs `stmt` once per parameter set of `sets`, all in one batch ended by one `Sync`, and
    /// returns each run's rows, in order.
    ///
    /// PostgreSQL flushes its answers at every `Sync`: where twenty concurrent
    /// [`query`](Self::query) calls come back in up to twenty sends (and as many wake-ups of
    /// this thread), a batch of twenty comes back in one. The batch runs on a connection of
    /// its own (per database and thread, opened on first use, re-established when lost), as
    /// one implicit transaction: the first error ends the batch, which fails as a whole.
    /// Meant for reads.
    ///
    /// ```no_run
    /// # async fn demo(db: &pinion_orm::Database) -> Result<(), pinion_orm::Error> {
    /// use pinion_orm::tokio_postgres::types::{ToSql, Type};
    /// use pinion_orm::PipelineStatement;
    /// let select = PipelineStatement::new("SELECT randomnumber FROM world WHERE id = $1", &[Type::INT4]);
    /// let ids = [3, 14, 15];
    /// let rows = db.query_pipelined(&select, ids.iter().map(|id| [id as &(dyn ToSql + Sync)])).await?;
    /// let first: i32 = rows[0][0].get(0)?;
    /// # let _ = first; Ok(()) }
    /// ```
    ///
    /// # Errors
    /// The first error PostgreSQL reported; a query error when a parameter does not fit its
    /// declared type; connection lost; unavailable while reconnecting; timeout.
    pub async fn query_pipelined<'p, I>(
        &self,
        stmt: &PipelineStatement,
        sets: I,
    ) -> Result<Vec<Vec<PipelineRow>>, Error>
    where
        I: IntoIterator,
        I::Item: AsRef<[&'p (dyn ToSql + Sync)]>,
    {
        let run = std::pin::pin!(self.pipeline().query(stmt, sets));
        self.deadline(run).await
    }

    fn pipeline(&self) -> &Pipeline {
        self.pipeline.get_or_init(|| {
            // A read waiting for a replica's lost connection is better retried on the
            // primary at once than held for the whole connect timeout (clients time out
            // first); a dial on a healthy network takes milliseconds.
            let wait = match self.role {
                Role::Replica => self.opts.connect_timeout.min(REPLICA_WAIT),
                Role::Primary | Role::Other => self.opts.connect_timeout,
            };
            Pipeline::start(Rc::clone(&self.name), self.config.clone(), self.opts, wait)
        })
    }

    /// Runs the ORM's `sql` once per parameter set of `sets` through the pipeline, in one
    /// batch with one `Sync`: the rows of each run, and when `counts` the rows each
    /// affected. The statement is prepared once per connection, its parameter types
    /// inferred by the server.
    pub(crate) async fn run_statement<'p, P: AsRef<[&'p (dyn ToSql + Sync)]>>(
        &self,
        sql: &str,
        sets: &[P],
        counts: bool,
    ) -> Result<Outcome, Error> {
        self.run_prepared(&crate::statements::by_text(sql), sets, counts)
            .await
    }

    /// As [`run_statement`](Self::run_statement), for a statement already looked up.
    pub(crate) async fn run_prepared<'p, P: AsRef<[&'p (dyn ToSql + Sync)]>>(
        &self,
        stmt: &PipelineStatement,
        sets: &[P],
        counts: bool,
    ) -> Result<Outcome, Error> {
        let run = std::pin::pin!(self.pipeline().run(stmt, sets, counts));
        self.deadline(run).await
    }

    /// A connection of its own from this thread's pool, for a transaction:
    /// `let mut c = db.pooled().await?; let tx = c.client_mut().transaction().await?;`.
    ///
    /// # Errors
    /// A timeout when the pool stays exhausted; a connect error.
    pub async fn pooled(&self) -> Result<PooledClient, Error> {
        self.pool.get().await
    }

    /// `SELECT 1` on the pinned connection; updates health.
    ///
    /// # Errors
    /// As `query`.
    pub async fn ping(&self) -> Result<(), Error> {
        let run = std::pin::pin!(async {
            let live = self.pinned.get().await?;
            live.conn
                .client
                .simple_query("SELECT 1")
                .await
                .map_err(Error::from_pg)
        });
        let result = self.deadline(run).await.map(|_| ());
        self.healthy.set(result.is_ok());
        result
    }

    /// Whether the server answering this connection is a standby (`pg_is_in_recovery()`).
    ///
    /// # Errors
    /// As `query`.
    pub async fn is_in_recovery(&self) -> Result<bool, Error> {
        let row = self.query_one("SELECT pg_is_in_recovery()", &[]).await?;
        row.try_get(0).map_err(Error::from_pg)
    }

    /// Applies the per-query deadline, tags errors with the database name, and marks the
    /// database unhealthy when the connection failed.
    ///
    /// Callers pass their query future pinned in place (`std::pin::pin!`), so that only a
    /// pointer moves here: passed by value, the future (several hundred bytes of
    /// tokio-postgres state) was copied twice per query, ~300 instructions of `memcpy`
    /// (callgrind, `/queries?q=20`).
    pub(crate) async fn deadline<T>(
        &self,
        run: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let observer = self.observer.borrow().clone();
        let started = std::time::Instant::now();
        let result = match self.deadlines.limit(started, run).await {
            Some(r) => r,
            None => Err(Error::timeout(Deadline::Query)),
        };
        if let Some(observe) = observer {
            observe(&self.name, started.elapsed());
        }
        result.map_err(|e| {
            if e.is_connection_lost() || e.is_unavailable() {
                self.healthy.set(false);
            }
            e.on(&self.name)
        })
    }
}
