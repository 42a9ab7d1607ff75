//! Signals: functions run before and after a model instance is saved or deleted, registered
//! once per process (Django's `pre_save`, `post_save`, `pre_delete`, `post_delete`).
//!
//! They run on the worker thread, inside the transaction when there is one, and must not
//! block: work that takes time belongs in a job, or in a transaction's
//! [`on_commit`](crate::Transaction::on_commit) hook so that it runs only for what was
//! stored. Query-set `update`, `delete` and `bulk_create` send no per-instance signals.
//!
//! ```ignore
//! pinion_orm::signals::post_save::<Order>(|order, created| {
//!     if created {
//!         tracing::info!(order = order.id, "new order");
//!     }
//! });
//! ```

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, RwLock};

use crate::model::Model;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    PreSave,
    PostSave,
    PreDelete,
    PostDelete,
}

type Hooks = HashMap<(TypeId, Kind), Vec<Arc<dyn Any + Send + Sync>>>;

static HOOKS: LazyLock<RwLock<Hooks>> = LazyLock::new(|| RwLock::new(HashMap::new()));

/// Whether any hook was ever registered: saves skip the lock until then.
static ANY: AtomicBool = AtomicBool::new(false);

type PreSave<M> = Arc<dyn Fn(&mut M) + Send + Sync>;
type PostSave<M> = Arc<dyn Fn(&M, bool) + Send + Sync>;
type OnDelete<M> = Arc<dyn Fn(&M) + Send + Sync>;

fn register<M: Model, H: Any + Send + Sync>(kind: Kind, hook: H) {
    let mut hooks = HOOKS
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    hooks
        .entry((TypeId::of::<M>(), kind))
        .or_default()
        .push(Arc::new(hook));
    ANY.store(true, Ordering::Release);
}

/// The hooks of `kind` for `M`, copied out so that none runs under the lock.
fn hooks<M: Model, H: Clone + 'static>(kind: Kind) -> Vec<H> {
    if !ANY.load(Ordering::Acquire) {
        return Vec::new();
    }
    let hooks = HOOKS
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    hooks
        .get(&(TypeId::of::<M>(), kind))
        .map(|all| {
            all.iter()
                .filter_map(|h| h.downcast_ref::<H>().cloned())
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `f` before each [`save`](Model::save) of an `M`; it may change the instance (set
/// an `updated_at`, say).
pub fn pre_save<M: Model>(f: impl Fn(&mut M) + Send + Sync + 'static) {
    register::<M, PreSave<M>>(Kind::PreSave, Arc::new(f));
}

/// Runs `f` after each [`save`](Model::save) of an `M`, told whether it inserted the row.
pub fn post_save<M: Model>(f: impl Fn(&M, bool) + Send + Sync + 'static) {
    register::<M, PostSave<M>>(Kind::PostSave, Arc::new(f));
}

/// Runs `f` before each [`delete`](Model::delete) of an `M`.
pub fn pre_delete<M: Model>(f: impl Fn(&M) + Send + Sync + 'static) {
    register::<M, OnDelete<M>>(Kind::PreDelete, Arc::new(f));
}

/// Runs `f` after each [`delete`](Model::delete) of an `M` that deleted a row.
pub fn post_delete<M: Model>(f: impl Fn(&M) + Send + Sync + 'static) {
    register::<M, OnDelete<M>>(Kind::PostDelete, Arc::new(f));
}

pub(crate) fn send_pre_save<M: Model>(m: &mut M) {
    for hook in hooks::<M, PreSave<M>>(Kind::PreSave) {
        hook(m);
    }
}

pub(crate) fn send_post_save<M: Model>(m: &M, created: bool) {
    for hook in hooks::<M, PostSave<M>>(Kind::PostSave) {
        hook(m, created);
    }
}

pub(crate) fn send_pre_delete<M: Model>(m: &M) {
    for hook in hooks::<M, OnDelete<M>>(Kind::PreDelete) {
        hook(m);
    }
}

pub(crate) fn send_post_delete<M: Model>(m: &M) {
    for hook in hooks::<M, OnDelete<M>>(Kind::PostDelete) {
        hook(m);
    }
}
