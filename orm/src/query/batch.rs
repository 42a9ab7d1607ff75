//! Several independent query sets run together: the ones with the same SQL (the same
//! filters on different values, as `/queries?q=20` makes) go to the pipeline connection as
//! one batch with one `Sync`, so PostgreSQL answers them in one send.

use futures_util::future::try_join_all;

use super::sql::Sql;
use super::QuerySet;
use crate::error::Error;
use crate::exec::{self, Executor, Rows};
use crate::model::Model;

/// Query sets to run together: [`batch`].
pub struct Batch<M> {
    sets: Vec<QuerySet<M>>,
}

/// Gathers `sets` into one [`Batch`]:
///
/// ```ignore
/// let worlds = batch(ids.iter().map(|&id| World::objects().filter(World::ID.eq(id))))
///     .get(&db)
///     .await?;
/// ```
pub fn batch<M: Model>(sets: impl IntoIterator<Item = QuerySet<M>>) -> Batch<M> {
    Batch {
        sets: sets.into_iter().collect(),
    }
}

impl<M: Model> Batch<M> {
    /// Runs every statement: those of the same SQL in one batch each, the batches
    /// pipelined; each set's rows in the order of the sets.
    async fn run(&self, sqls: Vec<Sql>, db: &impl Executor) -> Result<Vec<Rows>, Error> {
        let using = self.sets.first().and_then(QuerySet::using_name);
        // Group by SQL text, keeping each statement's place.
        let mut groups: Vec<(&str, Vec<usize>)> = Vec::new();
        for (i, sql) in sqls.iter().enumerate() {
            match groups.iter_mut().find(|(text, _)| *text == sql.text) {
                Some((_, members)) => members.push(i),
                None => groups.push((&sql.text, vec![i])),
            }
        }
        let params: Vec<_> = sqls.iter().map(Sql::refs).collect();
        let runs = groups.iter().map(|(text, members)| {
            let sets: Vec<&[_]> = members.iter().map(|&i| params[i].as_slice()).collect();
            async move { exec::read(db, M::META, using, text, &sets).await }
        });
        let answers = try_join_all(runs).await?;
        let mut out: Vec<Option<Rows>> = (0..sqls.len()).map(|_| None).collect();
        for ((_, members), rows) in groups.iter().zip(answers) {
            for (&i, r) in members.iter().zip(rows) {
                out[i] = Some(r);
            }
        }
        out.into_iter()
            .map(|r| r.ok_or_else(|| Error::types("a batched statement returned no result")))
            .collect()
    }

    /// Every matching row of each query set, in order.
    ///
    /// # Errors
    /// The database's: the first error fails the whole batch.
    pub async fn all(&self, db: &impl Executor) -> Result<Vec<Vec<M>>, Error> {
        let sqls = self.sets.iter().map(|s| s.select_sql(None)).collect();
        self.run(sqls, db).await?.iter().map(Rows::decode).collect()
    }

    /// The first matching row of each query set (by primary key unless ordered).
    ///
    /// # Errors
    /// As [`all`](Self::all).
    pub async fn first(&self, db: &impl Executor) -> Result<Vec<Option<M>>, Error> {
        let pk = Some((M::META.primary_key, false));
        let sqls = self
            .sets
            .iter()
            .map(|s| s.select_sql_at_most(Some(1), pk))
            .collect();
        self.run(sqls, db)
            .await?
            .iter()
            .map(|r| r.decode_at(0))
            .collect()
    }

    /// The one matching row of each query set.
    ///
    /// # Errors
    /// [`Error::is_no_row`] when a set matches none, [`Error::is_multiple_rows`] when one
    /// matches several; else as [`all`](Self::all).
    pub async fn get(&self, db: &impl Executor) -> Result<Vec<M>, Error> {
        let sqls = self
            .sets
            .iter()
            .map(|s| s.select_sql_at_most(Some(2), None))
            .collect();
        self.run(sqls, db)
            .await?
            .iter()
            .map(|r| match r.len() {
                0 => Err(Error::no_row()),
                1 => r.decode_at(0)?.ok_or_else(Error::no_row),
                _ => Err(Error::multiple_rows(M::META.name)),
            })
            .collect()
    }
}
