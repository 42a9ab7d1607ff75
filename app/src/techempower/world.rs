//! TechEmpower's database routes: `/db`, `/queries`, `/updates`.

use std::sync::OnceLock;

use pinion_cache::{Cache, Ttl};
use pinion_orm::{batch, Model};
use pinion_server::{Ctx, Request, Response};
use pinion_web::Result;

use crate::state::db_routing;
use crate::AppState;

pub use crate::models::World;

/// An `application/json` response whose body `write` renders (timed as the render phase of a
/// sampled trace); `capacity` is the expected size, so the body is allocated once.
fn json_response(write: impl FnOnce(&mut Vec<u8>), capacity: usize) -> Response {
    let body = pinion_server::telemetry::trace::render(|| {
        let mut out = Vec::with_capacity(capacity);
        write(&mut out);
        out
    });
    Response::with_body(
        pinion_server::HeaderValue::from_static("application/json"),
        body.into(),
    )
}

impl World {
    /// Appends `{"id":…,"randomNumber":…}`: the same bytes as serde_json's, without its
    /// generic machinery, which dominated a 100-row `/cached-queries` (bench/ANALYSIS.md).
    /// The object is assembled on the stack and appended with one copy, not five appends
    /// that each check the capacity.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        const ID: &[u8] = b"{\"id\":";
        const NUMBER: &[u8] = b",\"randomNumber\":";
        // 11 bytes is the longest i32 (`-2147483648`).
        let mut buf = [0u8; ID.len() + 11 + NUMBER.len() + 11 + 1];
        let mut n = itoa::Buffer::new();
        buf[..ID.len()].copy_from_slice(ID);
        let mut len = ID.len();
        let id = n.format(self.id).as_bytes();
        buf[len..len + id.len()].copy_from_slice(id);
        len += id.len();
        buf[len..len + NUMBER.len()].copy_from_slice(NUMBER);
        len += NUMBER.len();
        let number = n.format(self.random_number).as_bytes();
        buf[len..len + number.len()].copy_from_slice(number);
        len += number.len();
        buf[len] = b'}';
        out.extend_from_slice(&buf[..=len]);
    }

    /// A JSON response of this row.
    pub fn response(&self) -> Response {
        json_response(|out| self.write_json(out), 40)
    }

    /// A JSON response of `worlds` as an array.
    pub fn array_response(worlds: &[World]) -> Response {
        json_response(
            |out| {
                out.push(b'[');
                for (i, w) in worlds.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    w.write_json(out);
                }
                out.push(b']');
            },
            2 + worlds.len() * 41,
        )
    }
}

/// The `q` (or `count`) parameter as TechEmpower defines it: clamped to 1..=500, and 1 when
/// missing or not an integer.
pub fn query_count(req: &Request, name: &str) -> usize {
    req.query_param(name)
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or(1)
        .clamp(1, 500) as usize
}

/// The query of one `world` row. TechEmpower forbids caching its database tests' reads, so
/// they bypass the query cache.
fn world(id: i32) -> pinion_orm::QuerySet<World> {
    World::objects().filter(World::ID.eq(id)).cache(false)
}

/// `GET /db`: one random row.
pub async fn db(ctx: &Ctx<AppState>, req: Request) -> Result<Response> {
    let routing = db_routing(ctx, &req)?;
    let id = ctx.state().random_world_value();
    Ok(world(id).get(&routing).await?.response())
}

/// `GET /queries?q=N`: N random rows, one SELECT each, in one batch ended by one `Sync`:
/// PostgreSQL answers all of them in one send, where reads pipelined one by one came back in
/// up to N sends and woke the worker for most of them (bench/ANALYSIS.md).
pub async fn queries(ctx: &Ctx<AppState>, req: Request) -> Result<Response> {
    let state = ctx.state();
    let n = query_count(&req, "q");
    let routing = db_routing(ctx, &req)?;
    let worlds = batch((0..n).map(|_| world(state.random_world_value())))
        .get(&routing)
        .await?;
    Ok(World::array_response(&worlds))
}

/// `GET /updates?q=N`: reads N random rows, gives each a new random number and writes them
/// in one bulk UPDATE before answering. Reads and write both go to the primary: it is a
/// read-modify-write.
pub async fn updates(ctx: &Ctx<AppState>, req: Request) -> Result<Response> {
    let state = ctx.state();
    let n = query_count(&req, "q");
    let routing = db_routing(ctx, &req)?;
    routing.read_from_primary();
    let mut worlds = batch((0..n).map(|_| world(state.random_world_value())))
        .get(&routing)
        .await?;
    // An id drawn twice gets one new number, so the answer matches what is stored.
    let mut changes: Vec<World> = Vec::with_capacity(n);
    for w in &mut worlds {
        match changes.iter().find(|c| c.id == w.id) {
            Some(c) => w.random_number = c.random_number,
            None => {
                w.random_number = state.random_world_value();
                changes.push(*w);
            }
        }
    }
    // Ids sorted: every request locks rows in the same order, so concurrent updates cannot
    // deadlock.
    changes.sort_unstable_by_key(|w| w.id);
    World::objects()
        .bulk_update(&changes, &[&World::RANDOM_NUMBER], &routing)
        .await?;
    Ok(World::array_response(&worlds))
}

