//! A browser for the demo site over plain sockets, behind the trusted proxy: its cookies,
//! its CSRF token, its own client address (`X-Forwarded-For`). Shared by the tests that run
//! several instances (`instances.rs`, `live_pages.rs`).

use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// A response: status, every header line (lowercased names, repeats kept) and the body.
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl std::fmt::Debug for Resp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let start: String = self.body.chars().take(300).collect();
        write!(
            f,
            "{} location={:?} body={start:?}",
            self.status,
            self.header("location")
        )
    }
}

pub fn send(addr: SocketAddr, raw: &str) -> Resp {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    s.write_all(raw.as_bytes()).expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read");
    let text = String::from_utf8(out).expect("utf-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("a response");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Resp {
        status,
        headers,
        body: body.to_string(),
    }
}

pub fn form_encode(fields: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    char::from(b).to_string()
                }
                b' ' => "+".into(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A random number, different in every call and every run.
pub fn random() -> u64 {
    static N: AtomicU32 = AtomicU32::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u32(N.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

/// A browser behind the trusted proxy: its own client address (sent as `X-Forwarded-For`, as
/// nginx would), its cookies for the site, the CSRF token of the last page that had one.
/// Its own address keeps its login attempts apart from every other test's in the shared
/// rate-limit table.
#[derive(Clone)]
pub struct Browser {
    pub client: String,
    pub cookies: Vec<(String, String)>,
    pub token: String,
}

impl Browser {
    /// A browser with a client address no other test (or earlier run) has used.
    pub fn new() -> Browser {
        let n = random();
        Browser {
            client: format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255),
            cookies: Vec::new(),
            token: String::new(),
        }
    }

    pub fn headers(&self) -> String {
        let mut h = format!("X-Forwarded-For: {}\r\n", self.client);
        if !self.cookies.is_empty() {
            let pairs: Vec<String> = self
                .cookies
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect();
            h.push_str(&format!("Cookie: {}\r\n", pairs.join("; ")));
        }
        h
    }

    pub fn keep(&mut self, resp: &Resp) {
        for (name, value) in &resp.headers {
            if name != "set-cookie" {
                continue;
            }
            let pair = value.split(';').next().unwrap_or_default();
            let (n, v) = pair.split_once('=').expect("name=value");
            self.cookies.retain(|(k, _)| k != n);
            if !value.contains("Max-Age=0") {
                self.cookies.push((n.to_string(), v.to_string()));
            }
        }
        if let Some(start) = resp.body.find(r#"name="csrf_token" value=""#) {
            let rest = &resp.body[start + r#"name="csrf_token" value=""#.len()..];
            self.token = rest[..rest.find('"').expect("end of the value")].to_string();
        }
    }

    pub fn get(&mut self, addr: SocketAddr, path: &str) -> Resp {
        let raw = format!(
            "GET {path} HTTP/1.1\r\nHost: demo.test\r\nConnection: close\r\n{}\r\n",
            self.headers()
        );
        let resp = send(addr, &raw);
        self.keep(&resp);
        resp
    }

    /// A form POST from this site's page, with the token of the last page.
    pub fn post(&mut self, addr: SocketAddr, path: &str, fields: &[(&str, &str)]) -> Resp {
        let mut fields = fields.to_vec();
        let token = self.token.clone();
        fields.push(("csrf_token", &token));
        let body = form_encode(&fields);
        let raw = format!(
            "POST {path} HTTP/1.1\r\nHost: demo.test\r\nConnection: close\r\nOrigin: http://demo.test\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n{}\r\n{body}",
            body.len(),
            self.headers()
        );
        let resp = send(addr, &raw);
        self.keep(&resp);
        resp
    }

    /// Signs up a new account through `addr` (which signs it in) and returns its address.
    pub fn sign_up(&mut self, addr: SocketAddr) -> String {
        let email = format!("instances-{:016x}@demo.test", random());
        self.get(addr, "/signup");
        let resp = self.post(
            addr,
            "/signup",
            &[("email", &email), ("password", "correct horse")],
        );
        assert_eq!(resp.status, 303, "sign-up through {addr}: {resp:?}");
        email
    }

    /// Creates a product through `addr` (signed in) and returns its path, `/products/{id}`.
    pub fn create_product(&mut self, addr: SocketAddr, name: &str, price: &str) -> String {
        self.get(addr, "/products/new");
        let resp = self.post(
            addr,
            "/products",
            &[
                ("name", name),
                ("description", "made by a test of several instances"),
                ("price", price),
                ("stock", "7"),
            ],
        );
        assert_eq!(resp.status, 303, "product created through {addr}: {resp:?}");
        resp.header("location").expect("the product").to_string()
    }
}

/// An open event stream (`text/event-stream`) over a socket of its own, after its head, its
/// chunked framing decoded.
pub struct EventStream {
    pub socket: TcpStream,
    /// Bytes read and not decoded yet.
    raw: Vec<u8>,
    /// The decoded body.
    body: Vec<u8>,
    /// Where the next [`EventStream::next_event`] starts reading in `body`.
    read: usize,
    /// The last chunk arrived.
    ended: bool,
}

impl EventStream {
    /// `GET path` with `headers` (`Cookie:`, `Last-Event-ID:` lines, each ending in `\r\n`);
    /// returns the status and, for a 200 event stream, the stream.
    pub fn open(addr: SocketAddr, path: &str, headers: &str) -> (u16, Option<EventStream>) {
        let mut socket = TcpStream::connect(addr).expect("connect");
        socket
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        socket
            .write_all(
                format!(
                    "GET {path} HTTP/1.1\r\nHost: demo.test\r\nAccept: text/event-stream\r\n{headers}\r\n"
                )
                .as_bytes(),
            )
            .expect("write");
        let mut stream = EventStream {
            socket,
            raw: Vec::new(),
            body: Vec::new(),
            read: 0,
            ended: false,
        };
        let at = loop {
            if let Some(at) = stream.raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break at;
            }
            assert!(stream.read_more(), "closed before the head");
        };
        let head = String::from_utf8_lossy(&stream.raw[..at]).to_ascii_lowercase();
        stream.raw.drain(..at + 4);
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a status");
        let ok = status == 200
            && head.contains("\r\ncontent-type: text/event-stream")
            && head.contains("\r\ntransfer-encoding: chunked");
        (status, ok.then_some(stream))
    }

    /// Reads what the socket has; false once it is closed.
    fn read_more(&mut self) -> bool {
        let mut buf = [0u8; 65536];
        loop {
            match self.socket.read(&mut buf) {
                Ok(0) => return false,
                Ok(n) => {
                    self.raw.extend_from_slice(&buf[..n]);
                    return true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    /// Moves every whole chunk from `raw` to `body`.
    fn decode(&mut self) {
        while let Some(line) = self.raw.windows(2).position(|w| w == b"\r\n") {
            let size = std::str::from_utf8(&self.raw[..line])
                .ok()
                .and_then(|h| usize::from_str_radix(h.trim(), 16).ok())
                .expect("a chunk size");
            if self.raw.len() < line + 2 + size + 2 {
                return;
            }
            self.body
                .extend_from_slice(&self.raw[line + 2..line + 2 + size]);
            self.raw.drain(..line + 2 + size + 2);
            if size == 0 {
                self.ended = true;
                return;
            }
        }
    }

    /// The next event (not a comment): its fields as `(name, value)` pairs, in order; `None`
    /// when the stream ended first.
    pub fn next_event(&mut self) -> Option<Vec<(String, String)>> {
        loop {
            self.decode();
            let rest = &self.body[self.read..];
            if let Some(end) = rest.windows(2).position(|w| w == b"\n\n") {
                let text = String::from_utf8_lossy(&rest[..end]).into_owned();
                self.read += end + 2;
                let fields: Vec<(String, String)> = text
                    .split('\n')
                    .filter(|l| !l.starts_with(':'))
                    .map(|l| match l.split_once(':') {
                        Some((n, v)) => {
                            (n.to_string(), v.strip_prefix(' ').unwrap_or(v).to_string())
                        }
                        None => (l.to_string(), String::new()),
                    })
                    .collect();
                if !fields.is_empty() {
                    return Some(fields);
                }
                continue;
            }
            if self.ended || !self.read_more() {
                return None;
            }
        }
    }
}

/// An event's `(name, id, data)`: the `data:` lines joined by `\n`, as a browser does.
pub fn parts(fields: &[(String, String)]) -> (String, String, String) {
    let one = |n: &str| {
        fields
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let data: Vec<&str> = fields
        .iter()
        .filter(|(k, _)| k == "data")
        .map(|(_, v)| v.as_str())
        .collect();
    (one("event"), one("id"), data.join("\n"))
}
