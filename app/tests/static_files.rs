//! The layout's asset links and `/static/…`, through the real binary on a free port: hashed
//! names served for a year with their type and `ETag`, 304 on `If-None-Match`, 404 for any
//! other name and for every traversal attempt; a missing `static_dir` stops start-up.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

mod common;

use common::{pinion, repo, request, serve};

fn get(addr: SocketAddr, path: &str, extra: &str) -> (u16, HashMap<String, String>, String) {
    request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: t\r\n{extra}Connection: close\r\n\r\n"),
    )
}

/// The first 16 hex digits of the SHA-256 of the repository's `static/<name>`.
fn hash_of(name: &str) -> String {
    let body = std::fs::read(repo().join("static").join(name)).expect("static file");
    Sha256::digest(&body)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn pages_link_the_stylesheet_and_htmx_by_hashed_name() {
    let s = serve(std::iter::empty::<(&str, &str)>());
    let (status, headers, page) = get(s.addr, "/", "");
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        headers.get("content-type").map(String::as_str),
        Some("text/html; charset=utf-8")
    );
    let css = format!("/static/app.{}.css", hash_of("app.css"));
    let js = format!("/static/htmx.min.{}.js", hash_of("htmx.min.js"));
    assert!(
        page.contains(&format!(r#"<link rel="stylesheet" href="{css}">"#)),
        "{page}"
    );
    assert!(
        page.contains(&format!(r#"<script src="{js}" defer></script>"#)),
        "{page}"
    );
    // The index page's own content, inside the layout's.
    assert!(page.contains("<nav aria-label=\"Main\">"), "{page}");
    assert!(page.contains("/worlds/live"), "{page}");
    assert!(
        page.contains(r#"hx-headers='{"X-CSRF-Token": ""}'"#),
        "{page}"
    );
}

#[test]
fn a_hashed_name_is_served_for_a_year_with_its_type_and_etag() {
    let s = serve(std::iter::empty::<(&str, &str)>());
    for (name, url, content_type) in [
        (
            "app.css",
            format!("/static/app.{}.css", hash_of("app.css")),
            "text/css; charset=utf-8",
        ),
        (
            "htmx.min.js",
            format!("/static/htmx.min.{}.js", hash_of("htmx.min.js")),
            "text/javascript; charset=utf-8",
        ),
    ] {
        let (status, headers, body) = get(s.addr, &url, "");
        assert_eq!(status, 200, "{url}: {body}");
        let header = |h: &str| headers.get(h).map(String::as_str);
        assert_eq!(
            header("cache-control"),
            Some("public, max-age=31536000, immutable"),
            "{url}"
        );
        assert_eq!(header("content-type"), Some(content_type), "{url}");
        assert_eq!(header("x-content-type-options"), Some("nosniff"), "{url}");
        let etag = header("etag").expect("an ETag").to_string();
        assert_eq!(etag, format!("\"{}\"", hash_of(name)), "a strong tag");
        let file = std::fs::read_to_string(repo().join("static").join(name)).expect("file");
        assert_eq!(body, file, "{url}");

        let (status, headers, body) = get(s.addr, &url, &format!("If-None-Match: {etag}\r\n"));
        assert_eq!(status, 304, "{url}");
        assert!(body.is_empty(), "{url}: {body}");
        assert_eq!(headers.get("etag"), Some(&etag));
        assert_eq!(
            headers.get("cache-control").map(String::as_str),
            Some("public, max-age=31536000, immutable")
        );
        let (status, _, _) = get(s.addr, &url, "If-None-Match: \"0123456789abcdef\"\r\n");
        assert_eq!(status, 200, "another tag gets the file");
    }
}

#[test]
fn unhashed_stale_and_unknown_names_are_404() {
    let s = serve(std::iter::empty::<(&str, &str)>());
    for path in [
        "/static/app.css",
        "/static/htmx.min.js",
        "/static/app.0000000000000000.css",
        &format!("/static/app.{}.js", hash_of("app.css")),
        "/static/no-such-file.js",
        "/static/",
        "/static",
    ] {
        let (status, headers, body) = get(s.addr, path, "");
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(headers.get("cache-control"), None, "{path}: not cached");
    }
}

/// Whether `body` holds any of the files a traversal would reach.
fn leaks(body: &str) -> bool {
    body.contains("[workspace]") || body.contains("[package]") || body.contains("root:")
}

#[test]
fn traversal_attempts_are_404_and_never_a_file() {
    let s = serve(std::iter::empty::<(&str, &str)>());
    let css = format!("app.{}.css", hash_of("app.css"));
    for path in [
        "/static/..%2f..%2fCargo.toml",
        "/static/..%2F..%2FCargo.toml",
        "/static/../Cargo.toml",
        "/static/../../Cargo.toml",
        "/static/%2e%2e/%2e%2e/Cargo.toml",
        "/static/..%5c..%5cCargo.toml",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
        "/static/../app/Cargo.toml",
        &format!("/static/./{css}"),
        &format!("/static/x/../{css}"),
        &format!("/static/{css}%00"),
    ] {
        let (status, _, body) = get(s.addr, path, "");
        assert!(status == 404 || status == 400, "{path}: {status} {body}");
        assert!(!leaks(&body), "{path}: {body}");
    }
}

/// A static folder of the test's own under `target/`, removed on drop.
struct Folder(PathBuf);

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn folder(name: &str) -> Folder {
    let dir = repo()
        .join("target")
        .join(format!("static-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("folder");
    Folder(dir)
}

#[test]
fn a_symlink_out_of_static_dir_is_not_served() {
    let dir = folder("symlink");
    let outside = folder("outside");
    std::fs::write(outside.0.join("secret.txt"), "[package] secret").expect("write");
    std::fs::write(dir.0.join("site.css"), "a{}").expect("write");
    std::os::unix::fs::symlink(outside.0.join("secret.txt"), dir.0.join("secret.txt"))
        .expect("symlink");
    std::os::unix::fs::symlink(repo().join("Cargo.toml"), dir.0.join("Cargo.toml"))
        .expect("symlink");
    std::os::unix::fs::symlink(&outside.0, dir.0.join("up")).expect("symlink");
    let s = serve([("PINION_STATIC_DIR", dir.0.as_os_str())]);
    let hash = |body: &[u8]| -> String {
        Sha256::digest(body)[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let (status, _, body) = get(s.addr, &format!("/static/site.{}.css", hash(b"a{}")), "");
    assert_eq!((status, body.as_str()), (200, "a{}"));
    let cargo = std::fs::read(repo().join("Cargo.toml")).expect("Cargo.toml");
    for path in [
        format!("/static/secret.{}.txt", hash(b"[package] secret")),
        format!("/static/up/secret.{}.txt", hash(b"[package] secret")),
        format!("/static/Cargo.{}.toml", hash(&cargo)),
    ] {
        let (status, _, body) = get(s.addr, &path, "");
        assert_eq!(status, 404, "{path}: {body}");
        assert!(!leaks(&body), "{path}: {body}");
    }
}

#[test]
fn a_missing_static_dir_stops_start_up_naming_the_key() {
    let missing = Path::new("/nonexistent/pinion-static");
    let out = pinion()
        .args([
            "serve",
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--threads",
            "1",
        ])
        .env("PINION_STATIC_DIR", missing)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("configuration error: static_dir (PINION_STATIC_DIR)"),
        "{err}"
    );
    assert!(err.contains("/nonexistent/pinion-static"), "{err}");
    assert!(!err.contains("listening on"), "{err}");
}
