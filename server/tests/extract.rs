//! Extractors and their rejections over real sockets: typed query strings, forms (repeated
//! keys), JSON bodies, the status and body of every refusal, and handlers that mix them with
//! the context and the raw request.

mod common;

use common::{drivers, settings, Resp, TestServer};
use pinion_server::extract::{ClientAddr, Form, Headers, Json, Path, Query};
use pinion_server::{Ctx, Error, Html, Request, Response, Router, StatusCode};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Search {
    q: String,
    #[serde(default)]
    tag: Vec<String>,
    #[serde(default)]
    page: u32,
}

async fn search(Query(s): Query<Search>) -> String {
    format!("{}|{}|{}", s.q, s.tag.join(","), s.page)
}

#[derive(Deserialize)]
struct Order {
    item: String,
    quantity: u32,
    #[serde(default)]
    extra: Vec<String>,
}

async fn order(ctx: &Ctx<u32>, Form(o): Form<Order>) -> Result<Html<String>, Error> {
    if o.quantity == 0 {
        return Err(Error::new(StatusCode::CONFLICT, "nothing to order"));
    }
    Ok(Html(format!(
        "<p>{} x{} [{}] on worker {} of {}</p>",
        o.item,
        o.quantity,
        o.extra.join(","),
        ctx.worker(),
        ctx.state()
    )))
}

#[derive(Deserialize, Serialize)]
struct Line {
    sku: String,
    price: u32,
}

#[derive(Deserialize, Serialize)]
struct Cart {
    lines: Vec<Line>,
}

async fn total(Json(cart): Json<Cart>) -> Json<serde_json::Value> {
    let sum: u32 = cart.lines.iter().map(|l| l.price).sum();
    Json(serde_json::json!({ "lines": cart.lines.len(), "total": sum }))
}

async fn raw_after(Query(s): Query<Search>, req: Request) -> (StatusCode, String) {
    (StatusCode::ACCEPTED, format!("{} {}", s.q, req.path()))
}

async fn optional(q: Option<Query<Search>>) -> &'static str {
    if q.is_some() {
        "with"
    } else {
        "without"
    }
}

async fn busy(Query(s): Query<Search>, _req: Request) -> Result<String, Error> {
    Err(Error::unavailable(std::time::Duration::from_secs(3))
        .with_source(format!("the backend for {} is down at 10.0.0.7", s.q)))
}

async fn legacy(req: Request, _ctx: &Ctx<u32>) -> Result<Response, Error> {
    Ok(Response::text(req.path().to_string()))
}

#[derive(Deserialize)]
struct PostRef {
    id: u64,
    slug: String,
}

async fn post_ref(Path(p): Path<PostRef>) -> String {
    format!("{}:{}", p.id, p.slug)
}

async fn number(Path(n): Path<u32>) -> String {
    (n * 2).to_string()
}

async fn pair(Path((a, b)): Path<(u32, String)>, Query(s): Query<Search>) -> String {
    format!("{a}/{b}/{}", s.q)
}

async fn who(ClientAddr(ip): ClientAddr, Headers(h): Headers) -> String {
    let agents: Vec<&str> = h
        .get_all("x-agent")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    format!("{ip} {}", agents.join("+"))
}

fn app() -> Router<u32> {
    Router::new()
        .get("/search", search)
        .post("/order", order)
        .post("/total", total)
        .get("/raw", raw_after)
        .get("/optional", optional)
        .get("/legacy", legacy)
        .get("/busy", busy)
        .get("/users/{id}/posts/{slug}", post_ref)
        .get("/n/{n}", number)
        .get("/pair/{a}/{b}", pair)
        .get("/who", who)
}

fn post(server: &TestServer, path: &str, content_type: &str, extra: &str, body: &[u8]) -> Resp {
    let mut c = server.connect();
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: {content_type}\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    c.send(&req);
    c.response()
}

fn problem(r: &Resp) -> serde_json::Value {
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("problem json");
    assert_eq!(v["status"], r.status);
    v
}

