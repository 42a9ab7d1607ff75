//! Transactions on a pooled connection of the primary (or of a model's database):
//! commit on `Ok`, roll back on `Err` and when dropped unfinished, savepoints for nesting,
//! `on_commit` hooks, and a helper that retries serialization failures and deadlocks.
//!
//! ```ignore
//! let order_id = routing.transaction(async |tx| {
//!     let mut order = Order { id: 0, customer: name.clone() };
//!     order.save(tx).await?;
//!     Line::objects().bulk_create(&mut lines, tx).await?;
//!     tx.on_commit(move || tracing::info!("order placed"));
//!     Ok::<_, pinion_orm::Error>(order.id)
//! }).await?;
//! ```

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::database::{Database, Role};
use crate::error::Error;
use crate::manager::{ConnectionManager, Routing};
use crate::model::ModelMeta;
use crate::pool::PooledClient;
use crate::query_cache::CHANNEL;

/// How a transaction starts: its isolation level, whether it only reads, and how many times
/// [`transaction_with`](ConnectionManager::transaction_with) runs it again after a
/// serialization failure or a deadlock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxOptions {
    isolation: Isolation,
    read_only: bool,
    retries: u32,
}

/// A transaction isolation level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// PostgreSQL's default: each statement sees what was committed before it began.
    ReadCommitted,
    /// Every statement sees the snapshot of the transaction's first statement.
    RepeatableRead,
    /// As if transactions ran one after another; PostgreSQL aborts one of two conflicting
    /// transactions with SQLSTATE `40001`, to be run again.
    Serializable,
}

impl Default for TxOptions {
    fn default() -> Self {
        TxOptions {
            isolation: Isolation::ReadCommitted,
            read_only: false,
            retries: 0,
        }
    }
}

impl TxOptions {
    /// `SERIALIZABLE`, run up to 3 more times after a serialization failure or a deadlock.
    pub fn serializable() -> TxOptions {
        TxOptions {
            isolation: Isolation::Serializable,
            read_only: false,
            retries: 3,
        }
    }

    /// Sets the isolation level.
    pub fn isolation(mut self, isolation: Isolation) -> TxOptions {
        self.isolation = isolation;
        self
    }

    /// Makes the transaction read-only (PostgreSQL refuses its writes).
    pub fn read_only(mut self) -> TxOptions {
        self.read_only = true;
        self
    }

    /// How many times to run it again after a serialization failure (`40001`) or a deadlock
    /// (`40P01`), with a short randomised pause before each.
    pub fn retries(mut self, retries: u32) -> TxOptions {
        self.retries = retries;
        self
    }

    fn begin(&self) -> &'static str {
        match (self.isolation, self.read_only) {
            (Isolation::ReadCommitted, false) => "BEGIN",
            (Isolation::ReadCommitted, true) => "BEGIN READ ONLY",
            (Isolation::RepeatableRead, false) => "BEGIN ISOLATION LEVEL REPEATABLE READ",
            (Isolation::RepeatableRead, true) => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            (Isolation::Serializable, false) => "BEGIN ISOLATION LEVEL SERIALIZABLE",
            (Isolation::Serializable, true) => "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY",
        }
    }
}

/// An error a transaction's closure may return: it must hold the ORM's errors (`?` in the
/// closure) and say whether it is a serialization failure worth another run.
pub trait TransactionError: From<Error> {
    /// Whether running the transaction again may succeed (SQLSTATE `40001` or `40P01`).
    fn is_serialization_failure(&self) -> bool;
}

impl TransactionError for Error {
    fn is_serialization_failure(&self) -> bool {
        Error::is_serialization_failure(self)
    }
}

/// A function to run after commit.
type Hook = Box<dyn FnOnce()>;

/// What the outer transaction and its savepoints share.
struct TxState {
    conn: Option<PooledClient>,
    /// Committed or rolled back: nothing to undo when dropped.
    finished: Cell<bool>,
    /// A statement failed since the last savepoint that was rolled back to: PostgreSQL will
    /// refuse every statement and turn `COMMIT` into a rollback, so commit is refused here.
    failed: Cell<bool>,
    /// The connection may be mid-statement (a deadline passed) or gone: not reused.
    broken: Cell<bool>,
    /// Hooks to run after the outer commit, each with the savepoints it was registered
    /// inside (see `Transaction::savepoints`).
    on_commit: RefCell<Vec<(Rc<[u32]>, Hook)>>,
    /// Tables written, for the query cache.
    written: RefCell<Vec<&'static str>>,
    next_savepoint: Cell<u32>,
}

