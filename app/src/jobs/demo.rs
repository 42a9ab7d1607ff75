//! The demo's jobs: the confirmation an order gets once it is placed, and two for drills and
//! load tests.

use std::time::Duration;

use pinion_jobs::{Job, JobContext, JobError};
use serde::{Deserialize, Serialize};

/// The pause between the steps of a confirmation, so that its progress can be watched on the
/// order's page.
const STEP: Duration = Duration::from_millis(400);

/// Confirms an order after it is placed (the part a shop does after the request: reserve the
/// stock, send the e-mail), publishing its progress to the order's page (channel
/// `order-{id}`, event `progress`). Idempotent: a second run finds it confirmed and says so.
#[derive(Debug, Serialize, Deserialize)]
pub struct ConfirmOrder {
    /// The order.
    pub order: i64,
}

impl ConfirmOrder {
    /// The order page's progress element, at `percent` with `step` (text of ours, no markup).
    pub fn fragment(order: i64, percent: u32, step: &str) -> String {
        format!(
            "<div id=\"order-progress\" data-order=\"{order}\" data-percent=\"{percent}\">\
             <progress max=\"100\" value=\"{percent}\">{percent}%</progress> {step}</div>"
        )
    }

    async fn progress(&self, ctx: &JobContext, percent: u32, step: &str) -> Result<(), JobError> {
        let channel = format!("order-{}", self.order);
        pinion_events::publish(
            &**ctx.db(),
            &channel,
            "progress",
            &Self::fragment(self.order, percent, step),
        )
        .await?;
        Ok(())
    }
}

impl Job for ConfirmOrder {
    const KIND: &'static str = "confirm_order";
    const MAX_ATTEMPTS: i32 = 5;

    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        self.progress(ctx, 20, "reserving the stock").await?;
        monoio::time::sleep(STEP).await;
        self.progress(ctx, 60, "sending the confirmation e-mail")
            .await?;
        monoio::time::sleep(STEP).await;
        let confirmed = pinion_orm::raw(
            "UPDATE orders SET confirmed_at = coalesce(confirmed_at, now()) WHERE id = $1",
        )
        .bind(self.order)
        .writes("orders")
        .execute(&**ctx.db())
        .await?;
        if confirmed == 0 {
            return Err(JobError::permanent(format!(
                "order {} no longer exists",
                self.order
            )));
        }
        self.progress(ctx, 100, "confirmed").await?;
        tracing::info!(order = self.order, job = ctx.id(), "order confirmed");
        Ok(())
    }
}

/// Does nothing: the load test's job (`bench/jobs`), which measures the queue itself.
#[derive(Debug, Serialize, Deserialize)]
pub struct Noop;

impl Job for Noop {
    const KIND: &'static str = "noop";

    async fn run(self, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

/// A drill: on its first attempt waits `sleep_ms` (a worker to kill mid-job, a drain to
/// watch), then records its run (`n`, the job, the attempt, the process) in a table
/// `job_marks (n bigint, job bigint, attempt int, pid int)` that the drill creates (the
/// tests, `bench/jobs`): what ran, how often, and where.
#[derive(Debug, Serialize, Deserialize)]
pub struct Mark {
    /// The drill's own number for this job.
    pub n: i64,
    /// How long its first attempt "works" before it records its run.
    #[serde(default)]
    pub sleep_ms: u64,
}

impl Job for Mark {
    const KIND: &'static str = "mark";

    async fn run(self, ctx: &JobContext) -> Result<(), JobError> {
        if self.sleep_ms > 0 && ctx.attempt() == 1 {
            monoio::time::sleep(Duration::from_millis(self.sleep_ms)).await;
        }
        ctx.db()
            .primary()
            .execute(
                "INSERT INTO job_marks (n, job, attempt, pid) VALUES ($1, $2, $3, $4)",
                &[
                    &self.n,
                    &ctx.id(),
                    &ctx.attempt(),
                    &(std::process::id() as i32),
                ],
            )
            .await?;
        Ok(())
    }
}
