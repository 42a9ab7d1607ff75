//! Sessions and CSRF against the real PostgreSQL `scripts/pg` starts, through the server's
//! own connection loop (`TestClient`): cookies and their flags, tampering, rotation, logout
//! seen by another instance, timeouts on a manual clock, writes only when something changed,
//! and every CSRF refusal.

#[path = "../../orm/tests/common/mod.rs"]
mod common;

use std::rc::Rc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{eventually, run, Cluster};
use pinion_config::Settings;
use pinion_orm::query_cache::{listen, Listener};
use pinion_orm::{ConnectOptions, ConnectionManager, DbConfig, QueryCache};
use pinion_server::extract::{Form, Path};
use pinion_server::testing::{TestClient, TestResponse};
use pinion_server::{Response, Router, StatusCode};
use pinion_web::session::{Session, SessionLayer, Sessions};
use pinion_web::Result;

const SCHEMA: &str = include_str!("../../migrations/0002_sessions.sql");

/// One instance: its own connection manager, query cache and listener, like a process.
struct Instance {
    db: Rc<ConnectionManager>,
    client: TestClient<()>,
    _listener: Listener,
}

#[derive(serde::Deserialize)]
struct Pair {
    name: String,
    value: String,
}

#[derive(serde::Deserialize)]
struct Login {
    user: i64,
}

async fn token(session: Session) -> Result<String> {
    session.csrf_token()
}

async fn set(session: Session, Form(p): Form<Pair>) -> Result<&'static str> {
    session.insert(&p.name, p.value)?;
    Ok("stored")
}

async fn get(session: Session, Path(name): Path<String>) -> String {
    session.get::<String>(&name).unwrap_or_else(|| "-".into())
}

async fn login(session: Session, Form(l): Form<Login>) -> Result<&'static str> {
    session.login(l.user)?;
    Ok("in")
}

async fn logout(session: Session) -> &'static str {
    session.logout();
    "out"
}

async fn whoami(session: Session) -> String {
    session
        .user_id()
        .map_or("anonymous".into(), |u| u.to_string())
}

async fn api() -> &'static str {
    "api"
}

async fn public() -> Response {
    Response::text("public")
}

fn settings() -> Settings {
    let source = pinion_config::Source::new().with_env([
        ("PINION_TRUSTED_PROXIES", "127.0.0.1/32"),
        (
            "PINION_SECRET_KEY",
            "a test secret key of at least 32 bytes!!",
        ),
    ]);
    Settings::load(&source).expect("settings")
}

fn instance(url: &str, sessions: &Sessions) -> Instance {
    let qc: Arc<QueryCache> = common::cache();
    let mut cfg = DbConfig::new(url.to_string(), vec![]);
    cfg.connect.connect_timeout = Duration::from_secs(3);
    cfg.query_cache = Some(Arc::clone(&qc));
    let db = ConnectionManager::start(&cfg).expect("db");
    let opts = ConnectOptions {
        connect_timeout: Duration::from_secs(3),
        ..ConnectOptions::default()
    };
    let listener = listen(qc, url, opts).expect("listener");
    let router = Router::new()
        .get("/token", token)
        .post("/set", set)
        .get("/get/{name}", get)
        .post("/login", login)
        .post("/logout", logout)
        .get("/whoami", whoami)
        .post("/api/ping", api)
        .layer(SessionLayer::new(sessions, Rc::clone(&db)))
        .post("/public", public);
    Instance {
        db,
        client: TestClient::new(&settings(), router, ()),
        _listener: listener,
    }
}

/// A browser's cookie store, for one site: what `Set-Cookie` said last, by name.
#[derive(Default, Clone)]
struct Browser {
    cookies: Vec<(String, String)>,
}

impl Browser {
    fn take(&mut self, resp: &TestResponse) {
        for line in resp.header_all("set-cookie") {
            let pair = line.split(';').next().unwrap_or_default();
            let (name, value) = pair.split_once('=').expect("name=value");
            self.cookies.retain(|(n, _)| n != name);
            let removed = line.to_ascii_lowercase().contains("max-age=0");
            if !removed {
                self.cookies.push((name.to_string(), value.to_string()));
            }
        }
    }

