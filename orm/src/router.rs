//! Which database a model's reads and writes go to: Django's `db_for_read` / `db_for_write`.

use crate::model::ModelMeta;

/// Where a router sends an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The primary (`default`).
    Primary,
    /// A healthy replica, round robin; the primary while none is healthy, and after the
    /// request wrote (within the sticky window). Meant for reads: a write routed here goes
    /// to the primary.
    Replica,
    /// The database configured under this name (another cluster, say).
    Named(&'static str),
}

/// Decides where each model's reads and writes go. The default,
/// [`PrimaryReplicaRouter`], is what most applications want; write another to bind models to
/// databases by rules of your own, and install it with
/// [`DbConfig::router`](crate::DbConfig::router).
///
/// Whatever a router says, primary-only tables read from the primary, transactions run
/// where they were opened, and `.using("name")` on a query set wins.
pub trait Router: Send + Sync + 'static {
    /// Where reads of `model` go.
    fn db_for_read(&self, model: &ModelMeta) -> Route;

    /// Where writes of `model` go.
    fn db_for_write(&self, model: &ModelMeta) -> Route;
}

/// The default router: a model bound to a database (`#[model(database = "…")]`) reads and
/// writes there; every other model reads from the replicas and writes to the primary.
#[derive(Debug, Clone, Copy, Default)]
pub struct PrimaryReplicaRouter;

impl Router for PrimaryReplicaRouter {
    fn db_for_read(&self, model: &ModelMeta) -> Route {
        match model.database {
            Some(name) => Route::Named(name),
            None => Route::Replica,
        }
    }

    fn db_for_write(&self, model: &ModelMeta) -> Route {
        match model.database {
            Some(name) => Route::Named(name),
            None => Route::Primary,
        }
    }
}
