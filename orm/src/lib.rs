//! # pinion-orm
//!
//! PostgreSQL for pinion, on monoio. tokio-postgres runs without its tokio runtime: we dial
//! the socket with monoio, hand it to `connect_raw`, and spawn the connection future on the
//! same worker thread, so nothing crosses threads.
//!
//! Per worker thread and per database:
//! - one **pinned connection** for autocommit statements, shared by every request on the
//!   thread — concurrent queries are pipelined on it; statements are prepared once per
//!   connection and cached; when it is lost, in-flight queries fail as "connection lost" and a
//!   supervisor re-dials with backoff;
//! - a small **pool** for transactions, with a fair waiter queue;
//! - on first use, a **pipeline connection** for batches of reads that end in one `Sync`, so
//!   that PostgreSQL answers a batch in one send.
//!
//! The [`ConnectionManager`] routes: writes and transactions to the primary
//! (`default`), reads to a healthy replica round robin, falling back to the primary while none
//! is healthy; [`Routing`] keeps a request's reads on the primary after it wrote; tables marked
//! primary-only (UNLOGGED ones) always read from the primary.
//!
//! [`migrate`] applies `migrations/*.sql` under an advisory lock. [`DatabaseCache`] is a
//! `pinion_cache::Cache` in an UNLOGGED table on the primary, shared by every instance.
//!
//! # Layout
//! - `dial`: sockets, timeouts, keep-alives, `connect_raw`;
//! - `pinned`: the self-healing shared connection and its statement cache;
//! - `pipeline`: batches of one statement with one `Sync` each
//!   ([`Database::query_pipelined`]), on a connection of its own that speaks the protocol
//!   directly;
//! - `pool`: connections for transactions;
//! - [`Database`]: one database on one thread — queries, health;
//! - [`ConnectionManager`], [`Routing`]: routing;
//! - [`migrate`](crate::migrate): migrations;
//! - [`DatabaseCache`]: the PostgreSQL cache backend;
//! - [`row`]: [`FromRow`] (derivable) and [`RowRef`], typed rows from both row types;
//! - [`Error`].

// The derive names `::pinion_orm`; the crate's own unit tests derive models too.
#[cfg(test)]
extern crate self as pinion_orm;

mod cache;
mod database;
mod deadline;
mod dial;
mod error;
mod exec;
pub mod listener;
mod manager;
pub mod migrate;
pub mod model;
mod pinned;
mod pipeline;
mod pool;
pub mod query;
pub mod query_cache;
mod ratelimit;
mod rent_io;
mod router;
pub mod row;
pub mod signals;
mod statements;
mod transaction;

pub use cache::{DatabaseCache, CACHE_TABLE};
pub use database::{Database, QueryObserver, Role, CONNECTIONS_BESIDES_POOL};
pub use dial::ConnectOptions;
pub use error::Error;
pub use exec::Executor;
pub use manager::{ConnectionManager, DbConfig, Routing, DEFAULT_PRIMARY_ONLY_TABLES, PRIMARY};
pub use model::{Column, Expr, ForeignKey, Model, ModelMeta, Order, Saved};
pub use pinion_orm_macros::{FromRow, Model};
pub use pipeline::{PipelineRow, PipelineStatement};
pub use pool::PooledClient;
pub use query::{batch, raw, QuerySet};
pub use query_cache::{QueryCache, QueryCacheStats};
pub use ratelimit::{GcraState, PgRateStore, RATE_LIMIT_TABLE};
pub use router::{PrimaryReplicaRouter, Route, Router};
pub use row::{FromRow, RowRef};
/// Re-exported: rows, parameter types and errors come from tokio-postgres.
pub use tokio_postgres;
pub use transaction::{Isolation, Transaction, TransactionError, TxOptions};
