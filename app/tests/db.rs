//! The TechEmpower database routes, read-your-writes and readiness, through the real binary
//! against the private primary and replica (`scripts/pg`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

mod common;

use common::{cluster_env, database_env, metrics_when, pinion, repo, request, Served};

fn serve() -> Served {
    let mut env = database_env();
    env.push(("PINION_REPLICA_CHECK_INTERVAL".into(), "200ms".into()));
    let served = common::serve(env);
    wait_until_both_databases_are_up(served.addr);
    served
}

/// Connections are dialed as the workers start; until the replica is up, reads fall back to
/// the primary. Tests that look at routing start from a warm server.
fn wait_until_both_databases_are_up(addr: SocketAddr) {
    wait_until_up(addr, &["default", "replica1"]);
}

/// Waits (at most 10 s) until readiness reports each of `names` up; the last report.
fn wait_until_up(addr: SocketAddr, names: &[&str]) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, _, body) = get(addr, "/health/ready");
        let v = json(&body);
        if names.iter().all(|n| v["databases"][*n]["state"] == "up") {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "databases not up: {body}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn get(addr: SocketAddr, path: &str) -> (u16, HashMap<String, String>, String) {
    request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
    )
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn world(v: &serde_json::Value) -> (i64, i64) {
    let id = v["id"].as_i64().expect("id");
    let n = v["randomNumber"].as_i64().expect("randomNumber");
    assert!(
        (1..=10_000).contains(&id) && (1..=10_000).contains(&n),
        "{v}"
    );
    (id, n)
}

#[test]
fn db_returns_one_world_row() {
    let s = serve();
    let (status, headers, body) = get(s.addr, "/db");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        headers.get("content-type").map(String::as_str),
        Some("application/json")
    );
    world(&json(&body));
}

#[test]
fn queries_and_updates_clamp_their_count() {
    let s = serve();
    for (route, param) in [
        ("/queries", "q"),
        ("/updates", "q"),
        ("/cached-queries", "count"),
    ] {
        for (value, expected) in [
            ("0", 1),
            ("foo", 1),
            ("", 1),
            ("501", 500),
            ("20", 20),
            ("-3", 1),
        ] {
            let (status, _, body) = get(s.addr, &format!("{route}?{param}={value}"));
            assert_eq!(status, 200, "{route}?{param}={value}: {body}");
            let rows = json(&body);
            let rows = rows.as_array().expect("an array");
            assert_eq!(rows.len(), expected, "{route}?{param}={value}");
            rows.iter().for_each(|r| {
                world(r);
            });
        }
        let (_, _, body) = get(s.addr, route);
        assert_eq!(
            json(&body).as_array().map(Vec::len),
            Some(1),
            "{route} without q"
        );
    }
}

#[test]
fn updates_really_change_the_rows_they_return() {
    let s = serve();
    let (status, _, body) = get(s.addr, "/updates?q=500");
    assert_eq!(status, 200);
    let rows: Vec<(i64, i64)> = json(&body)
        .as_array()
        .expect("array")
        .iter()
        .map(world)
        .collect();
    assert_eq!(rows.len(), 500);
    // Read every returned row back from the primary: at least 95 % must hold the returned
    // number (an id drawn twice in one request shares one number, so all should).
    let psql = |id: i64| {
        let out = Command::new(repo().join("scripts/pg"))
            .args([
                "psql",
                "primary",
                "-tAc",
                &format!("SELECT randomnumber FROM world WHERE id = {id}"),
            ])
            .output()
            .expect("psql");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<i64>()
            .expect("a number")
    };
    let ids: Vec<String> = rows.iter().map(|(id, _)| id.to_string()).collect();
    let out = Command::new(repo().join("scripts/pg"))
        .args([
            "psql",
            "primary",
            "-tAc",
            &format!(
                "SELECT id, randomnumber FROM world WHERE id IN ({})",
                ids.join(",")
            ),
        ])
        .output()
        .expect("psql");
    let stored: HashMap<i64, i64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('|'))
        .map(|(a, b)| (a.parse().expect("id"), b.parse().expect("n")))
        .collect();
    let matching = rows
        .iter()
        .filter(|(id, n)| stored.get(id) == Some(n))
        .count();
    assert!(
        matching * 100 >= rows.len() * 95,
        "only {matching} of 500 rows hold their new value"
    );
    let (id, n) = rows[0];
    assert_eq!(psql(id), n);
}

