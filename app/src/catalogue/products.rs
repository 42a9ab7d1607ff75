//! The catalogue: `GET /` (list, search, pages), `GET /products/{id}`, the create and edit
//! forms, the inline edit and delete of a row through htmx, and `POST /products/{id}/order`.

use askama::Template;
use pinion_jobs::{Enqueue, OnConflict};
use pinion_orm::query::raw;
use pinion_orm::Model;
use pinion_server::cookie::CookieJar;
use pinion_server::extract::{Form, Path, Query};
use pinion_server::{header, Ctx, HeaderValue, Html, IntoResponse, Request, Response, StatusCode};
use pinion_web::auth::SignedIn;
use pinion_web::htmx::{self, Htmx};
use pinion_web::session::Session;
use pinion_web::{Error, Result};
use serde::Deserialize;

use super::forms::{ProductErrors, ProductForm};
use super::{sticky, PageParts};
use crate::jobs::demo::ConfirmOrder;
use crate::layout::Layout;
use crate::models::{Order, OrderLine, Product};
use crate::state::db_routing;
use crate::AppState;

/// How long a shared cache (nginx) may keep a page of the list for visitors without a
/// session; a write shows there within this.
pub const PUBLIC_FRAGMENT: &str = "public, max-age=10";

/// Products per page of the list.
pub const PER_PAGE: i64 = 10;

/// A page of the list, as `catalogue/_results.html` shows it.
pub struct Results {
    products: Vec<Product>,
    /// The search as typed.
    q: String,
    /// The search, percent-encoded for the pager's links.
    q_param: String,
    page: i64,
    pages: i64,
    signed_in: bool,
}

#[derive(Template)]
#[template(path = "catalogue/list.html")]
struct ListPage<'a> {
    layout: Layout<'a>,
    r: Results,
}

#[derive(Template)]
#[template(path = "catalogue/_results.html")]
struct ResultsFragment {
    r: Results,
}

/// The list's query string: `?q=brass&page=2`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ListQuery {
    q: String,
    page: Option<i64>,
}

fn encode_query(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `GET /`: the catalogue, searched by name (`q`, case-insensitive) and paged; an htmx
/// request (the live search, the pager) gets the results alone.
pub async fn list(
    ctx: &Ctx<AppState>,
    htmx: Htmx,
    session: Session,
    Query(query): Query<ListQuery>,
    req: Request,
) -> Result<Response> {
    let routing = db_routing(ctx, &req)?;
    let q = query.q.trim().to_string();
    let matching = || {
        let all = Product::objects();
        if q.is_empty() {
            all
        } else {
            all.filter(Product::NAME.icontains(&q))
        }
    };
    let total = matching().count(&routing).await?;
    let pages = ((total + PER_PAGE - 1) / PER_PAGE).max(1);
    let page = query.page.unwrap_or(1).clamp(1, pages);
    let products = matching()
        .order_by(Product::NAME.asc())
        .order_by(Product::ID.asc())
        .limit(PER_PAGE)
        .offset((page - 1) * PER_PAGE)
        .all(&routing)
        .await?;
    let results = Results {
        products,
        q_param: encode_query(&q),
        q,
        page,
        pages,
        signed_in: session.user_id().is_some(),
    };
    if htmx.wants_fragment() {
        let fragment = ResultsFragment { r: results };
        let resp = htmx::vary(Response::html(fragment.render()?));
        // The same for every visitor without a session: nginx may keep it a little.
        return Ok(if session.exists() {
            resp
        } else {
            resp.header(
                header::CACHE_CONTROL,
                HeaderValue::from_static(PUBLIC_FRAGMENT),
            )
        });
    }
    let parts = PageParts::of(&session, false)?;
    let page = ListPage {
        layout: parts.layout(ctx),
        r: results,
    };
    Ok(htmx::vary(Response::html(page.render()?)))
}

#[derive(Template)]
#[template(path = "catalogue/detail.html")]
struct DetailPage<'a> {
    layout: Layout<'a>,
    p: Product,
    signed_in: bool,
    quantity: String,
    quantity_error: String,
}

async fn product(ctx: &Ctx<AppState>, req: &Request, id: i32) -> Result<Product> {
    let routing = db_routing(ctx, req)?;
    Product::objects()
        .filter(Product::ID.eq(id))
        .first(&routing)
        .await?
        .ok_or_else(Error::not_found)
}

/// `GET /products/{id}`: one product, with the order form for a signed-in user.
pub async fn show(
    ctx: &Ctx<AppState>,
    session: Session,
    Path(id): Path<i32>,
    req: Request,
) -> Result<Response> {
    let p = product(ctx, &req, id).await?;
    let parts = PageParts::of(&session, false)?;
    let page = DetailPage {
        layout: parts.layout(ctx),
        signed_in: session.user_id().is_some(),
        p,
        quantity: "1".into(),
        quantity_error: String::new(),
    };
    Ok(Response::html(page.render()?))
}

