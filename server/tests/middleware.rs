//! The middleware chain over real sockets: security headers, CORS, request ids,
//! Server-Timing, per-route options.

mod common;

use common::{drivers, settings, TestServer};
use pinion_server::header::HeaderValue;
use pinion_server::middleware::{
    Cors, CorsConfig, RequestId, SecurityHeaders, SecurityHeadersConfig, ServerTiming,
};
use pinion_server::{Ctx, Error, Request, Response, RouteOptions, Router, Stack};

async fn text(_req: Request, _ctx: &Ctx<()>) -> Result<Response, Error> {
    Ok(Response::text("text"))
}

async fn page(_req: Request, _ctx: &Ctx<()>) -> Result<Response, Error> {
    Ok(Response::html("<p>hi</p>"))
}

async fn shouty_page(_req: Request, _ctx: &Ctx<()>) -> Result<Response, Error> {
    Ok(Response::with_body(
        HeaderValue::from_static("Text/HTML; charset=utf-8"),
        "<p>hi</p>".into(),
    ))
}

async fn varied(_req: Request, _ctx: &Ctx<()>) -> Result<Response, Error> {
    Ok(Response::text("varied").header(
        pinion_server::header::VARY,
        HeaderValue::from_static("Accept-Encoding"),
    ))
}

async fn varied_by_origin(_req: Request, _ctx: &Ctx<()>) -> Result<Response, Error> {
    Ok(Response::text("varied").header(
        pinion_server::header::VARY,
        HeaderValue::from_static("accept, origin"),
    ))
}

async fn framed(_req: Request, _ctx: &Ctx<()>) -> Result<Response, Error> {
    Ok(Response::text("x").header(
        pinion_server::header::X_FRAME_OPTIONS,
        HeaderValue::from_static("SAMEORIGIN"),
    ))
}

async fn whoami(req: Request, _ctx: &Ctx<()>) -> Result<Response, Error> {
    Ok(Response::text(
        req.request_id().unwrap_or("none").to_string(),
    ))
}

/// Takes 40 ms, so that its Server-Timing has something to show.
async fn slow(_req: Request, _ctx: &Ctx<()>) -> Result<Response, Error> {
    monoio::time::sleep(std::time::Duration::from_millis(40)).await;
    Ok(Response::text("slow"))
}

fn stack(cors: CorsConfig) -> Stack<()> {
    Stack::new()
        .request_id(RequestId::new(|ip| ip.is_loopback(), 42))
        .security_headers(SecurityHeaders::new(&SecurityHeadersConfig::default()).expect("valid"))
        .server_timing(ServerTiming)
        .cors(Cors::new(&cors).expect("valid cors"))
}

fn app(cors: CorsConfig) -> Router<()> {
    Router::new()
        .get("/text", text)
        .get("/page", page)
        .get("/shouty", shouty_page)
        .get("/varied", varied)
        .get("/varied-by-origin", varied_by_origin)
        .get("/framed", framed)
        .get("/whoami", whoami)
        .get("/slow", slow)
        .post("/text", text)
        .get("/health", text)
        .configure("/health", RouteOptions::new().bare())
        .middleware(stack(cors))
}

fn cors_config() -> CorsConfig {
    CorsConfig {
        allowed_origins: vec!["https://app.example".into()],
        ..CorsConfig::default()
    }
}

fn start(cors: CorsConfig) -> TestServer {
    let s = settings(drivers()[0]);
    TestServer::start(&s, move |_| (app(cors.clone()), ()))
}

fn request(server: &TestServer, raw: &str) -> common::Resp {
    let mut c = server.connect();
    c.send(raw.as_bytes());
    c.response()
}

