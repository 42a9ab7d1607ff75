//! The statements workers run on the primary: claim, complete, fail, release, renew, reap,
//! sample. A running job's token is `(id, attempts)`: `attempts` grows at each claim, so a
//! worker whose lease ran out (and whose job another worker claimed since) changes nothing.
//! Batches of tokens are matched as `id = ANY($1)` with the attempt looked up by position,
//! so that the primary key drives them: a join on `unnest` got a cached generic plan that
//! scanned the whole batch for every running job (bench/ANALYSIS.md, "Background jobs").

use std::time::Duration;

use pinion_orm::{Database, Error};

/// A claimed job.
#[derive(Debug)]
pub(crate) struct Claimed {
    pub(crate) id: i64,
    pub(crate) kind: String,
    pub(crate) payload: String,
    pub(crate) attempt: i32,
    pub(crate) max_attempts: i32,
}

const CLAIM: &str = "UPDATE pinion_jobs j SET state = 'running', attempts = j.attempts + 1, \
     lease_until = now() + $3::float8 * interval '1 second', worker = $4, started_at = now() \
     FROM (SELECT id FROM pinion_jobs \
           WHERE state = 'available' AND queue = $1 AND run_at <= now() \
           ORDER BY priority DESC, run_at, id LIMIT $2 FOR UPDATE SKIP LOCKED) p \
     WHERE j.id = p.id \
     RETURNING j.id, j.kind, j.payload::text, j.attempts, j.max_attempts";

/// Claims up to `n` due jobs of `queue` for `worker`, leased for `lease`.
pub(crate) async fn claim(
    db: &Database,
    queue: &str,
    n: usize,
    lease: Duration,
    worker: &str,
) -> Result<Vec<Claimed>, Error> {
    let rows = db
        .query(CLAIM, &[&queue, &(n as i64), &lease.as_secs_f64(), &worker])
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Claimed {
                id: get(r, 0)?,
                kind: get(r, 1)?,
                payload: get(r, 2)?,
                attempt: get(r, 3)?,
                max_attempts: get(r, 4)?,
            })
        })
        .collect()
}

fn get<'a, T: pinion_orm::tokio_postgres::types::FromSql<'a>>(
    row: &'a pinion_orm::tokio_postgres::Row,
    i: usize,
) -> Result<T, Error> {
    pinion_orm::RowRef::get_column(row, i)
}

const COMPLETE: &str = "DELETE FROM pinion_jobs \
     WHERE id = ANY($1::int8[]) AND state = 'running' AND attempts = ($2::int4[])[array_position($1::int8[], id)]";

/// Deletes the completed jobs whose tokens are `(ids[i], attempts[i])`; returns how many
/// were still this worker's.
pub(crate) async fn complete(db: &Database, ids: &[i64], attempts: &[i32]) -> Result<u64, Error> {
    db.execute(COMPLETE, &[&ids, &attempts]).await
}

const FAIL: &str = "UPDATE pinion_jobs SET \
     state = CASE WHEN $4 OR attempts >= max_attempts THEN 'failed' ELSE 'available' END, \
     run_at = CASE WHEN $4 OR attempts >= max_attempts THEN run_at \
                   ELSE now() + $5::float8 * interval '1 second' END, \
     finished_at = CASE WHEN $4 OR attempts >= max_attempts THEN now() END, \
     last_error = $3, lease_until = NULL, worker = NULL \
     WHERE id = $1 AND attempts = $2 AND state = 'running' \
     RETURNING state";

/// Records a failed attempt: retried after `retry_in`, or failed for good when `permanent`
/// or out of attempts. Returns the new state (`None`: no longer this worker's).
pub(crate) async fn fail(
    db: &Database,
    id: i64,
    attempt: i32,
    error: &str,
    permanent: bool,
    retry_in: Duration,
) -> Result<Option<String>, Error> {
    let rows = db
        .query(
            FAIL,
            &[&id, &attempt, &error, &permanent, &retry_in.as_secs_f64()],
        )
        .await?;
    rows.first().map(|r| get(r, 0)).transpose()
}

const RELEASE: &str = "WITH r AS (UPDATE pinion_jobs SET state = 'available', \
     attempts = attempts - 1, run_at = now(), lease_until = NULL, worker = NULL \
     WHERE id = ANY($1::int8[]) AND state = 'running' \
     AND attempts = ($2::int4[])[array_position($1::int8[], id)] RETURNING queue) \
     SELECT (SELECT count(*) FROM r), \
     (SELECT count(pg_notify('pinion_jobs', q)) FROM (SELECT DISTINCT queue AS q FROM r) d)";

