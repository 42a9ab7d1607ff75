//! Writes: an instance's `save` and `delete`, and a query set's `update`, `delete`,
//! `bulk_create` and `bulk_update`, each one statement (a `bulk_create` past PostgreSQL's
//! 65 535 parameters is split).

use tokio_postgres::types::ToSql;

use super::sql::{Sink, Sql};
use super::QuerySet;
use crate::error::Error;
use crate::exec::{self, Executor};
use crate::model::{Assign, Column, Model, ModelMeta, Saved};
use crate::signals;

/// The most parameters one statement may have (the protocol counts them in 16 bits).
const MAX_PARAMS: usize = 65_535;

/// A column of `M` whatever its type, for [`QuerySet::bulk_update`].
pub trait AnyColumn<M> {
    /// Its index among the model's columns.
    fn column_index(&self) -> usize;
}

impl<M, T> AnyColumn<M> for Column<M, T> {
    fn column_index(&self) -> usize {
        self.index()
    }
}

/// Writes `(c1, c2, …)` for `columns`.
fn column_list(sql: &mut Sql, meta: &ModelMeta, columns: &[usize]) {
    sql.push("(");
    for (i, &c) in columns.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.column(meta, None, c);
    }
    sql.push(")");
}

/// Writes `($first, $first+1, …)` for `n` values.
fn placeholders(sql: &mut Sql, first: usize, n: usize) {
    sql.push("(");
    for i in 0..n {
        if i > 0 {
            sql.push(", ");
        }
        sql.placeholder(first + i);
    }
    sql.push(")");
}

pub(crate) async fn save<M: Model>(m: &mut M, db: &impl Executor) -> Result<Saved, Error> {
    signals::send_pre_save(m);
    let meta = M::META;
    let pk = meta.primary_key;
    let all: Vec<usize> = (0..meta.columns.len()).collect();
    let others: Vec<usize> = all.iter().copied().filter(|&c| c != pk).collect();
    let mut sql = Sql::new(128);
    sql.push("INSERT INTO ").push(meta.quoted_table).push(" ");
    let created = if meta.auto_key && m.key_is_unset() {
        column_list(&mut sql, meta, &others);
        sql.push(" VALUES ");
        placeholders(&mut sql, 1, others.len());
        sql.push(" RETURNING ");
        sql.column(meta, None, pk);
        let params: Vec<&(dyn ToSql + Sync)> = others.iter().map(|&c| m.column_value(c)).collect();
        let (rows, _) = exec::write(
            db,
            meta,
            None,
            std::slice::from_ref(&meta.table),
            &sql.text,
            &params,
        )
        .await?;
        drop(params);
        rows.set_key(0, 0, m)?;
        true
    } else {
        column_list(&mut sql, meta, &all);
        sql.push(" VALUES ");
        placeholders(&mut sql, 1, all.len());
        sql.push(" ON CONFLICT (");
        sql.column(meta, None, pk);
        if others.is_empty() {
            sql.push(") DO NOTHING");
        } else {
            sql.push(") DO UPDATE SET ");
            for (i, &c) in others.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.column(meta, None, c);
                sql.push(" = EXCLUDED.");
                sql.column(meta, None, c);
            }
        }
        // `xmax` is 0 on a row version this statement inserted, the updating transaction's
        // id on one it updated: one statement tells which it did.
        sql.push(" RETURNING (xmax = 0)");
        let params: Vec<&(dyn ToSql + Sync)> = all.iter().map(|&c| m.column_value(c)).collect();
        let (rows, _) = exec::write(
            db,
            meta,
            None,
            std::slice::from_ref(&meta.table),
            &sql.text,
            &params,
        )
        .await?;
        rows.decode_at::<(bool,)>(0)?
            .is_some_and(|(inserted,)| inserted)
    };
    signals::send_post_save(m, created);
    Ok(Saved { created })
}

pub(crate) async fn delete<M: Model>(m: &M, db: &impl Executor) -> Result<bool, Error> {
    signals::send_pre_delete(m);
    let meta = M::META;
    let mut sql = Sql::new(64);
    sql.push("DELETE FROM ")
        .push(meta.quoted_table)
        .push(" WHERE ");
    sql.column(meta, None, meta.primary_key).push(" = $1");
    let params = [m.column_value(meta.primary_key)];
    let deleted = exec::execute(
        db,
        meta,
        None,
        std::slice::from_ref(&meta.table),
        &sql.text,
        &params,
    )
    .await?
        > 0;
    if deleted {
        signals::send_post_delete(m);
    }
    Ok(deleted)
}

impl<M: Model> QuerySet<M> {
    fn refuse_slice(&self, what: &str) -> Result<(), Error> {
        if self.limit.is_some() || self.offset.is_some() || !self.order.is_empty() {
            return Err(Error::invalid(format!(
                "{what} of a sliced or ordered query set of {}: filter instead",
                M::META.name
            )));
        }
        Ok(())
    }

