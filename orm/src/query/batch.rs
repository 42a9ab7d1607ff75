//! Several independent query sets run together: the ones with the same SQL (the same
//! filters on different values, as `/queries?q=20` makes) go to the pipeline connection as
//! one batch with one `Sync`, so PostgreSQL answers them in one send. Through the query
//! cache like any read: the hits are answered from it and only the misses are sent.

use futures_util::future::try_join_all;

use std::rc::Rc;

use super::{values_if_same, QuerySet};
use crate::error::Error;
use crate::exec::{self, Executor, Rows};
use crate::model::Model;
use crate::pipeline::PipelineStatement;

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
    /// Runs each set's statement: sets of the same shape, database and cache use in one batch
    /// each (through the query cache unless `cache(false)`),
    /// the batches pipelined; each set's rows in the order of the sets. `most` and
    /// `default_order` as for [`QuerySet::select_statement`].
    async fn run(
        &self,
        most: Option<u8>,
        default_order: Option<(usize, bool)>,
        db: &impl Executor,
    ) -> Result<Vec<Rows>, Error> {
        // Each group: its first set, its statement, and the places of its sets. A set is
        // compared with each group's first set (most batches have one group), so only the
        // first set of a shape is looked up.
        let mut groups: Vec<(usize, Rc<PipelineStatement>, Vec<usize>)> = Vec::new();
        let mut values = Vec::with_capacity(self.sets.len());
        for (i, set) in self.sets.iter().enumerate() {
            let found = groups.iter_mut().find_map(|(lead, _, members)| {
                let lead = &self.sets[*lead];
                if lead.using != set.using || lead.cache != set.cache {
                    return None;
                }
                values_if_same(lead, set, most).map(|v| (members, v))
            });
            match found {
                Some((members, v)) => {
                    members.push(i);
                    values.push(v);
                }
                None => {
                    let (stmt, v) = set.select_statement(most, default_order);
                    values.push(v);
                    // The first group usually holds every set.
                    let mut members = Vec::with_capacity(self.sets.len() - i);
                    members.push(i);
                    groups.push((i, stmt, members));
                }
            }
        }
        let runs = groups.iter().map(|(lead, stmt, members)| {
            let sets: Vec<&[_]> = members.iter().map(|&i| &*values[i]).collect();
            let lead = &self.sets[*lead];
            let using = lead.using_name();
            async move {
                match lead.cache_spec() {
                    Some(spec) => exec::read_cached(db, M::META, using, &spec, stmt, &sets).await,
                    None => exec::read(db, M::META, using, stmt, &sets).await,
                }
            }
        });
        let mut runs = runs;
        let answers = if groups.len() == 1 {
            // One group holds every set, in order: awaited as it is, without the joining.
            let only = match runs.next() {
                Some(run) => run.await?,
                None => Vec::new(),
            };
            if only.len() == self.sets.len() {
                return Ok(only);
            }
            vec![only]
        } else {
            try_join_all(runs).await?
        };
        let mut out: Vec<Option<Rows>> = (0..self.sets.len()).map(|_| None).collect();
        for ((_, _, members), rows) in groups.iter().zip(answers) {
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
        self.run(None, None, db)
            .await?
            .iter()
            .map(Rows::decode)
            .collect()
    }

    /// The first matching row of each query set (by primary key unless ordered).
    ///
    /// # Errors
    /// As [`all`](Self::all).
    pub async fn first(&self, db: &impl Executor) -> Result<Vec<Option<M>>, Error> {
        self.run(Some(1), Some((M::META.primary_key, false)), db)
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
        let rows = self.run(Some(2), None, db).await?;
        // Collected by hand: through `Result`'s `FromIterator` the vector grows from empty.
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(r.decode_one(M::META.name)?);
        }
        Ok(out)
    }
}