/// The cache key of `world` row `id`: `world:<id>`, written into `buf` (no allocation once
/// `buf` has grown).
pub fn world_key(buf: &mut String, id: i32) -> &str {
    buf.clear();
    buf.push_str("world:");
    buf.push_str(itoa::Buffer::new().format(id));
    buf
}

/// Rows in the `world` table (TechEmpower's 10 000, ids from 1).
pub const WORLD_ROWS: i32 = 10_000;

/// The key of `world` row `id`: built once for the table's rows (`world:1` to
/// `world:10000`), so that a lookup formats nothing (~77 instructions per row of a 100-row
/// `/cached-queries`, callgrind); other ids are written into `buf`.
pub fn world_key_of(buf: &mut String, id: i32) -> &str {
    static KEYS: OnceLock<Box<[Box<str>]>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        let mut buf = String::new();
        (1..=WORLD_ROWS)
            .map(|id| Box::from(world_key(&mut buf, id)))
            .collect()
    });
    match usize::try_from(id)
        .ok()
        .and_then(|id| id.checked_sub(1))
        .and_then(|i| keys.get(i))
    {
        Some(key) => key,
        None => world_key(buf, id),
    }
}

/// `GET /cached-queries?count=N`: N random rows through the cache library — the shared
/// LocMemCache (primed at start-up), read-through from PostgreSQL on a miss, with
/// single-flight so concurrent misses on one row query it once.
pub async fn cached_queries(ctx: &Ctx<AppState>, req: Request) -> Result<Response> {
    let state = ctx.state();
    let n = query_count(&req, "count");
    let mut worlds = Vec::with_capacity(n);
    let mut key = String::with_capacity(16);
    for _ in 0..n {
        let id = state.random_world_value();
        let world = state
            .worlds
            .get_or_compute(world_key_of(&mut key, id), Ttl::Default, || async {
                let routing = db_routing(ctx, &req)?;
                Ok::<_, pinion_web::Error>(world(id).get(&routing).await?)
            })
            .await?;
        worlds.push(world);
    }
    Ok(World::array_response(&worlds))
}

/// Loads every `world` row into `cache` (TechEmpower allows priming at start-up).
///
/// # Errors
/// The database error, or a cache error.
pub async fn prime(
    db: &pinion_orm::ConnectionManager,
    cache: &crate::state::WorldCache,
) -> Result<usize, String> {
    let worlds = World::objects()
        .using(pinion_orm::PRIMARY)
        .cache(false)
        .all(db)
        .await
        .map_err(|e| e.to_string())?;
    let mut key = String::with_capacity(16);
    for world in &worlds {
        cache
            .set(world_key(&mut key, world.id), *world, Ttl::Default)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(worlds.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prebuilt_keys_are_the_formatted_ones() {
        let mut buf = String::new();
        let mut other = String::new();
        for id in [
            1,
            2,
            9,
            10,
            999,
            1_000,
            WORLD_ROWS,
            WORLD_ROWS + 1,
            0,
            -1,
            i32::MIN,
        ] {
            assert_eq!(
                world_key_of(&mut buf, id),
                world_key(&mut other, id),
                "{id}"
            );
        }
        assert_eq!(world_key_of(&mut buf, 42), "world:42");
    }

    #[test]
    fn hand_written_json_is_serde_json_byte_for_byte() {
        let worlds = [
            World {
                id: 1,
                random_number: 2,
            },
            World {
                id: 10_000,
                random_number: 0,
            },
            World {
                id: i32::MAX,
                random_number: i32::MIN,
            },
            World {
                id: -7,
                random_number: 9_999,
            },
        ];
        for w in &worlds {
            let mut out = Vec::new();
            w.write_json(&mut out);
            assert_eq!(out, serde_json::to_vec(w).expect("serde"), "{w:?}");
            assert_eq!(
                w.response().body().as_ref(),
                serde_json::to_vec(w).expect("serde").as_slice()
            );
        }
        for n in 0..=worlds.len() {
            let resp = World::array_response(&worlds[..n]);
            assert_eq!(
                resp.body().as_ref(),
                serde_json::to_vec(&worlds[..n]).expect("serde").as_slice()
            );
        }
    }
}