    /// Sets `assignments` on every matching row, in one `UPDATE`; the number of rows
    /// changed. No per-instance signals.
    ///
    /// # Errors
    /// The database's; an error for a sliced or ordered query set, or no assignment.
    pub async fn update(
        &self,
        assignments: impl IntoIterator<Item = Assign<M>>,
        db: &impl Executor,
    ) -> Result<u64, Error> {
        self.refuse_slice("update")?;
        let meta = M::META;
        let mut sql = Sql::new(96);
        sql.push("UPDATE ").push(meta.quoted_table).push(" SET ");
        let mut any = false;
        for (i, a) in assignments.into_iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.column(meta, None, a.column).push(" = ");
            sql.bind(a.value);
            any = true;
        }
        if !any {
            return Err(Error::invalid("update() needs at least one column to set"));
        }
        sql.filters(meta, None, &self.filters);
        exec::execute(
            db,
            meta,
            self.using_name(),
            std::slice::from_ref(&meta.table),
            &sql.text,
            &sql.refs(),
        )
        .await
    }

    /// Deletes every matching row, in one `DELETE`; the number of rows deleted. No
    /// per-instance signals.
    ///
    /// # Errors
    /// The database's; an error for a sliced or ordered query set.
    pub async fn delete(&self, db: &impl Executor) -> Result<u64, Error> {
        self.refuse_slice("delete")?;
        let meta = M::META;
        let mut sql = Sql::new(64);
        sql.push("DELETE FROM ").push(meta.quoted_table);
        sql.filters(meta, None, &self.filters);
        exec::execute(
            db,
            meta,
            self.using_name(),
            std::slice::from_ref(&meta.table),
            &sql.text,
            &sql.refs(),
        )
        .await
    }

    /// Inserts `objects` in one multi-row `INSERT` (split only past PostgreSQL's parameter
    /// limit); models with auto keys still unset get the keys the database assigned, in
    /// order. No per-instance signals. Returns the number of rows inserted.
    ///
    /// # Errors
    /// The database's (a duplicate key inserts nothing); an error when some objects have
    /// their auto key set and others do not.
    pub async fn bulk_create(&self, objects: &mut [M], db: &impl Executor) -> Result<u64, Error> {
        let meta = M::META;
        let Some(first) = objects.first() else {
            return Ok(0);
        };
        let auto = meta.auto_key && first.key_is_unset();
        if objects
            .iter()
            .any(|o| meta.auto_key && o.key_is_unset() != auto)
        {
            return Err(Error::invalid(format!(
                "bulk_create of {}: either every object has its key or none has",
                meta.name
            )));
        }
        let columns: Vec<usize> = (0..meta.columns.len())
            .filter(|&c| !auto || c != meta.primary_key)
            .collect();
        let per_chunk = (MAX_PARAMS / columns.len().max(1)).max(1);
        let mut inserted = 0;
        for chunk in objects.chunks_mut(per_chunk) {
            let mut sql = Sql::new(64 + chunk.len() * columns.len() * 6);
            sql.push("INSERT INTO ").push(meta.quoted_table).push(" ");
            column_list(&mut sql, meta, &columns);
            sql.push(" VALUES ");
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push(", ");
                }
                placeholders(&mut sql, 1 + i * columns.len(), columns.len());
            }
            if auto {
                sql.push(" RETURNING ");
                sql.column(meta, None, meta.primary_key);
            }
            let params: Vec<&(dyn ToSql + Sync)> = chunk
                .iter()
                .flat_map(|o| columns.iter().map(move |&c| o.column_value(c)))
                .collect();
            let (rows, count) = exec::write(
                db,
                meta,
                self.using_name(),
                std::slice::from_ref(&meta.table),
                &sql.text,
                &params,
            )
            .await?;
            drop(params);
            if auto {
                for (i, o) in chunk.iter_mut().enumerate() {
                    rows.set_key(i, 0, o)?;
                }
            }
            inserted += count;
        }
        Ok(inserted)
    }

    /// Writes `columns` of each of `objects` to its row, in one `UPDATE` (`CASE` on the
    /// primary key); the number of rows changed. No per-instance signals.
    ///
    /// # Errors
    /// The database's; an error when `columns` is empty or names the primary key.
    pub async fn bulk_update(
        &self,
        objects: &[M],
        columns: &[&dyn AnyColumn<M>],
        db: &impl Executor,
    ) -> Result<u64, Error> {
        let meta = M::META;
        let pk = meta.primary_key;
        let columns: Vec<usize> = columns.iter().map(|c| c.column_index()).collect();
        if columns.is_empty() || columns.contains(&pk) {
            return Err(Error::invalid(format!(
                "bulk_update of {} needs columns to write, not the primary key",
                meta.name
            )));
        }
        if objects.is_empty() {
            return Ok(0);
        }
        let stride = 1 + columns.len();
        if objects.len() * stride > MAX_PARAMS {
            return Err(Error::invalid(format!(
                "bulk_update of {} objects: at most {} per statement",
                objects.len(),
                MAX_PARAMS / stride
            )));
        }
        let mut sql = Sql::new(64 + objects.len() * stride * 24);
        sql.push("UPDATE ").push(meta.quoted_table).push(" SET ");
        for (j, &c) in columns.iter().enumerate() {
            if j > 0 {
                sql.push(", ");
            }
            sql.column(meta, None, c).push(" = CASE ");
            sql.column(meta, None, pk);
            for i in 0..objects.len() {
                sql.push(" WHEN ").placeholder(1 + i * stride);
                sql.push(" THEN ").placeholder(2 + i * stride + j);
            }
            // The column itself as the last branch gives the CASE the column's type, so the
            // parameters are inferred as that type rather than as text.
            sql.push(" ELSE ");
            sql.column(meta, None, c).push(" END");
        }
        sql.push(" WHERE ");
        sql.column(meta, None, pk).push(" IN (");
        for i in 0..objects.len() {
            if i > 0 {
                sql.push(", ");
            }
            sql.placeholder(1 + i * stride);
        }
        sql.push(")");
        let params: Vec<&(dyn ToSql + Sync)> = objects
            .iter()
            .flat_map(|o| {
                std::iter::once(o.column_value(pk))
                    .chain(columns.iter().map(move |&c| o.column_value(c)))
            })
            .collect();
        exec::execute(
            db,
            meta,
            self.using_name(),
            std::slice::from_ref(&meta.table),
            &sql.text,
            &params,
        )
        .await
    }
}