#[test]
fn query_strings_are_typed_and_refused_with_400() {
    for d in drivers() {
        let server = TestServer::start(&settings(d), |_| (app(), 7));
        let mut c = server.connect();
        let r = c.get("/search?q=caf%C3%A9+au+lait&tag=a&tag=b&page=3");
        assert_eq!((r.status, r.text().as_str()), (200, "café au lait|a,b|3"));
        assert_eq!(c.get("/search?q=x").text(), "x||0");
        // A missing field, a number that is not one, malformed percent-encoding.
        for (query, needle) in [
            ("", "missing field `q`"),
            ("q=x&page=many", "page"),
            ("q=%zz", "malformed percent-encoding"),
        ] {
            let r = c.get(&format!("/search?{query}"));
            assert_eq!(r.status, 400, "{d:?} {query}");
            let v = problem(&r);
            let detail = v["detail"].as_str().expect("detail");
            assert!(detail.contains(needle), "{query}: {detail}");
        }
        assert_eq!(c.get("/optional?q=1").text(), "with");
        assert_eq!(c.get("/optional").text(), "without");
        server.stop();
    }
}

#[test]
fn forms_are_typed_with_repeated_keys_and_each_refusal_has_its_status() {
    for d in drivers() {
        let server = TestServer::start(&settings(d), |_| (app(), 7));
        let form = "application/x-www-form-urlencoded";
        let r = post(
            &server,
            "/order",
            form,
            "",
            b"item=tea&quantity=2&extra=milk&extra=sugar",
        );
        assert_eq!(r.status, 200, "{d:?}: {}", r.text());
        assert_eq!(r.text(), "<p>tea x2 [milk,sugar] on worker 0 of 7</p>");
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        // An application error through `?`/`Err` keeps its status and detail, answered like
        // a refusal: a problem document, or a page for a browser.
        let r = post(&server, "/order", form, "", b"item=tea&quantity=0");
        assert_eq!(r.status, 409);
        assert_eq!(problem(&r)["detail"], "nothing to order");
        let r = post(
            &server,
            "/order",
            form,
            "Accept: text/html\r\n",
            b"item=tea&quantity=0",
        );
        assert_eq!(r.status, 409);
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        assert!(r.text().contains("<p>nothing to order</p>"), "{}", r.text());

        let r = post(&server, "/order", "text/plain", "", b"item=tea&quantity=2");
        assert_eq!(r.status, 415);
        assert!(problem(&r)["detail"]
            .as_str()
            .is_some_and(|d| d.contains("application/x-www-form-urlencoded")));
        let r = post(&server, "/order", form, "", b"item=tea&quantity=two");
        assert_eq!(r.status, 422);
        let detail = problem(&r)["detail"].as_str().expect("detail").to_string();
        assert!(detail.contains("quantity"), "names the field: {detail}");
        let r = post(&server, "/order", form, "", b"item=%zz&quantity=1");
        assert_eq!(r.status, 400);
        let r = post(&server, "/order", form, "", b"item=%FF%FE&quantity=1");
        assert_eq!(r.status, 422);
        assert!(problem(&r)["detail"]
            .as_str()
            .is_some_and(|d| d.contains("UTF-8")));

        // A browser gets the refusal as a page, with the detail escaped.
        let r = post(
            &server,
            "/order",
            form,
            "Accept: text/html,application/xhtml+xml,*/*;q=0.8\r\n",
            b"item=<b>&quantity=<i>",
        );
        assert_eq!(r.status, 422);
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        let page = r.text();
        assert!(page.contains("<h1>422 Unprocessable Entity</h1>"), "{page}");
        assert!(!page.contains("<i>"), "{page}");
        server.stop();
    }
}

#[test]
fn a_handler_error_says_when_to_retry_and_nothing_of_its_source_in_either_format() {
    for d in drivers() {
        let server = TestServer::start(&settings(d), |_| (app(), 7));
        let mut c = server.connect();
        let r = c.get("/busy?q=tea");
        assert_eq!(r.status, 503, "{d:?}");
        assert_eq!(r.header("retry-after"), Some("3"));
        assert_eq!(
            problem(&r)["detail"],
            "temporarily unavailable; try again later"
        );
        assert!(!r.text().contains("10.0.0.7"), "{}", r.text());
        c.send(b"GET /busy?q=tea HTTP/1.1\r\nHost: t\r\nAccept: text/html\r\n\r\n");
        let r = c.response();
        assert_eq!(r.status, 503);
        assert_eq!(r.header("retry-after"), Some("3"));
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        assert!(!r.text().contains("10.0.0.7"), "{}", r.text());
        // A route that does not exist is a problem document too.
        let r = c.get("/nowhere");
        assert_eq!(r.status, 404);
        assert_eq!(problem(&r)["title"], "Not Found");
        server.stop();
    }
}

