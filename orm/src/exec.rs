//! Where query sets run: an [`Executor`] is a request's [`Routing`], a
//! [`ConnectionManager`] or a [`Transaction`]. Reads outside a transaction go through the
//! pipeline connection of the database the router picks, and a read whose connection was
//! lost is retried once on whatever healthy database the router picks then; writes go where
//! the router says and are never retried.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::database::{Database, Role};
use crate::error::Error;
use crate::manager::{ConnectionManager, Routing};
use crate::model::ModelMeta;
use crate::pipeline::{PipelineRow, PipelineStatement};
use crate::query_cache::{CachedRows, QueryCache};
use crate::row::FromRow;
use crate::transaction::Transaction;

/// Something query sets run on: a request's [`Routing`] (reads follow the router, and the
/// primary after the request wrote), a [`ConnectionManager`] (the same, without a request),
/// or a [`Transaction`] (everything on its connection).
pub trait Executor: sealed::Sealed {}

pub(crate) mod sealed {
    use super::{ConnectionManager, Routing, Transaction};

    /// What an executor is, for the ORM.
    pub enum Scope<'a> {
        Manager(&'a ConnectionManager),
        Routing(&'a Routing<'a>),
        Tx(&'a Transaction<'a>),
    }

    /// Keeps [`Executor`](super::Executor) to the crate's types.
    pub trait Sealed {
        fn scope(&self) -> Scope<'_>;
    }
}

use sealed::{Scope, Sealed};

impl Sealed for ConnectionManager {
    fn scope(&self) -> Scope<'_> {
        Scope::Manager(self)
    }
}
impl Executor for ConnectionManager {}

impl Sealed for Routing<'_> {
    fn scope(&self) -> Scope<'_> {
        Scope::Routing(self)
    }
}
impl Executor for Routing<'_> {}

impl Sealed for Transaction<'_> {
    fn scope(&self) -> Scope<'_> {
        Scope::Tx(self)
    }
}
impl Executor for Transaction<'_> {}

impl<T: Sealed> Sealed for Rc<T> {
    fn scope(&self) -> Scope<'_> {
        (**self).scope()
    }
}
impl<T: Executor> Executor for Rc<T> {}

impl<T: Sealed + ?Sized> Sealed for &T {
    fn scope(&self) -> Scope<'_> {
        (**self).scope()
    }
}
impl<T: Executor + ?Sized> Executor for &T {}

/// The parameters of one statement.
pub(crate) type Params<'p> = [&'p (dyn ToSql + Sync)];

/// Rows from either client, or from the query cache.
pub(crate) enum Rows {
    Pipeline(Vec<PipelineRow>),
    Client(Vec<Row>),
    Cached(Arc<CachedRows>),
}

/// What a read may do with the query cache: the tables it reads (all of them, joins too) and
/// how long its result may live (`None`: the cache's default).
pub(crate) struct CacheSpec<'a> {
    pub(crate) tables: &'a [&'static str],
    pub(crate) ttl: Option<Duration>,
}

impl Rows {
    /// Every row as a `T`.
    pub(crate) fn decode<T: FromRow>(&self) -> Result<Vec<T>, Error> {
        match self {
            Rows::Pipeline(r) => T::from_rows(r),
            Rows::Client(r) => T::from_rows(r),
            Rows::Cached(r) => (0..r.len())
                .filter_map(|i| r.row(i))
                .map(|row| T::from_row(&row))
                .collect(),
        }
    }

    /// Sets `model`'s key from column `column` of row `i`.
    pub(crate) fn set_key<M: crate::model::Model>(
        &self,
        i: usize,
        column: usize,
        model: &mut M,
    ) -> Result<(), Error> {
        let missing = || Error::types(format!("no key returned for {} #{i}", M::META.name));
        match self {
            Rows::Pipeline(r) => model.set_key_from(r.get(i).ok_or_else(missing)?, column),
            Rows::Client(r) => model.set_key_from(r.get(i).ok_or_else(missing)?, column),
            Rows::Cached(r) => model.set_key_from(&r.row(i).ok_or_else(missing)?, column),
        }
    }

    /// The one row as a `T`: [`Error::is_no_row`] for none, [`Error::is_multiple_rows`] (of
    /// `model`) for several.
    pub(crate) fn decode_one<T: FromRow>(&self, model: &'static str) -> Result<T, Error> {
        let several = || Error::multiple_rows(model);
        match self {
            Rows::Pipeline(r) => match r.as_slice() {
                [row] => T::from_row(row),
                [] => Err(Error::no_row()),
                _ => Err(several()),
            },
            Rows::Client(r) => match r.as_slice() {
                [row] => T::from_row(row),
                [] => Err(Error::no_row()),
                _ => Err(several()),
            },
            Rows::Cached(r) => match (r.len(), r.row(0)) {
                (1, Some(row)) => T::from_row(&row),
                (0, _) | (_, None) => Err(Error::no_row()),
                _ => Err(several()),
            },
        }
    }

