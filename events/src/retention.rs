//! Retention: events older than `retention`, or beyond the latest `retention_rows`, are
//! deleted by every instance now and then (a `DELETE` that two instances run at once costs
//! one of them nothing).

use std::rc::Rc;

use pinion_orm::{raw, ConnectionManager, Error, Executor};

use crate::config::EventsConfig;
use crate::publish::TABLE;

const PRUNE_SQL: &str = "DELETE FROM pinion_events \
     WHERE created_at < now() - $1::float8 * interval '1 second' \
        OR id <= (SELECT max(id) FROM pinion_events) - $2::int8";

/// Deletes the events past the retention of `config`.
///
/// # Return
/// How many were deleted.
///
/// # Errors
/// The database's.
pub async fn prune(db: &impl Executor, config: &EventsConfig) -> Result<u64, Error> {
    let rows = i64::try_from(config.retention_rows).unwrap_or(i64::MAX);
    raw(PRUNE_SQL)
        .bind(config.retention.as_secs_f64())
        .bind(rows)
        .writes(TABLE)
        .invalidates(false)
        .execute(db)
        .await
}

/// Prunes every `prune_interval` on the calling worker thread, for as long as it runs.
pub(crate) async fn prune_every(db: Rc<ConnectionManager>, config: EventsConfig) {
    loop {
        monoio::time::sleep(config.prune_interval).await;
        match prune(&db, &config).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(deleted = n, "events past their retention pruned"),
            Err(e) => tracing::warn!(error = %e, "events not pruned; trying again later"),
        }
    }
}
