//! `GET /events/{channel}`: the demo's live pages, an event stream per channel (pinion-events)
//! for the htmx SSE extension, open to the channels' owners only:
//!
//! - `orders-{user}`: the user's orders list; an order placed through any instance arrives as
//!   event `order`, its row's HTML ([`publish_order`]);
//! - `order-{id}`: one order's page; a job working on it publishes events `progress`, an HTML
//!   fragment the page swaps in.
//!
//! A channel of another user's, or of no known kind, is refused (403).

use std::rc::Rc;

use futures_util::future::LocalBoxFuture;
use pinion_events::Authorize;
use pinion_orm::{ConnectionManager, Executor, Model};
use pinion_server::extract::Path;
use pinion_server::{Ctx, IntoResponse, Request, Response};
use pinion_web::session::Session;

use crate::models::Order;
use crate::state::db_routing;
use crate::AppState;

/// The channel of `user`'s orders list.
pub fn orders_channel(user: i64) -> String {
    format!("orders-{user}")
}

/// The channel of order `id`'s page: what a job reports its progress on.
pub fn order_channel(id: i64) -> String {
    format!("order-{id}")
}

/// The name of the events the orders list swaps in (a new row).
pub const ORDER_EVENT: &str = "order";

/// The name of the events the order page swaps in (a job's progress, as HTML).
pub const PROGRESS_EVENT: &str = "progress";

/// The signed-in user of `req` (its session, which the session layer put there).
fn user(req: &Request) -> Option<i64> {
    req.extensions().get::<Session>().and_then(Session::user_id)
}

/// `orders-{user}`: only that user.
fn own_orders(req: &Request, channel: &str) -> bool {
    user(req).is_some_and(|u| channel == orders_channel(u))
}

/// `order-{id}`: only the user the order belongs to (one primary-key read).
struct OwnOrder {
    db: Rc<ConnectionManager>,
}

impl Authorize for OwnOrder {
    fn allows<'a>(&'a self, req: &'a Request, channel: &'a str) -> LocalBoxFuture<'a, bool> {
        Box::pin(async move {
            let (Some(user), Some(id)) = (
                user(req),
                channel
                    .strip_prefix("order-")
                    .and_then(|id| id.parse::<i64>().ok()),
            ) else {
                return false;
            };
            Order::objects()
                .filter(Order::ID.eq(id).and(Order::USER_ID.eq(user)))
                .exists(&*self.db)
                .await
                .unwrap_or(false)
        })
    }
}

/// Registers the demo's channel rules on a worker's live pages.
pub fn channels(live: &pinion_events::Live, db: &Rc<ConnectionManager>) {
    live.authorize("orders-", own_orders);
    live.authorize("order-", OwnOrder { db: Rc::clone(db) });
}

/// Tells `user`'s open orders lists, on every instance, about a new order (`row`: its row's
/// HTML); in `db`'s transaction, if it is one, so that only a committed order is announced.
///
/// # Errors
/// The database's.
pub async fn publish_order(
    db: &impl Executor,
    user: i64,
    row: &str,
) -> Result<i64, pinion_orm::Error> {
    pinion_events::publish(db, &orders_channel(user), ORDER_EVENT, row).await
}

/// `GET /events/{channel}`: the channel's event stream, if its rule lets this client in.
pub async fn stream(ctx: &Ctx<AppState>, Path(channel): Path<String>, req: Request) -> Response {
    let live = match ctx.state().events() {
        Ok(live) => live,
        Err(e) => return e.into_response(),
    };
    let routing = match db_routing(ctx, &req) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    live.sse(&req, &routing, &channel).await.into_response()
}
