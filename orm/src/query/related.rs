//! `select_related`: each row with the row its foreign key points to, in one `JOIN`.

use std::marker::PhantomData;

use super::sql::{Sink, Sql};
use super::QuerySet;
use crate::error::Error;
use crate::exec::{self, Executor};
use crate::model::{Expr, ForeignKey, Model, Node};
use crate::row::{FromRow, RowRef};

/// A query set of `M` joined to the `R` each row points to: [`QuerySet::select_related`].
/// Rows whose foreign key is NULL are left out (an inner join).
pub struct Related<M, R> {
    query: QuerySet<M>,
    related_filters: Vec<Node>,
    _related: PhantomData<fn() -> R>,
}

/// The decoded pair: `M`'s columns first, then `R`'s.
struct Pair<M, R>(M, R);

impl<M: Model, R: Model> FromRow for Pair<M, R> {
    const COLUMNS: usize = M::COLUMNS + R::COLUMNS;

    fn from_row<X: RowRef + ?Sized>(row: &X) -> Result<Self, Error> {
        crate::row::expect_columns(M::META.name, row.column_count(), Self::COLUMNS)?;
        Ok(Pair(
            M::from_row(&Offset {
                row,
                skip: 0,
                len: M::COLUMNS,
            })?,
            R::from_row(&Offset {
                row,
                skip: M::COLUMNS,
                len: R::COLUMNS,
            })?,
        ))
    }
}

/// Columns `skip..skip + len` of a row, seen as a row of their own.
struct Offset<'r, X: ?Sized> {
    row: &'r X,
    skip: usize,
    len: usize,
}

impl<X: RowRef + ?Sized> RowRef for Offset<'_, X> {
    fn column_count(&self) -> usize {
        self.len
    }

    fn get_column<'a, T: tokio_postgres::types::FromSql<'a>>(
        &'a self,
        idx: usize,
    ) -> Result<T, Error> {
        self.row.get_column(self.skip + idx)
    }
}

impl<M: ForeignKey<R>, R: Model> Related<M, R> {
    pub(crate) fn new(query: QuerySet<M>) -> Self {
        Related {
            query,
            related_filters: Vec::new(),
            _related: PhantomData,
        }
    }

    /// Only the rows whose related `R` matches `expr`.
    pub fn filter_related(mut self, expr: Expr<R>) -> Self {
        self.related_filters.push(expr.node);
        self
    }

    fn sql(&self, query: &QuerySet<M>, default_order: Option<(usize, bool)>) -> Sql {
        let (m, r) = (M::META, R::META);
        let mut sql = Sql::new(128);
        sql.push("SELECT ");
        sql.select_list(m, Some("t0")).push(", ");
        sql.select_list(r, Some("t1"));
        sql.push(" FROM ").push(m.quoted_table).push(" AS t0 JOIN ");
        sql.push(r.quoted_table).push(" AS t1 ON t1.");
        sql.push(r.quoted_columns[r.primary_key]).push(" = t0.");
        sql.push(m.quoted_columns[<M as ForeignKey<R>>::COLUMN]);
        let all = query.filters.len() + self.related_filters.len();
        let mut i = 0;
        for node in query.filters.iter() {
            sql.push(if i == 0 { " WHERE " } else { " AND " });
            sql.node(m, Some("t0"), node, all > 1);
            i += 1;
        }
        for node in &self.related_filters {
            sql.push(if i == 0 { " WHERE " } else { " AND " });
            sql.node(r, Some("t1"), node, all > 1);
            i += 1;
        }
        match (&query.order[..], default_order) {
            ([], Some(order)) => sql.order(m, Some("t0"), &[order]),
            (order, _) => sql.order(m, Some("t0"), order),
        };
        sql.slice(query.limit.as_ref(), None, query.offset.as_ref());
        sql
    }

    async fn rows(&self, sql: &Sql, db: &impl Executor) -> Result<Vec<(M, R)>, Error> {
        // Routed as a read of `M`; a primary-only `R` keeps the join on the primary.
        let model = if R::META.primary_only {
            R::META
        } else {
            M::META
        };
        // Cached under both tables' versions: a write to either invalidates it.
        let tables = [M::META.table, R::META.table];
        let ttl = match (M::META.cache_ttl, R::META.cache_ttl) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let spec = self.query.cache.then_some(exec::CacheSpec {
            tables: &tables,
            ttl,
        });
        let rows = exec::read_one(
            db,
            model,
            self.query.using_name(),
            spec.as_ref(),
            &crate::statements::by_text(&sql.text),
            &sql.refs(),
        )
        .await?;
        let pairs: Vec<Pair<M, R>> = rows.decode()?;
        Ok(pairs.into_iter().map(|Pair(m, r)| (m, r)).collect())
    }

    /// Every matching row with its related row.
    ///
    /// # Errors
    /// The database's; a query error when a column does not decode.
    pub async fn all(&self, db: &impl Executor) -> Result<Vec<(M, R)>, Error> {
        let sql = self.sql(&self.query, None);
        self.rows(&sql, db).await
    }

    /// The first matching row with its related row (by `M`'s primary key unless ordered).
    ///
    /// # Errors
    /// As [`all`](Self::all).
    pub async fn first(&self, db: &impl Executor) -> Result<Option<(M, R)>, Error> {
        let query = self.query.clone().limit(1);
        let sql = self.sql(&query, Some((M::META.primary_key, false)));
        Ok(self.rows(&sql, db).await?.into_iter().next())
    }

    /// The one matching row with its related row.
    ///
    /// # Errors
    /// As [`QuerySet::get`].
    pub async fn get(&self, db: &impl Executor) -> Result<(M, R), Error> {
        let query = self.query.clone().limit(2);
        let sql = self.sql(&query, None);
        let mut rows = self.rows(&sql, db).await?;
        match rows.len() {
            0 => Err(Error::no_row()),
            1 => rows.pop().ok_or_else(Error::no_row),
            _ => Err(Error::multiple_rows(M::META.name)),
        }
    }
}
