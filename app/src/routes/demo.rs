//! A small read-your-writes demo on `world`: `POST /worlds/{id}?randomNumber=N` writes on the
//! primary and redirects to `GET /worlds/{id}`, which — thanks to the sticky cookie set by the
//! POST — reads from the primary too, so the redirect sees the write despite replication lag.
//! `GET /worlds/live` is an event stream of those writes (`event: world`, the row as JSON),
//! for a page with the htmx SSE extension (`sse-connect="/worlds/live"`, `sse-swap="world"`).

use pinion_server::cookie::CookieJar;
use pinion_server::extract::{Path, Query};
use pinion_server::sse::{Event, Sse};
use pinion_server::{Ctx, Error, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};

use pinion_orm::query::raw;
use pinion_orm::Model;

use crate::state::db_routing;
use crate::techempower::world::World;
use crate::AppState;

#[derive(Serialize)]
struct Served {
    id: i32,
    #[serde(rename = "randomNumber")]
    random_number: i32,
    /// `primary` or `replica`: which database answered (this is a demo).
    #[serde(rename = "servedBy")]
    served_by: &'static str,
}

fn world_id(req: &Request) -> Result<i32, Error> {
    req.param("id")
        .and_then(|v| v.parse::<i32>().ok())
        .filter(|id| (1..=10_000).contains(id))
        .ok_or_else(|| Error::new(StatusCode::NOT_FOUND, "no such world"))
}

/// A row as `GET /worlds/live` announces it.
#[derive(Serialize)]
struct Changed {
    id: i32,
    #[serde(rename = "randomNumber")]
    random_number: i32,
}

/// `GET /worlds/live`: an event stream with one `world` event per write through
/// `POST /worlds/{id}` on any worker of this process.
pub async fn live(ctx: &Ctx<AppState>) -> Sse {
    ctx.state().live.subscribe()
}

/// The query of `POST /worlds/{id}`.
#[derive(Deserialize)]
pub struct NewNumber {
    #[serde(rename = "randomNumber")]
    random_number: i32,
}

/// `GET /worlds/{id}`: one row, read where the routing says (404 when there is none), with
/// the server that answered: raw SQL declaring the table it reads, so that it is routed as
/// `World`'s reads are.
pub async fn show(ctx: &Ctx<AppState>, req: Request) -> pinion_web::Result<Response> {
    let id = world_id(&req)?;
    let routing = db_routing(ctx, &req)?;
    let row: Option<(i32, i32, bool)> =
        raw("SELECT id, randomnumber, pg_is_in_recovery() FROM world WHERE id = $1")
            .bind(id)
            .reads_model::<World>()
            // It shows which server answered: a cached answer would say where it was filled.
            .cache(false)
            .first(&routing)
            .await?;
    let Some((id, random_number, standby)) = row else {
        return Err(pinion_web::Error::not_found());
    };
    Ok(Response::json(&Served {
        id,
        random_number,
        served_by: if standby { "replica" } else { "primary" },
    })?)
}

/// `POST /worlds/{id}?randomNumber=N`: writes on the primary, sets the signed sticky cookie
/// and redirects (303) to the row.
pub async fn update(
    ctx: &Ctx<AppState>,
    Path(id): Path<i32>,
    mut jar: CookieJar,
    Query(NewNumber {
        random_number: number,
    }): Query<NewNumber>,
    req: Request,
) -> pinion_web::Result<(CookieJar, Response)> {
    if !(1..=10_000).contains(&id) {
        return Err(pinion_web::Error::new(
            StatusCode::NOT_FOUND,
            "no such world",
        ));
    }
    let state = ctx.state();
    let routing = db_routing(ctx, &req)?;
    let changed = World::objects()
        .filter(World::ID.eq(id))
        .update([World::RANDOM_NUMBER.set(number)], &routing)
        .await?;
    if changed == 0 {
        return Err(pinion_web::Error::not_found());
    }
    if let Some(cookie) = state.sticky_cookie() {
        jar.signed().add(cookie);
    }
    let changed = Event::new()
        .event("world")
        .id(id.to_string())
        .json_data(&Changed {
            id,
            random_number: number,
        })?;
    state.feed.publish(&changed);
    let resp = Response::redirect(StatusCode::SEE_OTHER, &format!("/worlds/{id}"))?;
    Ok((jar, resp))
}