#[test]
fn owasp_security_headers_on_every_response() {
    let server = start(cors_config());
    for path in ["/text", "/nope"] {
        let r = request(&server, &format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n"));
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(r.header("x-frame-options"), Some("DENY"));
        assert_eq!(
            r.header("referrer-policy"),
            Some("strict-origin-when-cross-origin")
        );
        assert_eq!(r.header("cross-origin-opener-policy"), Some("same-origin"));
        assert_eq!(
            r.header("cross-origin-resource-policy"),
            Some("same-origin")
        );
        assert!(r.header("permissions-policy").is_some());
        assert_eq!(
            r.header("strict-transport-security"),
            None,
            "HSTS is off by default"
        );
        // CSP only on HTML.
        assert_eq!(r.header("content-security-policy"), None);
    }
    // HTML in any case of its media type.
    for path in ["/page", "/shouty"] {
        let r = request(&server, &format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n"));
        assert!(
            r.header("content-security-policy")
                .is_some_and(|v| v.contains("default-src 'self'")),
            "{path}: {:?}",
            r.headers
        );
    }
    // A header the handler set wins and is not doubled.
    let r = request(&server, "GET /framed HTTP/1.1\r\nHost: t\r\n\r\n");
    let frames: Vec<_> = r
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("x-frame-options"))
        .collect();
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0].1, "SAMEORIGIN");
    server.stop();
}

#[test]
fn hsts_when_asked() {
    let cfg = SecurityHeadersConfig {
        hsts: true,
        ..SecurityHeadersConfig::default()
    };
    let s = settings(drivers()[0]);
    let server = TestServer::start(&s, move |_| {
        let stack = Stack::new().security_headers(SecurityHeaders::new(&cfg).expect("valid"));
        (Router::new().get("/text", text).middleware(stack), ())
    });
    let r = request(&server, "GET /text HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=31536000; includeSubDomains")
    );
    server.stop();
}

#[test]
fn cors_allowed_disallowed_and_vary() {
    let server = start(cors_config());
    let allowed = request(
        &server,
        "GET /text HTTP/1.1\r\nHost: t\r\nOrigin: https://app.example\r\n\r\n",
    );
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(allowed.header("vary"), Some("Origin"));
    assert_eq!(
        allowed.header("access-control-expose-headers"),
        Some("x-request-id")
    );
    assert_eq!(allowed.header("access-control-allow-credentials"), None);
    let other = request(
        &server,
        "GET /text HTTP/1.1\r\nHost: t\r\nOrigin: https://evil.example\r\n\r\n",
    );
    assert_eq!(other.status, 200);
    assert_eq!(other.header("access-control-allow-origin"), None);
    assert_eq!(
        other.header("vary"),
        Some("Origin"),
        "the answer depends on the origin"
    );
    let null = request(
        &server,
        "GET /text HTTP/1.1\r\nHost: t\r\nOrigin: null\r\n\r\n",
    );
    assert_eq!(null.header("access-control-allow-origin"), None);
    let none = request(&server, "GET /text HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(none.header("vary"), Some("Origin"));
    server.stop();
}

#[test]
fn cors_adds_origin_to_a_vary_the_handler_set() {
    let server = start(cors_config());
    for origin in ["https://app.example", "https://evil.example"] {
        let r = request(
            &server,
            &format!("GET /varied HTTP/1.1\r\nHost: t\r\nOrigin: {origin}\r\n\r\n"),
        );
        let vary: Vec<&str> = r
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("vary"))
            .map(|(_, v)| v.as_str())
            .collect();
        // One line naming both: a cache reading one Vary line must still key by Origin.
        assert_eq!(vary, ["Accept-Encoding, Origin"], "{origin}");
    }
    let r = request(
        &server,
        "GET /varied-by-origin HTTP/1.1\r\nHost: t\r\nOrigin: https://app.example\r\n\r\n",
    );
    assert_eq!(r.header("vary"), Some("accept, origin"), "not named twice");
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    server.stop();
}

#[test]
fn cors_preflight() {
    let server = start(cors_config());
    let ok = request(
        &server,
        "OPTIONS /text HTTP/1.1\r\nHost: t\r\nOrigin: https://app.example\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: Content-Type\r\n\r\n",
    );
    assert_eq!(ok.status, 204);
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert!(ok
        .header("access-control-allow-methods")
        .is_some_and(|m| m.contains("POST")));
    assert!(ok
        .header("access-control-allow-headers")
        .is_some_and(|h| h.contains("content-type")));
    assert_eq!(ok.header("access-control-max-age"), Some("600"));
    assert!(ok.header("vary").is_some_and(|v| v.starts_with("Origin")));
    for bad in [
        "Origin: https://evil.example\r\nAccess-Control-Request-Method: POST",
        "Origin: https://app.example\r\nAccess-Control-Request-Method: CONNECT",
        "Origin: https://app.example\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: X-Secret",
    ] {
        let r = request(&server, &format!("OPTIONS /text HTTP/1.1\r\nHost: t\r\n{bad}\r\n\r\n"));
        assert_eq!(r.status, 403, "{bad}");
        assert_eq!(r.header("access-control-allow-origin"), None, "{bad}");
    }
    server.stop();
}

