//! `GET /orders` and `GET /orders/{id}`: the signed-in user's orders.

use askama::Template;
use pinion_orm::query::raw;
use pinion_orm::Model;
use pinion_server::extract::Path;
use pinion_server::{Ctx, Request, Response};
use pinion_web::auth::SignedIn;
use pinion_web::session::Session;
use pinion_web::{Error, Result};

use super::PageParts;
use crate::jobs::demo::ConfirmOrder;
use crate::layout::Layout;
use crate::models::{Order, OrderLine, Product};
use crate::state::db_routing;
use crate::AppState;

fn money(cents: i32) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// An order as the list shows it.
struct Listed {
    id: i64,
    total_text: String,
}

#[derive(Template)]
#[template(path = "orders/list.html")]
struct ListPage<'a> {
    layout: Layout<'a>,
    orders: Vec<Listed>,
    /// The user's live channel (`orders-{user}`).
    channel: String,
}

#[derive(Template)]
#[template(path = "orders/_row.html")]
struct Row {
    o: Listed,
}

/// The list's row of order `id` of `total` cents: what a new order is announced with.
///
/// # Errors
/// The template's (it cannot fail on these fields).
pub fn row_html(id: i64, total: i32) -> Result<String> {
    let row = Row {
        o: Listed {
            id,
            total_text: money(total),
        },
    };
    Ok(row.render()?)
}

/// `GET /orders`: the user's orders, newest first.
pub async fn list(
    ctx: &Ctx<AppState>,
    session: Session,
    SignedIn(user): SignedIn,
    req: Request,
) -> Result<Response> {
    let routing = db_routing(ctx, &req)?;
    let orders = Order::objects()
        .filter(Order::USER_ID.eq(user))
        .order_by(Order::ID.desc())
        .limit(100)
        .all(&routing)
        .await?
        .into_iter()
        .map(|o| Listed {
            id: o.id,
            total_text: money(o.total),
        })
        .collect();
    let parts = PageParts::of(&session, false)?;
    let page = ListPage {
        layout: parts.layout(ctx),
        orders,
        channel: super::events::orders_channel(user),
    };
    Ok(Response::html(page.render()?))
}

/// A line as the order page shows it.
struct Line {
    product_id: i32,
    name: String,
    quantity: i32,
    price_text: String,
}

#[derive(Template)]
#[template(path = "orders/detail.html")]
struct DetailPage<'a> {
    layout: Layout<'a>,
    id: i64,
    lines: Vec<Line>,
    total_text: String,
    /// The order's live channel (`order-{id}`), where a job reports its progress.
    channel: String,
    /// Where its confirmation stands when the page is rendered (our own markup).
    progress: String,
}

/// `GET /orders/{id}`: one of the user's orders (another user's is a 404, not a 403: its
/// existence is nobody else's business).
pub async fn show(
    ctx: &Ctx<AppState>,
    session: Session,
    SignedIn(user): SignedIn,
    Path(id): Path<i64>,
    req: Request,
) -> Result<Response> {
    let routing = db_routing(ctx, &req)?;
    let order = Order::objects()
        .filter(Order::ID.eq(id).and(Order::USER_ID.eq(user)))
        .first(&routing)
        .await?
        .ok_or_else(Error::not_found)?;
    let lines: Vec<(i32, String, i32, i32)> = raw(
        "SELECT l.product_id, p.name, l.quantity, l.price_cents FROM order_lines l \
         JOIN products p ON p.id = l.product_id WHERE l.order_id = $1 ORDER BY l.id",
    )
    .bind(order.id)
    .reads_model::<OrderLine>()
    .reads_model::<Product>()
    .all(&routing)
    .await?;
    let parts = PageParts::of(&session, false)?;
    let page = DetailPage {
        layout: parts.layout(ctx),
        id: order.id,
        lines: lines
            .into_iter()
            .map(|(product_id, name, quantity, price)| Line {
                product_id,
                name,
                quantity,
                price_text: money(price),
            })
            .collect(),
        total_text: money(order.total),
        channel: super::events::order_channel(order.id),
        progress: match order.confirmed_at {
            Some(_) => ConfirmOrder::fragment(order.id, 100, "confirmed"),
            None => ConfirmOrder::fragment(order.id, 0, "waiting for confirmation"),
        },
    };
    Ok(Response::html(page.render()?))
}
