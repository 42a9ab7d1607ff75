//! # pinion-web
//!
//! What a pinion application needs from both [`pinion_server`] and [`pinion_orm`], kept above
//! them so that `server` never depends on `orm` and every application gets it by adding one
//! dependency.
//!
//! - [`Error`] and [`Result`], so that `?` works on database, template, I/O and application
//!   errors in a handler, and each becomes the right answer in one place;
//! - [`session`]: server-side sessions every instance shares, with their CSRF protection
//!   ([`csrf`]);
//! - [`htmx`]: a page or its fragment from one handler, redirects htmx follows;
//! - [`auth`]: routes for signed-in users only;
//! - [`response_cache`]: whole public answers kept per route, with ETags and 304s;
//! - [`password`]: argon2id hashes for accounts, computed off the worker thread.
//!
//! # Errors in one place
//! A handler returns [`Result<T>`](Result); `?` on any error converts it, and the conversion
//! classifies it:
//!
//! | error | status | the client sees |
//! | --- | --- | --- |
//! | database unreachable, reconnecting, connection lost, pool exhausted | 503 | `Retry-After` (seconds) and a generic detail |
//! | a statement outlived `query_timeout` | 504 | a generic detail |
//! | `query_one` found no row | 404 | `not found` |
//! | unique violation (SQLSTATE 23505) | 409 | a generic detail |
//! | any other database error, and any other error type | 500 | a generic detail |
//! | a [`pinion_server::Error`] or [`Rejection`](pinion_server::extract::Rejection) | its own | its own detail |
//!
//! The error itself — SQL, the database's message, a path — is logged once when the answer
//! is rendered, with the request id (`error`, `request_id` fields; ERROR for a 500, WARN for
//! other 5xx, DEBUG for 4xx), and never reaches the client. The answer is an RFC 9457
//! `application/problem+json` document, or a small HTML page for a client that accepts
//! `text/html` and not JSON.
//!
//! ```
//! use pinion_orm::ConnectionManager;
//! use pinion_server::extract::Path;
//! use pinion_server::{Ctx, Response, Router, StatusCode};
//! use pinion_web::{Error, Result};
//!
//! struct App {
//!     db: std::rc::Rc<ConnectionManager>,
//! }
//!
//! // No row: 404. Database down: 503 with Retry-After. Too slow: 504. Anything else: 500.
//! async fn user(ctx: &Ctx<App>, Path(id): Path<i32>) -> Result<Response> {
//!     let db = ctx.state().db.reader();
//!     let row = db.query_one("SELECT name FROM users WHERE id = $1", &[&id]).await?;
//!     let name: String = row.try_get(0)?;
//!     Ok(Response::text(name))
//! }
//!
//! // A duplicate name: 409.
//! async fn rename(ctx: &Ctx<App>, Path((id, name)): Path<(i32, String)>) -> Result<StatusCode> {
//!     if name.is_empty() {
//!         return Err(Error::bad_request("a name cannot be empty"));
//!     }
//!     let db = ctx.state().db.primary();
//!     let changed = db
//!         .execute("UPDATE users SET name = $2 WHERE id = $1", &[&id, &name])
//!         .await?;
//!     if changed == 0 {
//!         return Err(Error::not_found());
//!     }
//!     Ok(StatusCode::NO_CONTENT)
//! }
//!
//! // An application's own error maps to statuses in one `From` impl; `?` does the rest.
//! enum Shop {
//!     OutOfStock,
//!     Closed,
//! }
//!
//! impl From<Shop> for Error {
//!     fn from(e: Shop) -> Error {
//!         match e {
//!             Shop::OutOfStock => Error::new(StatusCode::CONFLICT, "out of stock"),
//!             Shop::Closed => Error::new(StatusCode::FORBIDDEN, "the shop is closed"),
//!         }
//!     }
//! }
//!
//! fn reserve(stock: u32, open: bool) -> Result<u32, Shop> {
//!     if !open {
//!         return Err(Shop::Closed);
//!     }
//!     stock.checked_sub(1).ok_or(Shop::OutOfStock)
//! }
//!
//! async fn buy(Path(stock): Path<u32>) -> Result<String> {
//!     Ok(format!("{} left", reserve(stock, true)?))
//! }
//!
//! let _router: Router<App> = Router::new()
//!     .get("/users/{id}", user)
//!     .post("/users/{id}/name/{name}", rename)
//!     .post("/buy/{stock}", buy);
//! ```
//!
//! # Models in handlers
//! A model is a struct with `#[derive(Model)]`; its query sets take the connection manager
//! (or a request's `Routing`, or a transaction) and `?` maps their errors as above: no such
//! row is a 404, a duplicate key a 409, the database down a 503.
//!
//! ```no_run
//! use std::rc::Rc;
//!
//! use pinion_orm::{ConnectionManager, Model};
//! use pinion_server::extract::{Form, Path, Query};
//! use pinion_server::{Ctx, Response, Router, StatusCode};
//! use pinion_web::Result;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Clone, Serialize, Model)]
//! #[model(table = "products", cache_ttl = "30s")]
//! struct Product {
//!     #[model(primary_key, auto)]
//!     id: i64,
//!     name: String,
//!     price_cents: i32,
//! }
//!
//! #[derive(Debug, Clone, Model)]
//! #[model(table = "order_lines")]
//! struct Line {
//!     #[model(primary_key, auto)]
//!     id: i64,
//!     #[model(foreign_key = Product)]
//!     product_id: i64,
//!     quantity: i32,
//! }
//!
//! struct App {
//!     db: Rc<ConnectionManager>,
//! }
//!
//! #[derive(Deserialize)]
//! struct Search {
//!     q: String,
//! }
//!
//! // GET /products?q=tea: read from a replica; `q` is a bound parameter, `%` in it is literal.
//! async fn search(ctx: &Ctx<App>, Query(s): Query<Search>) -> Result<Response> {
//!     let products = Product::objects()
//!         .filter(Product::NAME.icontains(&s.q) & Product::PRICE_CENTS.lt(1_000))
//!         .order_by(Product::NAME.asc())
//!         .limit(20)
//!         .all(&ctx.state().db)
//!         .await?;
//!     Ok(Response::json(&products)?)
//! }
//!
//! // GET /products/{id}: no such product, 404.
//! async fn show(ctx: &Ctx<App>, Path(id): Path<i64>) -> Result<Response> {
//!     let product = Product::objects()
//!         .filter(Product::ID.eq(id))
//!         .get(&ctx.state().db)
//!         .await?;
//!     Ok(Response::json(&product)?)
//! }
//!
//! #[derive(Deserialize)]
//! struct NewLine {
//!     product: i64,
//!     quantity: i32,
//! }
//!
//! // POST /lines: reads and writes in one transaction on the primary.
//! async fn add_line(ctx: &Ctx<App>, Form(new): Form<NewLine>) -> Result<StatusCode> {
//!     ctx.state()
//!         .db
//!         .transaction(async |tx| {
//!             let product = Product::objects()
//!                 .filter(Product::ID.eq(new.product))
//!                 .get(tx)
//!                 .await?;
//!             let mut line = Line {
//!                 id: 0,
//!                 product_id: product.id,
//!                 quantity: new.quantity,
//!             };
//!             line.save(tx).await?;
//!             tx.on_commit(move || tracing::info!(product = product.id, "line added"));
//!             Ok::<_, pinion_web::Error>(())
//!         })
//!         .await?;
//!     Ok(StatusCode::CREATED)
//! }
//!
//! let _router: Router<App> = Router::new()
//!     .get("/products", search)
//!     .get("/products/{id}", show)
//!     .post("/lines", add_line);
//! ```
//!
//! # Layout
//! - [`Error`], [`Result`]: the classification and its constructors (`error.rs`);
//! - [`password`]: argon2id hashes (`password.rs`).

pub mod auth;
pub mod csrf;
mod error;
pub mod htmx;
pub mod password;
pub mod response_cache;
pub mod session;

pub use error::{Error, Result};
