//! `GET /`: a small page listing the endpoints.

use askama::Template;
use pinion_server::{Ctx, Error, Request, Response};

use crate::AppState;

/// One row of the endpoint table.
struct Endpoint {
    method: &'static str,
    path: &'static str,
    about: &'static str,
}

/// The endpoints this app serves, in the order the page lists them.
const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        method: "GET",
        path: "/plaintext",
        about: "Hello, World! as text/plain (TechEmpower plaintext)",
    },
    Endpoint {
        method: "GET",
        path: "/json",
        about: "{\"message\":\"Hello, World!\"} serialized per request (TechEmpower json)",
    },
    Endpoint {
        method: "any",
        path: "/echo",
        about: "answers the request body with its content type",
    },
];

/// `templates/index.html`, compiled by askama (auto-escaped).
#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage<'a> {
    name: &'a str,
    version: &'a str,
    threads: usize,
    endpoints: &'a [Endpoint],
}

/// The index page.
pub async fn index(_req: Request, ctx: &Ctx<AppState>) -> Result<Response, Error> {
    let page = IndexPage {
        name: "pinion",
        version: env!("CARGO_PKG_VERSION"),
        threads: ctx.state().threads,
        endpoints: ENDPOINTS,
    };
    let html = page.render().map_err(Error::internal)?;
    Ok(Response::html(html))
}
