//! Periodic jobs: one process leads (it holds a PostgreSQL advisory lock on a connection of
//! its own), and enqueues each schedule's tick once, recording it in `pinion_cron` in the
//! same transaction, so that even two leaders (a partition) cannot enqueue a tick twice.
//! The others try for the lock every second; a leader that stops gives it up, one that dies
//! loses it with its connection.
//!
//! Missed ticks (no instance ran, or the hand-over took longer than a period): the latest
//! tick missed is enqueued once, the earlier are skipped. A new schedule starts at its next
//! tick.

use std::rc::Rc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use croner::parser::CronParser;
use croner::Cron;

use crate::enqueue::{Enqueue, OnConflict};
use crate::error::Error;
use crate::worker::Local;

/// The advisory lock the leader holds: "pinion" and "cron" in ASCII.
const LEADER_LOCK: i64 = 0x7069_6e69_6f6e_6372;
/// How often a follower tries to lead, and the longest a leader sleeps between looks.
const TRY_EVERY: Duration = Duration::from_secs(1);

/// One periodic job: its name, its cron expression, and what it enqueues.
pub(crate) struct Schedule {
    pub(crate) name: String,
    cron: Cron,
    make: Box<dyn Fn(SystemTime) -> Enqueue + Send + Sync>,
}

impl Schedule {
    pub(crate) fn new(
        name: &str,
        expression: &str,
        make: impl Fn(SystemTime) -> Enqueue + Send + Sync + 'static,
    ) -> Result<Schedule, Error> {
        let cron = CronParser::new()
            .parse(expression)
            .map_err(|e| Error::config(format!("schedule `{name}`: `{expression}`: {e}")))?;
        Ok(Schedule {
            name: name.to_owned(),
            cron,
            make: Box::new(make),
        })
    }

    /// The latest tick at or before `now`.
    fn latest(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_previous_occurrence(&now, true).ok()
    }

    /// The first tick after `now`.
    fn next(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&now, false).ok()
    }
}

/// The clock, in UTC (chrono's `Utc::now` needs its `clock` feature and time-zone crates).
fn utc_now() -> DateTime<Utc> {
    DateTime::<Utc>::from(SystemTime::now())
}

/// Leads when it can, until shutdown.
pub(crate) async fn lead(local: Rc<Local>) {
    loop {
        if local.stopping() {
            return;
        }
        match try_lead(&local).await {
            Ok(true) => {}
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "cron: leading failed; trying again"),
        }
        let stop = std::pin::pin!(local.shutdown.triggered());
        let _ = monoio::time::timeout(TRY_EVERY, stop).await;
    }
}

/// Takes the lock if it is free and leads until shutdown or until its connection is lost;
/// `false` when another process leads.
async fn try_lead(local: &Local) -> Result<bool, pinion_orm::Error> {
    let conn = local.db.primary().pooled().await?;
    let client = conn.client();
    let got: bool = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&LEADER_LOCK])
        .await
        .and_then(|r| r.try_get(0))
        .map_err(pinion_orm::Error::from)?;
    if !got {
        return Ok(false);
    }
    tracing::info!(worker = %local.worker, "cron: this process leads the periodic jobs");
    for s in &local.registry.schedules {
        client
            .execute(
                "INSERT INTO pinion_cron (name, last_tick) VALUES ($1, now()) ON CONFLICT DO NOTHING",
                &[&s.name],
            )
            .await
            .map_err(pinion_orm::Error::from)?;
    }
    let result = async {
        loop {
            if local.stopping() {
                return Ok(());
            }
            let now = utc_now();
            for s in &local.registry.schedules {
                tick(local, s, now).await?;
            }
            // Still ours? A lost connection has lost the lock with it.
            client
                .simple_query("SELECT 1")
                .await
                .map_err(pinion_orm::Error::from)?;
            let next = local
                .registry
                .schedules
                .iter()
                .filter_map(|s| s.next(now))
                .min()
                .and_then(|t| (t - utc_now()).to_std().ok())
                .unwrap_or(TRY_EVERY)
                .min(TRY_EVERY);
            let stop = std::pin::pin!(local.shutdown.triggered());
            let _ = monoio::time::timeout(next, stop).await;
        }
    }
    .await;
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&LEADER_LOCK])
        .await;
    tracing::info!(worker = %local.worker, "cron: leadership given up");
    result.map(|()| true)
}

/// Enqueues `s`'s latest tick at or before `now` unless it was enqueued already.
async fn tick(local: &Local, s: &Schedule, now: DateTime<Utc>) -> Result<(), pinion_orm::Error> {
    let Some(latest) = s.latest(now) else {
        return Ok(());
    };
    let at = SystemTime::from(latest);
    let enqueued = local
        .db
        .transaction(async |tx| {
            let moved = tx
                .execute(
                    "UPDATE pinion_cron SET last_tick = $2 WHERE name = $1 AND last_tick < $2",
                    &[&s.name, &at],
                )
                .await?;
            if moved == 0 {
                return Ok::<_, pinion_orm::Error>(None);
            }
            let key = format!("cron:{}:{}", s.name, latest.timestamp());
            (s.make)(at).unique(key, OnConflict::Skip).send(tx).await
        })
        .await?;
    if let Some(id) = enqueued {
        local
            .metrics
            .cron_ticks
            .with_label_values(&[s.name.as_str()])
            .inc();
        tracing::info!(schedule = %s.name, tick = %latest.to_rfc3339(), job = id.0, "cron: tick enqueued");
    }
    Ok(())
}
