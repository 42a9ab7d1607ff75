//! `/echo`, any method: answers the request body with its content type.

use pinion_server::{header::HeaderValue, Ctx, Error, Request, Response};

use crate::AppState;

/// Echoes the body (chunked or not) back with the request's `Content-Type`
/// (`application/octet-stream` when it had none).
pub async fn echo(req: Request, _ctx: &Ctx<AppState>) -> Result<Response, Error> {
    let content_type = req
        .header("content-type")
        .and_then(|v| HeaderValue::from_bytes(v).ok())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    Ok(Response::with_body(content_type, req.into_body()))
}
