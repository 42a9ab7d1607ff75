//! Accounts: `GET`/`POST /signup`, `GET`/`POST /login` (its submissions limited by the
//! `login` rate-limit policy) and `POST /logout`.

use askama::Template;
use pinion_orm::query::raw;
use pinion_orm::Model;
use pinion_server::extract::{Form, Query};
use pinion_server::{Ctx, Response, StatusCode};
use pinion_web::auth::safe_next;
use pinion_web::password;
use pinion_web::session::Session;
use pinion_web::Result;
use serde::Deserialize;

use super::forms::{AccountErrors, AccountForm};
use super::PageParts;
use crate::layout::Layout;
use crate::models::User;
use crate::AppState;

/// The one message of a failed login, whatever failed: the address or the password.
pub const LOGIN_FAILED: &str = "That e-mail address and password do not match an account.";

#[derive(Template)]
#[template(path = "accounts/signup.html")]
struct SignupPage<'a> {
    layout: Layout<'a>,
    email: String,
    errors: AccountErrors,
}

#[derive(Template)]
#[template(path = "accounts/login.html")]
struct LoginPage<'a> {
    layout: Layout<'a>,
    email: String,
    next: &'a str,
    error: &'a str,
}

/// `?next=` of the login page.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Next {
    next: String,
}

/// `GET /signup`.
pub async fn signup_form(ctx: &Ctx<AppState>, session: Session) -> Result<Response> {
    let parts = PageParts::of(&session, true)?;
    let page = SignupPage {
        layout: parts.layout(ctx),
        email: String::new(),
        errors: AccountErrors::default(),
    };
    Ok(Response::html(page.render()?))
}

/// `POST /signup`: creates the account and signs it in, or shows the form with its errors.
pub async fn signup(
    ctx: &Ctx<AppState>,
    session: Session,
    Form(form): Form<AccountForm>,
) -> Result<Response> {
    let refuse = |errors: AccountErrors| -> Result<Response> {
        let parts = PageParts::of(&session, true)?;
        let page = SignupPage {
            layout: parts.layout(ctx),
            email: form.email().to_string(),
            errors,
        };
        Ok(Response::html(page.render()?).status(StatusCode::UNPROCESSABLE_ENTITY))
    };
    if let Err(errors) = form.validate_signup() {
        return refuse(errors);
    }
    let db = ctx.state().db()?;
    let password_hash = password::hash_async(form.password.clone()).await?;
    let mut user = User {
        id: 0,
        email: form.email().to_string(),
        password_hash,
    };
    match user.save(db).await {
        Ok(_) => {}
        Err(e) if e.is_unique_violation() => {
            return refuse(AccountErrors {
                email: "An account with this address exists; log in instead.".into(),
                ..AccountErrors::default()
            });
        }
        Err(e) => return Err(e.into()),
    }
    session.login(user.id)?;
    session.flash("success", "Welcome! Your account is ready.")?;
    Ok(Response::redirect(StatusCode::SEE_OTHER, "/")?)
}

/// `GET /login`.
pub async fn login_form(
    ctx: &Ctx<AppState>,
    session: Session,
    Query(next): Query<Next>,
) -> Result<Response> {
    let parts = PageParts::of(&session, true)?;
    let page = LoginPage {
        layout: parts.layout(ctx),
        email: String::new(),
        next: safe_next(Some(&next.next)),
        error: "",
    };
    Ok(Response::html(page.render()?))
}

/// `POST /login`: a wrong password and an unknown address take the same path (the same
/// message, the same argon2 work), so that the answer tells nobody which accounts exist.
pub async fn login(
    ctx: &Ctx<AppState>,
    session: Session,
    Form(form): Form<AccountForm>,
) -> Result<Response> {
    let db = ctx.state().db()?;
    // The unique index is on lower(email): one account per address, whatever its case.
    let found = raw("SELECT id, email, password_hash FROM users WHERE lower(email) = lower($1)")
        .bind(form.email().to_string())
        .reads("users")
        .cache(false)
        .first::<(i64, String, String)>(db)
        .await?
        .map(|(id, email, password_hash)| User {
            id,
            email,
            password_hash,
        });
    let stored = found.as_ref().map(|u| u.password_hash.clone());
    let matches = password::verify_async(form.password.clone(), stored).await?;
    let user = match (found, matches) {
        (Some(user), true) => user,
        _ => {
            let parts = PageParts::of(&session, true)?;
            let page = LoginPage {
                layout: parts.layout(ctx),
                email: form.email().to_string(),
                next: safe_next(Some(&form.next)),
                error: LOGIN_FAILED,
            };
            return Ok(Response::html(page.render()?).status(StatusCode::UNAUTHORIZED));
        }
    };
    if password::needs_rehash(&user.password_hash) {
        let mut user = user.clone();
        user.password_hash = password::hash_async(form.password.clone()).await?;
        user.save(db).await?;
    }
    session.login(user.id)?;
    session.flash("success", "You are logged in.")?;
    Ok(Response::redirect(
        StatusCode::SEE_OTHER,
        safe_next(Some(&form.next)),
    )?)
}

/// `POST /logout`: the session's row is deleted, so its cookie stops working everywhere.
pub async fn logout(session: Session) -> Result<Response> {
    session.logout();
    session.flash("info", "You are logged out.")?;
    Ok(Response::redirect(StatusCode::SEE_OTHER, "/")?)
}
