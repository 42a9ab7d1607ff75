//! What a session costs a request when its row is in the L1: the same tiny handler with and
//! without the `SessionLayer`, through the server's own connection loop (`TestClient`, in
//! memory), the session's signed cookie sent with every request.
//!
//! The difference is the layer's work on a hit: the cookie's signature checked (HMAC-SHA256),
//! the id's SHA-256, the bucket's stamp read, the L1 probe and the record's clone, the
//! session's handle, and the `Cache-Control` added. No row is read or written after the first
//! request (the L1 hit count is checked before the figures are printed).
//!
//! Run: `cargo bench -p pinion-web --bench session_lookup` (PostgreSQL: the `DATABASE_URL`
//! set, else the private cluster, started by `scripts/pg`). Prints the median of 7 rounds.

#![allow(
    missing_docs,
    clippy::print_stdout,
    reason = "a benchmark's main prints its figures"
)]

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pinion_orm::{ConnectionManager, DbConfig};
use pinion_server::testing::{block_on, TestClient};
use pinion_server::Router;
use pinion_web::session::{Session, SessionLayer, Sessions};

const SCHEMA: &str = include_str!("../../migrations/0002_sessions.sql");

fn database_url() -> String {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        return url;
    }
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = std::process::Command::new(format!("{root}/scripts/pg"))
        .arg("start")
        .output()
        .expect("scripts/pg runs");
    assert!(out.status.success(), "scripts/pg start failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("export DATABASE_URL="))
        .map(|v| v.trim_matches('\'').to_string())
        .expect("scripts/pg start prints DATABASE_URL")
}

async fn plain() -> &'static str {
    "ok"
}

async fn with_session(session: Session) -> &'static str {
    if session.user_id().is_some() {
        "ok"
    } else {
        "anonymous"
    }
}

async fn login(session: Session) -> pinion_web::Result<&'static str> {
    session.login(1)?;
    Ok("in")
}

fn main() {
    let (requests, rounds) = if std::env::args().any(|a| a == "--bench") {
        (50_000u32, 7usize)
    } else {
        (200u32, 1usize)
    };
    let url = database_url();
    let (base, _) = url.rsplit_once('/').expect("a URL with a database");
    let name = format!("bench_sessions_{}", std::process::id());
    block_on(async {
        let admin = ConnectionManager::start(&DbConfig::new(url.clone(), vec![])).expect("db");
        admin
            .primary()
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create the bench's database");
        let bench_url = format!("{base}/{name}");
        let qc = pinion_orm::QueryCache::new(pinion_cache::LocMemCache::new(
            &pinion_cache::LocMemConfig::default(),
        ));
        let mut cfg = DbConfig::new(bench_url.clone(), vec![]);
        cfg.query_cache = Some(Arc::clone(&qc));
        let db = ConnectionManager::start(&cfg).expect("db");
        db.primary().batch_execute(SCHEMA).await.expect("schema");
        let sessions = Sessions::new(Duration::from_secs(1800), Duration::from_secs(8 * 3600));
        let router = Router::new()
            .get("/session", with_session)
            .get("/login", login)
            .layer(SessionLayer::new(&sessions, Rc::clone(&db)))
            .get("/plain", plain);
        let client = TestClient::new(&pinion_config::Settings::default(), router, ());
        let set = client.get("/login").send().await;
        let cookie = set
            .header("set-cookie")
            .and_then(|c| c.split(';').next())
            .expect("a session cookie")
            .to_string();
        let per = |path: &'static str| {
            let client = &client;
            let cookie = cookie.clone();
            async move {
                let start = Instant::now();
                for _ in 0..requests {
                    let resp = client.get(path).header("cookie", &cookie).send().await;
                    assert_eq!(resp.text(), "ok", "{path}");
                }
                start.elapsed().as_nanos() as f64 / f64::from(requests)
            }
        };
        let mut with = Vec::new();
        let mut without = Vec::new();
        for _ in 0..rounds {
            without.push(per("/plain").await);
            with.push(per("/session").await);
        }
        let hits = sessions.l1_stats().hits;
        assert!(
            hits >= u64::from(requests) * rounds as u64,
            "every lookup an L1 hit ({hits})"
        );
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (w, wo) = (median(&mut with), median(&mut without));
        println!(
            "session lookup (L1 hit), {requests} requests x {rounds} rounds: {w:.0} ns per request with the layer, {wo:.0} without: {:.0} ns for the session",
            w - wo
        );
        drop(db);
        admin
            .primary()
            .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .await
            .expect("drop the bench's database");
    });
}
