//! Rate limiting: exact GCRA decisions and header values step by step on an injected clock,
//! the 429 answer byte for byte, client keys behind trusted proxies, the bounded in-process
//! store, and a limit enforced over real sockets across two worker threads.

mod common;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{drivers, settings, TestServer};
use pinion_server::ratelimit::{
    client_ip_from, gcra, parse_trusted_proxies, rate_limit_value, too_many_requests, ClientKey,
    Decision, HeaderMode, IpNet, KeyExtractor, LocalStore, Policy, RateStore, RATELIMIT,
    RATELIMIT_POLICY,
};
use pinion_server::{header, Ctx, Error, Request, Response, Router};

const S: u64 = 1_000_000_000;

fn five_per_minute() -> Policy {
    Policy::new("burst", 5, Duration::from_secs(60))
        .and_then(|p| p.with_burst(5))
        .expect("valid policy")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn key(s: &str) -> ClientKey {
    ClientKey::Ip(ip(s))
}

fn header_text<'a>(r: &'a Response, name: &header::HeaderName) -> Option<&'a str> {
    r.header_value(name).and_then(|v| v.to_str().ok())
}

#[test]
fn five_allowed_then_denied_with_exact_headers() {
    let policy = five_per_minute();
    let store = LocalStore::new(1000);
    let t0 = 3_600 * S;
    // (remaining, t) after each allowed request: T = 12 s, so the key runs 12 s further ahead
    // each time and the burst is whole again after `t` seconds.
    let expected = [(4, 12), (3, 24), (2, 36), (1, 48), (0, 60)];
    for (i, (r, t)) in expected.into_iter().enumerate() {
        let d = store.decide_at(&policy, key("192.0.2.1"), t0);
        assert!(d.allowed, "request {}", i + 1);
        let mut response = Response::text("ok");
        HeaderMode::Ietf.apply(&mut response, &policy, &d);
        assert_eq!(
            header_text(&response, &RATELIMIT_POLICY),
            Some("\"burst\";q=5;w=60")
        );
        let want = format!("\"burst\";r={r};t={t}");
        assert_eq!(header_text(&response, &RATELIMIT), Some(want.as_str()));
    }

    let denied = store.decide_at(&policy, key("192.0.2.1"), t0);
    assert!(!denied.allowed);
    assert_eq!(denied.remaining, 0);
    assert_eq!(denied.retry_after, Duration::from_secs(12));
    let response = too_many_requests(&policy, &denied, HeaderMode::Ietf);
    assert_eq!(response.status_code().as_u16(), 429);
    assert_eq!(header_text(&response, &header::RETRY_AFTER), Some("12"));
    assert_eq!(
        header_text(&response, &RATELIMIT),
        Some("\"burst\";r=0;t=60")
    );
    assert_eq!(
        header_text(&response, &RATELIMIT_POLICY),
        Some("\"burst\";q=5;w=60")
    );

    // Another client is untouched.
    assert!(store.decide_at(&policy, key("192.0.2.2"), t0).allowed);
}

#[test]
fn one_more_after_each_interval_and_all_after_a_window() {
    let policy = five_per_minute();
    let store = LocalStore::new(1000);
    let client = || key("2001:db8::1");
    for _ in 0..5 {
        assert!(store.decide_at(&policy, client(), 0).allowed);
    }
    // Just before T: denied, and Retry-After rounds the last nanosecond up to a second.
    let d = store.decide_at(&policy, client(), 12 * S - 1);
    assert!(!d.allowed);
    assert_eq!(d.retry_after_secs(), 1);
    let r = too_many_requests(&policy, &d, HeaderMode::Ietf);
    assert_eq!(header_text(&r, &header::RETRY_AFTER), Some("1"));
    // At T: exactly one more.
    let d = store.decide_at(&policy, client(), 12 * S);
    assert!(d.allowed);
    assert_eq!(
        rate_limit_value(&policy, &d).as_bytes(),
        b"\"burst\";r=0;t=60"
    );
    assert!(!store.decide_at(&policy, client(), 12 * S).allowed);
    // 7 s later the next request would come in 5 s.
    let d = store.decide_at(&policy, client(), 19 * S);
    assert!(!d.allowed);
    assert_eq!(d.retry_after, Duration::from_secs(5));
    assert_eq!(
        rate_limit_value(&policy, &d).as_bytes(),
        b"\"burst\";r=0;t=53"
    );
    // A whole window after the last allowed request: the full burst again.
    let allowed = (0..7)
        .filter(|_| store.decide_at(&policy, client(), 72 * S).allowed)
        .count();
    assert_eq!(allowed, 5);
}