#[derive(Template)]
#[template(path = "catalogue/form.html")]
struct FormPage<'a> {
    layout: Layout<'a>,
    heading: &'a str,
    action: String,
    form: ProductForm,
    errors: ProductErrors,
}

fn form_page(
    ctx: &Ctx<AppState>,
    parts: &PageParts,
    id: Option<i32>,
    form: ProductForm,
    errors: ProductErrors,
) -> Result<Response> {
    let page = FormPage {
        layout: parts.layout(ctx),
        heading: if id.is_some() {
            "Edit the product"
        } else {
            "New product"
        },
        action: id.map_or("/products".into(), |id| format!("/products/{id}")),
        form,
        errors,
    };
    let status = if page.errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok(Response::html(page.render()?).status(status))
}

fn form_of(p: &Product) -> ProductForm {
    ProductForm {
        name: p.name.clone(),
        description: p.description.clone(),
        price: p.price_text(),
        stock: p.stock.to_string(),
    }
}

/// `GET /products/new`: the empty form.
pub async fn new(ctx: &Ctx<AppState>, session: Session) -> Result<Response> {
    let parts = PageParts::of(&session, true)?;
    form_page(
        ctx,
        &parts,
        None,
        ProductForm::default(),
        ProductErrors::default(),
    )
}

/// `POST /products`: creates the product, or shows the form again with its errors.
pub async fn create(
    ctx: &Ctx<AppState>,
    session: Session,
    SignedIn(user): SignedIn,
    jar: CookieJar,
    Form(form): Form<ProductForm>,
    req: Request,
) -> Result<Response> {
    let valid = match form.validate() {
        Ok(valid) => valid,
        Err(errors) => {
            let parts = PageParts::of(&session, true)?;
            return form_page(ctx, &parts, None, form, errors);
        }
    };
    let routing = db_routing(ctx, &req)?;
    let mut p = Product {
        id: 0,
        name: valid.name,
        description: valid.description,
        price: valid.price,
        stock: valid.stock,
        created_by: Some(user),
    };
    p.save(&routing).await?;
    session.flash("success", format!("{} added.", p.name))?;
    let resp = Response::redirect(StatusCode::SEE_OTHER, &format!("/products/{}", p.id))?;
    Ok((sticky(ctx, jar), resp).into_response())
}

#[derive(Template)]
#[template(path = "catalogue/_row.html")]
struct Row {
    p: Product,
    r: RowFlags,
}

/// What a row needs of the list around it.
struct RowFlags {
    signed_in: bool,
}

#[derive(Template)]
#[template(path = "catalogue/_row_edit.html")]
struct RowEdit {
    p: Product,
    form: ProductForm,
    errors: ProductErrors,
}

/// `GET /products/{id}/edit`: the form as a page, or for htmx the row as an inline form.
pub async fn edit(
    ctx: &Ctx<AppState>,
    htmx: Htmx,
    session: Session,
    Path(id): Path<i32>,
    req: Request,
) -> Result<Response> {
    let p = product(ctx, &req, id).await?;
    let form = form_of(&p);
    if htmx.wants_fragment() {
        let row = RowEdit {
            p,
            form,
            errors: ProductErrors::default(),
        };
        return Ok(htmx::vary(Response::html(row.render()?)));
    }
    let parts = PageParts::of(&session, true)?;
    Ok(htmx::vary(form_page(
        ctx,
        &parts,
        Some(id),
        form,
        ProductErrors::default(),
    )?))
}

/// `GET /products/{id}/row`: the row as the list shows it (an inline edit cancelled).
pub async fn row(ctx: &Ctx<AppState>, Path(id): Path<i32>, req: Request) -> Result<Response> {
    let p = product(ctx, &req, id).await?;
    let row = Row {
        p,
        r: RowFlags { signed_in: true },
    };
    Ok(Html(row.render()?).into_response())
}

