//! Rows as the query cache keeps them: the raw column values of a result, in one buffer,
//! with the column types, decoded by the same `FromRow` as rows fresh from the database.

use std::sync::Arc;

use fallible_iterator::FallibleIterator;
use serde::{Deserialize, Serialize};
use tokio_postgres::types::{FromSql, Type};

use crate::error::Error;
use crate::pipeline::PipelineRow;
use crate::row::RowRef;

/// A cached result: every row's column values (binary, as PostgreSQL sent them) in one
/// buffer. Serializable, so that a remote tier (the database cache) can hold it too.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct CachedRows {
    /// Column type oids.
    oids: Vec<u32>,
    /// Every value, row after row.
    data: Vec<u8>,
    /// `(start, len)` of each value in `data`, `None` for NULL; `oids.len()` per row.
    cells: Vec<Option<(u32, u32)>>,
}

impl CachedRows {
    /// Copies `rows` (all of one statement, so of one shape).
    pub(crate) fn from_pipeline(rows: &[PipelineRow]) -> Result<CachedRows, Error> {
        let oids: Vec<u32> = rows
            .first()
            .map(|r| r.column_types().iter().map(Type::oid).collect())
            .unwrap_or_default();
        let mut data = Vec::new();
        let mut cells = Vec::with_capacity(rows.len() * oids.len());
        for row in rows {
            let body = row.body();
            let mut ranges = body.ranges();
            loop {
                match ranges.next() {
                    Ok(Some(Some(range))) => {
                        let bytes = body
                            .buffer()
                            .get(range)
                            .ok_or_else(|| Error::types("malformed row"))?;
                        let start = u32::try_from(data.len())
                            .map_err(|_| Error::types("result too large to cache"))?;
                        data.extend_from_slice(bytes);
                        cells.push(Some((start, bytes.len() as u32)));
                    }
                    Ok(Some(None)) => cells.push(None),
                    Ok(None) => break,
                    Err(e) => return Err(Error::types(format!("malformed row: {e}"))),
                }
            }
        }
        Ok(CachedRows { oids, data, cells })
    }

    /// How many rows.
    pub(crate) fn len(&self) -> usize {
        if self.oids.is_empty() {
            0
        } else {
            self.cells.len() / self.oids.len()
        }
    }

    /// Row `i`.
    pub(crate) fn row(self: &Arc<Self>, i: usize) -> Option<CachedRow<'_>> {
        (i < self.len()).then_some(CachedRow {
            rows: self,
            index: i,
        })
    }
}

/// One row of a [`CachedRows`].
pub(crate) struct CachedRow<'a> {
    rows: &'a CachedRows,
    index: usize,
}

impl RowRef for CachedRow<'_> {
    fn column_count(&self) -> usize {
        self.rows.oids.len()
    }

    fn get_column<'a, T: FromSql<'a>>(&'a self, idx: usize) -> Result<T, Error> {
        let n = self.rows.oids.len();
        let oid = *self
            .rows
            .oids
            .get(idx)
            .ok_or_else(|| Error::types(format!("no column {idx}: the row has {n}")))?;
        let ty = Type::from_oid(oid)
            .ok_or_else(|| Error::types(format!("column {idx}: unknown type oid {oid}")))?;
        if !T::accepts(&ty) {
            return Err(Error::types(format!(
                "column {idx} is {ty}, which {} cannot hold",
                std::any::type_name::<T>()
            )));
        }
        let raw = match self.rows.cells.get(self.index * n + idx) {
            Some(Some((start, len))) => Some(
                self.rows
                    .data
                    .get(*start as usize..(*start + *len) as usize)
                    .ok_or_else(|| Error::types(format!("column {idx}: malformed cache entry")))?,
            ),
            Some(None) => None,
            None => return Err(Error::types(format!("column {idx}: missing"))),
        };
        T::from_sql_nullable(&ty, raw).map_err(|e| Error::types(format!("column {idx}: {e}")))
    }
}
