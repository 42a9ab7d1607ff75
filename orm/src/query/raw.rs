//! Hand-written SQL that says which tables it reads and writes, so that it is routed (and,
//! with the query cache, invalidated) like a query set.

use std::rc::Rc;

use super::sql::Sql;
use crate::error::Error;
use crate::exec::{self, Executor};
use crate::model::{Model, ModelMeta, Value};
use crate::row::FromRow;

/// A raw statement: [`raw`].
pub struct Raw {
    sql: Sql,
    reads: Vec<&'static str>,
    writes: Vec<&'static str>,
    using: Option<Rc<str>>,
    cache: bool,
    invalidates: bool,
}

/// Hand-written SQL with `$1`, `$2`… bound by [`bind`](Raw::bind), declaring the tables it
/// reads ([`reads`](Raw::reads)) and writes ([`writes`](Raw::writes)):
///
/// ```ignore
/// let top: Vec<(String, i64)> = raw(
///     "SELECT p.name, sum(l.quantity)::int8 FROM lines l JOIN products p ON p.id = l.product_id
///      GROUP BY p.name ORDER BY 2 DESC LIMIT $1",
/// )
/// .bind(10i64)
/// .reads("lines")
/// .reads("products")
/// .all(&db)
/// .await?;
/// ```
pub fn raw(sql: &str) -> Raw {
    let mut s = Sql::new(sql.len());
    s.push(sql);
    Raw {
        sql: s,
        reads: Vec::new(),
        writes: Vec::new(),
        using: None,
        cache: true,
        invalidates: true,
    }
}

impl Raw {
    /// Binds the next parameter (`$1` first).
    pub fn bind(mut self, value: impl Value) -> Raw {
        self.sql.params.push(crate::model::Param::new(value));
        self
    }

    /// Declares that the statement reads `table`.
    pub fn reads(mut self, table: &'static str) -> Raw {
        self.reads.push(table);
        self
    }

    /// Declares that the statement reads `M`'s table.
    pub fn reads_model<M: Model>(self) -> Raw {
        self.reads(M::META.table)
    }

    /// Declares that the statement writes `table`: it then runs where writes go.
    pub fn writes(mut self, table: &'static str) -> Raw {
        self.writes.push(table);
        self
    }

    /// Whether a read may be answered from the query cache (yes by default; its key holds
    /// the versions of the tables it declares it reads).
    pub fn cache(mut self, on: bool) -> Raw {
        self.cache = on;
        self
    }

    /// Whether the statement's writes invalidate the query cache (yes by default). Off for
    /// tables no cached read ever reads, such as a job queue or an event log: their writes then
    /// bump no version and send no notification, which a table written thousands of times a
    /// second would otherwise pay for on every statement.
    pub fn invalidates(mut self, on: bool) -> Raw {
        self.invalidates = on;
        self
    }

    /// The written tables whose versions this statement bumps.
    fn bumped(&self) -> &[&'static str] {
        if self.invalidates {
            &self.writes
        } else {
            &[]
        }
    }

    /// Runs on the database configured as `name`.
    pub fn using(mut self, name: &str) -> Raw {
        self.using = Some(name.into());
        self
    }

    /// A model description standing for the declared tables, for the router: a primary-only
    /// table among them keeps the statement on the primary.
    fn meta(&self, db: &impl Executor) -> Result<ModelMeta, Error> {
        let declared: Vec<&'static str> = self.reads.iter().chain(&self.writes).copied().collect();
        let table = exec::primary_only_table(db, &declared)
            .or_else(|| self.writes.first().copied())
            .or_else(|| self.reads.first().copied())
            .ok_or_else(|| Error::invalid("raw SQL must declare the tables it reads or writes"))?;
        Ok(ModelMeta {
            name: "raw SQL",
            table,
            quoted_table: "",
            columns: &[],
            quoted_columns: &[],
            select: "",
            primary_key: 0,
            auto_key: false,
            foreign_keys: &[],
            cache_ttl: None,
            primary_only: false,
            database: None,
        })
    }

    /// Runs the statement and decodes every row it returns.
    ///
    /// # Errors
    /// The database's; [`Error`] for undeclared tables or rows that do not decode.
    pub async fn all<T: FromRow>(&self, db: &impl Executor) -> Result<Vec<T>, Error> {
        let meta = self.meta(db)?;
        let using = self.using.as_deref();
        let rows = if self.writes.is_empty() {
            let spec = self.cache.then_some(exec::CacheSpec {
                tables: &self.reads,
                ttl: None,
            });
            exec::read_one(
                db,
                &meta,
                using,
                spec.as_ref(),
                &crate::statements::by_text(&self.sql.text),
                &self.sql.refs(),
            )
            .await?
        } else {
            exec::write(
                db,
                &meta,
                using,
                self.bumped(),
                &self.sql.text,
                &self.sql.refs(),
            )
            .await?
            .0
        };
        rows.decode()
    }

    /// Runs the statement and decodes its first row.
    ///
    /// # Errors
    /// As [`all`](Self::all).
    pub async fn first<T: FromRow>(&self, db: &impl Executor) -> Result<Option<T>, Error> {
        Ok(self.all(db).await?.into_iter().next())
    }

    /// Runs a statement that writes, where writes go, and returns the rows it affected.
    ///
    /// # Errors
    /// The database's; an error when no written table was declared.
    pub async fn execute(&self, db: &impl Executor) -> Result<u64, Error> {
        if self.writes.is_empty() {
            return Err(Error::invalid(
                "raw SQL run with execute() must declare the tables it writes",
            ));
        }
        let meta = self.meta(db)?;
        exec::execute(
            db,
            &meta,
            self.using.as_deref(),
            self.bumped(),
            &self.sql.text,
            &self.sql.refs(),
        )
        .await
    }
}
