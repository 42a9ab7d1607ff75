//! The demo in a real browser: headless Chromium driven through chromedriver (W3C WebDriver),
//! both from Debian (`scripts/chromium` installs them when missing), against the real
//! `pinion` binary and PostgreSQL. Sign up, log out and in, a form with an error fixed, a live
//! search, an inline edit through htmx that keeps the page (a marker set in the page
//! survives), the write seen after the redirect, log out, and the private page closed.
//! Each step leaves a screenshot in `target/browser/` for a person to look at.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{database_env, repo, serve};
use serde_json::{json, Value};

/// How long any one wait (an element, a swap, a page) may take.
const WAIT: Duration = Duration::from_secs(20);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One WebDriver command: `method path` with `body`, answered with its `value`.
fn call(
    driver: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, String> {
    let payload = body.map(Value::to_string).unwrap_or_default();
    let mut s = TcpStream::connect(driver).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        payload.len()
    );
    s.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
    s.write_all(payload.as_bytes()).map_err(|e| e.to_string())?;
    // chromedriver keeps the connection open whatever `Connection` says: read the head, then
    // exactly `Content-Length` bytes.
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    let (head_len, body_len) = loop {
        let n = s.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("chromedriver closed the connection".into());
        }
        out.extend_from_slice(&buf[..n]);
        if let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&out[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or("an answer without Content-Length")?;
            break (end + 4, len);
        }
    };
    while out.len() < head_len + body_len {
        let n = s.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("chromedriver closed the connection mid-answer".into());
        }
        out.extend_from_slice(&buf[..n]);
    }
    let body = String::from_utf8_lossy(&out[head_len..head_len + body_len]).to_string();
    let v: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
    let value = v.get("value").cloned().unwrap_or(Value::Null);
    if let Some(error) = value.get("error").and_then(Value::as_str) {
        let message = value.get("message").and_then(Value::as_str).unwrap_or("");
        return Err(format!("{error}: {message}"));
    }
    Ok(value)
}

