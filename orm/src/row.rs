//! Typed rows: [`FromRow`] decodes a row into a struct, from either row type the ORM returns.

use tokio_postgres::types::FromSql;

use crate::error::Error;
use crate::pipeline::PipelineRow;

/// A row whose columns can be read by position: a `tokio_postgres::Row` (queries, the pool)
/// or a [`PipelineRow`] (batches), so that one struct decodes from both.
pub trait RowRef {
    /// How many columns the row has.
    fn column_count(&self) -> usize;

    /// Column `idx` (from 0) as a `T`.
    ///
    /// # Errors
    /// A query error when there is no such column, when `T` cannot hold its type, or when the
    /// value does not decode (a NULL into a type that is not an `Option`).
    fn get_column<'a, T: FromSql<'a>>(&'a self, idx: usize) -> Result<T, Error>;
}

impl RowRef for tokio_postgres::Row {
    fn column_count(&self) -> usize {
        self.len()
    }

    fn get_column<'a, T: FromSql<'a>>(&'a self, idx: usize) -> Result<T, Error> {
        self.try_get(idx)
            .map_err(|e| Error::types(format!("column {idx}: {e}")))
    }
}

impl RowRef for PipelineRow {
    fn column_count(&self) -> usize {
        self.len()
    }

    fn get_column<'a, T: FromSql<'a>>(&'a self, idx: usize) -> Result<T, Error> {
        self.get(idx)
    }
}

/// A value built from one row: `#[derive(FromRow)]` (re-exported as `pinion_orm::FromRow`)
/// writes it for a struct, decoding column `i` into field `i`.
///
/// ```ignore
/// #[derive(pinion_orm::FromRow)]
/// struct World {
///     id: i32,
///     random_number: i32,
/// }
/// let rows = db.query("SELECT id, randomnumber FROM world WHERE id = $1", &[&7]).await?;
/// let world = World::from_row(&rows[0])?;
/// ```
pub trait FromRow: Sized {
    /// How many columns a row must have.
    const COLUMNS: usize;

    /// Decodes `row`.
    ///
    /// # Errors
    /// A query error ([`Error::is_query`]) when the row has another number of columns than
    /// [`COLUMNS`](Self::COLUMNS), or when a column does not decode into its field.
    fn from_row<R: RowRef + ?Sized>(row: &R) -> Result<Self, Error>;

    /// Decodes every row of `rows`.
    ///
    /// # Errors
    /// As [`from_row`](Self::from_row), for the first row that fails.
    fn from_rows<R: RowRef>(rows: &[R]) -> Result<Vec<Self>, Error> {
        rows.iter().map(Self::from_row).collect()
    }
}

/// Refuses a row of `got` columns for `what`, which decodes `want`: called by the derived
/// [`FromRow`] before it reads any column.
///
/// # Errors
/// A query error naming the struct and both counts.
#[doc(hidden)]
pub fn expect_columns(what: &str, got: usize, want: usize) -> Result<(), Error> {
    if got == want {
        return Ok(());
    }
    Err(Error::types(format!(
        "{what} decodes {want} column{}, the row has {got}",
        if want == 1 { "" } else { "s" }
    )))
}

macro_rules! tuple_from_row {
    ($n:literal: $($t:ident $i:tt),+) => {
        /// A row of that many columns, by position: `(i64,)` for `SELECT count(*)`.
        impl<$($t: for<'a> FromSql<'a>),+> FromRow for ($($t,)+) {
            const COLUMNS: usize = $n;

            fn from_row<R: RowRef + ?Sized>(row: &R) -> Result<Self, Error> {
                expect_columns("a tuple", row.column_count(), $n)?;
                Ok(($(row.get_column::<$t>($i)?,)+))
            }
        }
    };
}

tuple_from_row!(1: A 0);
tuple_from_row!(2: A 0, B 1);
tuple_from_row!(3: A 0, B 1, C 2);
tuple_from_row!(4: A 0, B 1, C 2, D 3);
tuple_from_row!(5: A 0, B 1, C 2, D 3, E 4);
tuple_from_row!(6: A 0, B 1, C 2, D 3, E 4, F 5);
