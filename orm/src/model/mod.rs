//! Models: a struct mapped to a table by `#[derive(Model)]`, with typed columns, a primary
//! key, foreign keys, and where its reads and writes go.
//!
//! ```ignore
//! #[derive(pinion_orm::Model)]
//! #[model(table = "world", cache_ttl = "30s")]
//! pub struct World {
//!     #[model(primary_key)]
//!     pub id: i32,
//!     #[model(column = "randomnumber")]
//!     pub random_number: i32,
//! }
//!
//! let world = World::objects().filter(World::ID.eq(7)).get(&db).await?;
//! ```

mod column;

use std::time::Duration;

use tokio_postgres::types::ToSql;

pub use column::{escape_like, Assign, Column, Expr, Order, Text, Value};
pub(crate) use column::{Node, Param};

use crate::error::Error;
use crate::exec::Executor;
use crate::query::QuerySet;
use crate::row::{FromRow, RowRef};

/// What the derive knows about a model: its table, columns and settings. Built at compile
/// time, one per model.
#[derive(Debug)]
pub struct ModelMeta {
    /// The struct's name, for messages.
    pub name: &'static str,
    /// The table, as declared (`world`, `shop.orders`).
    pub table: &'static str,
    /// The table as it goes into SQL, quoted (`"world"`, `"shop"."orders"`).
    pub quoted_table: &'static str,
    /// Column names in field order.
    pub columns: &'static [&'static str],
    /// Column names quoted for SQL, in field order.
    pub quoted_columns: &'static [&'static str],
    /// Every column quoted and separated by commas: the select list.
    pub select: &'static str,
    /// Index of the primary key among the columns.
    pub primary_key: usize,
    /// Whether the database assigns the primary key (a serial or identity column): a model
    /// whose key is still its type's default is inserted without it, and gets it back.
    pub auto_key: bool,
    /// The foreign keys, for `select_related`.
    pub foreign_keys: &'static [ForeignKeyMeta],
    /// How long query-cache entries that read this table live (`None`: the cache's
    /// default TTL).
    pub cache_ttl: Option<Duration>,
    /// Whether the table exists only on the primary (UNLOGGED tables are not replicated):
    /// its reads never go to a replica.
    pub primary_only: bool,
    /// The database the model lives in (`None`: the primary and its replicas).
    pub database: Option<&'static str>,
}

/// A foreign key: a column of this model that holds another model's primary key.
#[derive(Debug)]
pub struct ForeignKeyMeta {
    /// Index of the column among this model's columns.
    pub column: usize,
    /// The model it points to (a function, so that two models may point to each other).
    pub target: fn() -> &'static ModelMeta,
}

/// What [`Model::save`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Saved {
    /// True when it inserted a row, false when it updated one.
    pub created: bool,
}

/// A struct mapped to a table; derive it with `#[derive(Model)]` (which also derives
/// [`FromRow`], in column order).
///
/// Reads go through the router ([`Router`](crate::Router)): a healthy replica, unless the
/// request wrote, the model is primary-only or bound to another database. Writes go to the
/// primary (or the model's database). Every value is a bound parameter.
#[allow(
    async_fn_in_trait,
    reason = "pinion is thread-per-core: callers never need the futures to be Send"
)]
pub trait Model: FromRow + Sized + 'static {
    /// The table, columns and settings.
    const META: &'static ModelMeta;

    /// The value of column `index`, for writes.
    #[doc(hidden)]
    fn column_value(&self, index: usize) -> &(dyn ToSql + Sync);

    /// Whether the primary key is still unassigned (an auto key at its type's default).
    #[doc(hidden)]
    fn key_is_unset(&self) -> bool;

    /// Sets the primary key from column `idx` of `row` (an insert's `RETURNING`).
    #[doc(hidden)]
    fn set_key_from<R: RowRef + ?Sized>(&mut self, row: &R, idx: usize) -> Result<(), Error>;

    /// Every row of the table, to narrow down: `World::objects().filter(…)`.
    fn objects() -> QuerySet<Self> {
        QuerySet::new()
    }

    /// Inserts the row, or updates it when its primary key exists: one statement
    /// (`INSERT … ON CONFLICT DO UPDATE`). A model with an auto key still at its default is
    /// inserted without it and gets the key the database assigned. Runs the `pre_save` and
    /// `post_save` [signals](crate::signals).
    ///
    /// # Errors
    /// The database's (a unique violation on another column, say).
    async fn save(&mut self, db: &impl Executor) -> Result<Saved, Error> {
        crate::query::write::save(self, db).await
    }

    /// Deletes the row with this primary key; false when there was none. Runs the
    /// `pre_delete` and `post_delete` [signals](crate::signals).
    ///
    /// # Errors
    /// The database's.
    async fn delete(&self, db: &impl Executor) -> Result<bool, Error> {
        crate::query::write::delete(self, db).await
    }
}

/// Implemented by the derive for each `#[model(foreign_key = R)]` field: `M` points to `R`
/// through column [`COLUMN`](Self::COLUMN), so `M::objects().select_related::<R>()` compiles.
pub trait ForeignKey<R: Model>: Model {
    /// Index of the column that holds `R`'s primary key.
    const COLUMN: usize;
}