#[test]
fn cors_credentials_and_wildcard() {
    let creds = CorsConfig {
        allow_credentials: true,
        ..cors_config()
    };
    let server = start(creds);
    let r = request(
        &server,
        "GET /text HTTP/1.1\r\nHost: t\r\nOrigin: https://app.example\r\n\r\n",
    );
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    server.stop();
    // Any origin: `*`, no Vary (the answer does not depend on the origin).
    let any = CorsConfig {
        allowed_origins: vec!["*".into()],
        ..CorsConfig::default()
    };
    let server = start(any);
    let r = request(
        &server,
        "GET /text HTTP/1.1\r\nHost: t\r\nOrigin: https://whoever.example\r\n\r\n",
    );
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(r.header("vary"), None);
    server.stop();
    // Credentials with `*` is refused at start-up.
    let bad = CorsConfig {
        allowed_origins: vec!["*".into()],
        allow_credentials: true,
        ..CorsConfig::default()
    };
    assert!(Cors::new(&bad).is_err());
}

#[test]
fn request_ids_generated_or_taken_from_a_trusted_proxy() {
    let server = start(cors_config());
    let r = request(&server, "GET /whoami HTTP/1.1\r\nHost: t\r\n\r\n");
    // The test client is on loopback, which this stack trusts: its id is taken.
    let id = r.header("x-request-id").expect("an id").to_string();
    assert_eq!(id.len(), 32);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(r.text(), id, "handlers see the same id");
    let again = request(&server, "GET /whoami HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_ne!(again.header("x-request-id"), Some(id.as_str()));
    let proxied = request(
        &server,
        "GET /whoami HTTP/1.1\r\nHost: t\r\nX-Request-Id: abc-123\r\n\r\n",
    );
    assert_eq!(proxied.header("x-request-id"), Some("abc-123"));
    assert_eq!(proxied.text(), "abc-123");
    server.stop();
    // A stack that trusts no proxy replaces the id.
    let s = settings(drivers()[0]);
    let server = TestServer::start(&s, |_| {
        let stack = Stack::new().request_id(RequestId::new(|_| false, 7));
        (Router::new().get("/whoami", whoami).middleware(stack), ())
    });
    let r = request(
        &server,
        "GET /whoami HTTP/1.1\r\nHost: t\r\nX-Request-Id: abc-123\r\n\r\n",
    );
    assert_ne!(r.header("x-request-id"), Some("abc-123"));
    assert_eq!(r.header("x-request-id").map(str::len), Some(32));
    server.stop();
}

#[test]
fn server_timing_and_bare_routes() {
    let server = start(cors_config());
    let r = request(&server, "GET /text HTTP/1.1\r\nHost: t\r\n\r\n");
    let timing = r.header("server-timing").expect("server-timing");
    assert!(timing.starts_with("app;dur="), "{timing}");
    let ms: f64 = timing["app;dur=".len()..].parse().expect("a number");
    assert!((0.0..40.0).contains(&ms), "{timing}");
    // The duration is the request's own: a 40 ms handler shows at least 40 ms.
    let r = request(&server, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n");
    let timing = r.header("server-timing").expect("server-timing");
    let ms: f64 = timing["app;dur=".len()..].parse().expect("a number");
    assert!((40.0..5000.0).contains(&ms), "{timing}");
    // A bare route skips the whole chain.
    let r = request(&server, "GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 200);
    for h in [
        "x-request-id",
        "server-timing",
        "x-content-type-options",
        "vary",
    ] {
        assert_eq!(r.header(h), None, "{h} on a bare route");
    }
    // 405s go through the chain too.
    let r = request(&server, "DELETE /text HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    server.stop();
}