impl Drop for TxState {
    /// A transaction left unfinished (its future dropped) goes back to the pool marked, and
    /// the pool rolls it back before handing the connection out again; nothing is spawned
    /// here, so this is safe while the runtime shuts down. A broken connection is closed
    /// instead (PostgreSQL rolls back what it had open).
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        if self.broken.get() {
            conn.discard();
        } else if !self.finished.get() {
            conn.release_unfinished();
        }
    }
}

/// An open transaction (or a savepoint inside one): run query sets on it by passing it as
/// the executor (`World::objects().all(tx)`), or raw SQL with [`query`](Self::query) and
/// [`execute`](Self::execute). Statements keep the query deadline and the query metrics.
pub struct Transaction<'a> {
    db: &'a Database,
    state: Rc<TxState>,
    /// The numbers of the savepoints this one is inside and its own, outermost first (empty
    /// for the transaction itself): rolling back to savepoint `n` drops exactly the hooks
    /// registered inside it, nested savepoints included, and keeps those of the savepoints
    /// released before it at the same level.
    savepoints: Rc<[u32]>,
}

impl<'a> Transaction<'a> {
    /// The database it runs on.
    pub fn database(&self) -> &'a Database {
        self.db
    }

    /// Runs `f` after the outer transaction commits (never if it rolls back, nor if the
    /// savepoint that registered it is rolled back): to send the e-mail or publish the event
    /// only for what was stored.
    pub fn on_commit(&self, f: impl FnOnce() + 'static) {
        self.state
            .on_commit
            .borrow_mut()
            .push((Rc::clone(&self.savepoints), Box::new(f)));
    }

    /// Runs `sql` in the transaction and returns its rows.
    ///
    /// # Errors
    /// The database's; the transaction cannot commit after one (roll back to a savepoint to
    /// carry on).
    pub async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, Error> {
        let conn = self.conn()?;
        let run = std::pin::pin!(async {
            let stmt = conn.dialed().statement(sql).await?;
            conn.client()
                .query(&stmt, params)
                .await
                .map_err(Error::from_pg)
        });
        let result = self.db.deadline(run).await;
        self.observe(&result);
        result
    }

    /// Runs `sql` in the transaction and returns the number of rows it affected.
    ///
    /// # Errors
    /// As [`query`](Self::query).
    pub async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, Error> {
        let conn = self.conn()?;
        let run = std::pin::pin!(async {
            let stmt = conn.dialed().statement(sql).await?;
            conn.client()
                .execute(&stmt, params)
                .await
                .map_err(Error::from_pg)
        });
        let result = self.db.deadline(run).await;
        self.observe(&result);
        result
    }

    /// Runs `f` in a savepoint: released on `Ok`, rolled back to on `Err` (the outer
    /// transaction carries on, and the hooks `f` registered are dropped).
    ///
    /// # Errors
    /// `f`'s error, or the database's.
    pub async fn transaction<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: AsyncFnOnce(&Transaction<'a>) -> Result<T, E>,
        E: From<Error>,
    {
        let n = self.state.next_savepoint.get() + 1;
        self.state.next_savepoint.set(n);
        let name = format!("pinion_sp{n}");
        self.simple(&format!("SAVEPOINT {name}")).await?;
        let failed_before = self.state.failed.get();
        let inner = Transaction {
            db: self.db,
            state: Rc::clone(&self.state),
            savepoints: self.savepoints.iter().copied().chain([n]).collect(),
        };
        match f(&inner).await {
            Ok(v) => {
                self.simple(&format!("RELEASE SAVEPOINT {name}")).await?;
                Ok(v)
            }
            Err(e) => {
                // Its hooks go even when the rollback fails: its writes are not committed.
                self.state
                    .on_commit
                    .borrow_mut()
                    .retain(|(inside, _)| !inside.contains(&n));
                self.simple(&format!("ROLLBACK TO SAVEPOINT {name}"))
                    .await?;
                self.state.failed.set(failed_before);
                Err(e)
            }
        }
    }

    /// Refuses a query set of a model that lives in another database than this
    /// transaction's.
    pub(crate) fn check_model(&self, model: &ModelMeta, using: Option<&str>) -> Result<(), Error> {
        let wanted = using.or(model.database);
        match wanted {
            Some(name) if name != self.db.name() => Err(Error::invalid(format!(
                "{} lives in database `{name}`, the transaction runs on `{}`",
                model.name,
                self.db.name()
            ))),
            _ => Ok(()),
        }
    }

    /// Checks that a write of `model` belongs here and records the `tables` it writes, whose
    /// query-cache versions are bumped once the transaction commits.
    pub(crate) fn begin_write(
        &self,
        model: &ModelMeta,
        using: Option<&str>,
        tables: &[&'static str],
    ) -> Result<(), Error> {
        self.check_model(model, using)?;
        let mut written = self.state.written.borrow_mut();
        for table in tables {
            if !written.contains(table) {
                written.push(table);
            }
        }
        Ok(())
    }

    fn conn(&self) -> Result<&PooledClient, Error> {
        self.state
            .conn
            .as_ref()
            .ok_or_else(|| Error::invalid("the transaction is over"))
    }

    fn observe<T>(&self, result: &Result<T, Error>) {
        if let Err(e) = result {
            self.state.failed.set(true);
            if e.is_timeout() || e.is_connection_lost() {
                self.state.broken.set(true);
            }
        }
    }

    /// A statement without parameters (`BEGIN`, `SAVEPOINT`…), with the deadline.
    async fn simple(&self, sql: &str) -> Result<(), Error> {
        let conn = self.conn()?;
        let run = std::pin::pin!(async {
            conn.client()
                .batch_execute(sql)
                .await
                .map_err(Error::from_pg)
        });
        let result = self.db.deadline(run).await;
        if let Err(e) = &result {
            if e.is_timeout() || e.is_connection_lost() {
                self.state.broken.set(true);
            }
        }
        result
    }
}

/// Runs `f` in a transaction on `db`, as [`TxOptions`] say.
pub(crate) async fn run<T, E, F>(db: &Database, options: TxOptions, mut f: F) -> Result<T, E>
where
    F: AsyncFnMut(&Transaction<'_>) -> Result<T, E>,
    E: TransactionError,
{
    let mut attempt = 0;
    loop {
        match once(db, options, &mut f).await {
            Err(e) if e.is_serialization_failure() && attempt < options.retries => {
                attempt += 1;
                let pause = backoff(attempt);
                tracing::debug!(
                    database = db.name(),
                    attempt,
                    ?pause,
                    "transaction run again after a serialization failure"
                );
                monoio::time::sleep(pause).await;
            }
            other => return other,
        }
    }
}

/// 5 ms, 10 ms, 20 ms… (at most 320 ms), each between half and all of it, so that the
/// transactions that clashed do not clash again in step.
fn backoff(attempt: u32) -> Duration {
    let full = 5u64 << attempt.min(6);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    let ms = full / 2 + nanos % (full / 2 + 1);
    Duration::from_millis(ms)
}

async fn once<T, E, F>(db: &Database, options: TxOptions, f: F) -> Result<T, E>
where
    F: AsyncFnOnce(&Transaction<'_>) -> Result<T, E>,
    E: From<Error>,
{
    let conn = db.pooled().await?;
    let tx = Transaction {
        db,
        state: Rc::new(TxState {
            conn: Some(conn),
            finished: Cell::new(false),
            failed: Cell::new(false),
            broken: Cell::new(false),
            on_commit: RefCell::new(Vec::new()),
            written: RefCell::new(Vec::new()),
            next_savepoint: Cell::new(0),
        }),
        savepoints: Rc::from([]),
    };
    tx.simple(options.begin()).await?;
    match f(&tx).await {
        Ok(v) => {
            if tx.state.failed.get() {
                let _ = tx.simple("ROLLBACK").await;
                tx.state.finished.set(true);
                return Err(Error::invalid(
                    "a statement of the transaction failed and its error was not returned; \
                     the transaction was rolled back",
                )
                .into());
            }
            // With a query cache, the tables written are announced in the transaction, so
            // that other processes hear of it only if it commits, and bumped here after it.
            let written: Vec<&'static str> = tx.state.written.borrow().clone();
            let cache = if written.is_empty() {
                None
            } else {
                db.query_cache()
            };
            let on_primary = db.role() == Role::Primary;
            if let (Some(cache), true) = (&cache, on_primary) {
                let payload = cache.notify_payload(&written);
                let notified = tx
                    .query("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload])
                    .await;
                if let Err(e) = notified {
                    let _ = tx.simple("ROLLBACK").await;
                    tx.state.finished.set(true);
                    return Err(e.into());
                }
            }
            let committed = tx.simple("COMMIT").await;
            tx.state.finished.set(true);
            committed?;
            if let Some(cache) = cache {
                let lsn = if on_primary { commit_lsn(&tx).await } else { 0 };
                cache.bump(&written, lsn);
            }
            let hooks = std::mem::take(&mut *tx.state.on_commit.borrow_mut());
            for (_, hook) in hooks {
                hook();
            }
            Ok(v)
        }
        Err(e) => {
            let _ = tx.simple("ROLLBACK").await;
            tx.state.finished.set(true);
            Err(e)
        }
    }
}

/// The primary's WAL position after a commit, read on the transaction's connection (or the
/// pinned one); `u64::MAX`, which keeps fills of the tables on the primary until the next
/// full invalidation, when neither answers.
async fn commit_lsn(tx: &Transaction<'_>) -> u64 {
    const SQL: &str = "SELECT pg_current_wal_lsn()";
    let read = |rows: Vec<Row>| -> Option<u64> {
        let lsn: tokio_postgres::types::PgLsn = rows.first()?.try_get(0).ok()?;
        Some(u64::from(lsn))
    };
    if let Some(lsn) = tx.query(SQL, &[]).await.ok().and_then(read) {
        return lsn;
    }
    tx.db
        .query(SQL, &[])
        .await
        .ok()
        .and_then(read)
        .unwrap_or(u64::MAX)
}

impl ConnectionManager {
    /// Runs `f` in a transaction on the primary: committed when it returns `Ok`, rolled back
    /// when it returns `Err` or is dropped unfinished.
    ///
    /// # Errors
    /// `f`'s error, or the database's (no pooled connection, a failed `COMMIT`).
    pub async fn transaction<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: AsyncFnOnce(&Transaction<'_>) -> Result<T, E>,
        E: From<Error>,
    {
        once(self.primary(), TxOptions::default(), f).await
    }

    /// As [`transaction`](Self::transaction), with `options` (isolation, read-only,
    /// retries after serialization failures).
    ///
    /// # Errors
    /// As `transaction`; the last serialization failure once the retries are spent.
    pub async fn transaction_with<T, E, F>(&self, options: TxOptions, f: F) -> Result<T, E>
    where
        F: AsyncFnMut(&Transaction<'_>) -> Result<T, E>,
        E: TransactionError,
    {
        run(self.primary(), options, f).await
    }
}

impl Routing<'_> {
    /// Runs `f` in a transaction on the primary (see [`ConnectionManager::transaction`]);
    /// the rest of the request reads from the primary.
    ///
    /// # Errors
    /// As [`ConnectionManager::transaction`].
    pub async fn transaction<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: AsyncFnOnce(&Transaction<'_>) -> Result<T, E>,
        E: From<Error>,
    {
        once(self.write(), TxOptions::default(), f).await
    }

    /// As [`transaction`](Self::transaction), with `options`.
    ///
    /// # Errors
    /// As [`ConnectionManager::transaction_with`].
    pub async fn transaction_with<T, E, F>(&self, options: TxOptions, f: F) -> Result<T, E>
    where
        F: AsyncFnMut(&Transaction<'_>) -> Result<T, E>,
        E: TransactionError,
    {
        run(self.write(), options, f).await
    }
}

impl Database {
    /// Runs `f` in a transaction on this database (a named one a model is bound to).
    ///
    /// # Errors
    /// As [`ConnectionManager::transaction_with`].
    pub async fn transaction_with<T, E, F>(&self, options: TxOptions, f: F) -> Result<T, E>
    where
        F: AsyncFnMut(&Transaction<'_>) -> Result<T, E>,
        E: TransactionError,
    {
        run(self, options, f).await
    }
}
