//! Selected columns only: `World::objects().values((World::ID, World::RANDOM_NUMBER))`.

use tokio_postgres::types::FromSql;

use super::sql::{Sink, Sql};
use super::QuerySet;
use crate::error::Error;
use crate::exec::{self, Executor};
use crate::model::{Column, Model};
use crate::row::FromRow;

/// The columns a [`Values`] query reads: one [`Column`] (its values come back bare) or a
/// tuple of up to six (they come back as tuples).
pub trait Columns<M> {
    /// The row as it decodes.
    #[doc(hidden)]
    type Row: FromRow;
    /// What each row is returned as.
    type Output;
    /// The columns' indices in the model.
    #[doc(hidden)]
    fn indices(&self) -> Vec<usize>;
    /// The row as returned.
    #[doc(hidden)]
    fn output(row: Self::Row) -> Self::Output;
}

impl<M, T: for<'a> FromSql<'a>> Columns<M> for Column<M, T> {
    type Row = (T,);
    type Output = T;
    fn indices(&self) -> Vec<usize> {
        vec![self.index()]
    }
    fn output(row: (T,)) -> T {
        row.0
    }
}

macro_rules! columns_tuple {
    ($($t:ident $i:tt),+) => {
        impl<M, $($t: for<'a> FromSql<'a>),+> Columns<M> for ($(Column<M, $t>,)+) {
            type Row = ($($t,)+);
            type Output = ($($t,)+);
            fn indices(&self) -> Vec<usize> {
                vec![$(self.$i.index()),+]
            }
            fn output(row: Self::Row) -> Self::Output {
                row
            }
        }
    };
}

columns_tuple!(A 0);
columns_tuple!(A 0, B 1);
columns_tuple!(A 0, B 1, C 2);
columns_tuple!(A 0, B 1, C 2, D 3);
columns_tuple!(A 0, B 1, C 2, D 3, E 4);
columns_tuple!(A 0, B 1, C 2, D 3, E 4, F 5);

/// A query set that reads only some columns: [`QuerySet::values`].
pub struct Values<M, C> {
    query: QuerySet<M>,
    columns: C,
}

impl<M: Model, C: Columns<M>> Values<M, C> {
    pub(crate) fn new(query: QuerySet<M>, columns: C) -> Self {
        Values { query, columns }
    }

    fn sql(&self, query: &QuerySet<M>, default_order: Option<(usize, bool)>) -> Sql {
        let meta = M::META;
        let mut sql = Sql::new(64);
        sql.push("SELECT ");
        for (i, column) in self.columns.indices().into_iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.column(meta, None, column);
        }
        sql.push(" FROM ").push(meta.quoted_table);
        query.rest(&mut sql, default_order);
        sql
    }

    async fn rows(&self, sql: &Sql, db: &impl Executor) -> Result<exec::Rows, Error> {
        exec::read_one(
            db,
            M::META,
            self.query.using_name(),
            self.query.cache_spec().as_ref(),
            &crate::statements::by_text(&sql.text),
            &sql.refs(),
        )
        .await
    }

    /// The columns of every matching row.
    ///
    /// # Errors
    /// The database's; a query error when a column does not decode.
    pub async fn all(&self, db: &impl Executor) -> Result<Vec<C::Output>, Error> {
        let sql = self.sql(&self.query, None);
        let rows: Vec<C::Row> = self.rows(&sql, db).await?.decode()?;
        Ok(rows.into_iter().map(C::output).collect())
    }

    /// The columns of the first matching row (by primary key unless ordered).
    ///
    /// # Errors
    /// As [`all`](Self::all).
    pub async fn first(&self, db: &impl Executor) -> Result<Option<C::Output>, Error> {
        let query = self.query.clone().limit(1);
        let sql = self.sql(&query, Some((M::META.primary_key, false)));
        let row: Option<C::Row> = self.rows(&sql, db).await?.decode_at(0)?;
        Ok(row.map(C::output))
    }
}
