//! `GET /`: a small page listing the endpoints.

use askama::Template;
use pinion_server::{Ctx, Request, Response};

use crate::layout::Layout;
use crate::AppState;

/// One row of the endpoint table.
struct Endpoint {
    method: &'static str,
    path: &'static str,
    about: &'static str,
}

/// The endpoints this app serves, in the order the page lists them.
const ENDPOINTS: &[Endpoint] = &[
    Endpoint { method: "GET", path: "/plaintext", about: "Hello, World! as text/plain (TechEmpower plaintext)" },
    Endpoint { method: "GET", path: "/json", about: "{\"message\":\"Hello, World!\"} serialized per request (TechEmpower json)" },
    Endpoint { method: "GET", path: "/db", about: "one random world row (TechEmpower db)" },
    Endpoint { method: "GET", path: "/queries?q=20", about: "q random rows, one SELECT each, in one batch ending in one Sync (TechEmpower queries)" },
    Endpoint { method: "GET", path: "/updates?q=20", about: "q rows read, changed and written in one bulk UPDATE (TechEmpower updates)" },
    Endpoint { method: "GET", path: "/cached-queries?count=20", about: "count rows through the in-process cache, read-through from PostgreSQL (TechEmpower cached queries)" },
    Endpoint { method: "GET", path: "/fortunes", about: "every fortune plus one added at request time, sorted, through a compiled askama template (TechEmpower fortunes)" },
    Endpoint { method: "GET", path: "/worlds/1", about: "one row, with the database that served it; POST ?randomNumber=N writes and redirects (read-your-writes demo)" },
    Endpoint { method: "GET", path: "/worlds/live", about: "Server-Sent Events: one `world` event per write through POST /worlds/{id}" },
    Endpoint { method: "GET", path: "/health/ready", about: "readiness: 503 while draining or while the primary is down" },
    Endpoint { method: "GET", path: "/health", about: "liveness" },
    Endpoint { method: "any", path: "/echo", about: "answers the request body with its content type" },
];

/// `templates/index.html`, compiled by askama (auto-escaped), on the layout of `base.html`.
#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage<'a> {
    layout: Layout<'a>,
    name: &'a str,
    version: &'a str,
    threads: usize,
    endpoints: &'a [Endpoint],
}

/// The index page.
pub async fn index(ctx: &Ctx<AppState>, _req: Request) -> pinion_web::Result<Response> {
    let page = IndexPage {
        layout: ctx.state().layout(),
        name: "pinion",
        version: env!("CARGO_PKG_VERSION"),
        threads: ctx.state().threads,
        endpoints: ENDPOINTS,
    };
    let html = pinion_server::telemetry::trace::render(|| page.render())?;
    // The same for everybody, and it changes only with a deployment: a shared cache may keep
    // it a minute.
    Ok(Response::html(html).header(
        pinion_server::header::CACHE_CONTROL,
        pinion_server::HeaderValue::from_static("public, max-age=60"),
    ))
}