/// A chromedriver process and one browser session in it; both stopped on drop.
struct Browser {
    driver: SocketAddr,
    process: Child,
    session: String,
    base: String,
    shots: PathBuf,
    step: u32,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = call(
            self.driver,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        );
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

impl Browser {
    fn start(base: String) -> Browser {
        let out = Command::new(repo().join("scripts/chromium"))
            .stderr(Stdio::inherit())
            .output()
            .expect("scripts/chromium runs");
        assert!(out.status.success(), "scripts/chromium found no browser");
        let paths = String::from_utf8_lossy(&out.stdout);
        let mut lines = paths.lines();
        let (chromium, chromedriver) = (
            lines.next().expect("the browser's path").to_string(),
            lines.next().expect("the driver's path").to_string(),
        );
        let port = free_port();
        let mut process = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver: SocketAddr = ([127, 0, 0, 1], port).into();
        // It prints this line once it listens; its output is drained after that, so that it
        // never writes into a closed pipe.
        let out = process.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufRead::lines(std::io::BufReader::new(out)).map_while(Result::ok)
            {
                if line.contains("started successfully") {
                    let _ = tx.send(());
                }
            }
        });
        let started = rx.recv_timeout(WAIT).is_ok();
        assert!(started, "chromedriver did not start");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1200,900", "--no-first-run", "--disable-extensions"]
            }
        }}});
        let mut browser = Browser {
            driver,
            process,
            session: String::new(),
            base,
            shots: repo().join("target/browser"),
            step: 0,
        };
        let session = call(driver, "POST", "/session", Some(&caps)).expect("a browser session");
        browser.session = session["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_string();
        let _ = std::fs::remove_dir_all(&browser.shots);
        std::fs::create_dir_all(&browser.shots).expect("target/browser");
        browser
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        call(self.driver, method, &path, body.as_ref())
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    fn open(&self, path: &str) {
        self.cmd(
            "POST",
            "/url",
            Some(json!({"url": format!("{}{path}", self.base)})),
        );
    }

    fn js(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    /// Waits until `script` (an expression) is truthy in the page: the page checks it at each
    /// frame and answers when it holds. A navigation meanwhile ends the script; it is sent
    /// again to the new page.
    fn wait_until(&self, what: &str, script: &str) {
        let deadline = Instant::now() + WAIT;
        let probe = format!(
            "const done = arguments[arguments.length - 1];
             const check = () => {{
                 let ok = false;
                 try {{ ok = !!({script}); }} catch (e) {{}}
                 if (ok) {{ done(true); }} else {{ requestAnimationFrame(check); }}
             }};
             check();"
        );
        let path = format!("/session/{}/execute/async", self.session);
        loop {
            let body = json!({"script": probe, "args": []});
            if call(self.driver, "POST", &path, Some(&body))
                .ok()
                .and_then(|v| v.as_bool())
                == Some(true)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what} ({script}); page: {}",
                self.text()
            );
        }
    }

    /// The element `css` matches (the driver waits for it, up to its implicit timeout).
    fn find(&self, css: &str) -> String {
        let v = self.cmd(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        // The W3C element reference is the object's only value.
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element matches {css}; page: {}", self.text()))
            .to_string()
    }

    fn click(&self, css: &str) {
        let id = self.find(css);
        self.cmd("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    fn fill(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.cmd("POST", &format!("/element/{id}/clear"), Some(json!({})));
        self.cmd(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        );
    }

    fn path(&self) -> String {
        let url = self.cmd("GET", "/url", None);
        url.as_str()
            .unwrap_or_default()
            .trim_start_matches(&self.base)
            .to_string()
    }

    fn text(&self) -> String {
        self.js("return document.body ? document.body.innerText : ''")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Saves a screenshot named after the step.
    fn shot(&mut self, name: &str) {
        self.step += 1;
        let png = self.cmd("GET", "/screenshot", None);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("base64"))
            .expect("a PNG");
        let file = self.shots.join(format!("{:02}-{name}.png", self.step));
        std::fs::write(&file, bytes).expect("screenshot written");
    }
}

#[test]
fn sign_up_log_in_create_edit_inline_and_log_out_in_a_real_browser() {
    let app = serve(database_env());
    let mut b = Browser::start(format!("http://{}", app.addr));
    let email = format!("browser{}@demo.test", std::process::id());
    let name = format!("Browser gear {}", std::process::id());

    // Sign up.
    b.open("/signup");
    b.fill("#field-email", &email);
    b.fill("#field-password", "correct horse battery");
    b.shot("sign-up-form");
    b.click("form[action='/signup'] button");
    b.wait_until(
        "the welcome",
        "document.querySelector('.flash-success') && location.pathname === '/'",
    );
    assert!(b.text().contains("Welcome!"));
    b.shot("signed-up");

    // Log out, then in again.
    b.click("form[action='/logout'] button");
    b.wait_until(
        "the logout",
        "document.querySelector('a[href=\"/login\"]') && document.querySelector('.flash-info')",
    );
    b.open("/login");
    b.fill("#field-email", &email);
    b.fill("#field-password", "correct horse battery");
    b.click("form[action='/login'] button");
    b.wait_until(
        "the login",
        "document.querySelector('form[action=\"/logout\"]') && location.pathname === '/'",
    );
    assert!(b.text().contains("You are logged in."));
    b.shot("logged-in");

    // A product with a bad price: the error under its field, the name kept.
    b.open("/products/new");
    b.fill("#field-name", &name);
    b.fill("#field-price", "a lot");
    b.fill("#field-stock", "4");
    b.click("form[action='/products'] button");
    b.wait_until(
        "the price error",
        "document.querySelector('#field-price-error')",
    );
    assert!(b.text().contains("A price looks like 12.90"));
    let kept = b.js("return document.querySelector('#field-name').value");
    assert_eq!(kept.as_str(), Some(name.as_str()), "the name is kept");
    b.shot("validation-error");
    b.fill("#field-price", "3.20");
    b.click("form[action='/products'] button");
    b.wait_until(
        "the product page",
        "location.pathname.startsWith('/products/') && document.querySelector('h1')",
    );
    let product_path = b.path();
    let id = product_path.trim_start_matches("/products/").to_string();
    assert!(id.parse::<i32>().is_ok(), "{product_path}");
    assert!(
        b.text().contains(&name) && b.text().contains("3.20"),
        "the write, read back after the redirect"
    );
    b.shot("created");

    // Live search, then an inline edit through htmx: the page is never reloaded.
    b.open("/");
    b.js("window.pinionMarker = 'kept'; return true");
    b.fill("input[type=search]", &name);
    let row = format!("#product-{id}");
    b.wait_until("the search result", &format!(
        "document.querySelector('{row}') && document.querySelectorAll('table.products tbody tr').length === 1"
    ));
    assert!(b.path().contains("q="), "the search is in the address bar");
    b.click(&format!("{row} button"));
    b.wait_until(
        "the inline form",
        &format!("document.querySelector('{row}.editing input[name=price]')"),
    );
    b.shot("inline-edit");
    b.fill(&format!("{row} input[name=price]"), "4.75");
    b.click(&format!("{row} form button"));
    b.wait_until("the saved row", &format!(
        "document.querySelector('{row}') && !document.querySelector('{row}.editing') && document.querySelector('{row}').innerText.includes('4.75')"
    ));
    assert_eq!(
        b.js("return window.pinionMarker").as_str(),
        Some("kept"),
        "no reload: the marker survived the swap"
    );
    b.shot("inline-saved");
    b.open(&product_path);
    b.wait_until("the product page", "document.querySelector('h1')");
    assert!(b.text().contains("4.75"), "the inline edit is stored");

    // Log out: the private page is closed.
    b.click("form[action='/logout'] button");
    b.wait_until("the logout", "document.querySelector('a[href=\"/login\"]')");
    b.open("/orders");
    b.wait_until("the login page", "location.pathname === '/login'");
    assert!(b.path().starts_with("/login?next=/orders"), "{}", b.path());
    b.shot("private-page-closed");
}