/// `POST /products/{id}`: saves the edit. For htmx the row comes back (as a form with its
/// errors when they are some); a page is redirected to the product.
pub async fn update(
    ctx: &Ctx<AppState>,
    htmx: Htmx,
    session: Session,
    jar: CookieJar,
    Path(id): Path<i32>,
    Form(form): Form<ProductForm>,
    req: Request,
) -> Result<Response> {
    let mut p = product(ctx, &req, id).await?;
    let valid = match form.validate() {
        Ok(valid) => valid,
        Err(errors) if htmx.request => {
            let row = RowEdit { p, form, errors };
            return Ok(Response::html(row.render()?).status(StatusCode::UNPROCESSABLE_ENTITY));
        }
        Err(errors) => {
            let parts = PageParts::of(&session, true)?;
            return form_page(ctx, &parts, Some(id), form, errors);
        }
    };
    let routing = db_routing(ctx, &req)?;
    p.name = valid.name;
    p.description = valid.description;
    p.price = valid.price;
    p.stock = valid.stock;
    p.save(&routing).await?;
    let jar = sticky(ctx, jar);
    if htmx.request {
        let row = Row {
            p,
            r: RowFlags { signed_in: true },
        };
        return Ok((jar, Html(row.render()?)).into_response());
    }
    session.flash("success", "Saved.")?;
    let resp = Response::redirect(StatusCode::SEE_OTHER, &format!("/products/{id}"))?;
    Ok((jar, resp).into_response())
}

/// `DELETE /products/{id}` (htmx): deletes the product; the empty answer replaces its row.
/// A product already ordered stays (its orders keep it): 409 with a message.
pub async fn delete(
    ctx: &Ctx<AppState>,
    jar: CookieJar,
    Path(id): Path<i32>,
    req: Request,
) -> Result<Response> {
    let routing = db_routing(ctx, &req)?;
    let ordered = OrderLine::objects()
        .filter(OrderLine::PRODUCT_ID.eq(id))
        .exists(&routing)
        .await?;
    if ordered {
        return Err(Error::conflict(
            "This product has been ordered; set its stock to 0 instead.",
        ));
    }
    let deleted = Product::objects()
        .filter(Product::ID.eq(id))
        .delete(&routing)
        .await?;
    if deleted == 0 {
        return Err(Error::not_found());
    }
    Ok((sticky(ctx, jar), Response::html("")).into_response())
}

/// The order form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct OrderForm {
    quantity: String,
}

/// `POST /products/{id}/order`: one transaction writes the order, its line and the stock
/// taken; not enough stock rolls it all back and shows the product with the message.
pub async fn order(
    ctx: &Ctx<AppState>,
    session: Session,
    SignedIn(user): SignedIn,
    jar: CookieJar,
    Path(id): Path<i32>,
    Form(form): Form<OrderForm>,
    req: Request,
) -> Result<Response> {
    let p = product(ctx, &req, id).await?;
    let quantity = form
        .quantity
        .trim()
        .parse::<i32>()
        .ok()
        .filter(|q| (1..=1000).contains(q));
    let refuse = |p: Product, message: String| -> Result<Response> {
        let parts = PageParts::of(&session, true)?;
        let page = DetailPage {
            layout: parts.layout(ctx),
            signed_in: true,
            p,
            quantity: form.quantity.clone(),
            quantity_error: message,
        };
        Ok(Response::html(page.render()?).status(StatusCode::UNPROCESSABLE_ENTITY))
    };
    let Some(quantity) = quantity else {
        return refuse(p, "Order 1 to 1 000.".into());
    };
    let routing = db_routing(ctx, &req)?;
    let placed = routing
        .transaction(async |tx| -> Result<Option<i64>> {
            let taken = raw(
                "UPDATE products SET stock = stock - $2 WHERE id = $1 AND stock >= $2 RETURNING price_cents",
            )
            .bind(id)
            .bind(quantity)
            .writes("products")
            .first::<(i32,)>(tx)
            .await?;
            let Some((price,)) = taken else {
                return Ok(None);
            };
            let mut order = Order {
                id: 0,
                user_id: user,
                total: price * quantity,
                confirmed_at: None,
            };
            order.save(tx).await?;
            let mut line = OrderLine {
                id: 0,
                order_id: order.id,
                product_id: id,
                quantity,
                price,
            };
            line.save(tx).await?;
            // Announced to the user's open orders lists once (and only if) this commits.
            let row = super::orders::row_html(order.id, order.total)?;
            super::events::publish_order(tx, user, &row).await?;
            // Confirmed in the background by a worker of any instance, once this commits.
            Enqueue::new(ConfirmOrder { order: order.id })
                .unique(format!("confirm-order:{}", order.id), OnConflict::Skip)
                .send(tx)
                .await?;
            Ok(Some(order.id))
        })
        .await?;
    let Some(order_id) = placed else {
        let p = product(ctx, &req, id).await?;
        let left = p.stock;
        return refuse(p, format!("Only {left} left."));
    };
    session.flash("success", format!("Order #{order_id} placed."))?;
    let resp = Response::redirect(StatusCode::SEE_OTHER, &format!("/orders/{order_id}"))?;
    Ok((sticky(ctx, jar), resp).into_response())
}
