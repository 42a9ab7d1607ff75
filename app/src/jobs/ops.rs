//! `pinion worker --metrics-port N`: the worker process's own `/metrics` and `/health`, on
//! one thread, so that Prometheus scrapes the jobs' figures where they are counted.

use std::sync::Arc;

use pinion_config::Settings;
use pinion_server::telemetry::{render, Telemetry};
use pinion_server::{Bytes, Ctx, Error, Request, Response, Router, ServerHandle};

/// What the endpoints read.
pub struct Ops {
    telemetry: Arc<Telemetry>,
}

async fn metrics(_req: Request, ctx: &Ctx<Ops>) -> Result<Response, Error> {
    let (content_type, body) = render(&ctx.state().telemetry);
    Ok(Response::with_body(content_type, Bytes::from(body)))
}

async fn health(_req: Request, _ctx: &Ctx<Ops>) -> Result<Response, Error> {
    Response::json(&serde_json::json!({ "status": "ok", "role": "worker" }))
}

/// Serves `/metrics` (the registry of `telemetry`, where the workers' metrics are) and
/// `/health` on `bind:port` with one thread; its shutdown trigger is the one the workers
/// drain on.
///
/// # Errors
/// When the address cannot be bound.
pub fn serve(
    settings: &Settings,
    port: u16,
    telemetry: Arc<Telemetry>,
) -> Result<ServerHandle, pinion_server::Error> {
    let ops_settings = Settings {
        port,
        threads: Some(1),
        handoff_socket: None,
        ..settings.clone()
    };
    pinion_server::start(&ops_settings, move |_| {
        let router = Router::new()
            .get("/metrics", metrics)
            .get("/health", health);
        (
            router,
            Ops {
                telemetry: Arc::clone(&telemetry),
            },
        )
    })
}
