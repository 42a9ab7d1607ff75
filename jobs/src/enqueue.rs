//! Putting jobs in the queue: one, or many in one statement, on any executor — inside the
//! caller's transaction too, so that a job exists only if the transaction commits.
//!
//! Every insert notifies `pinion_jobs` with the queue's name in the same statement:
//! PostgreSQL delivers it at commit, and only then, so a worker never wakes for a job it
//! cannot see yet.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use pinion_orm::tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use pinion_orm::{Error, Executor};

use crate::job::Job;

/// The table every job lives in.
pub const JOBS_TABLE: &str = "pinion_jobs";

/// The channel enqueues notify, with the queue's name as payload.
pub const JOBS_CHANNEL: &str = "pinion_jobs";

/// What a second enqueue with the same unique key does while the first is still pending
/// (available or running). A failed or cancelled job does not block a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnConflict {
    /// Nothing: the job already pending stays as it is.
    Skip,
    /// The pending job takes the new payload, priority and `run_at`, unless it is already
    /// running (then nothing happens: a running job cannot be changed under its worker).
    Replace,
}

/// The id of an enqueued job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub i64);

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A job about to be enqueued, with its options: [`Enqueue::new`], the setters, then
/// [`send`](Enqueue::send).
///
/// ```no_run
/// # use pinion_jobs::{Enqueue, Job, JobContext, JobError, OnConflict};
/// # #[derive(serde::Serialize, serde::Deserialize)]
/// # struct Welcome { user: i64 }
/// # impl Job for Welcome {
/// #     const KIND: &'static str = "welcome";
/// #     async fn run(self, _: &JobContext) -> Result<(), JobError> { Ok(()) }
/// # }
/// # async fn signup(db: &pinion_orm::ConnectionManager) -> Result<(), pinion_orm::Error> {
/// db.transaction(async |tx| {
///     // ... insert the user ...
///     Enqueue::new(Welcome { user: 7 })
///         .delay(std::time::Duration::from_secs(60))
///         .unique("welcome:7", OnConflict::Skip)
///         .send(tx)
///         .await?;
///     Ok(())
/// })
/// .await
/// # }
/// ```
#[derive(Debug)]
pub struct Enqueue {
    kind: &'static str,
    payload: Payload,
    queue: Cow<'static, str>,
    priority: i16,
    max_attempts: i32,
    at: Option<SystemTime>,
    delay: Duration,
    unique: Option<(String, OnConflict)>,
}

const INSERT_HEAD: &str = "WITH j AS (INSERT INTO pinion_jobs \
     (queue, kind, payload, priority, max_attempts, run_at, unique_key) \
     VALUES ($1, $2, ($3::text)::jsonb, $4, $5, \
     coalesce($6::timestamptz, now()) + $7::float8 * interval '1 second', $8) \
     ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND state IN ('available', 'running') ";
const SKIP: &str = "DO NOTHING ";
const REPLACE: &str = "DO UPDATE SET payload = EXCLUDED.payload, priority = EXCLUDED.priority, \
     run_at = EXCLUDED.run_at, max_attempts = EXCLUDED.max_attempts \
     WHERE pinion_jobs.state = 'available' ";
const INSERT_TAIL: &str =
    "RETURNING id, queue) SELECT j.id FROM j CROSS JOIN LATERAL pg_notify('pinion_jobs', j.queue) n";

const INSERT_MANY: &str = "WITH j AS (INSERT INTO pinion_jobs \
     (queue, kind, payload, priority, max_attempts, run_at, unique_key) \
     SELECT q, k, p::jsonb, pr, m, now() + d * interval '1 second', u \
     FROM unnest($1::text[], $2::text[], $3::text[], $4::int2[], $5::int4[], $6::float8[], $7::text[]) \
     AS t(q, k, p, pr, m, d, u) \
     ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND state IN ('available', 'running') \
     DO NOTHING RETURNING id, queue) \
     SELECT j.id, (SELECT count(pg_notify('pinion_jobs', q)) FROM (SELECT DISTINCT queue AS q FROM j) d) \
     FROM j ORDER BY j.id";

impl Enqueue {
    /// `job` with the options its type declares (queue, priority, attempts), to run now.
    pub fn new<J: Job>(job: J) -> Enqueue {
        Enqueue {
            kind: J::KIND,
            payload: Payload(serde_json::to_string(&job).map_err(|e| e.to_string())),
            queue: Cow::Borrowed(J::QUEUE),
            priority: J::PRIORITY,
            max_attempts: J::MAX_ATTEMPTS,
            at: None,
            delay: Duration::ZERO,
            unique: None,
        }
    }

    /// Puts it on `queue` instead of its type's.
    pub fn queue(mut self, queue: impl Into<Cow<'static, str>>) -> Enqueue {
        self.queue = queue.into();
        self
    }

