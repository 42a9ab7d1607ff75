//! The shipped production site, `nginx/pinion.conf`, run in the real nginx in front of the
//! real binary, over TLS (the certificate of `scripts/dev-cert`) and HTTP/2 with curl. The
//! file is used as it is, with only what must differ on a test machine rewritten (ports, the
//! upstream, paths, and in one case the monitoring networks), each rewrite asserted to match:
//! a change of the file's shape fails here rather than going untested.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use common::nginx::{free_port, main_conf, temp_dir, Nginx};
use common::{database_env, repo, serve};

/// An answer as curl printed it: status, HTTP version, header lines (lowercased names, repeats
/// kept) and body.
struct Reply {
    status: u16,
    version: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, joined as one list.
    fn list(&self, name: &str) -> String {
        let values: Vec<&str> = self
            .headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect();
        values.join(", ")
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `name=value` pair of the first `Set-Cookie` whose name starts with `prefix`.
    fn cookie(&self, prefix: &str) -> Option<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n == "set-cookie")
            .filter_map(|(_, v)| v.split(';').next())
            .find(|pair| pair.starts_with(prefix))
            .map(str::to_string)
    }
}

/// Splits curl's `-D -` output (the head, then the body) into a [`Reply`].
fn parse(out: &[u8]) -> Reply {
    let end = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(out)));
    let head = String::from_utf8_lossy(&out[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("a status line");
    let mut words = status_line.split_whitespace();
    let version = words
        .next()
        .and_then(|v| v.strip_prefix("HTTP/"))
        .expect("HTTP/version")
        .to_string();
    let status = words.next().and_then(|s| s.parse().ok()).expect("a status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        version,
        headers,
        body: out[end + 4..].to_vec(),
    }
}

/// The shipped `nginx/pinion.conf` running on free loopback ports in front of one pinion.
struct Site {
    https: u16,
    http: u16,
    cert: PathBuf,
    nginx: Nginx,
}

/// Replaces every `from` in `conf` with `to`, and fails when there is none: the shipped file
/// no longer has the shape this test rewrites.
fn rewrite(conf: &mut String, from: &str, to: &str) {
    assert!(
        conf.contains(from),
        "nginx/pinion.conf no longer has {from:?}: update the rewrites of app/tests/nginx_tls.rs"
    );
    *conf = conf.replace(from, to);
}

/// Runs `scripts/dev-cert dir` and returns the paths it printed.
fn dev_cert(dir: &Path) -> Vec<String> {
    let out = Command::new(repo().join("scripts/dev-cert"))
        .arg(dir)
        .stderr(Stdio::inherit())
        .output()
        .expect("scripts/dev-cert runs");
    assert!(out.status.success(), "scripts/dev-cert failed");
    String::from_utf8(out.stdout)
        .expect("utf-8 paths")
        .lines()
        .map(str::to_string)
        .collect()
}

impl Site {
    /// nginx with the shipped site in front of `upstream`; with `loopback_monitors`, the
    /// shipped monitoring networks plus 127.0.0.1. `name` keeps concurrent tests apart.
    fn start(name: &str, upstream: SocketAddr, loopback_monitors: bool) -> Site {
        let dir = temp_dir(&format!("tls-{name}"));
        // What /etc/nginx/pinion/ holds in production: the four files and tls/.
        let etc = dir.join("etc");
        std::fs::create_dir_all(&etc).expect("etc");
        for file in ["proxy.conf", "static.conf"] {
            std::fs::copy(repo().join("nginx").join(file), etc.join(file)).expect("copy");
        }
        let mut monitoring =
            std::fs::read_to_string(repo().join("nginx/monitoring.conf")).expect("monitoring");
        if loopback_monitors {
            rewrite(&mut monitoring, "deny all;", "allow 127.0.0.1;\ndeny all;");
        }
        std::fs::write(etc.join("monitoring.conf"), monitoring).expect("monitoring.conf");
        let tls = etc.join("tls");
        let printed = dev_cert(&tls);
        let cert = tls.join("fullchain.pem");
        assert_eq!(
            printed,
            [
                cert.display().to_string(),
                tls.join("privkey.pem").display().to_string()
            ]
        );
        let acme = dir.join("acme/.well-known/acme-challenge");
        std::fs::create_dir_all(&acme).expect("acme");
        std::fs::write(acme.join("token"), "the challenge's answer\n").expect("token");

        let (https, http) = (free_port(), free_port());
        let mut conf = std::fs::read_to_string(repo().join("nginx/pinion.conf")).expect("conf");
        let d = dir.display();
        for (from, to) in [
            (
                "listen 443 ssl http2;".to_string(),
                format!("listen 127.0.0.1:{https} ssl http2;"),
            ),
            ("listen [::]:443 ssl http2;".into(), String::new()),
            ("listen 80;".into(), format!("listen 127.0.0.1:{http};")),
            ("listen [::]:80;".into(), String::new()),
            (
                "server 127.0.0.1:8080 ".into(),
                format!("server {upstream} "),
            ),
            ("/etc/nginx/pinion/".into(), format!("{}/", etc.display())),
            ("/var/cache/nginx/pinion ".into(), format!("{d}/cache ")),
            (
                "/srv/pinion/static;".into(),
                format!("{};", repo().join("static").display()),
            ),
            ("/var/www/acme;".into(), format!("{d}/acme;")),
        ] {
            rewrite(&mut conf, &from, &to);
        }
        // Nothing outside the test's folder and the repository, nothing but loopback.
        let directives: String = conf
            .lines()
            .map(|l| l.split('#').next().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n");
        for outside in [
            " /etc/",
            " /var/",
            " /srv/",
            "[::]",
            "listen 80",
            "listen 443",
        ] {
            assert!(!directives.contains(outside), "{outside:?} left in {conf}");
        }
        std::fs::write(dir.join("pinion.conf"), &conf).expect("pinion.conf");
        let http_block = format!(
            "types {{ text/html html; text/css css; application/javascript js; }}\n\
             include {d}/pinion.conf;"
        );
        let main = main_conf(&dir, &http_block);
        Site {
            https,
            http,
            cert,
            nginx: Nginx::start(dir, &main),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.https)
    }

    /// curl's arguments for this site: its CA (the dev certificate, so verification is real),
    /// `localhost` on IPv4 loopback, bounded in time.
    fn curl_command(&self) -> Command {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "20", "--cacert"])
            .arg(&self.cert)
            .arg("--resolve")
            .arg(format!("localhost:{}:127.0.0.1", self.https))
            .arg("--resolve")
            .arg(format!("localhost:{}:127.0.0.1", self.http))
            .stdin(Stdio::null());
        cmd
    }

    /// One request to `url` with curl's `args`; the head is read with `-D -`.
    fn curl(&self, url: &str, args: &[&str]) -> Reply {
        let out = self
            .curl_command()
            .args(["-D", "-"])
            .args(args)
            .arg(url)
            .output()
            .expect("curl runs");
        assert!(
            out.status.success(),
            "curl {url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        parse(&out.stdout)
    }

    /// `GET path` over HTTPS and HTTP/2 with the extra header lines `headers`.
    fn get(&self, path: &str, headers: &[&str]) -> Reply {
        let mut args = vec!["--http2"];
        for h in headers {
            args.extend(["-H", h]);
        }
        let reply = self.curl(&self.url(path), &args);
        assert_eq!(reply.version, "2", "{path} over HTTP/2");
        reply
    }
}

/// A running curl, killed on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Lines from `lines` until one satisfies `done` (10 s at most); returns them all.
fn lines_until(lines: &Receiver<String>, done: impl Fn(&str) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                let last = done(&line);
                seen.push(line);
                if last {
                    return seen;
                }
            }
            Err(e) => panic!("{e} before the line awaited; so far {seen:#?}"),
        }
    }
}