#[test]
fn problem_json_body_is_exact() {
    let policy = five_per_minute();
    let mut tat = None;
    let mut last = None;
    for _ in 0..6 {
        let d = gcra(tat, 0, &policy);
        tat = Some(d.new_tat);
        last = Some(d);
    }
    let d = last.expect("six decisions");
    let r = too_many_requests(&policy, &d, HeaderMode::Ietf);
    assert_eq!(
        header_text(&r, &header::CONTENT_TYPE),
        Some("application/problem+json")
    );
    assert_eq!(
        std::str::from_utf8(r.body()).expect("utf-8"),
        r#"{"type":"about:blank","title":"Too Many Requests","status":429,"detail":"rate limit \"burst\" exceeded; retry in 12 s"}"#
    );

    // Off: no RateLimit fields, Retry-After still there.
    let r = too_many_requests(&policy, &d, HeaderMode::from_setting(false));
    assert!(r.header_value(&RATELIMIT).is_none());
    assert!(r.header_value(&RATELIMIT_POLICY).is_none());
    assert_eq!(header_text(&r, &header::RETRY_AFTER), Some("12"));

    // A name with a quote is escaped in both the JSON and the structured field.
    let odd = Policy::new("a\"b", 1, Duration::from_secs(10)).expect("valid");
    let d = gcra(Some(gcra(None, 0, &odd).new_tat), 0, &odd);
    let r = too_many_requests(&odd, &d, HeaderMode::Ietf);
    assert_eq!(
        std::str::from_utf8(r.body()).expect("utf-8"),
        r#"{"type":"about:blank","title":"Too Many Requests","status":429,"detail":"rate limit \"a\"b\" exceeded; retry in 10 s"}"#
    );
    assert_eq!(header_text(&r, &RATELIMIT), Some(r#""a\"b";r=0;t=10"#));
    assert_eq!(
        header_text(&r, &RATELIMIT_POLICY),
        Some(r#""a\"b";q=1;w=10"#)
    );
}

#[test]
fn decisions_rebuilt_from_a_remote_tat_match() {
    let policy = five_per_minute();
    let d = gcra(Some(30 * S), 10 * S, &policy);
    assert_eq!(Decision::from_tat(&policy, d.allowed, d.new_tat, 10 * S), d);
    assert_eq!(policy.emission_interval(), Duration::from_secs(12));
    assert_eq!(policy.tolerance(), Duration::from_secs(48));
    assert_eq!(
        policy.store_key(&key("192.0.2.9")),
        "\"burst\" ip:192.0.2.9"
    );
    assert_eq!(
        policy.store_key(&ClientKey::App("u 1".into())),
        "\"burst\" app:u 1"
    );
}

fn trusted(list: &str) -> Vec<IpNet> {
    parse_trusted_proxies(list).expect("valid list")
}

fn xff<'a>(lines: &'a [&'a str]) -> impl Iterator<Item = &'a [u8]> + 'a {
    lines.iter().map(|l| l.as_bytes())
}

#[test]
fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let proxies = trusted("10.0.0.0/8, 127.0.0.1/32, ::1/128");

    // An untrusted peer is the client, whatever it claims.
    assert_eq!(
        client_ip_from(ip("203.0.113.9"), xff(&["198.51.100.1"]), &proxies),
        ip("203.0.113.9")
    );
    // A trusted peer: the address it appended.
    assert_eq!(
        client_ip_from(ip("10.0.0.5"), xff(&["198.51.100.1"]), &proxies),
        ip("198.51.100.1")
    );
    // A chain of trusted proxies: the rightmost untrusted address; what the client itself sent
    // (left of it) is ignored.
    assert_eq!(
        client_ip_from(
            ip("127.0.0.1"),
            xff(&["1.1.1.1, 198.51.100.7, 10.2.3.4", "10.9.9.9"]),
            &proxies
        ),
        ip("198.51.100.7")
    );
    // Garbage before the client is reached: the peer.
    for bad in [
        "unknown",
        "198.51.100.1, _hidden",
        "not an ip",
        "",
        "198.51.100.1,",
    ] {
        assert_eq!(
            client_ip_from(ip("10.0.0.5"), xff(&[bad]), &proxies),
            ip("10.0.0.5"),
            "{bad:?}"
        );
    }
    // Garbage left of the client does not matter.
    assert_eq!(
        client_ip_from(ip("10.0.0.5"), xff(&["junk, 198.51.100.1"]), &proxies),
        ip("198.51.100.1")
    );
    // No field: the peer.
    assert_eq!(
        client_ip_from(ip("10.0.0.5"), xff(&[]), &proxies),
        ip("10.0.0.5")
    );
    // Every hop a trusted proxy: the leftmost.
    assert_eq!(
        client_ip_from(ip("10.0.0.5"), xff(&["10.0.0.1, 10.0.0.2"]), &proxies),
        ip("10.0.0.1")
    );
    // IPv6 peers and entries, with brackets and ports.
    assert_eq!(
        client_ip_from(ip("::1"), xff(&["[2001:db8::7]:443"]), &proxies),
        ip("2001:db8::7")
    );
    assert_eq!(
        client_ip_from(ip("::1"), xff(&["2001:db8::8, 10.1.1.1"]), &proxies),
        ip("2001:db8::8")
    );
    assert_eq!(
        client_ip_from(ip("2001:db8::99"), xff(&["192.0.2.1"]), &proxies),
        ip("2001:db8::99")
    );
    // Nobody trusted: always the peer.
    assert_eq!(
        client_ip_from(ip("127.0.0.1"), xff(&["192.0.2.1"]), &[]),
        ip("127.0.0.1")
    );
}

#[test]
fn trusted_proxy_lists_parse() {
    let nets = trusted("10.0.0.0/8, 127.0.0.1/32, ::1/128");
    let shown: Vec<String> = nets.iter().map(ToString::to_string).collect();
    assert_eq!(shown, ["10.0.0.0/8", "127.0.0.1/32", "::1/128"]);
    let nets = trusted(" 192.0.2.7 2001:db8::1,,172.16.5.4/12 ");
    let shown: Vec<String> = nets.iter().map(ToString::to_string).collect();
    assert_eq!(shown, ["192.0.2.7/32", "2001:db8::1/128", "172.16.0.0/12"]);
    assert!(trusted("").is_empty());
    let err = parse_trusted_proxies("10.0.0.0/8, localhost").expect_err("a name");
    assert!(err.to_string().contains("\"localhost\""), "{err}");
    assert!(parse_trusted_proxies("10.0.0.0/33").is_err());
}

#[test]
fn local_store_stays_bounded_and_forgets_idle_keys() {
    let policy = Policy::new("p", 1, Duration::from_secs(10)).expect("valid");
    let max = 1000;
    let store = LocalStore::new(max);
    for n in 0..(max as u32 + 500) {
        let client = ClientKey::Ip(IpAddr::from(n.to_be_bytes()));
        assert!(store.decide_at(&policy, client, 0).allowed);
        assert!(store.len() <= max);
    }
    assert!(store.len() <= max);
    assert!(
        store.len() > max / 2,
        "eviction keeps most keys: {}",
        store.len()
    );

    // Every key is idle 10 s later (T = 10 s): a sweep empties the store.
    assert_eq!(store.sweep(10 * S - 1), 0);
    let live = store.len();
    assert_eq!(store.sweep(10 * S), live);
    assert!(store.is_empty());
}

#[test]
fn one_limit_across_threads() {
    let policy = Arc::new(Policy::new("shared", 100, Duration::from_secs(3600)).expect("valid"));
    let store = LocalStore::shared(10_000);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (store, policy) = (Arc::clone(&store), Arc::clone(&policy));
            std::thread::spawn(move || {
                (0..100)
                    .filter(|_| store.decide_at(&policy, key("192.0.2.50"), 0).allowed)
                    .count()
            })
        })
        .collect();
    let allowed: usize = threads.into_iter().map(|t| t.join().expect("thread")).sum();
    assert_eq!(allowed, 100);
}

