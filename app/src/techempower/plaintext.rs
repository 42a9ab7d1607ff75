//! `GET /plaintext`: TechEmpower's plaintext test.

use pinion_server::{header::HeaderValue, Bytes, Ctx, Error, Request, Response};

use crate::AppState;

/// `Hello, World!` as `text/plain`. The body is a static, so the response allocates nothing.
pub async fn plaintext(_req: Request, _ctx: &Ctx<AppState>) -> Result<Response, Error> {
    Ok(Response::with_body(
        HeaderValue::from_static("text/plain"),
        Bytes::from_static(b"Hello, World!"),
    ))
}
