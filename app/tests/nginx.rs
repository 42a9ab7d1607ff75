//! The shipped nginx configuration, run for real in front of the real binary on loopback
//! ports: what reaches pinion through `nginx/proxy.conf`, and the static files nginx serves
//! itself through `nginx/static.conf`.

mod common;

use std::net::SocketAddr;

use common::nginx::{free_port, main_conf, temp_dir, Nginx};
use common::{repo, request, serve};

/// An nginx in front of pinion on a loopback port; stopped on drop.
struct Proxy {
    addr: SocketAddr,
    _nginx: Nginx,
}

/// nginx on a free loopback port, proxying `/` to `upstream` with `nginx/proxy.conf`, with
/// `server_extra` in its server block; returns once it accepts connections. `name` keeps the
/// folders of tests running at once apart.
fn start_nginx(name: &str, upstream: SocketAddr, server_extra: &str) -> Proxy {
    let dir = temp_dir(name);
    let port = free_port();
    let http = format!(
        "upstream pinion {{ server {upstream}; keepalive 4; }}\n\
         server {{\n\
           listen 127.0.0.1:{port};\n\
           {server_extra}\n\
           location / {{\n\
             proxy_pass http://pinion;\n\
             include {proxy};\n\
             add_header X-Nginx-Request-Id $request_id always;\n\
           }}\n\
         }}",
        proxy = repo().join("nginx/proxy.conf").display(),
    );
    let conf = main_conf(&dir, &http);
    Proxy {
        addr: format!("127.0.0.1:{port}").parse().expect("address"),
        _nginx: Nginx::start(dir, &conf),
    }
}

#[test]
fn a_client_cannot_choose_its_request_id_through_nginx() {
    // pinion trusts loopback (the default `trusted_proxies`), where nginx runs.
    let pinion = serve([("PINION_REQUEST_ID", "true")]);
    let nginx = start_nginx("request-id", pinion.addr, "");
    let (status, h, _) = request(
        nginx.addr,
        "GET /json HTTP/1.1\r\nHost: t\r\nX-Request-Id: chosen-by-the-client\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200);
    let echoed = h.get("x-request-id").expect("pinion's x-request-id");
    let nginx_id = h.get("x-nginx-request-id").expect("nginx's $request_id");
    assert_ne!(echoed, "chosen-by-the-client");
    // pinion took nginx's id, which is the one nginx logs too.
    assert_eq!(echoed, nginx_id);
    assert_eq!(echoed.len(), 32, "{echoed}");
    assert!(echoed.bytes().all(|b| b.is_ascii_hexdigit()), "{echoed}");
    drop(nginx);
}

/// The first 16 hex digits of the SHA-256 of the repository's `static/<name>`.
fn hash_of(name: &str) -> String {
    use sha2::{Digest, Sha256};
    let body = std::fs::read(repo().join("static").join(name)).expect("static file");
    Sha256::digest(&body)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn nginx_serves_the_hashed_names_pages_link_with_the_same_cache_control() {
    let pinion = serve(std::iter::empty::<(&str, &str)>());
    let extra = format!(
        "types {{ text/css css; application/javascript js; }}\n\
         set $pinion_static {};\n\
         include {};",
        repo().join("static").display(),
        repo().join("nginx/static.conf").display()
    );
    let nginx = start_nginx("static", pinion.addr, &extra);
    let get = |path: &str| {
        request(
            nginx.addr,
            &format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
        )
    };
    // The URL in pinion's page, answered by nginx from the folder.
    let (_, _, page) = get("/");
    let css = format!("/static/app.{}.css", hash_of("app.css"));
    assert!(page.contains(&css), "{page}");
    let (status, h, body) = get(&css);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        h.get("cache-control").map(String::as_str),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(h.get("content-type").map(String::as_str), Some("text/css"));
    assert!(
        h.get("server").is_some_and(|s| s.starts_with("nginx")),
        "answered by nginx itself: {h:?}"
    );
    let file = std::fs::read_to_string(repo().join("static/app.css")).expect("app.css");
    assert_eq!(body, file);
    let js = format!("/static/htmx.min.{}.js", hash_of("htmx.min.js"));
    let (status, h, _) = get(&js);
    assert_eq!(status, 200);
    assert_eq!(
        h.get("content-type").map(String::as_str),
        Some("application/javascript")
    );
    // Unhashed names go on to pinion (404); traversals never reach a file.
    for path in [
        "/static/app.css",
        "/static/../Cargo.toml",
        "/static/..%2fCargo.toml",
        "/static/%2e%2e/Cargo.0123456789abcdef.toml",
        "/static/..%2fCargo.0123456789abcdef.toml",
        "/static/.hidden.0123456789abcdef.css",
        "/static/missing.0123456789abcdef.css",
    ] {
        let (status, h, body) = get(path);
        assert!(status == 404 || status == 400, "{path}: {status} {body}");
        assert!(!body.contains("[workspace]"), "{path}: {body}");
        assert_eq!(h.get("cache-control"), None, "{path}");
    }
    drop(nginx);
}