/// The nanoseconds of the clock's current second: apart between runs.
fn nanos() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
}

#[test]
fn pages_json_and_static_files_come_over_tls_and_http2() {
    let pinion = serve(database_env());
    let site = Site::start("pages", pinion.addr, false);

    let version = site
        .curl_command()
        .args(["--http2", "-o", "/dev/null", "-w", "%{http_version}"])
        .arg(site.url("/"))
        .output()
        .expect("curl runs");
    assert_eq!(String::from_utf8_lossy(&version.stdout), "2");

    // The catalogue, from the database.
    let page = site.get("/", &[]);
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(
        html.contains("<html") && html.contains("<table class=\"products\">"),
        "{html}"
    );
    let about = site.get("/about", &[]);
    assert_eq!(about.status, 200);
    assert!(about.text().contains("/plaintext"));

    let json = site.get("/json", &[]);
    assert_eq!(json.status, 200);
    assert_eq!(json.header("content-type"), Some("application/json"));
    assert_eq!(json.text(), r#"{"message":"Hello, World!"}"#);

    // The stylesheet the page links, answered by nginx from the folder for a year.
    let start = html.find("/static/app.").expect("the stylesheet's link");
    let end = start + html[start..].find(".css").expect("its extension") + ".css".len();
    let css = site.get(&html[start..end], &[]);
    assert_eq!(css.status, 200, "{}", &html[start..end]);
    assert_eq!(
        css.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(css.header("content-type"), Some("text/css"));
    assert_eq!(
        css.body,
        std::fs::read(repo().join("static/app.css")).expect("app.css")
    );

    // scripts/dev-cert keeps a pair that is still good.
    let tls = site.cert.parent().expect("tls folder").to_path_buf();
    let before = std::fs::read(&site.cert).expect("cert");
    dev_cert(&tls);
    assert_eq!(std::fs::read(&site.cert).expect("cert"), before);
    drop(site);
}

#[test]
fn text_is_gzipped_and_the_event_stream_is_not_and_arrives_while_open() {
    // A keep-alive comment after a second of silence: the signal that the stream is open.
    let mut env = database_env();
    env.push(("PINION_SSE_KEEPALIVE".into(), "1s".into()));
    let pinion = serve(env);
    let site = Site::start("sse", pinion.addr, false);

    let gzipped = site.get("/about", &["Accept-Encoding: gzip"]);
    assert_eq!(gzipped.status, 200);
    assert_eq!(gzipped.header("content-encoding"), Some("gzip"));
    assert!(gzipped.body.starts_with(&[0x1f, 0x8b]), "a gzip stream");
    assert!(
        gzipped.list("vary").contains("Accept-Encoding"),
        "{:?}",
        gzipped.headers
    );
    let decoded = site.curl(&site.url("/about"), &["--http2", "--compressed"]);
    assert!(decoded.text().contains("<html") && decoded.text().contains("/plaintext"));
    assert!(gzipped.body.len() < decoded.body.len());

    // The stream, asking for gzip as browsers do; its lines as curl writes them.
    let mut child = site
        .curl_command()
        .args(["-N", "--http2", "-D", "-", "--max-time", "30"])
        .args([
            "-H",
            "Accept: text/event-stream",
            "-H",
            "Accept-Encoding: gzip",
        ])
        .arg(site.url("/worlds/live"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("curl runs");
    let stdout = child.stdout.take().expect("stdout");
    let mut stream = Running(child);
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line.trim_end_matches('\r').to_string()).is_err() {
                return;
            }
        }
    });
    // nginx's HTTP/2 sends the head only with the first bytes of the body, so the stream is
    // known to be subscribed once pinion's first keep-alive comment has come through.
    let opened = lines_until(&lines, |l| l.starts_with(':'));
    let end = opened
        .iter()
        .position(|l| l.is_empty())
        .expect("the head's end");
    let head = opened[..end].join("\n").to_lowercase();
    assert!(head.starts_with("http/2 200"), "{head}");
    assert!(head.contains("\ncontent-type: text/event-stream"), "{head}");
    assert!(!head.contains("content-encoding"), "never gzipped: {head}");

    let id = 1 + std::process::id() % 10_000;
    // In the range the world table holds (1..=10000): other tests check it.
    let number = nanos() % 10_000 + 1;
    let posted = site.curl(
        &site.url(&format!("/worlds/{id}?randomNumber={number}")),
        &["--http2", "--data-raw", ""],
    );
    assert_eq!(posted.status, 303, "{}", posted.text());
    let data = format!(r#"data: {{"id":{id},"randomNumber":{number}}}"#);
    let event = lines_until(&lines, |l| l == data);
    assert!(event.contains(&"event: world".to_string()), "{event:#?}");
    // Delivered while the stream is still open: nginx did not hold it back for the end.
    assert!(
        matches!(stream.0.try_wait(), Ok(None)),
        "curl is still reading the stream"
    );
    drop(stream);
    drop(site);
}

#[test]
fn public_fragments_are_cached_by_nginx_apart_from_pages_and_never_for_a_session() {
    let pinion = serve(database_env());
    let site = Site::start("cache", pinion.addr, false);
    let hx = "HX-Request: true";

    // A signed-in visitor, signed up through nginx first (argon2 takes its time), so that the
    // cache checks below run well inside the fragment's ten seconds.
    let form = site.get("/signup", &[]);
    assert_eq!(form.status, 200);
    // pinion believed nginx's X-Forwarded-Proto: the HTTPS name of the session cookie.
    let cookie = form
        .cookie("__Host-pinion_session=")
        .unwrap_or_else(|| panic!("an HTTPS session cookie: {:?}", form.headers));
    let text = form.text();
    let field = r#"name="csrf_token" value=""#;
    let token = &text[text.find(field).expect("the CSRF field") + field.len()..];
    let token = &token[..token.find('"').expect("end of the token")];
    let email = format!("nginx-{}-{}%40demo.test", std::process::id(), nanos());
    let cookie_header = format!("Cookie: {cookie}");
    let signed_up = site.curl(
        &site.url("/signup"),
        &[
            "--http2",
            "-H",
            &cookie_header,
            "--data-raw",
            &format!("email={email}&password=correct+horse&csrf_token={token}"),
        ],
    );
    assert_eq!(signed_up.status, 303, "{}", signed_up.text());
    let cookie = signed_up.cookie("__Host-pinion_session=").unwrap_or(cookie);
    let signed_in = format!("Cookie: {cookie}");

    let first = site.get("/?q=pinion", &[hx]);
    assert_eq!(first.status, 200);
    assert_eq!(first.header("cache-control"), Some("public, max-age=10"));
    assert_eq!(first.header("x-cache-status"), Some("MISS"));
    let fragment = first.text();
    assert!(
        !fragment.contains("<html") && fragment.contains("<table class=\"products\">"),
        "{fragment}"
    );
    let second = site.get("/?q=pinion", &[hx]);
    assert_eq!(second.header("x-cache-status"), Some("HIT"));
    assert_eq!(second.text(), fragment);

    // The same URL without HX-Request is the page, which pinion says not to keep.
    for _ in 0..2 {
        let page = site.get("/?q=pinion", &[]);
        assert_eq!(page.status, 200);
        assert!(page.text().contains("<html"), "the full page");
        assert_eq!(page.header("x-cache-status"), Some("MISS"));
    }
    // A history restore wants the page, HX-Request or not.
    let restore = site.get("/?q=pinion", &[hx, "HX-History-Restore-Request: true"]);
    assert!(restore.text().contains("<html"), "the page for a restore");
    assert_ne!(restore.header("x-cache-status"), Some("HIT"));

    // A session cookie, under either name, skips the cache.
    let plain = site.get("/?q=pinion", &[hx, "Cookie: pinion_session=not-a-session"]);
    assert_eq!(plain.header("x-cache-status"), Some("BYPASS"));
    let mine = site.get("/?q=pinion", &[hx, &signed_in]);
    assert_eq!(mine.header("x-cache-status"), Some("BYPASS"));
    assert_eq!(mine.header("cache-control"), Some("private, no-store"));
    assert!(
        mine.text().contains("Edit</button>"),
        "the signed-in fragment"
    );

    // Neither was stored: the anonymous fragment is still the one served.
    let third = site.get("/?q=pinion", &[hx]);
    assert_eq!(third.header("x-cache-status"), Some("HIT"));
    assert_eq!(third.text(), fragment);
    assert!(!third.text().contains("Edit</button>"));
    drop(site);
}

#[test]
fn metrics_answer_only_the_monitoring_networks() {
    let pinion = serve(std::iter::empty::<(&str, &str)>());
    let shipped = Site::start("metrics-shipped", pinion.addr, false);
    let refused = shipped.get("/metrics", &[]);
    assert_eq!(refused.status, 403, "loopback is not a monitoring network");
    assert!(!refused.text().contains("# TYPE"), "{}", refused.text());
    // Only the scrape is refused.
    assert_eq!(shipped.get("/json", &[]).status, 200);

    let allowed = Site::start("metrics-loopback", pinion.addr, true);
    let scrape = allowed.get("/metrics", &[]);
    assert_eq!(scrape.status, 200);
    assert!(scrape.text().contains("# TYPE "), "{}", scrape.text());
    drop((shipped, allowed));
}

#[test]
fn plain_http_is_redirected_to_https_except_acme_challenges() {
    let pinion = serve(std::iter::empty::<(&str, &str)>());
    let site = Site::start("redirect", pinion.addr, false);
    let http = |path: &str| site.curl(&format!("http://localhost:{}{path}", site.http), &[]);

    let moved = http("/about?x=1");
    assert_eq!(moved.status, 301);
    assert_eq!(
        moved.header("location"),
        Some("https://localhost/about?x=1")
    );
    let challenge = http("/.well-known/acme-challenge/token");
    assert_eq!(challenge.status, 200);
    assert_eq!(challenge.text(), "the challenge's answer\n");
    drop(site);
}

#[test]
fn nginx_takes_the_largest_body_pinion_takes_and_refuses_one_byte_more() {
    let pinion = serve(std::iter::empty::<(&str, &str)>());
    let site = Site::start("body", pinion.addr, false);
    // pinion's max_body_size default (config/src/settings.rs).
    let limit = 10 * 1024 * 1024;
    let post = |len: usize| {
        let file = site.nginx.dir().join(format!("body-{len}"));
        std::fs::write(&file, vec![b'x'; len]).expect("body file");
        site.curl(
            &site.url("/echo"),
            &[
                "--http2",
                "-H",
                "Content-Type: application/octet-stream",
                "--data-binary",
                &format!("@{}", file.display()),
            ],
        )
    };
    let largest = post(limit);
    assert_eq!(largest.status, 200);
    assert_eq!(largest.body.len(), limit, "echoed by pinion");
    let over = post(limit + 1);
    assert_eq!(over.status, 413);
    // nginx's own page: the body never reached pinion.
    assert_eq!(over.header("content-type"), Some("text/html"));
    assert!(
        over.text().contains("413 Request Entity Too Large"),
        "{}",
        over.text()
    );
    drop(site);
}
