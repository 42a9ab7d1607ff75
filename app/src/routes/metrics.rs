//! `GET /metrics`: Prometheus text exposition.

use pinion_server::telemetry::render;
use pinion_server::{Bytes, Ctx, Error, Request, Response, StatusCode};

use crate::AppState;

/// The registry in the text format (per-thread counts are at most one drain interval old);
/// 404 when telemetry is off. Readiness and the database servers' state are read first, so
/// the scrape sees them as they are now.
pub async fn metrics(_req: Request, ctx: &Ctx<AppState>) -> Result<Response, Error> {
    let state = ctx.state();
    let Some(telemetry) = &state.telemetry else {
        return Err(Error::new(StatusCode::NOT_FOUND, "telemetry is disabled"));
    };
    if let Some(monitoring) = &state.monitoring {
        monitoring.set_ready(super::health::is_ready(ctx));
        if let Some(db) = &state.db {
            monitoring.sample(db).await;
        }
    }
    let (content_type, body) = render(telemetry);
    Ok(Response::with_body(content_type, Bytes::from(body)))
}