    /// Row `i` as a `T`, `None` past the end.
    pub(crate) fn decode_at<T: FromRow>(&self, i: usize) -> Result<Option<T>, Error> {
        match self {
            Rows::Pipeline(r) => r.get(i).map(T::from_row).transpose(),
            Rows::Client(r) => r.get(i).map(T::from_row).transpose(),
            Rows::Cached(r) => r.row(i).map(|row| T::from_row(&row)).transpose(),
        }
    }
}

impl Scope<'_> {
    /// The manager behind a routing scope (none for a transaction).
    fn manager(&self) -> Option<&ConnectionManager> {
        match self {
            Scope::Manager(m) => Some(m),
            Scope::Routing(r) => Some(r.db()),
            Scope::Tx(_) => None,
        }
    }

    fn reader(&self, model: &ModelMeta, using: Option<&str>) -> Result<&Database, Error> {
        match self {
            Scope::Manager(m) => m.read_target(model, using, false),
            Scope::Routing(r) => r.read_target(model, using),
            Scope::Tx(tx) => Ok(tx.database()),
        }
    }
}

/// Runs `stmt` once per parameter set through the pipeline of the database the router picks
/// for reads; retried once, where the router says then, when the connection failed.
async fn pipelined<'p, P: AsRef<Params<'p>>>(
    scope: &Scope<'_>,
    model: &ModelMeta,
    using: Option<&str>,
    stmt: &PipelineStatement,
    sets: &[P],
) -> Result<crate::pipeline::Outcome, Error> {
    let first = scope.reader(model, using)?;
    match first.run_prepared(stmt, sets, false).await {
        Err(e) if e.is_retryable_read() => {
            // Boxed: the retry is rare, and inline it would double the size of every read's
            // future.
            Box::pin(retry(scope, first, e, model, using, stmt, sets)).await
        }
        other => other,
    }
}

/// How many more times a read whose connection failed is run: once on whatever healthy
/// database the router picks then, and once more if that connection is lost too (every
/// backend terminated at once: the retry may land on a connection that dies a millisecond
/// later; the next try then waits for a connection dialed after the failure).
const READ_RETRIES: usize = 2;

/// The next tries of a read whose connection failed.
async fn retry<'p, P: AsRef<Params<'p>>>(
    scope: &Scope<'_>,
    failed: &Database,
    error: Error,
    model: &ModelMeta,
    using: Option<&str>,
    stmt: &PipelineStatement,
    sets: &[P],
) -> Result<crate::pipeline::Outcome, Error> {
    let mut failed_on = failed.name().to_string();
    let mut error = error;
    for attempt in 1..=READ_RETRIES {
        let again = scope.reader(model, using)?;
        tracing::debug!(
            failed = failed_on.as_str(),
            retry_on = again.name(),
            attempt,
            %error,
            "read retried on another connection"
        );
        match again.run_prepared(stmt, sets, false).await {
            Err(e) if e.is_retryable_read() && attempt < READ_RETRIES => {
                failed_on = again.name().to_string();
                error = e;
            }
            other => return other,
        }
    }
    Err(error)
}

/// Runs the read `stmt` once per parameter set (one batch, one `Sync`), and returns each
/// run's rows. Retried once, where the router says then, when the connection failed.
pub(crate) async fn read<'p, P: AsRef<Params<'p>>>(
    db: &impl Executor,
    model: &ModelMeta,
    using: Option<&str>,
    stmt: &PipelineStatement,
    sets: &[P],
) -> Result<Vec<Rows>, Error> {
    let scope = db.scope();
    if let Scope::Tx(tx) = scope {
        tx.check_model(model, using)?;
        let mut all = Vec::with_capacity(sets.len());
        for params in sets {
            all.push(Rows::Client(tx.query(stmt.sql(), params.as_ref()).await?));
        }
        return Ok(all);
    }
    let outcome = pipelined(&scope, model, using, stmt, sets).await?;
    Ok(outcome.results.into_iter().map(Rows::Pipeline).collect())
}

