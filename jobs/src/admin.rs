//! What `pinion jobs` does: list, retry and cancel jobs, on any executor.

use std::time::SystemTime;

use pinion_orm::{Error, Executor, FromRow};

use crate::enqueue::JOBS_TABLE;

/// A job as `pinion jobs list` shows it.
#[derive(Debug, Clone, FromRow)]
pub struct JobRow {
    /// Its id.
    pub id: i64,
    /// Its queue.
    pub queue: String,
    /// Its kind.
    pub kind: String,
    /// `available`, `running`, `failed` or `cancelled`.
    pub state: String,
    /// Tries so far.
    pub attempts: i32,
    /// Tries allowed.
    pub max_attempts: i32,
    /// When it may run (next).
    pub run_at: SystemTime,
    /// The last failure's message.
    pub last_error: Option<String>,
    /// The worker running it.
    pub worker: Option<String>,
    /// Its payload, as JSON text.
    pub payload: String,
}

/// Which jobs [`list`] shows.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this state.
    pub state: Option<String>,
    /// Only this queue.
    pub queue: Option<String>,
    /// At most this many (newest first). Default 50.
    pub limit: Option<i64>,
}

/// The jobs matching `filter`, newest first.
///
/// # Errors
/// The database's.
pub async fn list(db: &impl Executor, filter: &Filter) -> Result<Vec<JobRow>, Error> {
    pinion_orm::raw(
        "SELECT id, queue, kind, state, attempts, max_attempts, run_at, last_error, worker, \
         payload::text FROM pinion_jobs \
         WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR queue = $2) \
         ORDER BY id DESC LIMIT $3",
    )
    .bind(filter.state.clone())
    .bind(filter.queue.clone())
    .bind(filter.limit.unwrap_or(50))
    .reads(JOBS_TABLE)
    .cache(false)
    .all(db)
    .await
}

/// Makes a failed or cancelled job available again, now, with its attempts reset. Returns
/// whether there was such a job.
///
/// # Errors
/// The database's.
pub async fn retry(db: &impl Executor, id: i64) -> Result<bool, Error> {
    let rows: Vec<(i64, i64)> = pinion_orm::raw(
        "WITH r AS (UPDATE pinion_jobs SET state = 'available', attempts = 0, run_at = now(), \
         finished_at = NULL WHERE id = $1 AND state IN ('failed', 'cancelled') RETURNING id, queue) \
         SELECT r.id, (SELECT count(pg_notify('pinion_jobs', queue)) FROM r) FROM r",
    )
    .bind(id)
    .writes(JOBS_TABLE)
    .invalidates(false)
    .all(db)
    .await?;
    Ok(!rows.is_empty())
}

/// Cancels a job that has not finished: an available one never runs, a running one is
/// told (its context's `is_cancelled`) and whatever it returns is ignored. Returns whether
/// there was such a job.
///
/// # Errors
/// The database's.
pub async fn cancel(db: &impl Executor, id: i64) -> Result<bool, Error> {
    let n = pinion_orm::raw(
        "UPDATE pinion_jobs SET state = 'cancelled', finished_at = now(), lease_until = NULL \
         WHERE id = $1 AND state IN ('available', 'running')",
    )
    .bind(id)
    .writes(JOBS_TABLE)
    .invalidates(false)
    .execute(db)
    .await?;
    Ok(n > 0)
}
