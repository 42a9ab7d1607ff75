//! Health probes: `/health` (liveness) and `/health/ready` (readiness).

use pinion_server::{Ctx, Error, Request, Response, StatusCode};
use serde::Serialize;

use crate::AppState;

#[derive(Serialize)]
struct DatabaseState<'a> {
    role: &'a str,
    state: &'a str,
}

#[derive(Serialize)]
struct Readiness<'a> {
    status: &'a str,
    draining: bool,
    databases: std::collections::BTreeMap<&'a str, DatabaseState<'a>>,
    /// `in sync`, or `bypassed` while the query cache's listening connection is down (reads
    /// then skip the cache, so the instance stays ready); absent without a query cache.
    #[serde(skip_serializing_if = "Option::is_none")]
    query_cache: Option<&'a str>,
    /// `up`, or `down` while the process's listening connection is (published events wait
    /// and the query cache is bypassed until it is back; the instance stays ready); absent
    /// without a database.
    #[serde(skip_serializing_if = "Option::is_none")]
    listener: Option<&'a str>,
}

/// Whether `/health/ready` answers 200: not draining, and the primary connected (replicas
/// do not count: reads fall back to the primary). `/metrics` reports it as `pinion_ready`.
pub fn is_ready(ctx: &Ctx<AppState>) -> bool {
    let primary_up = ctx.state().db.as_ref().is_none_or(|db| {
        db.databases()
            .filter(|d| d.role() == pinion_orm::Role::Primary)
            .all(pinion_orm::Database::is_connected)
    });
    primary_up && !ctx.is_draining()
}

/// `GET /health`: 200 while the process serves requests.
pub async fn live(_req: Request, _ctx: &Ctx<AppState>) -> Result<Response, Error> {
    Response::json(&serde_json::json!({ "status": "ok" }))
}

/// `GET /health/ready`: 200 when this instance should get traffic; 503 while it drains or
/// while the primary is unreachable. Replicas are reported but do not make it unready: reads
/// fall back to the primary. The listening connection is reported too: while it is down the
/// query cache is bypassed, so results stay correct, and published events wait for it. Migrations ran before the listeners opened.
pub async fn ready(_req: Request, ctx: &Ctx<AppState>) -> Result<Response, Error> {
    let state = ctx.state();
    let mut databases = std::collections::BTreeMap::new();
    if let Some(db) = &state.db {
        for d in db.databases() {
            let up = if d.role() == pinion_orm::Role::Primary {
                d.is_connected()
            } else {
                d.is_healthy()
            };
            databases.insert(
                d.name(),
                DatabaseState {
                    role: d.role().as_str(),
                    state: if up { "up" } else { "down" },
                },
            );
        }
    }
    let draining = ctx.is_draining();
    let ready = is_ready(ctx);
    let query_cache = state
        .db
        .as_deref()
        .and_then(pinion_orm::ConnectionManager::query_cache)
        .map(|qc| {
            if qc.is_in_sync() {
                "in sync"
            } else {
                "bypassed"
            }
        });
    let listener = state.listener.as_ref().map(|up| {
        if up.load(std::sync::atomic::Ordering::Acquire) {
            "up"
        } else {
            "down"
        }
    });
    let body = Readiness {
        status: if ready { "ready" } else { "unavailable" },
        draining,
        databases,
        query_cache,
        listener,
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok(Response::json(&body)?.status(status))
}
