//! Aggregates over a query set: `count` (in the parent module), `sum`, `avg`, `min`, `max`.

use tokio_postgres::types::FromSql;

use super::sql::{Sink, Sql};
use super::QuerySet;
use crate::error::Error;
use crate::exec::{self, Executor};
use crate::model::{Column, Model};

/// A column type that sums: integers sum to an `i64` (`bigint`, so no `numeric` to
/// decode), floats to an `f64`.
pub trait Summable {
    /// What the sum decodes into.
    type Sum: for<'a> FromSql<'a>;
    /// The cast that makes PostgreSQL's sum that type.
    #[doc(hidden)]
    const CAST: &'static str;
}

macro_rules! summable {
    ($($t:ty => $sum:ty, $cast:literal;)*) => {$(
        impl Summable for $t {
            type Sum = $sum;
            const CAST: &'static str = $cast;
        }
        impl Summable for Option<$t> {
            type Sum = $sum;
            const CAST: &'static str = $cast;
        }
    )*};
}

summable! {
    i16 => i64, "::int8";
    i32 => i64, "::int8";
    i64 => i64, "::int8";
    f32 => f64, "::float8";
    f64 => f64, "::float8";
}

impl<M: Model> QuerySet<M> {
    async fn aggregate<T: for<'a> FromSql<'a>>(
        &self,
        function: &str,
        column: usize,
        cast: &str,
        db: &impl Executor,
    ) -> Result<Option<T>, Error> {
        let mut sql = Sql::new(64);
        sql.push("SELECT ").push(function).push("(");
        sql.column(M::META, None, column);
        sql.push(")").push(cast);
        self.write_from(&mut sql);
        let rows = exec::read_one(
            db,
            M::META,
            self.using_name(),
            self.cache_spec().as_ref(),
            &crate::statements::by_text(&sql.text),
            &sql.refs(),
        )
        .await?;
        Ok(rows.decode_at::<(Option<T>,)>(0)?.and_then(|(v,)| v))
    }

    /// The sum of `column` over the matching rows; `None` when none matches (or all are
    /// NULL).
    ///
    /// # Errors
    /// The database's (an integer sum beyond `bigint` is an overflow error).
    pub async fn sum<T: Summable>(
        &self,
        column: Column<M, T>,
        db: &impl Executor,
    ) -> Result<Option<T::Sum>, Error> {
        self.aggregate("sum", column.index(), T::CAST, db).await
    }

    /// The mean of `column` over the matching rows, as an `f64`; `None` when none matches.
    ///
    /// # Errors
    /// The database's.
    pub async fn avg<T: Summable>(
        &self,
        column: Column<M, T>,
        db: &impl Executor,
    ) -> Result<Option<f64>, Error> {
        self.aggregate("avg", column.index(), "::float8", db).await
    }

    /// The least value of `column` over the matching rows; `None` when none matches.
    ///
    /// # Errors
    /// The database's.
    pub async fn min<T: for<'a> FromSql<'a>>(
        &self,
        column: Column<M, T>,
        db: &impl Executor,
    ) -> Result<Option<T>, Error> {
        self.aggregate("min", column.index(), "", db).await
    }

    /// The greatest value of `column` over the matching rows; `None` when none matches.
    ///
    /// # Errors
    /// The database's.
    pub async fn max<T: for<'a> FromSql<'a>>(
        &self,
        column: Column<M, T>,
        db: &impl Executor,
    ) -> Result<Option<T>, Error> {
        self.aggregate("max", column.index(), "", db).await
    }
}