/// Runs the read `stmt` once and returns its rows (see [`read`]); through the query cache
/// when `cache` says it may. The hot path of a primary-key read: one future deep over the
/// pipeline's.
pub(crate) async fn read_one(
    db: &impl Executor,
    model: &ModelMeta,
    using: Option<&str>,
    cache: Option<&CacheSpec<'_>>,
    stmt: &PipelineStatement,
    params: &Params<'_>,
) -> Result<Rows, Error> {
    let scope = db.scope();
    let first = match scope {
        Scope::Tx(tx) => {
            tx.check_model(model, using)?;
            if cache.is_some() {
                if let Some(qc) = tx.database().query_cache() {
                    qc.count_bypass();
                }
            }
            return Ok(Rows::Client(Box::pin(tx.query(stmt.sql(), params)).await?));
        }
        _ => scope.reader(model, using)?,
    };
    if let Some(spec) = cache {
        if let Some(qc) = scope.manager().and_then(ConnectionManager::query_cache) {
            return Box::pin(cached(&scope, qc, spec, first, model, using, stmt, params)).await;
        }
    }
    let sets = [params];
    let mut outcome = match first.run_prepared(stmt, &sets, false).await {
        Err(e) if e.is_retryable_read() => {
            Box::pin(retry(&scope, first, e, model, using, stmt, &sets)).await?
        }
        other => other?,
    };
    Ok(Rows::Pipeline(outcome.results.pop().unwrap_or_default()))
}

/// A read through the query cache: the versions of its tables are read first and make the
/// key; a hit is answered at once; a miss runs on a database that has replayed the tables'
/// last bump (a lagging replica is passed over for the primary), and the result is stored
/// under the versions read before it ran.
#[allow(
    clippy::too_many_arguments,
    reason = "the read's whole description, passed through"
)]
async fn cached(
    scope: &Scope<'_>,
    qc: &QueryCache,
    spec: &CacheSpec<'_>,
    first: &Database,
    model: &ModelMeta,
    using: Option<&str>,
    stmt: &PipelineStatement,
    params: &Params<'_>,
) -> Result<Rows, Error> {
    let manager = scope
        .manager()
        .ok_or_else(|| Error::invalid("no manager"))?;
    let key = match using {
        None if first.role() != Role::Other => qc.key(spec.tables, stmt, params),
        _ => {
            qc.count_bypass();
            None
        }
    };
    let seen = match key {
        Some(seen) => seen,
        None => {
            // Bypassed (the listener is down; a database forced by name, which the replica
            // rule cannot choose for; or a database besides the primary, whose commits
            // cannot announce their bumps on the primary's channel in the same transaction,
            // so other instances would go on serving what they cached). Retried once like any read whose connection
            // was lost: a listener outage often comes with lost connections (a restart, a
            // network blip), and without the retry such reads failed where uncached ones
            // succeeded.
            let sets = [params];
            let mut outcome = match first.run_prepared(stmt, &sets, false).await {
                Err(e) if e.is_retryable_read() => {
                    retry(scope, first, e, model, using, stmt, &sets).await?
                }
                other => other?,
            };
            return Ok(Rows::Pipeline(outcome.results.pop().unwrap_or_default()));
        }
    };
    if let Some(rows) = qc.get(&seen).await {
        return Ok(Rows::Cached(rows));
    }
    let mut target = manager.fill_target(first, seen.lsn);
    let mut attempt = 0;
    let mut outcome = loop {
        match target.run_prepared(stmt, &[params], false).await {
            Err(e) if e.is_retryable_read() && attempt < READ_RETRIES => {
                attempt += 1;
                let again = manager.fill_target(scope.reader(model, using)?, seen.lsn);
                tracing::debug!(failed = target.name(), retry_on = again.name(), attempt, error = %e, "read retried on another connection");
                target = again;
            }
            other => break other?,
        }
    };
    let rows = outcome.results.pop().unwrap_or_default();
    qc.fill(&seen, CachedRows::from_pipeline(&rows)?, spec.ttl)
        .await;
    Ok(Rows::Pipeline(rows))
}

