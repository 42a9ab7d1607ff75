//! `GET /metrics`: Prometheus text exposition.

use pinion_server::telemetry::render;
use pinion_server::{Bytes, Ctx, Error, Request, Response, StatusCode};

use crate::AppState;

/// The registry in the text format (per-thread counts are at most one drain interval old);
/// 404 when telemetry is off.
pub async fn metrics(_req: Request, ctx: &Ctx<AppState>) -> Result<Response, Error> {
    let Some(telemetry) = &ctx.state().telemetry else {
        return Err(Error::new(StatusCode::NOT_FOUND, "telemetry is disabled"));
    };
    let (content_type, body) = render(telemetry);
    Ok(Response::with_body(content_type, Bytes::from(body)))
}
