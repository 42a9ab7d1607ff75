//! A row a pipelined statement returned.

use std::sync::Arc;

use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::DataRowBody;
use tokio_postgres::types::{FromSql, Type};

use crate::error::Error;

/// One row of a [`PipelineStatement`](super::PipelineStatement)'s result: its bytes, a slice
/// of the buffer they were read into (not copied), and the statement's column types.
///
/// Columns are decoded when asked for, with the same `FromSql` impls as tokio-postgres rows.
pub struct PipelineRow {
    columns: Arc<[Type]>,
    body: DataRowBody,
}

impl PipelineRow {
    pub(crate) fn new(columns: Arc<[Type]>, body: DataRowBody) -> PipelineRow {
        PipelineRow { columns, body }
    }

    /// The column types.
    pub(crate) fn column_types(&self) -> &[Type] {
        &self.columns
    }

    /// The raw row.
    pub(crate) fn body(&self) -> &DataRowBody {
        &self.body
    }

    /// How many columns the row has.
    pub fn len(&self) -> usize {
        self.columns.len()
    }

    /// Whether the row has no column (`SELECT` of nothing).
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// Column `idx` (from 0) as a `T`.
    ///
    /// # Errors
    /// A query error ([`Error::is_query`]) when there is no such column, when `T` cannot hold
    /// the column's type (an `i64` for an `INT4`), or when the value does not decode (a NULL
    /// into a type that is not an `Option`).
    pub fn get<'a, T: FromSql<'a>>(&'a self, idx: usize) -> Result<T, Error> {
        let ty = self.columns.get(idx).ok_or_else(|| {
            Error::types(format!(
                "no column {idx}: the row has {}",
                self.columns.len()
            ))
        })?;
        if !T::accepts(ty) {
            return Err(Error::types(format!(
                "column {idx} is {ty}, which {} cannot hold",
                std::any::type_name::<T>()
            )));
        }
        let raw = match self.body.ranges().nth(idx) {
            Ok(Some(Some(range))) => Some(
                self.body
                    .buffer()
                    .get(range)
                    .ok_or_else(|| Error::types(format!("column {idx}: malformed row")))?,
            ),
            Ok(Some(None)) => None,
            Ok(None) => return Err(Error::types(format!("column {idx}: missing from the row"))),
            Err(e) => return Err(Error::types(format!("column {idx}: {e}"))),
        };
        T::from_sql_nullable(ty, raw).map_err(|e| Error::types(format!("column {idx}: {e}")))
    }
}

impl std::fmt::Debug for PipelineRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineRow")
            .field("columns", &self.columns)
            .finish_non_exhaustive()
    }
}