    /// Higher runs first among the queue's due jobs.
    pub fn priority(mut self, priority: i16) -> Enqueue {
        self.priority = priority;
        self
    }

    /// Tries before it is kept as failed (at least 1).
    pub fn max_attempts(mut self, attempts: i32) -> Enqueue {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Runs it no earlier than `at` (by the database's clock).
    pub fn run_at(mut self, at: SystemTime) -> Enqueue {
        self.at = Some(at);
        self
    }

    /// Runs it no earlier than `delay` from now (by the database's clock).
    pub fn delay(mut self, delay: Duration) -> Enqueue {
        self.delay = delay;
        self
    }

    /// At most one pending job with `key`: a second enqueue skips or replaces.
    pub fn unique(mut self, key: impl Into<String>, on_conflict: OnConflict) -> Enqueue {
        self.unique = Some((key.into(), on_conflict));
        self
    }

    /// The kind it will run as.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Enqueues it on `db`: a [`ConnectionManager`](pinion_orm::ConnectionManager), a
    /// request's routing, or a [`Transaction`](pinion_orm::transaction) (then it exists, and
    /// wakes a worker, only once the transaction commits). Returns its id, or `None` when
    /// its unique key skipped it (or found the pending job running, for
    /// [`OnConflict::Replace`]).
    ///
    /// # Errors
    /// The database's, or a payload that did not serialize (an ORM error too, so that `?`
    /// takes it wherever it takes a query's).
    pub async fn send(self, db: &impl Executor) -> Result<Option<JobId>, Error> {
        let (key, conflict) = match self.unique {
            Some((key, c)) => (Some(key), c),
            None => (None, OnConflict::Skip),
        };
        let sql = [
            INSERT_HEAD,
            if conflict == OnConflict::Replace {
                REPLACE
            } else {
                SKIP
            },
            INSERT_TAIL,
        ]
        .concat();
        let rows: Vec<(i64,)> = pinion_orm::raw(&sql)
            .bind(self.queue.into_owned())
            .bind(self.kind.to_owned())
            .bind(self.payload)
            .bind(self.priority)
            .bind(self.max_attempts)
            .bind(self.at)
            .bind(self.delay.as_secs_f64())
            .bind(key)
            .writes(JOBS_TABLE)
            .invalidates(false)
            .all(db)
            .await?;
        Ok(rows.first().map(|r| JobId(r.0)))
    }

    /// Enqueues every job of `jobs` in one statement (a unique key that is already pending
    /// skips its job; `run_at` is not kept, use [`delay`](Enqueue::delay)); returns the ids
    /// of those enqueued, in order.
    ///
    /// # Errors
    /// As [`send`](Enqueue::send).
    pub async fn send_many(
        jobs: impl IntoIterator<Item = Enqueue>,
        db: &impl Executor,
    ) -> Result<Vec<JobId>, Error> {
        let (mut queues, mut kinds, mut payloads) = (Vec::new(), Vec::new(), Vec::new());
        let (mut priorities, mut attempts, mut delays, mut keys) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for job in jobs {
            payloads.push(job.payload);
            queues.push(job.queue.into_owned());
            kinds.push(job.kind.to_owned());
            priorities.push(job.priority);
            attempts.push(job.max_attempts);
            let delay = job.at.map_or(job.delay, |at| {
                at.duration_since(SystemTime::now()).unwrap_or_default()
            });
            delays.push(delay.as_secs_f64());
            keys.push(job.unique.map(|(k, _)| k));
        }
        if queues.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(i64, i64)> = pinion_orm::raw(INSERT_MANY)
            .bind(queues)
            .bind(kinds)
            .bind(payloads)
            .bind(priorities)
            .bind(attempts)
            .bind(delays)
            .bind(keys)
            .writes(JOBS_TABLE)
            .invalidates(false)
            .all(db)
            .await?;
        Ok(rows.into_iter().map(|r| JobId(r.0)).collect())
    }
}

/// Enqueues `job` with its type's options on `db`; see [`Enqueue`] for the others.
///
/// # Errors
/// As [`Enqueue::send`].
pub async fn enqueue<J: Job>(db: &impl Executor, job: J) -> Result<Option<JobId>, Error> {
    Enqueue::new(job).send(db).await
}

/// A job's payload as JSON text, or why it did not serialize: the error surfaces when the
/// statement binds it, as an ORM error like any other parameter's.
#[derive(Debug, Clone)]
struct Payload(Result<String, String>);

impl ToSql for Payload {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match &self.0 {
            Ok(json) => json.as_str().to_sql(ty, out),
            Err(e) => Err(format!("the job's payload does not serialize: {e}").into()),
        }
    }

    fn accepts(ty: &Type) -> bool {
        <&str as ToSql>::accepts(ty)
    }

    to_sql_checked!();
}
