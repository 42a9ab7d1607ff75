//! `GET /json`: TechEmpower's JSON serialization test.

use pinion_server::{Ctx, Error, Request, Response};
use serde::Serialize;

use crate::AppState;

/// The object the test serializes, once per request (the rules forbid caching the output).
#[derive(Serialize)]
struct Message {
    message: &'static str,
}

/// `{"message":"Hello, World!"}` as `application/json`.
pub async fn json(_req: Request, _ctx: &Ctx<AppState>) -> Result<Response, Error> {
    Response::json(&Message {
        message: "Hello, World!",
    })
}