#[test]
fn a_redirect_after_post_reads_its_write_from_the_primary() {
    let s = serve();
    // Without the cookie, reads go to the replica.
    let (_, _, body) = get(s.addr, "/worlds/77");
    assert_eq!(json(&body)["servedBy"], "replica", "{body}");
    let number = 4242;
    let (status, headers, _) = request(
        s.addr,
        &format!("POST /worlds/77?randomNumber={number} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!(status, 303);
    assert_eq!(
        headers.get("location").map(String::as_str),
        Some("/worlds/77")
    );
    // A number that is not one is refused before the database is asked, naming the field.
    let (bad, bad_headers, bad_body) = request(
        s.addr,
        "POST /worlds/77?randomNumber=many HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(bad, 400, "{bad_body}");
    assert_eq!(
        bad_headers.get("content-type").map(String::as_str),
        Some("application/problem+json")
    );
    assert!(bad_body.contains("randomNumber"), "{bad_body}");
    let cookie = headers.get("set-cookie").expect("sticky cookie");
    assert!(cookie.contains("Max-Age=5"), "{cookie}");
    let pair = cookie.split(';').next().expect("name=value");
    // Following the redirect with the cookie reads the write from the primary.
    let (status, _, body) = request(
        s.addr,
        &format!(
            "GET /worlds/77 HTTP/1.1\r\nHost: t\r\nCookie: {pair}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert_eq!(status, 200);
    let v = json(&body);
    assert_eq!(v["servedBy"], "primary", "{body}");
    assert_eq!(v["randomNumber"], number);
    // The cookie is signed: its value is the expiry after a signature.
    let (tag_and_until, until) = pair
        .strip_prefix("pinion_primary=")
        .and_then(|v| Some((v, v.get(v.len().checked_sub(13)?..)?)))
        .expect("signed expiry");
    let until: u64 = until.parse().expect("expiry in ms");
    assert!(tag_and_until.len() > 13 + 40, "{pair}");
    // A client cannot forge one: an unsigned cookie, or a signed one with its expiry moved
    // (still within the window), is not honoured.
    for forged in [
        format!("pinion_primary={}", until - 1),
        format!(
            "pinion_primary={}{}",
            &tag_and_until[..tag_and_until.len() - 13],
            until - 1
        ),
    ] {
        let (_, _, body) = request(
            s.addr,
            &format!(
                "GET /worlds/77 HTTP/1.1\r\nHost: t\r\nCookie: {forged}\r\nConnection: close\r\n\r\n"
            ),
        );
        assert_eq!(json(&body)["servedBy"], "replica", "{forged}: {body}");
    }
}

#[test]
fn readiness_names_each_database() {
    let s = serve();
    let (status, _, body) = get(s.addr, "/health/ready");
    assert_eq!(status, 200, "{body}");
    let v = json(&body);
    assert_eq!(v["status"], "ready");
    assert_eq!(v["databases"]["default"]["role"], "primary");
    assert_eq!(v["databases"]["default"]["state"], "up");
    assert_eq!(v["databases"]["replica1"]["role"], "replica");
    let (status, _, _) = get(s.addr, "/health");
    assert_eq!(status, 200);
}

#[test]
fn a_database_of_the_databases_setting_is_dialed_and_reported() {
    let mut env = database_env();
    let primary = env[0].1.clone();
    env.push(("PINION_DATABASES".into(), format!("analytics={primary}")));
    let s = common::serve(env);
    let v = wait_until_up(s.addr, &["default", "replica1", "analytics"]);
    assert_eq!(v["databases"]["analytics"]["role"], "other", "{v}");
}

/// `pinion` with the private cluster's database and a clean pinion environment.
fn pinion_with_db(env: &HashMap<String, String>) -> Command {
    let mut cmd = pinion();
    cmd.env("DATABASE_URL", &env["DATABASE_URL"]);
    cmd
}

#[test]
fn migrate_check_reports_nothing_pending_once_applied() {
    let env = cluster_env();
    let out = pinion_with_db(&env)
        .env("PINION_MIGRATIONS_DIR", repo().join("migrations"))
        .arg("migrate")
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = pinion_with_db(&env)
        .env("PINION_MIGRATIONS_DIR", repo().join("migrations"))
        .args(["migrate", "--check"])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "no pending migrations"
    );
}

#[test]
fn a_changed_applied_migration_refuses_start_up() {
    let env = cluster_env();
    // Make sure 0001 is applied, then serve from a copy of the folder where it was edited.
    let applied = pinion_with_db(&env)
        .env("PINION_MIGRATIONS_DIR", repo().join("migrations"))
        .arg("migrate")
        .output()
        .expect("runs");
    assert!(applied.status.success());
    let dir =
        std::env::temp_dir().join(format!("pinion-changed-migrations-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let original =
        std::fs::read_to_string(repo().join("migrations/0001_techempower.sql")).expect("read");
    std::fs::write(
        dir.join("0001_techempower.sql"),
        format!("{original}\n-- edited\n"),
    )
    .expect("write");
    let out = pinion_with_db(&env)
        .env("PINION_MIGRATIONS_DIR", &dir)
        .args([
            "serve",
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--threads",
            "1",
        ])
        .output()
        .expect("runs");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success(), "started despite a changed migration");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("0001_techempower.sql") && err.contains("changed"),
        "{err}"
    );
}

#[test]
fn query_durations_are_in_the_metrics() {
    let s = serve();
    for _ in 0..5 {
        assert_eq!(get(s.addr, "/db").0, 200);
    }
    // Folded into the registry within one drain interval (1 s by default).
    let count = |metrics: &str| -> Option<u64> {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("pinion_db_query_duration_seconds_count{database=\"replica1\"}")
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    };
    let metrics = metrics_when(s.addr, |m| count(m).is_some_and(|n| n >= 5));
    let n = count(&metrics).unwrap_or_else(|| panic!("no replica query histogram in:\n{metrics}"));
    assert!(n >= 5, "{n}");
}

/// `pinion check` against the private primary, with `extra` variables: exit code and stderr.
fn check_against_the_primary(extra: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = pinion()
        .arg("check")
        .envs(database_env())
        .envs(extra.iter().copied())
        .output()
        .expect("pinion check runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn more_connections_than_max_connections_are_warned_about_by_check_and_serve() {
    const WARNING: &str =
        "the primary may refuse connections: instances × per instance = 100000 × ";

    // `check` reads the primary's limits and warns, but the configuration is valid.
    let (code, err) = check_against_the_primary(&[("PINION_INSTANCES", "100000")]);
    assert_eq!(code, Some(0), "{err}");
    let warning = err
        .lines()
        .find(|l| l.starts_with(&format!("pinion: warning: {WARNING}")))
        .unwrap_or_else(|| panic!("no warning: {err}"));
    assert!(
        warning.contains("max_connections − reserved = ")
            && warning.contains("per instance = threads × (pool_size per thread + 2"),
        "{warning}"
    );
    // One instance fits (the private cluster allows 200 connections).
    let (code, err) = check_against_the_primary(&[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("max_connections"), "{err}");

    // `serve` logs it at start-up, as a warning, and starts.
    let mut env = database_env();
    env.push(("PINION_INSTANCES".into(), "100000".into()));
    let served = common::serve(env);
    let logged: Vec<&String> = served
        .startup_logs
        .iter()
        .filter(|l| l.contains(WARNING))
        .collect();
    assert_eq!(logged.len(), 1, "{:#?}", served.startup_logs);
    assert!(logged[0].contains("WARN"), "{}", logged[0]);
    drop(served);
    let served = common::serve(database_env());
    assert!(
        !served
            .startup_logs
            .iter()
            .any(|l| l.contains("may refuse connections")),
        "{:#?}",
        served.startup_logs
    );
}
