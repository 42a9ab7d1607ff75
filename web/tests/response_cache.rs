//! The response cache through the server's own connection loop: hits and their `ETag`, `304`
//! on `If-None-Match`, variants by `Vary`, and what is never stored or served: requests of a
//! session, answers that set a cookie, answers that are not 200 or say `private`.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use pinion_cache::{LocMemCache, LocMemConfig};
use pinion_server::testing::{block_on, TestClient};
use pinion_server::{header, Ctx, HeaderValue, Request, Response, Router, StatusCode};
use pinion_web::htmx::{self, Htmx};
use pinion_web::response_cache::ResponseCache;

/// How many times each handler ran.
#[derive(Default)]
struct Calls {
    page: Cell<u32>,
    cookie: Cell<u32>,
    missing: Cell<u32>,
    private: Cell<u32>,
}

type State = Rc<Calls>;

async fn page(ctx: &Ctx<State>, htmx: Htmx) -> Response {
    let n = ctx.state().page.get() + 1;
    ctx.state().page.set(n);
    let body = if htmx.wants_fragment() {
        format!("fragment {n}")
    } else {
        format!("page {n}")
    };
    htmx::vary(Response::html(body))
}

async fn sets_cookie(ctx: &Ctx<State>) -> Response {
    ctx.state().cookie.set(ctx.state().cookie.get() + 1);
    Response::text("hello").header(
        header::SET_COOKIE,
        HeaderValue::from_static("seen=1; Path=/"),
    )
}

async fn missing(ctx: &Ctx<State>) -> Response {
    ctx.state().missing.set(ctx.state().missing.get() + 1);
    Response::new(StatusCode::NOT_FOUND)
}

async fn private(ctx: &Ctx<State>, _req: Request) -> Response {
    ctx.state().private.set(ctx.state().private.get() + 1);
    Response::text("mine").header(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    )
}

fn client() -> (TestClient<State>, State, ResponseCache<LocMemCache>) {
    let store = Arc::new(LocMemCache::new(&LocMemConfig::default()));
    let cache = ResponseCache::new(store);
    let ttl = Duration::from_secs(60);
    let router = Router::new()
        .get("/page", cache.ttl(ttl, page))
        .get("/cookie", cache.ttl(ttl, sets_cookie))
        .get("/missing", cache.ttl(ttl, missing))
        .get("/private", cache.ttl(ttl, private));
    let state: State = Rc::default();
    let client = TestClient::new(
        &pinion_config::Settings::default(),
        router,
        Rc::clone(&state),
    );
    (client, state, cache)
}

#[test]
fn a_public_answer_is_kept_with_a_strong_etag_and_revalidated_with_304() {
    block_on(async {
        let (client, calls, cache) = client();
        let first = client.get("/page").send().await;
        assert_eq!(
            (first.status(), first.text().as_str()),
            (StatusCode::OK, "page 1")
        );
        let etag = first.header("etag").expect("an ETag").to_string();
        assert!(etag.starts_with('"') && etag.len() == 34, "strong: {etag}");
        let second = client.get("/page").send().await;
        assert_eq!(second.text(), "page 1", "served from the cache");
        assert_eq!(second.header("etag"), Some(etag.as_str()));
        assert_eq!(
            second.header("vary"),
            Some("HX-Request, HX-History-Restore-Request, HX-Boosted")
        );
        assert_eq!(calls.page.get(), 1);

        let revalidated = client
            .get("/page")
            .header("if-none-match", &etag)
            .send()
            .await;
        assert_eq!(revalidated.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(revalidated.text(), "");
        assert_eq!(revalidated.header("etag"), Some(etag.as_str()));
        let other = client
            .get("/page")
            .header("if-none-match", "\"something else\"")
            .send()
            .await;
        assert_eq!(other.status(), StatusCode::OK);
        assert_eq!(cache.stats().hits, 3);

        // The htmx fragment is another variant (Vary: HX-Request), kept apart.
        let fragment = client
            .get("/page")
            .header("hx-request", "true")
            .send()
            .await;
        assert_eq!(fragment.text(), "fragment 2");
        let again = client
            .get("/page")
            .header("hx-request", "true")
            .send()
            .await;
        assert_eq!(again.text(), "fragment 2");
        assert_eq!(client.get("/page").send().await.text(), "page 1");
        assert_eq!(calls.page.get(), 2);
        // A history restore also sends HX-Request, and needs the page: a variant of its own.
        let restore = client
            .get("/page")
            .header("hx-request", "true")
            .header("hx-history-restore-request", "true")
            .send()
            .await;
        assert_eq!(restore.text(), "page 3");
        assert_eq!(calls.page.get(), 3);

        // A query string is another page.
        assert_eq!(client.get("/page?p=2").send().await.text(), "page 4");
    });
}

#[test]
fn a_sessions_request_never_gets_a_stored_answer_and_private_ones_are_never_stored() {
    block_on(async {
        let (client, calls, _cache) = client();
        assert_eq!(client.get("/page").send().await.text(), "page 1");
        for (cookie, n) in [("pinion_session=abc", 2), ("__Host-pinion_session=abc", 3)] {
            let mine = client.get("/page").header("cookie", cookie).send().await;
            assert_eq!(
                mine.text(),
                format!("page {n}"),
                "a session's request runs the handler"
            );
            assert_eq!(
                mine.header("etag"),
                None,
                "nor is its answer validated or stored"
            );
        }
        assert_eq!(
            client.get("/page").send().await.text(),
            "page 1",
            "the public one is unchanged"
        );
        let authorized = client
            .get("/page")
            .header("authorization", "Bearer x")
            .send()
            .await;
        assert_eq!(authorized.text(), "page 4");

        for _ in 0..2 {
            let resp = client.get("/cookie").send().await;
            assert!(resp.header("set-cookie").is_some());
            assert_eq!(resp.header("etag"), None);
        }
        assert_eq!(
            calls.cookie.get(),
            2,
            "an answer that sets a cookie is never stored"
        );
        for _ in 0..2 {
            assert_eq!(
                client.get("/missing").send().await.status(),
                StatusCode::NOT_FOUND
            );
            assert_eq!(client.get("/private").send().await.text(), "mine");
        }
        assert_eq!(
            (calls.missing.get(), calls.private.get()),
            (2, 2),
            "404 and private answers run each time"
        );
    });
}