    fn header(&self) -> String {
        self.cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// GET `path`, keeping the cookies it sets.
    async fn get(&mut self, at: &Instance, path: &str) -> TestResponse {
        let resp = at
            .client
            .get(path)
            .header("cookie", self.header())
            .send()
            .await;
        self.take(&resp);
        resp
    }

    /// A same-origin form POST with this session's token.
    async fn post(&mut self, at: &Instance, path: &str, form: &[(&str, &str)]) -> TestResponse {
        let token = self.get(at, "/token").await.text();
        let mut fields: Vec<(&str, &str)> = form.to_vec();
        fields.push(("csrf_token", &token));
        let resp = at
            .client
            .post(path)
            .header("cookie", self.header())
            .header("origin", "http://pinion.test")
            .header("host", "pinion.test")
            .header("sec-fetch-site", "same-origin")
            .form(&fields)
            .send()
            .await;
        self.take(&resp);
        resp
    }
}

/// A database of this test's own with the sessions table.
fn database(cluster: &Cluster, prefix: &str) -> String {
    let url = cluster.fresh_database(prefix);
    run(async {
        let db = common::primary_only(&url);
        db.primary().batch_execute(SCHEMA).await.expect("schema");
    });
    url
}

async fn rows(db: &ConnectionManager) -> i64 {
    db.primary()
        .query_one("SELECT count(*) FROM pinion_sessions", &[])
        .await
        .expect("count")
        .get(0)
}

#[test]
fn cookies_are_signed_http_only_lax_and_host_prefixed_over_https() {
    let cluster = Cluster::shared();
    let url = database(&cluster, "web_sessions_cookies");
    run(async {
        let sessions = Sessions::new(Duration::from_secs(1800), Duration::from_secs(8 * 3600));
        let app = instance(&url, &sessions);

        // Reading an empty session writes nothing and sets nothing.
        let resp = app.client.get("/whoami").send().await;
        assert_eq!(resp.text(), "anonymous");
        assert!(resp.header_all("set-cookie").is_empty());
        assert_eq!(rows(&app.db).await, 0);

        let resp = app.client.get("/token").send().await;
        let set = resp
            .header("set-cookie")
            .expect("a session for the token")
            .to_string();
        assert!(set.starts_with("pinion_session="), "{set}");
        for flag in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=28800"] {
            assert!(set.contains(flag), "{flag} in {set}");
        }
        assert!(!set.contains("Secure"), "plain HTTP: {set}");
        assert_eq!(resp.header("cache-control"), Some("private, no-store"));
        assert_eq!(rows(&app.db).await, 1, "the token's session is stored");
        let id = set["pinion_session=".len()..]
            .split(';')
            .next()
            .expect("value");
        // The row is keyed by the id's SHA-256, never the id.
        let raw_ids: i64 = app
            .db
            .primary()
            .query_one(
                "SELECT count(*) FROM pinion_sessions WHERE position($1::bytea in key) > 0",
                &[&id.as_bytes()],
            )
            .await
            .expect("search")
            .get(0);
        assert_eq!(raw_ids, 0);

        // Over HTTPS (a trusted proxy says so): the __Host- name and Secure.
        let resp = app
            .client
            .get("/token")
            .header("x-forwarded-proto", "https")
            .send()
            .await;
        let set = resp.header("set-cookie").expect("cookie").to_string();
        assert!(set.starts_with("__Host-pinion_session="), "{set}");
        assert!(
            set.contains("Secure") && set.contains("Path=/") && !set.contains("Domain"),
            "{set}"
        );

        // From an untrusted peer the header is not believed.
        let resp = app
            .client
            .get("/token")
            .header("x-forwarded-proto", "https")
            .peer("192.0.2.7:5000".parse().expect("addr"))
            .send()
            .await;
        let set = resp.header("set-cookie").expect("cookie").to_string();
        assert!(
            set.starts_with("pinion_session=") && !set.contains("Secure"),
            "{set}"
        );
    });
    cluster.drop_database(&url);
}

#[test]
fn a_tampered_cookie_starts_anonymous_and_login_rotates_the_id() {
    let cluster = Cluster::shared();
    let url = database(&cluster, "web_sessions_rotate");
    run(async {
        let sessions = Sessions::new(Duration::from_secs(1800), Duration::from_secs(8 * 3600));
        let app = instance(&url, &sessions);
        let mut browser = Browser::default();
        assert_eq!(
            browser
                .post(&app, "/set", &[("name", "cart"), ("value", "3 books")])
                .await
                .text(),
            "stored"
        );
        assert_eq!(browser.get(&app, "/get/cart").await.text(), "3 books");

        // One character of the signed value changed: not this session, and the cookie goes.
        let (name, value) = browser.cookies[0].clone();
        let mut chars: Vec<char> = value.chars().collect();
        let last = chars.len() - 1;
        chars[last] = if chars[last] == 'A' { 'B' } else { 'A' };
        let tampered: String = chars.into_iter().collect();
        let resp = app
            .client
            .get("/get/cart")
            .header("cookie", format!("{name}={tampered}"))
            .send()
            .await;
        assert_eq!(resp.text(), "-", "a tampered cookie opens nothing");
        let removal = resp.header("set-cookie").expect("the bad cookie removed");
        assert!(removal.contains("Max-Age=0"), "{removal}");

        // Login: a new id, the values kept, the old id dead.
        let before = browser.clone();
        assert_eq!(
            browser.post(&app, "/login", &[("user", "42")]).await.text(),
            "in"
        );
        assert_ne!(browser.cookies, before.cookies, "a new cookie at login");
        assert_eq!(browser.get(&app, "/whoami").await.text(), "42");
        assert_eq!(browser.get(&app, "/get/cart").await.text(), "3 books");
        let mut old = before;
        assert_eq!(
            old.get(&app, "/whoami").await.text(),
            "anonymous",
            "the id before the login"
        );
        assert_eq!(old.get(&app, "/get/cart").await.text(), "-");
        assert_eq!(rows(&app.db).await, 1, "re-keyed, not copied");
    });
    cluster.drop_database(&url);
}

