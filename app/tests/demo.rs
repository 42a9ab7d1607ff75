//! The demo app over real sockets, against the real `pinion` binary and the private
//! PostgreSQL: forms with their errors in place, htmx fragments against full pages, logins
//! that do not tell which accounts exist and are limited, private pages, the order flow in
//! one transaction, and the inline edit and delete of a row.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};

use common::site::{form_encode, send, Resp};
use common::{database_env, serve, Served};

/// A browser: its cookies for the site, the CSRF token of the last page that had one.
#[derive(Default)]
struct Browser {
    cookies: Vec<(String, String)>,
    token: String,
}

impl Browser {
    fn cookie_header(&self) -> String {
        if self.cookies.is_empty() {
            return String::new();
        }
        let pairs: Vec<String> = self
            .cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        format!("Cookie: {}\r\n", pairs.join("; "))
    }

    fn keep(&mut self, resp: &Resp) {
        for (name, value) in &resp.headers {
            if name != "set-cookie" {
                continue;
            }
            let pair = value.split(';').next().unwrap_or_default();
            let (n, v) = pair.split_once('=').expect("name=value");
            self.cookies.retain(|(k, _)| k != n);
            if !value.contains("Max-Age=0") {
                self.cookies.push((n.to_string(), v.to_string()));
            }
        }
        if let Some(start) = resp.body.find(r#"name="csrf_token" value=""#) {
            let rest = &resp.body[start + r#"name="csrf_token" value=""#.len()..];
            self.token = rest[..rest.find('"').expect("end of the value")].to_string();
        }
    }

    fn get(&mut self, addr: SocketAddr, path: &str, extra: &str) -> Resp {
        let raw = format!(
            "GET {path} HTTP/1.1\r\nHost: demo.test\r\nConnection: close\r\n{}{extra}\r\n",
            self.cookie_header()
        );
        let resp = send(addr, &raw);
        self.keep(&resp);
        resp
    }

    /// A form POST from this site's page, with the token of the last page.
    fn post(&mut self, addr: SocketAddr, path: &str, fields: &[(&str, &str)], extra: &str) -> Resp {
        let mut fields = fields.to_vec();
        let token = self.token.clone();
        fields.push(("csrf_token", &token));
        self.send_form(addr, "POST", path, &form_encode(&fields), extra)
    }

    fn send_form(
        &mut self,
        addr: SocketAddr,
        method: &str,
        path: &str,
        body: &str,
        extra: &str,
    ) -> Resp {
        let raw = format!(
            "{method} {path} HTTP/1.1\r\nHost: demo.test\r\nConnection: close\r\nOrigin: http://demo.test\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n{}{extra}\r\n{body}",
            body.len(),
            self.cookie_header()
        );
        let resp = send(addr, &raw);
        self.keep(&resp);
        resp
    }

    /// Signs up a new account and returns its address.
    fn sign_up(&mut self, addr: SocketAddr) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let email = format!(
            "user{}-{}@demo.test",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        self.get(addr, "/signup", "");
        let resp = self.post(
            addr,
            "/signup",
            &[("email", &email), ("password", "correct horse")],
            "",
        );
        assert_eq!(resp.status, 303, "{}", resp.body);
        email
    }
}

fn demo() -> Served {
    serve(database_env())
}

/// A name no other test (or earlier run) has used.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{prefix} {}-{nanos}", std::process::id())
}

