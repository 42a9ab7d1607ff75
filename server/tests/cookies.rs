//! Cookies over real sockets and through the test client: plain, signed and private cookies
//! round-trip with their default attributes; a tampered one is absent; a cookie signed with a
//! key now in `secret_key_fallbacks` is accepted and signed again with the new key.

mod common;

use common::{drivers, settings, Resp, TestServer};
use pinion_config::{SecretKey, Settings};
use pinion_server::cookie::{Cookie, CookieJar};
use pinion_server::{Ctx, Request, Router};

const KEY_OLD: &str = "the-old-key-0123456789abcdef0123456789";
const KEY_NEW: &str = "the-new-key-0123456789abcdef0123456789";

async fn set(mut jar: CookieJar) -> (CookieJar, &'static str) {
    jar.add(("theme", "dark mode"));
    jar.signed().add(("user", "alice"));
    jar.private()
        .add(Cookie::build(("cart", "3 items")).max_age(cookie_days(7)));
    (jar, "set")
}

fn cookie_days(n: i64) -> pinion_server::cookie::time::Duration {
    pinion_server::cookie::time::Duration::days(n)
}

async fn read(mut jar: CookieJar) -> (CookieJar, String) {
    let theme = jar.get("theme").map(|c| c.value().to_string());
    let user = jar.signed().get("user").map(|c| c.value().to_string());
    let cart = jar.private().get("cart").map(|c| c.value().to_string());
    let shown = [theme, user, cart].map(|v| v.unwrap_or_else(|| "-".to_string()));
    (jar, shown.join("|"))
}

async fn logout(mut jar: CookieJar) -> (CookieJar, &'static str) {
    jar.remove("user");
    (jar, "bye")
}

async fn https(ctx: &Ctx<()>, req: Request) -> String {
    ctx.is_https(&req).to_string()
}

fn app() -> Router<()> {
    Router::new()
        .get("/set", set)
        .get("/read", read)
        .post("/logout", logout)
        .get("/https", https)
}

fn with_keys(current: &str, fallbacks: &[&str]) -> Settings {
    Settings {
        secret_key: Some(SecretKey::parse(current).expect("key")),
        secret_key_fallbacks: fallbacks
            .iter()
            .map(|k| SecretKey::parse(k).expect("fallback"))
            .collect(),
        ..settings(drivers()[0])
    }
}

fn start(settings: &Settings) -> TestServer {
    TestServer::start(settings, |_| (app(), ()))
}

fn get(server: &TestServer, path: &str, extra: &str) -> Resp {
    let mut c = server.connect();
    c.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n").as_bytes());
    c.response()
}

/// The `Set-Cookie` lines of a response.
fn set_cookies(r: &Resp) -> Vec<&str> {
    r.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The `name=value` of the `Set-Cookie` for `name`.
fn pair<'a>(cookies: &[&'a str], name: &str) -> &'a str {
    cookies
        .iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no Set-Cookie for {name} in {cookies:?}"))
        .split(';')
        .next()
        .unwrap_or_default()
}

/// A `Cookie:` request header carrying `pairs`.
fn cookie_header(pairs: &[&str]) -> String {
    format!("Cookie: {}\r\n", pairs.join("; "))
}

#[test]
fn cookies_round_trip_with_safe_defaults() {
    for driver in drivers() {
        let server = start(&Settings {
            io_driver: driver,
            ..with_keys(KEY_NEW, &[])
        });
        let r = get(&server, "/set", "");
        assert_eq!(r.status, 200);
        let cookies = set_cookies(&r);
        assert_eq!(cookies.len(), 3, "{cookies:?}");
        for c in &cookies {
            for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
                assert!(c.contains(attribute), "{c} lacks {attribute}");
            }
            assert!(!c.contains("Secure"), "plain HTTP, so not Secure: {c}");
        }
        assert_eq!(pair(&cookies, "theme"), "theme=dark%20mode");
        let user = pair(&cookies, "user");
        assert!(
            user.ends_with("alice") && user.len() > "user=alice".len() + 40,
            "{user}"
        );
        let cart = pair(&cookies, "cart");
        assert!(
            !cart.contains("items"),
            "private cookies are encrypted: {cart}"
        );
        let cart_line = cookies
            .iter()
            .find(|c| c.starts_with("cart="))
            .expect("cart");
        assert!(cart_line.contains("Max-Age=604800"), "{cart_line}");

        let all = cookie_header(&[pair(&cookies, "theme"), user, cart]);
        let r = get(&server, "/read", &all);
        assert_eq!(r.text(), "dark mode|alice|3 items");
        assert!(set_cookies(&r).is_empty(), "nothing changed, nothing set");

        let r = get(&server, "/read", "");
        assert_eq!(r.text(), "-|-|-");
        server.stop();
    }
}

#[test]
fn a_tampered_cookie_is_absent() {
    let server = start(&with_keys(KEY_NEW, &[]));
    let cookies = set_cookies(&get(&server, "/set", "")).join("\n");
    let cookies: Vec<&str> = cookies.lines().collect();
    let user = pair(&cookies, "user");
    let forged = user.replace("alice", "admin");
    let cart = pair(&cookies, "cart");
    // Flip one character of the ciphertext.
    let mut bytes = cart.as_bytes().to_vec();
    let last = bytes.len() - 2;
    bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
    let bad_cart = String::from_utf8(bytes).expect("ascii");
    let r = get(&server, "/read", &cookie_header(&[&forged, &bad_cart]));
    assert_eq!(r.text(), "-|-|-");
    // A plain cookie under the signed cookie's name is not a signed cookie either.
    let r = get(&server, "/read", &cookie_header(&["user=admin"]));
    assert_eq!(r.text(), "-|-|-");
    server.stop();
}

