//! Query sets: `Model::objects()` narrowed with typed filters, ordered, sliced, then read
//! (`all`, `first`, `get`, `count`, `exists`, aggregates, selected columns, `select_related`)
//! or written (`update`, `delete`, `bulk_create`, `bulk_update`). Nothing runs until one of
//! the `async` methods is given an [`Executor`].
//!
//! ```ignore
//! let cheap = Product::objects()
//!     .filter(Product::PRICE.lt(10) & Product::NAME.icontains(&search))
//!     .order_by(Product::NAME.asc())
//!     .limit(20)
//!     .all(&db)
//!     .await?;
//! ```

mod aggregate;
mod batch;
mod filters;
mod raw;
mod related;
mod shape;
pub(crate) mod sql;
mod values;
pub(crate) mod write;

use std::marker::PhantomData;
use std::rc::Rc;

pub use aggregate::Summable;
pub use batch::{batch, Batch};
pub use raw::{raw, Raw};
pub use related::Related;
pub(crate) use shape::{values_if_same, ParamList, Shaped};
pub use values::{Columns, Values};
pub use write::AnyColumn;

use crate::error::Error;
use crate::exec::{self, Executor};
use crate::model::{Expr, ForeignKey, Model, Node, Order};
use crate::pipeline::PipelineStatement;
use crate::statements;
use filters::Filters;
use sql::{Sink, Sql};

/// A lazy query on `M`'s table; see the [module](self) docs.
pub struct QuerySet<M> {
    pub(crate) filters: Filters,
    pub(crate) order: Vec<(usize, bool)>,
    pub(crate) limit: Option<i64>,
    pub(crate) offset: Option<i64>,
    pub(crate) using: Option<Rc<str>>,
    pub(crate) cache: bool,
    _model: PhantomData<fn() -> M>,
}

impl<M> Clone for QuerySet<M> {
    fn clone(&self) -> Self {
        QuerySet {
            filters: self.filters.clone(),
            order: self.order.clone(),
            limit: self.limit,
            offset: self.offset,
            using: self.using.clone(),
            cache: self.cache,
            _model: PhantomData,
        }
    }
}

impl<M: Model> std::fmt::Debug for QuerySet<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("QuerySet")
            .field(&self.select_sql(None))
            .finish()
    }
}

impl<M: Model> Default for QuerySet<M> {
    fn default() -> Self {
        QuerySet::new()
    }
}

impl<M: Model> QuerySet<M> {
    /// Every row of `M`'s table: what [`Model::objects`] returns.
    pub fn new() -> QuerySet<M> {
        QuerySet {
            filters: Filters::None,
            order: Vec::new(),
            limit: None,
            offset: None,
            using: None,
            cache: true,
            _model: PhantomData,
        }
    }

    /// Only the rows that match `expr` (and every earlier filter).
    pub fn filter(mut self, expr: Expr<M>) -> QuerySet<M> {
        self.filters.push(expr.node);
        self
    }

    /// Only the rows that do not match `expr`.
    pub fn exclude(mut self, expr: Expr<M>) -> QuerySet<M> {
        self.filters.push(Node::Not(Box::new(expr.node)));
        self
    }

    /// Orders by `order`, after any earlier ordering.
    pub fn order_by(mut self, order: Order<M>) -> QuerySet<M> {
        self.order.push((order.column, order.desc));
        self
    }

    /// At most `n` rows.
    pub fn limit(mut self, n: i64) -> QuerySet<M> {
        self.limit = Some(n);
        self
    }

    /// Skips the first `n` rows (order the query set for this to mean something).
    pub fn offset(mut self, n: i64) -> QuerySet<M> {
        self.offset = Some(n);
        self
    }

    /// Runs on the database configured as `name` (`default`, `replica1`, …), whatever the
    /// router says.
    pub fn using(mut self, name: &str) -> QuerySet<M> {
        self.using = Some(name.into());
        self
    }

    /// Whether reads may be answered from the query cache (yes by default).
    pub fn cache(mut self, on: bool) -> QuerySet<M> {
        self.cache = on;
        self
    }

    pub(crate) fn using_name(&self) -> Option<&str> {
        self.using.as_deref()
    }