#[test]
fn a_form_with_errors_comes_back_with_each_message_next_to_its_field_and_the_values_kept() {
    let app = demo();
    let mut b = Browser::default();
    b.sign_up(app.addr);
    b.get(app.addr, "/products/new", "");
    let resp = b.post(
        app.addr,
        "/products",
        &[
            ("name", "Tiny <gear>"),
            ("description", ""),
            ("price", "12.345"),
            ("stock", "-1"),
        ],
        "",
    );
    assert_eq!(resp.status, 422);
    let page = &resp.body;
    // The value kept (escaped), the price's message right after the price field.
    assert!(
        page.contains(r#"value="Tiny &#60;gear&#62;""#)
            || page.contains(r#"value="Tiny &lt;gear&gt;""#),
        "{page}"
    );
    let price = page.find(r#"name="price""#).expect("the price field");
    let message = page
        .find("A price looks like 12.90")
        .expect("the price message");
    let stock = page.find(r#"name="stock""#).expect("the stock field");
    assert!(
        price < message && message < stock,
        "the message sits under its field"
    );
    assert!(page.contains(r#"value="12.345""#), "what was typed is kept");
    assert!(page.contains("Stock is a whole number"));
    assert!(
        !page.contains("Give the product a name"),
        "a good field has no message"
    );

    // Fixed, it is created, and the redirect reads it back (sticky to the primary).
    let name = unique("Tiny gear");
    let resp = b.post(
        app.addr,
        "/products",
        &[
            ("name", &name),
            ("description", "d"),
            ("price", "12.34"),
            ("stock", "3"),
        ],
        "",
    );
    assert_eq!(resp.status, 303, "{}", resp.body);
    let location = resp.header("location").expect("location").to_string();
    assert!(
        b.cookies.iter().any(|(n, _)| n == "pinion_primary"),
        "the sticky cookie"
    );
    let shown = b.get(app.addr, &location, "");
    assert_eq!(shown.status, 200);
    assert!(shown.body.contains(&name) && shown.body.contains("12.34"));
    assert!(
        shown.body.contains("added."),
        "the flash message after the redirect"
    );
    let again = b.get(app.addr, &location, "");
    assert!(!again.body.contains("added."), "a flash shows once");
}

#[test]
fn htmx_gets_the_fragment_and_history_restores_and_plain_requests_the_page() {
    let app = demo();
    let mut b = Browser::default();
    let page = b.get(app.addr, "/?q=pinion", "");
    assert_eq!(page.status, 200);
    assert!(
        page.body.starts_with("<!DOCTYPE html>") && page.body.contains(r#"<div id="results">"#)
    );
    assert_eq!(
        page.header("vary"),
        Some("HX-Request, HX-History-Restore-Request, HX-Boosted")
    );
    assert!(
        page.header("cache-control").is_some(),
        "every HTML answer says how to cache it"
    );

    let fragment = b.get(app.addr, "/?q=pinion", "HX-Request: true\r\n");
    assert_eq!(fragment.status, 200);
    assert!(
        !fragment.body.contains("<html") && fragment.body.contains("<table class=\"products\">"),
        "{}",
        fragment.body
    );
    assert!(
        fragment.body.contains("Brass pinion, 12 teeth") && !fragment.body.contains("Mainspring"),
        "the search applies"
    );
    assert_eq!(
        fragment.header("vary"),
        Some("HX-Request, HX-History-Restore-Request, HX-Boosted")
    );
    assert_eq!(
        fragment.header("cache-control"),
        Some("public, max-age=10"),
        "a public fragment nginx may keep"
    );

    let restore = b.get(
        app.addr,
        "/?q=pinion",
        "HX-Request: true\r\nHX-History-Restore-Request: true\r\n",
    );
    assert!(
        restore.body.starts_with("<!DOCTYPE html>"),
        "a history restore needs the page"
    );

    // The endpoint list moved to /about, and says how long it may be kept.
    let about = b.get(app.addr, "/about", "");
    assert!(about.body.contains("/plaintext"));
    assert_eq!(about.header("cache-control"), Some("public, max-age=60"));

    // Pages of ten, in name order.
    let first = b.get(app.addr, "/", "HX-Request: true\r\n");
    assert_eq!(first.body.matches("<tr id=\"product-").count(), 10);
    assert!(first.body.contains("rel=\"next\""));
    assert!(
        !first.body.contains("Edit</button>"),
        "anonymous visitors get no edit buttons"
    );
    assert!(b.cookies.is_empty(), "browsing creates no session");

    // With a session, the same fragment is nobody else's.
    b.sign_up(app.addr);
    let mine = b.get(app.addr, "/", "HX-Request: true\r\n");
    assert_eq!(mine.header("cache-control"), Some("private, no-store"));
    assert_eq!(mine.header("etag"), None, "a session's page is not kept");
    assert!(
        mine.body.contains("Edit</button>"),
        "a signed-in user edits inline"
    );
}

#[test]
fn logins_do_not_tell_which_accounts_exist_and_the_sixth_attempt_is_refused() {
    let app = demo();
    let mut owner = Browser::default();
    let email = owner.sign_up(app.addr);
    // Each attempt from a client of its own address (a trusted proxy is not configured, so
    // they share the peer): the limit counts them together, as an attacker's would.
    let mut b = Browser::default();
    b.get(app.addr, "/login", "");
    let wrong = b.post(
        app.addr,
        "/login",
        &[("email", &email), ("password", "not the password")],
        "",
    );
    let unknown = b.post(
        app.addr,
        "/login",
        &[
            ("email", "nobody@demo.test"),
            ("password", "not the password"),
        ],
        "",
    );
    assert_eq!((wrong.status, unknown.status), (401, 401));
    let message = |r: &Resp| {
        let start = r.body.find("class=\"form-error\"").expect("the message");
        r.body[start..start + 120].to_string()
    };
    assert_eq!(
        message(&wrong),
        message(&unknown),
        "the same words for both"
    );
    assert!(
        !wrong.body.contains("not the password"),
        "the password is never written back"
    );
    // The page itself is not limited.
    for _ in 0..8 {
        assert_eq!(b.get(app.addr, "/login", "").status, 200);
    }
    let right = b.post(
        app.addr,
        "/login",
        &[
            ("email", &email),
            ("password", "correct horse"),
            ("next", "/orders"),
        ],
        "",
    );
    assert_eq!(right.status, 303, "{}", right.body);
    assert_eq!(right.header("location"), Some("/orders"));
    for _ in 0..2 {
        b.post(
            app.addr,
            "/login",
            &[("email", &email), ("password", "x")],
            "",
        );
    }
    let sixth = b.post(
        app.addr,
        "/login",
        &[("email", &email), ("password", "correct horse")],
        "",
    );
    assert_eq!(sixth.status, 429, "{}", sixth.body);
    assert!(sixth.header("retry-after").is_some());
}

#[test]
fn private_pages_send_visitors_to_the_login_and_orders_are_placed_in_one_transaction() {
    let app = demo();
    let mut anonymous = Browser::default();
    let page = anonymous.get(app.addr, "/orders", "");
    assert_eq!(
        (page.status, page.header("location")),
        (303, Some("/login?next=/orders"))
    );
    let htmx = anonymous.get(app.addr, "/orders", "HX-Request: true\r\n");
    assert_eq!(
        (htmx.status, htmx.header("hx-redirect")),
        (401, Some("/login?next=/orders"))
    );

    let mut b = Browser::default();
    b.sign_up(app.addr);
    b.get(app.addr, "/products/new", "");
    let name = unique("Order test wheel");
    let created = b.post(
        app.addr,
        "/products",
        &[("name", &name), ("price", "2.50"), ("stock", "3")],
        "",
    );
    let location = created.header("location").expect("created").to_string();
    b.get(app.addr, &location, "");

    // More than the stock: refused, nothing written.
    let refused = b.post(
        app.addr,
        &format!("{location}/order"),
        &[("quantity", "4")],
        "",
    );
    assert_eq!(refused.status, 422);
    assert!(refused.body.contains("Only 3 left."), "{}", refused.body);
    assert!(refused.body.contains(r#"<dd id="stock">3</dd>"#));
    let orders = b.get(app.addr, "/orders", "");
    assert!(
        orders.body.contains("No order yet"),
        "the rolled-back order left nothing"
    );

    let placed = b.post(
        app.addr,
        &format!("{location}/order"),
        &[("quantity", "2")],
        "",
    );
    assert_eq!(placed.status, 303, "{}", placed.body);
    let order = placed.header("location").expect("the order").to_string();
    let shown = b.get(app.addr, &order, "");
    assert!(
        shown.body.contains(&name) && shown.body.contains("5.00"),
        "{}",
        shown.body
    );
    let product = b.get(app.addr, &location, "");
    assert!(
        product.body.contains(r#"<dd id="stock">1</dd>"#),
        "the stock taken in the same transaction"
    );

    // Another user cannot see it.
    let mut other = Browser::default();
    other.sign_up(app.addr);
    assert_eq!(other.get(app.addr, &order, "").status, 404);
}

#[test]
fn a_row_is_edited_inline_and_deleted_through_htmx() {
    let app = demo();
    let mut b = Browser::default();
    b.sign_up(app.addr);
    b.get(app.addr, "/products/new", "");
    let name = unique("Inline cog");
    let created = b.post(
        app.addr,
        "/products",
        &[("name", &name), ("price", "1.00"), ("stock", "5")],
        "",
    );
    let id = created
        .header("location")
        .expect("created")
        .trim_start_matches("/products/")
        .to_string();
    b.get(app.addr, "/", "");
    let htmx = format!("HX-Request: true\r\nX-CSRF-Token: {}\r\n", b.token);

    let form = b.get(app.addr, &format!("/products/{id}/edit"), &htmx);
    assert!(
        form.body
            .starts_with(&format!("<tr id=\"product-{id}\" class=\"editing\">"))
            || form
                .body
                .contains(&format!("<tr id=\"product-{id}\" class=\"editing\">")),
        "{}",
        form.body
    );
    assert!(!form.body.contains("<html"));

    let bad = b.send_form(
        app.addr,
        "POST",
        &format!("/products/{id}"),
        &form_encode(&[("name", &name), ("price", "free"), ("stock", "5")]),
        &htmx,
    );
    assert_eq!(bad.status, 422);
    assert!(bad.body.contains("class=\"editing\"") && bad.body.contains("A price looks like"));

    let renamed = format!("{name} (renamed)");
    let good = b.send_form(
        app.addr,
        "POST",
        &format!("/products/{id}"),
        &form_encode(&[("name", &renamed), ("price", "1.50"), ("stock", "5")]),
        &htmx,
    );
    assert_eq!(good.status, 200, "{}", good.body);
    assert!(good.body.contains(&format!("<tr id=\"product-{id}\">")) && good.body.contains("1.50"));
    assert!(good.body.contains("(renamed)"));

    // Without the token the delete is refused; with it the row goes.
    let forged = b.send_form(
        app.addr,
        "DELETE",
        &format!("/products/{id}"),
        "",
        "HX-Request: true\r\n",
    );
    assert_eq!(forged.status, 403);
    let deleted = b.send_form(app.addr, "DELETE", &format!("/products/{id}"), "", &htmx);
    assert_eq!((deleted.status, deleted.body.as_str()), (200, ""));
    assert_eq!(b.get(app.addr, &format!("/products/{id}"), "").status, 404);
}