#[test]
fn two_instances_share_a_session_and_a_logout_ends_it_on_both() {
    let cluster = Cluster::shared();
    let url = database(&cluster, "web_sessions_shared");
    run(async {
        let sessions_a = Sessions::new(Duration::from_secs(1800), Duration::from_secs(8 * 3600));
        let sessions_b = Sessions::new(Duration::from_secs(1800), Duration::from_secs(8 * 3600));
        let (a, b) = (instance(&url, &sessions_a), instance(&url, &sessions_b));
        for at in [&a, &b] {
            let qc = at.db.query_cache().expect("query cache");
            assert!(
                eventually(Duration::from_secs(10), async || qc.is_in_sync()).await,
                "listener up"
            );
        }
        let mut browser = Browser::default();
        browser.post(&a, "/login", &[("user", "7")]).await;
        // B reads it (and keeps it in its L1: the second read is a hit).
        assert_eq!(browser.get(&b, "/whoami").await.text(), "7");
        let hits = sessions_b.l1_stats().hits;
        assert_eq!(browser.get(&b, "/whoami").await.text(), "7");
        assert_eq!(sessions_b.l1_stats().hits, hits + 1, "answered from B's L1");
        // A value written through B is seen by A.
        browser
            .post(&b, "/set", &[("name", "theme"), ("value", "dark")])
            .await;
        assert!(
            eventually(Duration::from_secs(5), async || {
                browser.clone().get(&a, "/get/theme").await.text() == "dark"
            })
            .await,
            "A sees B's write"
        );

        // Logout on A: the row is deleted, and B's L1 entry goes with the notification.
        let kept = browser.clone();
        assert_eq!(
            kept.clone().get(&b, "/whoami").await.text(),
            "7",
            "B holds it in its L1"
        );
        assert_eq!(browser.post(&a, "/logout", &[]).await.text(), "out");
        assert!(browser.cookies.is_empty(), "the cookie is removed");
        assert_eq!(rows(&a.db).await, 0);
        assert!(
            eventually(Duration::from_secs(5), async || {
                kept.clone().get(&b, "/whoami").await.text() == "anonymous"
            })
            .await,
            "the old cookie stops working on B"
        );
        assert_eq!(kept.clone().get(&a, "/whoami").await.text(), "anonymous");
    });
    cluster.drop_database(&url);
}

#[test]
fn idle_and_absolute_timeouts_end_a_session_and_reads_write_only_when_due() {
    let cluster = Cluster::shared();
    let url = database(&cluster, "web_sessions_timeouts");
    run(async {
        let now = Arc::new(AtomicI64::new(1_000_000));
        let clock = Arc::clone(&now);
        // 10 minutes idle, 1 hour absolute; a read writes its time every 30 s at most.
        let sessions = Sessions::new(Duration::from_secs(600), Duration::from_secs(3600))
            .with_clock(move || clock.load(Ordering::SeqCst));
        let app = instance(&url, &sessions);
        let seen = async || -> i64 {
            app.db
                .primary()
                .query_one("SELECT seen_at FROM pinion_sessions", &[])
                .await
                .expect("row")
                .get(0)
        };
        let mut browser = Browser::default();
        browser.post(&app, "/login", &[("user", "1")]).await;
        assert_eq!(seen().await, 1_000_000);

        // Read 10 s later: nothing written. 40 s later: the time is written.
        now.fetch_add(10, Ordering::SeqCst);
        assert_eq!(browser.get(&app, "/whoami").await.text(), "1");
        assert_eq!(
            seen().await,
            1_000_000,
            "a read within the touch interval writes nothing"
        );
        now.fetch_add(30, Ordering::SeqCst);
        assert_eq!(browser.get(&app, "/whoami").await.text(), "1");
        assert_eq!(seen().await, 1_000_040);

        // Used every 9 minutes it lives on, until the absolute hour.
        for _ in 0..6 {
            now.fetch_add(540, Ordering::SeqCst);
            assert_eq!(browser.get(&app, "/whoami").await.text(), "1");
        }
        // 1 000 040 + 3 240 = 1 003 280 < 1 003 600: still alive; 6 minutes later, past the hour.
        now.fetch_add(360, Ordering::SeqCst);
        assert_eq!(
            browser.get(&app, "/whoami").await.text(),
            "anonymous",
            "absolute timeout"
        );

        // Idle: a new login, then 10 minutes without a request.
        browser.post(&app, "/login", &[("user", "2")]).await;
        now.fetch_add(599, Ordering::SeqCst);
        assert_eq!(
            browser.get(&app, "/whoami").await.text(),
            "2",
            "just inside the idle timeout"
        );
        now.fetch_add(600, Ordering::SeqCst);
        assert_eq!(
            browser.get(&app, "/whoami").await.text(),
            "anonymous",
            "idle timeout"
        );

        // The purge deletes the expired rows (and only those).
        let mut live = Browser::default();
        live.post(&app, "/login", &[("user", "3")]).await;
        assert!(rows(&app.db).await >= 2);
        let purged = sessions.purge(&app.db).await.expect("purge");
        assert!(purged >= 1, "{purged}");
        assert_eq!(rows(&app.db).await, 1);
        assert_eq!(live.get(&app, "/whoami").await.text(), "3");
    });
    cluster.drop_database(&url);
}