    /// How reads of this query set may use the query cache: `None` after `cache(false)`.
    pub(crate) fn cache_spec(&self) -> Option<exec::CacheSpec<'static>> {
        self.cache.then(|| exec::CacheSpec {
            tables: std::slice::from_ref(&M::META.table),
            ttl: M::META.cache_ttl,
        })
    }

    /// `SELECT <columns> FROM <table> WHERE … ORDER BY … LIMIT … OFFSET …`.
    pub(crate) fn select_sql(&self, default_order: Option<(usize, bool)>) -> Sql {
        self.select_sql_at_most(None, default_order)
    }

    /// As [`select_sql`](Self::select_sql), with at most `most` rows (`first`, `get`).
    pub(crate) fn select_sql_at_most(
        &self,
        most: Option<u8>,
        default_order: Option<(usize, bool)>,
    ) -> Sql {
        let mut sql = Sql::new(80 + M::META.select.len());
        self.write_select(&mut sql, most, default_order);
        sql
    }

    /// The statement of [`select_sql_at_most`](Self::select_sql_at_most) and its values,
    /// found by the query set's shape: the SQL is written only the first time this thread
    /// meets the shape.
    pub(crate) fn select_statement(
        &self,
        most: Option<u8>,
        default_order: Option<(usize, bool)>,
    ) -> (Rc<PipelineStatement>, ParamList<'_>) {
        let mut shaped = Shaped::new();
        self.write_select(&mut shaped, most, default_order);
        let stmt = statements::by_shape(&shaped, || {
            self.select_sql_at_most(most, default_order).text
        });
        (stmt, shaped.params)
    }

    /// Writes `SELECT <columns> FROM <table>` and the rest.
    pub(crate) fn write_select<'q, S: Sink<'q>>(
        &'q self,
        sink: &mut S,
        most: Option<u8>,
        default_order: Option<(usize, bool)>,
    ) {
        let meta = M::META;
        sink.text("SELECT ");
        sink.text(meta.select);
        sink.text(" FROM ");
        sink.text(meta.quoted_table);
        self.rest_at_most(sink, most, default_order);
    }

    /// Writes the filters, the order (`default_order` when there is none) and the slice.
    fn rest<'q, S: Sink<'q>>(&'q self, sink: &mut S, default_order: Option<(usize, bool)>) {
        self.rest_at_most(sink, None, default_order);
    }

    /// As [`rest`](Self::rest), with the limit lowered to `most`.
    pub(crate) fn rest_at_most<'q, S: Sink<'q>>(
        &'q self,
        sink: &mut S,
        most: Option<u8>,
        default_order: Option<(usize, bool)>,
    ) {
        let meta = M::META;
        sink.filters(meta, None, &self.filters);
        match (&self.order[..], default_order) {
            ([], Some(order)) => sink.order(meta, None, &[order]),
            (order, _) => sink.order(meta, None, order),
        };
        sink.slice(self.limit.as_ref(), most, self.offset.as_ref());
    }

    /// The query without its slice, as a subquery when it has one: `FROM t WHERE …` or
    /// `FROM (SELECT * FROM t WHERE … LIMIT …) AS t`.
    fn write_from(&self, sql: &mut Sql) {
        let meta = M::META;
        if self.limit.is_none() && self.offset.is_none() {
            sql.push(" FROM ").push(meta.quoted_table);
            sql.filters(meta, None, &self.filters);
        } else {
            sql.push(" FROM (SELECT * FROM ").push(meta.quoted_table);
            self.rest(sql, None);
            sql.push(") AS ").push(meta.quoted_table);
        }
    }

    /// Every matching row.
    ///
    /// # Errors
    /// The database's; a query error when a column does not decode into its field.
    pub async fn all(&self, db: &impl Executor) -> Result<Vec<M>, Error> {
        let (stmt, params) = self.select_statement(None, None);
        exec::read_one(
            db,
            M::META,
            self.using_name(),
            self.cache_spec().as_ref(),
            &stmt,
            &params,
        )
        .await?
        .decode()
    }

    /// The first matching row (by primary key unless ordered), or `None`.
    ///
    /// # Errors
    /// As [`all`](Self::all).
    pub async fn first(&self, db: &impl Executor) -> Result<Option<M>, Error> {
        let (stmt, params) = self.select_statement(Some(1), Some((M::META.primary_key, false)));
        exec::read_one(
            db,
            M::META,
            self.using_name(),
            self.cache_spec().as_ref(),
            &stmt,
            &params,
        )
        .await?
        .decode_at(0)
    }

    /// The one matching row.
    ///
    /// # Errors
    /// [`Error::is_no_row`] when none matches (a 404 through `pinion-web`),
    /// [`Error::is_multiple_rows`] when several do; else as [`all`](Self::all).
    pub async fn get(&self, db: &impl Executor) -> Result<M, Error> {
        let (stmt, params) = self.select_statement(Some(2), None);
        let rows = exec::read_one(
            db,
            M::META,
            self.using_name(),
            self.cache_spec().as_ref(),
            &stmt,
            &params,
        )
        .await?;
        rows.decode_one(M::META.name)
    }

    /// How many rows match (within the slice, when there is one).
    ///
    /// # Errors
    /// The database's.
    pub async fn count(&self, db: &impl Executor) -> Result<i64, Error> {
        let mut sql = Sql::new(64);
        sql.push("SELECT count(*)");
        self.write_from(&mut sql);
        let rows = exec::read_one(
            db,
            M::META,
            self.using_name(),
            self.cache_spec().as_ref(),
            &statements::by_text(&sql.text),
            &sql.refs(),
        )
        .await?;
        Ok(rows.decode_at::<(i64,)>(0)?.map_or(0, |(n,)| n))
    }

    /// Whether any row matches.
    ///
    /// # Errors
    /// The database's.
    pub async fn exists(&self, db: &impl Executor) -> Result<bool, Error> {
        let mut sql = Sql::new(64);
        sql.push("SELECT EXISTS(SELECT 1");
        self.write_from(&mut sql);
        sql.push(")");
        let rows = exec::read_one(
            db,
            M::META,
            self.using_name(),
            self.cache_spec().as_ref(),
            &statements::by_text(&sql.text),
            &sql.refs(),
        )
        .await?;
        Ok(rows.decode_at::<(bool,)>(0)?.is_some_and(|(b,)| b))
    }

    /// Only `columns` of each row, decoded into a tuple (or, for one column, its value):
    /// `World::objects().values((World::ID,))` reads `(i32,)`s, `.values(World::ID)` `i32`s.
    pub fn values<C: Columns<M>>(self, columns: C) -> Values<M, C> {
        Values::new(self, columns)
    }

    /// Each row with the `R` its foreign key points to, read in one `JOIN`.
    pub fn select_related<R: Model>(self) -> Related<M, R>
    where
        M: ForeignKey<R>,
    {
        Related::new(self)
    }
}
