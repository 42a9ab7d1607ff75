//! axum serving every TechEmpower shape pinion serves, the peer that pinion's database figures are
//! compared against (DESIGN.md §4).
//!
//! The shape of the TechEmpower axum entry: one current-thread tokio runtime per worker thread,
//! each with its own `SO_REUSEPORT` listener (built with socket2) and its own tokio-postgres
//! connection, on which the queries of all that thread's requests are pipelined; statements
//! prepared once per connection; a `quick_cache` shared by all threads for the cached queries,
//! loaded with the whole `world` table at start-up; mimalloc as the global allocator. `/fortunes`
//! renders a compiled askama template, the same engine and markup as pinion's, so both servers
//! answer the same bytes for the same rows.
//!
//! Connections are served by hyper's HTTP/1 connection builder with `pipeline_flush` on (as the
//! entry's `serve_hyper` does), the axum `Router` wrapped by hyper-util's `TowerToHyperService`.
//! hyper writes `Date` (cached, once a second) and `Content-Length`; a tower-http layer adds
//! `Server: axum`.
//!
//! ```text
//! axum-peer [--bind IP] [--port PORT] [--workers N]
//! ```
//!
//! Each flag falls back to an environment variable (`PEER_BIND`, `PEER_PORT`, `PEER_WORKERS`),
//! then to its default: `127.0.0.1`, `8080`, one worker per available core. The database is
//! `DATABASE_URL`; without it only `/plaintext` and `/json` answer, the others 503. It must hold
//! the `world` and `fortune` tables (pinion's migrations create them).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::header::{CONTENT_TYPE, SERVER};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::future::try_join_all;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use quick_cache::sync::Cache;
use serde::Serialize;
use tokio_postgres::{Client, NoTls, Statement};
use tower_http::set_header::SetResponseHeaderLayer;

/// Rows in the `world` table: ids are 1..=ROWS.
const ROWS: i32 = 10_000;
/// The most rows one `/queries`, `/updates` or `/cached-queries` request may ask for.
const MAX_QUERIES: usize = 500;

const SELECT_WORLD: &str = "SELECT id, randomnumber FROM world WHERE id = $1";
const SELECT_ALL: &str = "SELECT id, randomnumber FROM world";
const SELECT_FORTUNES: &str = "SELECT id, message FROM fortune";
/// The fortune the fortunes test adds to the table's at request time.
const EXTRA_FORTUNE: &str = "Additional fortune added at request time.";
/// One statement for all the rows of an `/updates` request, ids sorted (no deadlocks between
/// concurrent requests).
const UPDATE_WORLDS: &str = "UPDATE world SET randomnumber = v.r \
     FROM (SELECT * FROM unnest($1::int[], $2::int[]) AS t(id, r)) AS v \
     WHERE world.id = v.id";

/// The json test's message, serialized anew for every request.
#[derive(Serialize)]
struct Message {
    message: &'static str,
}

/// One row of `world`, as the database tests answer it.
#[derive(Serialize, Clone, Copy)]
struct World {
    id: i32,
    #[serde(rename = "randomNumber")]
    random_number: i32,
}

/// One row of `fortune`, its message borrowed from the row it was read from.
struct Fortune<'a> {
    id: i32,
    message: &'a str,
}

/// The fortunes page: the TechEmpower markup, auto-escaped by askama (`"&'<>` as `&#34;` `&#38;`
/// `&#39;` `&#60;` `&#62;`). The same template as pinion's `templates/fortunes.html`.
#[derive(Template)]
#[template(
    source = "<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table>\
              <tr><th>id</th><th>message</th></tr>\
              {% for f in fortunes %}<tr><td>{{ f.id }}</td><td>{{ f.message }}</td></tr>{% endfor %}\
              </table></body></html>",
    ext = "html"
)]
struct FortunesPage<'a> {
    fortunes: &'a [Fortune<'a>],
}

/// A random id (and a random new number for `/updates`): 1..=10 000.
fn random_id() -> i32 {
    fastrand::i32(1..=ROWS)
}

/// One runtime's connection to PostgreSQL with its prepared statements. Concurrent queries on
/// the one `Client` are pipelined by tokio-postgres.
struct Db {
    client: Client,
    world: Statement,
    update: Statement,
    fortune: Statement,
}

impl Db {
    async fn connect(url: &str) -> Result<Db, tokio_postgres::Error> {
        let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                eprintln!("axum-peer: database connection lost: {}", describe(&e));
            }
        });
        let world = client.prepare(SELECT_WORLD).await?;
        let update = client.prepare(UPDATE_WORLDS).await?;
        let fortune = client.prepare(SELECT_FORTUNES).await?;
        Ok(Db {
            client,
            world,
            update,
            fortune,
        })
    }

    async fn world(&self, id: i32) -> Result<World, tokio_postgres::Error> {
        let row = self.client.query_one(&self.world, &[&id]).await?;
        Ok(World {
            id: row.get(0),
            random_number: row.get(1),
        })
    }

    /// `n` random rows, all queries issued at once.
    async fn worlds(&self, n: usize) -> Result<Vec<World>, tokio_postgres::Error> {
        try_join_all((0..n).map(|_| self.world(random_id()))).await
    }
}