#[test]
fn unsafe_requests_need_this_sessions_token_and_a_same_site_origin() {
    let cluster = Cluster::shared();
    let url = database(&cluster, "web_sessions_csrf");
    run(async {
        let sessions = Sessions::new(Duration::from_secs(1800), Duration::from_secs(8 * 3600))
            .trusted_origins(["https://admin.pinion.test".to_string()])
            .csrf_exempt("/api/");
        let app = instance(&url, &sessions);
        let mut me = Browser::default();
        let token = me.get(&app, "/token").await.text();
        let mut other = Browser::default();
        let other_token = other.get(&app, "/token").await.text();

        let post = |cookie: String, fields: Vec<(&'static str, String)>| {
            app.client
                .post("/set")
                .header("cookie", cookie)
                .header("host", "pinion.test")
                .form(&fields)
        };
        let base = || vec![("name", "k".to_string()), ("value", "v".to_string())];
        let with = |t: &str| {
            let mut f = base();
            f.push(("csrf_token", t.to_string()));
            f
        };
        let refused = |resp: &TestResponse, why: &str| {
            assert_eq!(
                resp.status(),
                StatusCode::FORBIDDEN,
                "{why}: {}",
                resp.text()
            );
        };

        refused(&post(me.header(), base()).send().await, "no token");
        refused(
            &post(me.header(), with("AAAA")).send().await,
            "a malformed token",
        );
        refused(
            &post(me.header(), with(&other_token)).send().await,
            "another session's token",
        );
        refused(
            &post(String::new(), with(&token)).send().await,
            "a token without its session",
        );
        refused(
            &post(me.header(), with(&token))
                .header("sec-fetch-site", "cross-site")
                .send()
                .await,
            "Sec-Fetch-Site: cross-site",
        );
        refused(
            &post(me.header(), with(&token))
                .header("origin", "https://evil.example")
                .send()
                .await,
            "a foreign Origin",
        );
        refused(
            &post(me.header(), with(&token))
                .header("origin", "https://pinion.test")
                .send()
                .await,
            "the right host over the wrong scheme",
        );
        // The 403 page says what to do, in HTML for a browser.
        let page = post(me.header(), base())
            .header("accept", "text/html")
            .send()
            .await;
        refused(&page, "no token (HTML)");
        assert!(page.text().contains("Reload the page"), "{}", page.text());

        // Accepted: the form field, the header, this site's and a trusted origin.
        let ok = post(me.header(), with(&token))
            .header("origin", "http://pinion.test")
            .header("sec-fetch-site", "same-origin")
            .send()
            .await;
        assert_eq!(
            (ok.status(), ok.text().as_str()),
            (StatusCode::OK, "stored")
        );
        let ok = post(me.header(), base())
            .header("x-csrf-token", &token)
            .header("origin", "https://admin.pinion.test")
            .send()
            .await;
        assert_eq!(ok.status(), StatusCode::OK, "{}", ok.text());
        // A token stays valid for the session's life, not one use.
        assert_eq!(
            post(me.header(), with(&token)).send().await.status(),
            StatusCode::OK
        );

        // Exempt and unwrapped routes take no token.
        let api = app.client.post("/api/ping").body("{}").send().await;
        assert_eq!((api.status(), api.text().as_str()), (StatusCode::OK, "api"));
        let public = app.client.post("/public").send().await;
        assert_eq!(public.status(), StatusCode::OK);
    });
    cluster.drop_database(&url);
}