#[test]
fn a_cookie_under_a_fallback_key_is_accepted_and_signed_again() {
    let old = start(&with_keys(KEY_OLD, &[]));
    let cookies = set_cookies(&get(&old, "/set", "")).join("\n");
    old.stop();
    let cookies: Vec<&str> = cookies.lines().collect();
    let (user, cart) = (pair(&cookies, "user"), pair(&cookies, "cart"));

    // Rotated: the old key is now a fallback.
    let rotated = start(&with_keys(KEY_NEW, &[KEY_OLD]));
    let r = get(&rotated, "/read", &cookie_header(&[user, cart]));
    assert_eq!(r.text(), "-|alice|3 items");
    let resealed = set_cookies(&r);
    assert_eq!(resealed.len(), 2, "both written again: {resealed:?}");
    let (new_user, new_cart) = (pair(&resealed, "user"), pair(&resealed, "cart"));
    assert_ne!(new_user, user);
    assert_ne!(new_cart, cart);
    rotated.stop();

    // Only the new key: the re-signed cookies verify, the old ones no longer do.
    let new_only = start(&with_keys(KEY_NEW, &[]));
    let r = get(&new_only, "/read", &cookie_header(&[new_user, new_cart]));
    assert_eq!(r.text(), "-|alice|3 items");
    let r = get(&new_only, "/read", &cookie_header(&[user, cart]));
    assert_eq!(r.text(), "-|-|-");
    new_only.stop();
}

#[test]
fn without_a_secret_key_each_process_signs_with_its_own_random_key() {
    let a = start(&settings(drivers()[0]));
    let cookies = set_cookies(&get(&a, "/set", "")).join("\n");
    let cookies: Vec<&str> = cookies.lines().collect();
    let header = cookie_header(&[pair(&cookies, "user")]);
    assert_eq!(get(&a, "/read", &header).text(), "-|alice|-");
    let b = start(&settings(drivers()[0]));
    assert_eq!(get(&b, "/read", &header).text(), "-|-|-");
    a.stop();
    b.stop();
}

#[test]
fn secure_only_when_a_trusted_proxy_says_https() {
    let proto = "X-Forwarded-Proto: https\r\n";
    let server = start(&with_keys(KEY_NEW, &[]));
    let r = get(&server, "/set", proto);
    for c in set_cookies(&r) {
        assert!(c.contains("Secure"), "{c}");
    }
    assert_eq!(get(&server, "/https", proto).text(), "true");
    assert_eq!(
        get(&server, "/https", "X-Forwarded-Proto: http\r\n").text(),
        "false"
    );
    assert_eq!(get(&server, "/https", "").text(), "false");
    server.stop();

    // Loopback is not trusted here, so its word is not taken.
    let untrusting = start(&Settings {
        trusted_proxies: Vec::new(),
        ..with_keys(KEY_NEW, &[])
    });
    let r = get(&untrusting, "/set", proto);
    for c in set_cookies(&r) {
        assert!(!c.contains("Secure"), "{c}");
    }
    assert_eq!(get(&untrusting, "/https", proto).text(), "false");
    untrusting.stop();
}

#[test]
fn removing_a_cookie_expires_it() {
    let server = start(&with_keys(KEY_NEW, &[]));
    let cookies = set_cookies(&get(&server, "/set", "")).join("\n");
    let cookies: Vec<&str> = cookies.lines().collect();
    let mut c = server.connect();
    let header = cookie_header(&[pair(&cookies, "user")]);
    c.send(
        format!("POST /logout HTTP/1.1\r\nHost: t\r\n{header}Content-Length: 0\r\n\r\n").as_bytes(),
    );
    let r = c.response();
    let removal = set_cookies(&r);
    assert_eq!(removal.len(), 1, "{removal:?}");
    assert!(removal[0].starts_with("user=;"), "{}", removal[0]);
    assert!(removal[0].contains("Max-Age=0"), "{}", removal[0]);
    assert!(removal[0].contains("Path=/"), "{}", removal[0]);
    server.stop();
}

mod without_a_socket {
    use super::*;
    use pinion_server::testing::{block_on, TestClient};
    use std::sync::{Arc, Mutex};

    /// A `tracing` writer into a shared buffer, to read what the server logged.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("log buffer").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn round_trip_and_tampering_is_logged_at_debug_without_the_value() {
        let log = Captured::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            block_on(async {
                let client = TestClient::new(&with_keys(KEY_NEW, &[]), app(), ());
                let r = client.get("/set").send().await;
                let cookies = r.header_all("set-cookie");
                assert_eq!(cookies.len(), 3, "{cookies:?}");
                let (user, cart) = (pair(&cookies, "user"), pair(&cookies, "cart"));
                let r = client
                    .get("/read")
                    .header("cookie", format!("{user}; {cart}"))
                    .send()
                    .await;
                assert_eq!(r.text(), "-|alice|3 items");
                let forged = user.replace("alice", "mallory");
                let r = client.get("/read").header("cookie", &forged).send().await;
                assert_eq!(r.text(), "-|-|-");
            })
        });
        let logged = String::from_utf8_lossy(&log.0.lock().expect("log")).into_owned();
        let line = logged
            .lines()
            .find(|l| l.contains("cookie failed verification"))
            .unwrap_or_else(|| panic!("no debug line for the forged cookie:\n{logged}"));
        assert!(
            line.contains("DEBUG") && line.contains("cookie=\"user\""),
            "{line}"
        );
        assert!(
            !logged.contains("mallory"),
            "the value is not logged:\n{logged}"
        );
    }
}