/// Hands unfinished jobs back (the attempt not counted), runnable at once elsewhere, and
/// wakes the workers of their queues. Returns how many were released.
pub(crate) async fn release(db: &Database, ids: &[i64], attempts: &[i32]) -> Result<i64, Error> {
    let rows = db.query(RELEASE, &[&ids, &attempts]).await?;
    rows.first().map_or(Ok(0), |r| get(r, 0))
}

const RENEW: &str =
    "UPDATE pinion_jobs SET lease_until = now() + $3::float8 * interval '1 second' \
     WHERE id = ANY($1::int8[]) AND state = 'running' \
     AND attempts = ($2::int4[])[array_position($1::int8[], id)] RETURNING id";

/// Extends the leases of running jobs; returns the ids still this worker's (the others were
/// cancelled, or their lease had run out).
pub(crate) async fn renew(
    db: &Database,
    ids: &[i64],
    attempts: &[i32],
    lease: Duration,
) -> Result<Vec<i64>, Error> {
    let rows = db
        .query(RENEW, &[&ids, &attempts, &lease.as_secs_f64()])
        .await?;
    rows.iter().map(|r| get(r, 0)).collect()
}

const REAP: &str = "WITH expired AS (SELECT id FROM pinion_jobs \
       WHERE state = 'running' AND lease_until < now() \
       ORDER BY lease_until LIMIT 1000 FOR UPDATE SKIP LOCKED), \
     moved AS (UPDATE pinion_jobs j SET \
       state = CASE WHEN j.attempts >= j.max_attempts THEN 'failed' ELSE 'available' END, \
       finished_at = CASE WHEN j.attempts >= j.max_attempts THEN now() END, \
       run_at = now(), \
       last_error = 'the lease ran out: worker ' || coalesce(j.worker, '?') || \
                    ' stopped renewing it (killed or hung)', \
       lease_until = NULL, worker = NULL \
       FROM expired e WHERE j.id = e.id RETURNING j.id, j.queue, j.state) \
     SELECT m.id, m.queue, m.state, \
       (SELECT count(pg_notify('pinion_jobs', q)) \
        FROM (SELECT DISTINCT queue AS q FROM moved WHERE state = 'available') d) \
     FROM moved m";

/// A running job whose lease ran out, put back (or failed, its attempts spent).
#[derive(Debug)]
pub(crate) struct Reaped {
    pub(crate) id: i64,
    pub(crate) queue: String,
    pub(crate) state: String,
}

/// Puts back the running jobs whose lease ran out, waking the workers of their queues.
pub(crate) async fn reap(db: &Database) -> Result<Vec<Reaped>, Error> {
    let rows = db.query(REAP, &[]).await?;
    rows.iter()
        .map(|r| {
            Ok(Reaped {
                id: get(r, 0)?,
                queue: get(r, 1)?,
                state: get(r, 2)?,
            })
        })
        .collect()
}

const SAMPLE: &str = "SELECT queue, state, count(*), \
     CASE WHEN state = 'available' THEN extract(epoch FROM now() - min(run_at)) ELSE 0 END::int8 \
     FROM pinion_jobs WHERE state <> 'available' OR run_at <= now() GROUP BY queue, state";

/// Per queue and state: how many jobs, and the age of the oldest due one.
pub(crate) async fn sample(db: &Database) -> Result<Vec<(String, String, i64, i64)>, Error> {
    let rows = db.query(SAMPLE, &[]).await?;
    rows.iter()
        .map(|r| Ok((get(r, 0)?, get(r, 1)?, get(r, 2)?, get(r, 3)?)))
        .collect()
}

const PRUNE: &str = "DELETE FROM pinion_jobs WHERE id IN (SELECT id FROM pinion_jobs \
     WHERE state IN ('failed', 'cancelled') AND finished_at < now() - $1::float8 * interval '1 second' \
     LIMIT 1000)";

/// Deletes failed and cancelled jobs finished longer than `retention` ago (a thousand at a
/// time); returns how many.
pub(crate) async fn prune(db: &Database, retention: Duration) -> Result<u64, Error> {
    db.execute(PRUNE, &[&retention.as_secs_f64()]).await
}