#[test]
fn a_form_over_the_body_limit_gets_413_before_it_is_read() {
    for d in drivers() {
        let mut s = settings(d);
        s.max_body_size = 10 * 1024 * 1024;
        let server = TestServer::start(&s, |_| (app(), 7));
        let mut c = server.connect();
        c.send(
            b"POST /order HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\n\
              Content-Length: 11534336\r\n\r\nitem=",
        );
        let r = c.response();
        assert_eq!(r.status, 413, "{d:?}");
        server.stop();
    }
}

#[test]
fn json_bodies_are_typed_and_a_wrong_field_is_named() {
    for d in drivers() {
        let server = TestServer::start(&settings(d), |_| (app(), 7));
        let json = "application/json";
        let r = post(
            &server,
            "/total",
            json,
            "",
            br#"{"lines":[{"sku":"a","price":3},{"sku":"b","price":4}]}"#,
        );
        assert_eq!(r.status, 200, "{d:?}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"));
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(v, serde_json::json!({"lines": 2, "total": 7}));
        // `+json` types are JSON too.
        let r = post(
            &server,
            "/total",
            "application/vnd.cart+json",
            "",
            br#"{"lines":[]}"#,
        );
        assert_eq!(r.status, 200);

        let r = post(
            &server,
            "/total",
            json,
            "",
            br#"{"lines":[{"sku":"a","price":3},{"sku":"b","price":"four"}]}"#,
        );
        assert_eq!(r.status, 422);
        let detail = problem(&r)["detail"].as_str().expect("detail").to_string();
        assert!(detail.contains("lines[1].price"), "{detail}");
        let r = post(&server, "/total", json, "", br#"{"lines":["#);
        assert_eq!(r.status, 400);
        let r = post(&server, "/total", json, "", br#"{"lines":[]} trailing"#);
        assert_eq!(r.status, 400);
        let r = post(&server, "/total", "text/plain", "", br#"{"lines":[]}"#);
        assert_eq!(r.status, 415);
        server.stop();
    }
}

#[test]
fn extractors_mix_with_the_raw_request_and_old_handlers_still_work() {
    for d in drivers() {
        let server = TestServer::start(&settings(d), |_| (app(), 7));
        let mut c = server.connect();
        let r = c.get("/raw?q=hi");
        assert_eq!((r.status, r.text().as_str()), (202, "hi /raw"));
        assert_eq!(c.get("/raw").status, 400, "the extractor runs first");
        assert_eq!(c.get("/legacy").text(), "/legacy");
        server.stop();
    }
}

#[test]
fn path_parameters_are_typed_by_name_or_position() {
    for d in drivers() {
        let server = TestServer::start(&settings(d), |_| (app(), 7));
        let mut c = server.connect();
        let r = c.get("/users/42/posts/hello%20world+again");
        assert_eq!((r.status, r.text().as_str()), (200, "42:hello world+again"));
        assert_eq!(c.get("/n/21").text(), "42");
        assert_eq!(c.get("/pair/3/caf%C3%A9?q=x").text(), "3/café/x");
        for bad in [
            "/users/x/posts/a",
            "/n/-1",
            "/n/99999999999",
            "/pair/a/b?q=x",
        ] {
            let r = c.get(bad);
            assert_eq!(r.status, 400, "{d:?} {bad}");
            assert!(
                problem(&r)["detail"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("path: ")),
                "{bad}"
            );
        }
        let r = c.get("/users/x/posts/a");
        let detail = problem(&r)["detail"].as_str().expect("detail").to_string();
        assert!(detail.contains("id"), "names the parameter: {detail}");
        server.stop();
    }
}

#[test]
fn the_client_address_follows_trusted_proxies_and_headers_are_all_there() {
    for d in drivers() {
        // Loopback is a trusted proxy by default: X-Forwarded-For names the client.
        let server = TestServer::start(&settings(d), |_| (app(), 7));
        let mut c = server.connect();
        c.send(
            b"GET /who HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 6.6.6.6, 203.0.113.9\r\n\
              X-Agent: a\r\nx-agent: b\r\n\r\n",
        );
        assert_eq!(c.response().text(), "203.0.113.9 a+b", "{d:?}");
        server.stop();
        // Nobody trusted: the peer is the client, whatever it forwards.
        let mut s = settings(d);
        s.trusted_proxies = Vec::new();
        let server = TestServer::start(&s, |_| (app(), 7));
        let mut c = server.connect();
        c.send(b"GET /who HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n");
        assert_eq!(c.response().text(), "127.0.0.1 ", "{d:?}");
        server.stop();
    }
}

/// The same extractors and refusals through the socket-free test client: the same connection
/// loop, chain and router over memory.
mod without_a_socket {
    use super::*;
    use pinion_server::testing::{block_on, TestClient};

    #[derive(Serialize)]
    struct OrderForm<'a> {
        item: &'a str,
        quantity: &'a str,
        extra: Vec<&'a str>,
    }

    #[test]
    fn each_extractor_and_each_refusal() {
        block_on(async {
            let client = TestClient::new(&settings(drivers()[0]), app(), 7);
            let r = client
                .get("/search?q=caf%C3%A9&tag=a&tag=b&page=3")
                .send()
                .await;
            assert_eq!(
                (r.status(), r.text().as_str()),
                (StatusCode::OK, "café|a,b|3")
            );
            let r = client.get("/search?q=%zz").send().await;
            assert_eq!(r.status(), StatusCode::BAD_REQUEST);
            assert_eq!(r.header("content-type"), Some("application/problem+json"));

            let form = OrderForm {
                item: "tea",
                quantity: "2",
                extra: vec!["milk", "sugar"],
            };
            let r = client.post("/order").form(&form).send().await;
            assert_eq!(r.text(), "<p>tea x2 [milk,sugar] on worker 0 of 7</p>");
            let bad = OrderForm {
                quantity: "two",
                ..form
            };
            let r = client.post("/order").form(&bad).send().await;
            assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
            let v: serde_json::Value = r.json();
            assert!(v["detail"].as_str().is_some_and(|d| d.contains("quantity")));
            let r = client
                .post("/order")
                .header("content-type", "text/plain")
                .body("item=tea&quantity=2")
                .send()
                .await;
            assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
            let r = client
                .post("/order")
                .header("accept", "text/html")
                .form(&bad)
                .send()
                .await;
            assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));

            let cart = serde_json::json!({"lines": [{"sku": "a", "price": 3}, {"sku": "b", "price": "x"}]});
            let r = client.post("/total").json(&cart).send().await;
            assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
            let v: serde_json::Value = r.json();
            assert!(v["detail"]
                .as_str()
                .is_some_and(|d| d.contains("lines[1].price")));

            assert_eq!(
                client.get("/users/42/posts/a%20b").send().await.text(),
                "42:a b"
            );
            assert_eq!(
                client.get("/n/x").send().await.status(),
                StatusCode::BAD_REQUEST
            );
            assert_eq!(
                client.get("/raw?q=hi").send().await.status(),
                StatusCode::ACCEPTED
            );
            assert_eq!(client.get("/legacy").send().await.text(), "/legacy");
            assert_eq!(
                client.get("/nowhere").send().await.status(),
                StatusCode::NOT_FOUND
            );
            let r = client.post("/search").send().await;
            assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
            assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"));
        });
    }

    #[test]
    fn the_client_address_comes_from_the_peer_or_a_trusted_proxy() {
        block_on(async {
            let client = TestClient::new(&settings(drivers()[0]), app(), 7);
            let r = client
                .get("/who")
                .header("x-forwarded-for", "203.0.113.9")
                .header("x-agent", "a")
                .send()
                .await;
            assert_eq!(r.text(), "203.0.113.9 a");
            let outside = "198.51.100.4:5000".parse().expect("address");
            let r = client
                .get("/who")
                .header("x-forwarded-for", "203.0.113.9")
                .peer(outside)
                .send()
                .await;
            assert_eq!(
                r.text(),
                "198.51.100.4 ",
                "an untrusted peer's header is ignored"
            );
        });
    }

    #[test]
    fn limits_and_pipelining_are_the_connection_loop_s_own() {
        block_on(async {
            let mut s = settings(drivers()[0]);
            s.max_body_size = 1024;
            let client = TestClient::new(&s, app(), 7);
            let r = client.post("/total").json(&"x".repeat(2000)).send().await;
            assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
            let out = client
                .send_raw(
                    "GET /n/1 HTTP/1.1\r\nHost: t\r\n\r\nGET /n/2 HTTP/1.1\r\nHost: t\r\n\r\n",
                    pinion_server::testing::DEFAULT_PEER,
                )
                .await;
            let text = String::from_utf8_lossy(&out);
            let first = text.find("\r\n\r\n2").expect("first answer");
            let second = text.find("\r\n\r\n4").expect("second answer");
            assert!(first < second, "{text}");
        });
    }
}