/// What the test server's handler limits with.
struct Limited {
    store: Arc<LocalStore>,
    policy: Policy,
    keys: KeyExtractor,
}

async fn limited(req: Request, ctx: &Ctx<Limited>) -> Result<Response, Error> {
    let s = ctx.state();
    let client = s.keys.key(&req);
    let shown = client.to_string();
    let decision = RateStore::decide(&s.store, &s.policy, client).await?;
    if !decision.allowed {
        return Ok(too_many_requests(&s.policy, &decision, HeaderMode::Ietf));
    }
    let mut response = Response::text(shown);
    HeaderMode::Ietf.apply(&mut response, &s.policy, &decision);
    Ok(response)
}

#[test]
fn limits_over_sockets_behind_a_trusted_proxy() {
    for driver in drivers() {
        let store = LocalStore::shared(1000);
        let s = pinion_config::Settings {
            threads: Some(2),
            ..settings(driver)
        };
        let server = TestServer::start(&s, move |_| {
            let state = Limited {
                store: Arc::clone(&store),
                policy: Policy::new("api", 3, Duration::from_secs(60)).expect("valid"),
                keys: KeyExtractor::new(trusted("127.0.0.0/8"))
                    .with_app_key(|r| r.header_str("x-user").map(str::to_string)),
            };
            (Router::new().get("/", limited), state)
        });
        let get = |extra: &str| {
            let mut c = server.connect();
            c.send(format!("GET / HTTP/1.1\r\nHost: t\r\n{extra}\r\n").as_bytes());
            c.response()
        };
        for (i, r) in ["2", "1", "0"].into_iter().enumerate() {
            let resp = get("X-Forwarded-For: 6.6.6.6, 198.51.100.1\r\n");
            assert_eq!(resp.status, 200, "{driver:?} request {i}");
            assert_eq!(resp.text(), "ip:198.51.100.1");
            assert_eq!(resp.header("ratelimit-policy"), Some("\"api\";q=3;w=60"));
            let want = format!("\"api\";r={r};t={}", 20 * (i + 1));
            assert_eq!(resp.header("ratelimit"), Some(want.as_str()));
        }
        // The fourth, on another connection (maybe another worker): denied.
        let resp = get("X-Forwarded-For: 198.51.100.1\r\n");
        assert_eq!(resp.status, 429, "{driver:?}");
        assert_eq!(resp.header("retry-after"), Some("20"));
        assert_eq!(
            resp.header("content-type"),
            Some("application/problem+json")
        );
        assert_eq!(resp.header("ratelimit"), Some("\"api\";r=0;t=60"));
        assert!(resp.text().contains(r#""status":429"#), "{}", resp.text());
        // Other clients, the proxy itself, and application keys count separately.
        assert_eq!(get("X-Forwarded-For: 198.51.100.2\r\n").status, 200);
        let resp = get("");
        assert_eq!((resp.status, resp.text().as_str()), (200, "ip:127.0.0.1"));
        let resp = get("X-User: 7\r\nX-Forwarded-For: 198.51.100.1\r\n");
        assert_eq!((resp.status, resp.text().as_str()), (200, "app:7"));
        server.stop();
    }
}

#[test]
fn a_policy_on_unsafe_methods_leaves_the_page_free_and_limits_its_submissions() {
    use pinion_server::middleware::RateLimit;
    use pinion_server::testing::{block_on, TestClient};
    use pinion_server::{RouteOptions, Stack, StatusCode};

    async fn page() -> &'static str {
        "the form"
    }
    block_on(async {
        let limiter = RateLimit::new(
            LocalStore::shared(100),
            vec![Policy::new("login", 5, Duration::from_secs(60)).expect("valid")],
            None,
            KeyExtractor::new(Vec::new()),
            HeaderMode::Ietf,
        );
        let router = Router::new()
            .get("/login", page)
            .post("/login", page)
            .configure("/login", RouteOptions::new().rate_limit_unsafe("login"))
            .middleware(Stack::new().rate_limit(limiter));
        let client = TestClient::new(&pinion_config::Settings::default(), router, ());
        for _ in 0..10 {
            let shown = client.get("/login").send().await;
            assert_eq!(shown.status(), StatusCode::OK);
            assert_eq!(shown.header("ratelimit"), None, "GETs are not counted");
        }
        for attempt in 1..=5 {
            let sent = client.post("/login").send().await;
            assert_eq!(sent.status(), StatusCode::OK, "attempt {attempt}");
        }
        let sixth = client.post("/login").send().await;
        assert_eq!(sixth.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(sixth.header("retry-after").is_some());
        assert_eq!(
            client.get("/login").send().await.status(),
            StatusCode::OK,
            "the page stays"
        );
    });
}