/// A tokio-postgres error with its cause: its own `Display` is only "db error" or "error
/// connecting to server".
fn describe(e: &tokio_postgres::Error) -> String {
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// What every handler of one runtime shares.
#[derive(Clone)]
struct AppState {
    /// This runtime's connection; `None` without `DATABASE_URL`.
    db: Option<Arc<Db>>,
    /// All threads' cache of `world`, keyed by id.
    cache: Arc<Cache<i32, World>>,
}

impl AppState {
    fn db(&self) -> Result<&Db, AppError> {
        self.db.as_deref().ok_or(AppError::NoDatabase)
    }
}

enum AppError {
    NoDatabase,
    Db(tokio_postgres::Error),
    Render(askama::Error),
}

impl From<tokio_postgres::Error> for AppError {
    fn from(e: tokio_postgres::Error) -> Self {
        AppError::Db(e)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            AppError::NoDatabase => {
                (StatusCode::SERVICE_UNAVAILABLE, "no DATABASE_URL").into_response()
            }
            AppError::Db(e) => (StatusCode::INTERNAL_SERVER_ERROR, describe(&e)).into_response(),
            AppError::Render(e) => {
                (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
            }
        }
    }
}

/// The count parameter `name` of a query string, as the TechEmpower rules read it: missing or not
/// an integer → 1, then clamped to 1..=500.
fn count(query: Option<&str>, name: &str) -> usize {
    let value = query.and_then(|q| {
        q.split('&')
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
    });
    match value.and_then(|v| v.parse::<i64>().ok()) {
        Some(n) => n.clamp(1, MAX_QUERIES as i64) as usize,
        None => 1,
    }
}

async fn plaintext() -> impl IntoResponse {
    (
        [(CONTENT_TYPE, HeaderValue::from_static("text/plain"))],
        "Hello, World!",
    )
}

async fn json() -> Json<Message> {
    Json(Message {
        message: "Hello, World!",
    })
}

async fn db(State(state): State<AppState>) -> Result<Json<World>, AppError> {
    Ok(Json(state.db()?.world(random_id()).await?))
}

async fn queries(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<World>>, AppError> {
    let n = count(query.as_deref(), "q");
    Ok(Json(state.db()?.worlds(n).await?))
}

async fn updates(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<World>>, AppError> {
    let db = state.db()?;
    let n = count(query.as_deref(), "q");
    let mut worlds = db.worlds(n).await?;
    for world in &mut worlds {
        world.random_number = random_id();
    }

    let mut pairs: Vec<(i32, i32)> = worlds.iter().map(|w| (w.id, w.random_number)).collect();
    pairs.sort_unstable_by_key(|p| p.0);
    pairs.dedup_by_key(|p| p.0);
    if pairs.len() != worlds.len() {
        // An id drawn twice is written once: every row with it answers the value written.
        for world in &mut worlds {
            let i = pairs
                .binary_search_by_key(&world.id, |p| p.0)
                .expect("every id is in pairs");
            world.random_number = pairs[i].1;
        }
    }
    let (ids, numbers): (Vec<i32>, Vec<i32>) = pairs.into_iter().unzip();
    db.client.execute(&db.update, &[&ids, &numbers]).await?;
    Ok(Json(worlds))
}

async fn cached_queries(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<World>>, AppError> {
    let n = count(query.as_deref(), "count");
    let mut worlds = Vec::with_capacity(n);
    for _ in 0..n {
        let id = random_id();
        let world = match state.cache.get(&id) {
            Some(world) => world,
            None => {
                // Read-through: everything was loaded at start-up, so only after an eviction.
                let world = state.db()?.world(id).await?;
                state.cache.insert(id, world);
                world
            }
        };
        worlds.push(world);
    }
    Ok(Json(worlds))
}

/// All rows of `fortune` and [`EXTRA_FORTUNE`] (id 0), sorted by message, as HTML; axum's `Html`
/// sets `text/html; charset=utf-8`.
async fn fortunes(State(state): State<AppState>) -> Result<Html<String>, AppError> {
    let db = state.db()?;
    let rows = db.client.query(&db.fortune, &[]).await?;
    let mut fortunes = Vec::with_capacity(rows.len() + 1);
    fortunes.push(Fortune {
        id: 0,
        message: EXTRA_FORTUNE,
    });
    for row in &rows {
        fortunes.push(Fortune {
            id: row.get(0),
            message: row.get(1),
        });
    }
    fortunes.sort_unstable_by_key(|f| f.message);
    let page = FortunesPage {
        fortunes: &fortunes,
    };
    Ok(Html(page.render().map_err(AppError::Render)?))
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/plaintext", get(plaintext))
        .route("/json", get(json))
        .route("/db", get(db))
        .route("/queries", get(queries))
        .route("/updates", get(updates))
        .route("/cached-queries", get(cached_queries))
        .route("/fortunes", get(fortunes))
        .layer(SetResponseHeaderLayer::overriding(
            SERVER,
            HeaderValue::from_static("axum"),
        ))
        .with_state(state)
}

/// A listener of its own for one worker: `SO_REUSEPORT` lets every worker bind the same port,
/// and the kernel spreads the connections over them.
fn reuseport_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// One worker: its own connection to the database, then its accept loop, forever.
async fn serve(
    listener: std::net::TcpListener,
    url: Option<String>,
    cache: Arc<Cache<i32, World>>,
) -> Result<(), String> {
    let db = match url {
        Some(url) => Some(Arc::new(Db::connect(&url).await.map_err(|e| {
            format!("cannot connect to the database: {}", describe(&e))
        })?)),
        None => None,
    };
    let app = router(AppState { db, cache });
    let listener =
        tokio::net::TcpListener::from_std(listener).map_err(|e| format!("listener: {e}"))?;
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                eprintln!("axum-peer: accept: {e}");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .pipeline_flush(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Reads the whole `world` table into a new cache, on a throw-away runtime.
fn load_cache(url: &str) -> Result<Cache<i32, World>, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, NoTls)
            .await
            .map_err(|e| format!("cannot connect to the database: {}", describe(&e)))?;
        let connection = tokio::spawn(connection);
        let rows = client
            .query(SELECT_ALL, &[])
            .await
            .map_err(|e| format!("cannot read the world table: {}", describe(&e)))?;
        // Twice the rows: quick_cache's capacity is approximate, per shard.
        let cache = Cache::new(2 * rows.len().max(ROWS as usize));
        for row in &rows {
            let world = World {
                id: row.get(0),
                random_number: row.get(1),
            };
            cache.insert(world.id, world);
        }
        drop(client);
        let _ = connection.await;
        Ok(cache)
    })
}

/// What the command line and environment asked for.
struct Args {
    bind: IpAddr,
    port: u16,
    workers: usize,
}

impl Args {
    /// Reads `--bind`, `--port` and `--workers`, each falling back to its `PEER_*` variable.
    fn parse() -> Result<Args, String> {
        let mut bind = std::env::var("PEER_BIND").unwrap_or_else(|_| "127.0.0.1".to_owned());
        let mut port = std::env::var("PEER_PORT").unwrap_or_else(|_| "8080".to_owned());
        let mut workers = std::env::var("PEER_WORKERS").ok();

        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let slot = match flag.as_str() {
                "--bind" => &mut bind,
                "--port" => &mut port,
                "--workers" => workers.insert(String::new()),
                "-h" | "--help" => {
                    return Err("usage: axum-peer [--bind IP] [--port PORT] [--workers N]".into())
                }
                other => return Err(format!("unknown argument `{other}` (try --help)")),
            };
            *slot = args
                .next()
                .ok_or_else(|| format!("`{flag}` needs a value"))?;
        }

        let workers = match workers {
            Some(n) => match n.parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => return Err(format!("workers must be a positive integer, not `{n}`")),
            },
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        Ok(Args {
            bind: bind
                .parse()
                .map_err(|e| format!("bad bind address `{bind}`: {e}"))?,
            port: port
                .parse()
                .map_err(|e| format!("bad port `{port}`: {e}"))?,
            workers,
        })
    }
}

fn main() -> ExitCode {
    let args = match Args::parse() {
        Ok(args) => args,
        Err(msg) => {
            eprintln!("axum-peer: {msg}");
            return ExitCode::from(2);
        }
    };
    let url = std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty());
    let cache = match url.as_deref().map(load_cache) {
        Some(Ok(cache)) => cache,
        Some(Err(msg)) => {
            eprintln!("axum-peer: {msg}");
            return ExitCode::FAILURE;
        }
        None => {
            eprintln!("axum-peer: no DATABASE_URL: only /plaintext and /json will answer");
            Cache::new(1)
        }
    };
    let cache = Arc::new(cache);

    // Every listener is bound before any worker starts, so a busy port fails here, at once.
    let addr = SocketAddr::new(args.bind, args.port);
    let mut listeners = Vec::with_capacity(args.workers);
    for _ in 0..args.workers {
        match reuseport_listener(addr) {
            Ok(listener) => listeners.push(listener),
            Err(e) => {
                eprintln!("axum-peer: cannot listen on {addr}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }

    for (i, listener) in listeners.into_iter().enumerate() {
        let url = url.clone();
        let cache = Arc::clone(&cache);
        std::thread::Builder::new()
            .name(format!("axum-peer-{i}"))
            .spawn(move || {
                let result = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("runtime: {e}"))
                    .and_then(|runtime| runtime.block_on(serve(listener, url, cache)));
                // A worker only returns on an error: the whole server stops with it.
                if let Err(msg) = result {
                    eprintln!("axum-peer: {msg}");
                }
                std::process::exit(1);
            })
            .expect("spawn a worker thread");
    }
    eprintln!(
        "axum-peer: listening on {addr} with {} worker(s), database {}",
        args.workers,
        if url.is_some() { "connected" } else { "none" }
    );
    // The workers serve forever; the main thread waits for the process to be killed.
    loop {
        std::thread::park();
    }
}
