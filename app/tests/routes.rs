//! The app's routes through the test client, without a socket or a database: the same router
//! and state `pinion serve` builds per worker, answered by the server's own connection loop.

use std::sync::Arc;
use std::time::Duration;

use pinion_app::live::WorldFeed;
use pinion_app::{router, AppState};
use pinion_cache::{CacheConfig, LocMemCache, LocMemConfig, StampedeProtection, XFetchConfig};
use pinion_config::Settings;
use pinion_server::testing::{block_on, TestClient};
use pinion_server::StatusCode;

/// A worker's state as `pinion serve` builds it, without a database.
fn state() -> AppState {
    let worlds = Arc::new(StampedeProtection::new(
        LocMemCache::new(&LocMemConfig {
            cache: CacheConfig::default(),
            max_entries: 100,
        }),
        &XFetchConfig::default(),
    ));
    AppState::new(
        1,
        0,
        None,
        Duration::from_secs(5),
        worlds,
        WorldFeed::new(),
        None,
    )
}

#[test]
fn techempower_routes_answer_without_a_socket() {
    block_on(async {
        let client = TestClient::new(&Settings::default(), router(None), state());
        let r = client.get("/plaintext").send().await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.header("content-type"), Some("text/plain"));
        assert_eq!(r.text(), "Hello, World!");
        let r = client.get("/json").send().await;
        assert_eq!(r.json::<serde_json::Value>()["message"], "Hello, World!");
        let r = client.get("/").send().await;
        assert!(r.text().contains("/worlds/live"), "{}", r.text());
        let r = client.head("/plaintext").send().await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.body().is_empty());
    });
}

#[test]
fn routing_and_refusals_answer_problems() {
    block_on(async {
        let client = TestClient::new(&Settings::default(), router(None), state());
        let r = client.get("/no/such/page").send().await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let r = client.delete("/plaintext").send().await;
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert!(r.header("allow").is_some_and(|a| a.contains("GET")));
        // Refused before the database is asked, naming the field.
        let r = client.post("/worlds/77?randomNumber=many").send().await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
        assert!(r.text().contains("randomNumber"), "{}", r.text());
        // Without a database, the database routes say so and nothing more.
        let r = client.get("/db").send().await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        let problem: serde_json::Value = r.json();
        assert_eq!(problem["status"], 503);
        assert_eq!(problem["detail"], "no database configured");
        // A browser gets the same refusal as a page.
        let r = client
            .get("/db")
            .header("accept", "text/html,application/xhtml+xml")
            .send()
            .await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(r
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/html")));
    });
}