/// Runs the read `stmt` once per parameter set through the query cache (a batch's sets):
/// the hits answered from it, the misses in one batch on a database that has replayed their
/// tables' last bump, then stored under the versions read before they ran. As [`read`] when
/// these reads may not use the cache (in a transaction, forced to a database by name or on
/// one besides the primary, the listener down, or no cache).
pub(crate) async fn read_cached<'p, P: AsRef<Params<'p>>>(
    db: &impl Executor,
    model: &ModelMeta,
    using: Option<&str>,
    spec: &CacheSpec<'_>,
    stmt: &PipelineStatement,
    sets: &[P],
) -> Result<Vec<Rows>, Error> {
    let scope = db.scope();
    if let Scope::Tx(tx) = scope {
        if let Some(qc) = tx.database().query_cache() {
            sets.iter().for_each(|_| qc.count_bypass());
        }
        return read(db, model, using, stmt, sets).await;
    }
    let first = scope.reader(model, using)?;
    let (manager, qc) = match scope.manager().and_then(|m| Some((m, m.query_cache()?))) {
        Some((m, qc)) if using.is_none() && qc.is_in_sync() && first.role() != Role::Other => {
            (m, qc)
        }
        Some((_, qc)) => {
            sets.iter().for_each(|_| qc.count_bypass());
            return read(db, model, using, stmt, sets).await;
        }
        None => return read(db, model, using, stmt, sets).await,
    };
    // A set without a key (the listener went down meanwhile) runs with the misses and is not
    // stored.
    let seen: Vec<_> = sets
        .iter()
        .map(|p| qc.key(spec.tables, stmt, p.as_ref()))
        .collect();
    let mut out: Vec<Option<Rows>> = Vec::with_capacity(sets.len());
    let mut misses = Vec::new();
    for (i, s) in seen.iter().enumerate() {
        let hit = match s {
            Some(s) => qc.get(s).await,
            None => None,
        };
        if hit.is_none() {
            misses.push(i);
        }
        out.push(hit.map(Rows::Cached));
    }
    if !misses.is_empty() {
        let lsn = misses
            .iter()
            .filter_map(|&i| seen[i].as_ref().map(|s| s.lsn))
            .max()
            .unwrap_or(0);
        let run: Vec<&Params<'p>> = misses.iter().map(|&i| sets[i].as_ref()).collect();
        let mut target = manager.fill_target(first, lsn);
        let mut attempt = 0;
        let outcome = loop {
            match target.run_prepared(stmt, &run, false).await {
                Err(e) if e.is_retryable_read() && attempt < READ_RETRIES => {
                    attempt += 1;
                    let again = manager.fill_target(scope.reader(model, using)?, lsn);
                    tracing::debug!(failed = target.name(), retry_on = again.name(), attempt, error = %e, "read retried on another connection");
                    target = again;
                }
                other => break other?,
            }
        };
        for (&i, rows) in misses.iter().zip(outcome.results) {
            if let Some(s) = &seen[i] {
                qc.fill(s, CachedRows::from_pipeline(&rows)?, spec.ttl)
                    .await;
            }
            out[i] = Some(Rows::Pipeline(rows));
        }
    }
    out.into_iter()
        .map(|r| r.ok_or_else(|| Error::types("a batched statement returned no result")))
        .collect()
}

/// Runs the write `sql` (which writes `tables`) where the router sends writes of `model`;
/// its rows (`RETURNING`) and the number of rows it affected. Never retried: it may have
/// been applied. With a query cache, the tables' versions are bumped once it committed, and
/// other processes are told in the same implicit transaction.
pub(crate) async fn write(
    db: &impl Executor,
    model: &ModelMeta,
    using: Option<&str>,
    tables: &[&'static str],
    sql: &str,
    params: &Params<'_>,
) -> Result<(Rows, u64), Error> {
    let target = match db.scope() {
        Scope::Tx(tx) => {
            tx.begin_write(model, using, tables)?;
            let rows = tx.query(sql, params).await?;
            let n = rows.len() as u64;
            return Ok((Rows::Client(rows), n));
        }
        Scope::Manager(m) => m.write_target(model, using)?,
        Scope::Routing(r) => r.write_target(model, using)?,
    };
    let mut outcome = match target.query_cache() {
        Some(qc) if target.role() == Role::Primary && !tables.is_empty() => {
            let (outcome, lsn) = target
                .run_write_notified(sql, params, &qc.notify_payload(tables))
                .await?;
            qc.bump(tables, lsn);
            outcome
        }
        Some(qc) => {
            let outcome = target.run_statement(sql, &[params], true).await?;
            qc.bump(tables, 0);
            outcome
        }
        None => target.run_statement(sql, &[params], true).await?,
    };
    let rows = outcome.results.pop().unwrap_or_default();
    let count = outcome.counts.pop().unwrap_or(0);
    Ok((Rows::Pipeline(rows), count))
}

/// Runs the write `sql` (which writes `tables`) and returns the number of rows it affected.
pub(crate) async fn execute(
    db: &impl Executor,
    model: &ModelMeta,
    using: Option<&str>,
    tables: &[&'static str],
    sql: &str,
    params: &Params<'_>,
) -> Result<u64, Error> {
    if let Scope::Tx(tx) = db.scope() {
        tx.begin_write(model, using, tables)?;
        return tx.execute(sql, params).await;
    }
    Ok(write(db, model, using, tables, sql, params).await?.1)
}

/// The first of `tables` that the executor's manager keeps on the primary.
pub(crate) fn primary_only_table(
    db: &impl Executor,
    tables: &[&'static str],
) -> Option<&'static str> {
    let manager = match db.scope() {
        Scope::Manager(m) => m,
        Scope::Routing(r) => r.db(),
        Scope::Tx(_) => return None,
    };
    tables.iter().copied().find(|t| manager.is_primary_only(t))
}
