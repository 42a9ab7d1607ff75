//! `pinion jobs list | retry ID | cancel ID`: what an operator does with the queue at 3 a.m.

use std::fmt::Write as _;

use pinion_jobs::admin::{self, Filter, JobRow};
use pinion_orm::ConnectionManager;

/// What `pinion jobs` was asked to do.
#[derive(Debug, Clone)]
pub enum Action {
    /// List jobs, newest first.
    List(Filter),
    /// Run a failed or cancelled job again.
    Retry(i64),
    /// Cancel a job that has not finished.
    Cancel(i64),
}

/// Runs `action` on `db`; returns what to print, or why it failed (the exit code is 1 for a
/// retry or cancel that found no such job).
///
/// # Errors
/// The database's, or a message for a job that was not found in a state the action applies to.
pub async fn run(db: &ConnectionManager, action: &Action) -> Result<String, String> {
    match action {
        Action::List(filter) => {
            let rows = admin::list(db, filter).await.map_err(|e| e.to_string())?;
            Ok(render(&rows))
        }
        Action::Retry(id) => match admin::retry(db, *id).await {
            Ok(true) => Ok(format!("job {id} is available again\n")),
            Ok(false) => Err(format!("no failed or cancelled job {id}")),
            Err(e) => Err(e.to_string()),
        },
        Action::Cancel(id) => match admin::cancel(db, *id).await {
            Ok(true) => Ok(format!("job {id} cancelled\n")),
            Ok(false) => Err(format!("no available or running job {id}")),
            Err(e) => Err(e.to_string()),
        },
    }
}

/// The rows as a table, one job per line.
pub fn render(rows: &[JobRow]) -> String {
    let mut out = String::from("ID\tQUEUE\tKIND\tSTATE\tATTEMPTS\tRUN_AT\tWORKER\tLAST_ERROR\n");
    for r in rows {
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}/{}\t{}\t{}\t{}",
            r.id,
            r.queue,
            r.kind,
            r.state,
            r.attempts,
            r.max_attempts,
            httpdate::fmt_http_date(r.run_at),
            r.worker.as_deref().unwrap_or("-"),
            r.last_error
                .as_deref()
                .map(|e| e.replace(['\n', '\t'], " "))
                .unwrap_or_else(|| "-".into()),
        );
    }
    if rows.is_empty() {
        out.push_str("(no jobs)\n");
    }
    out
}
