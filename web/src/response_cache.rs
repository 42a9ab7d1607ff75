//! [`ResponseCache`]: whole GET and HEAD answers kept for a per-route time, through the
//! [`Cache`] trait (a `LocMemCache` per process, or a `TwoTierCache` over a shared tier so that
//! instances share them), with a strong `ETag` and `304 Not Modified` on every answer it
//! covers.
//!
//! What is never stored, or answered from the store: a request with a session cookie (its
//! pages are its own) or `Authorization`; an answer that is not `200`, is streamed, sets a
//! cookie, says `private` or `no-store`, or made a session for the request (a CSRF token in
//! the page). The key is the path and query, then the value of every request header the
//! answer's `Vary` names (`HX-Request`: an htmx fragment and its page are kept apart).
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use pinion_cache::LocMemCache;
//! use pinion_server::Router;
//! use pinion_web::response_cache::ResponseCache;
//!
//! async fn about() -> &'static str {
//!     "about us"
//! }
//!
//! # fn r(store: Arc<LocMemCache>) -> Router<()> {
//! let pages = ResponseCache::new(store);
//! Router::new().get("/about", pages.ttl(Duration::from_secs(60), about))
//! # }
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pinion_cache::{Cache, Ttl};
use pinion_server::{
    header, Ctx, Handler, HandlerFuture, HeaderName, HeaderValue, IntoHandler, Method, Request,
    Response, StatusCode,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::session::{Session, COOKIE, HOST_COOKIE};

/// An answer as it is stored.
#[derive(Clone, Serialize, Deserialize)]
struct Stored {
    content_type: Option<String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Counters of a [`ResponseCache`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResponseCacheStats {
    /// Answers served from the store.
    pub hits: u64,
    /// Cacheable requests that ran their handler.
    pub misses: u64,
    /// `304 Not Modified` answers (hits or not).
    pub not_modified: u64,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    not_modified: AtomicU64,
}

/// Whole answers of the routes it wraps, in `C` (see the [module](self)).
pub struct ResponseCache<C> {
    store: Arc<C>,
    counters: Arc<Counters>,
}

impl<C> Clone for ResponseCache<C> {
    fn clone(&self) -> Self {
        ResponseCache {
            store: Arc::clone(&self.store),
            counters: Arc::clone(&self.counters),
        }
    }
}

impl<C: Cache + 'static> ResponseCache<C> {
    /// A response cache over `store`.
    pub fn new(store: Arc<C>) -> ResponseCache<C> {
        ResponseCache {
            store,
            counters: Arc::default(),
        }
    }

    /// `handler`, with its public answers kept for `ttl`.
    pub fn ttl<S: 'static, T>(
        &self,
        ttl: Duration,
        handler: impl IntoHandler<T, S>,
    ) -> Cached<S, C> {
        Cached {
            cache: self.clone(),
            ttl,
            inner: handler.into_handler(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> ResponseCacheStats {
        ResponseCacheStats {
            hits: self.counters.hits.load(Ordering::Relaxed),
            misses: self.counters.misses.load(Ordering::Relaxed),
            not_modified: self.counters.not_modified.load(Ordering::Relaxed),
        }
    }
}

/// A handler under a [`ResponseCache`] (what [`ResponseCache::ttl`] makes).
pub struct Cached<S, C> {
    cache: ResponseCache<C>,
    ttl: Duration,
    inner: Box<dyn Handler<S>>,
}

/// Whether `req` may be answered from, and fill, a shared cache.
fn public_request(req: &Request) -> bool {
    if !matches!(*req.method(), Method::GET | Method::HEAD) || req.header("authorization").is_some()
    {
        return false;
    }
    !req.header_all("cookie").any(|line| {
        String::from_utf8_lossy(line).split(';').any(|c| {
            let name = c.trim().split('=').next().unwrap_or_default();
            name == COOKIE || name == HOST_COOKIE
        })
    })
}

fn target(req: &Request) -> String {
    match req.query() {
        Some(q) => format!("{}?{q}", req.path()),
        None => req.path().to_string(),
    }
}

/// The key of `target` under the headers `vary` names, with their values from `value`.
fn variant_key<'v>(
    target: &str,
    vary: &[String],
    value: impl Fn(&str) -> Option<&'v str>,
) -> String {
    let mut key = format!("r:{target}");
    for name in vary {
        key.push('\u{1f}');
        key.push_str(name);
        key.push('=');
        key.push_str(value(name).unwrap_or(""));
    }
    key
}

/// The names `Vary` lists in `resp`, lowercased; `None` for `Vary: *` (never stored).
fn vary_of(resp: &Response) -> Option<Vec<String>> {
    let mut names = Vec::new();
    for (n, v) in resp.headers() {
        if *n != header::VARY {
            continue;
        }
        for name in v.to_str().unwrap_or("*").split(',') {
            let name = name.trim().to_ascii_lowercase();
            if name == "*" {
                return None;
            }
            if !name.is_empty() {
                names.push(name);
            }
        }
    }
    names.sort();
    names.dedup();
    Some(names)
}

/// A strong validator of `body`: the start of its SHA-256.
fn etag_of(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    let mut tag = String::with_capacity(34);
    tag.push('"');
    for b in &digest[..16] {
        tag.push_str(&format!("{b:02x}"));
    }
    tag.push('"');
    tag
}

/// Whether `If-None-Match` of `req` names `etag` (or is `*`): a strong comparison, as a GET's
/// `If-None-Match` allows the weak one but our tags are strong anyway.
fn not_modified(req: &Request, etag: &str) -> bool {
    req.header_all("if-none-match").any(|line| {
        String::from_utf8_lossy(line)
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == "*" || t == etag)
    })
}

fn cacheable(resp: &Response) -> bool {
    let private = resp
        .header_value(&header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let v = v.to_ascii_lowercase();
            v.contains("private") || v.contains("no-store")
        });
    resp.status_code() == StatusCode::OK
        && !resp.is_streamed()
        && !private
        && !resp.headers().any(|(n, _)| *n == header::SET_COOKIE)
}

impl Stored {
    fn of(resp: &Response, etag: &str) -> Stored {
        let mut headers: Vec<(String, String)> = resp
            .headers()
            .filter(|(n, _)| **n != header::ETAG)
            .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        headers.push(("etag".into(), etag.to_string()));
        Stored {
            content_type: resp
                .header_value(&header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            headers,
            body: resp.body().to_vec(),
        }
    }

    fn etag(&self) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n == "etag")
            .map_or("", |(_, v)| v.as_str())
    }

    fn response(&self, status: StatusCode, body: bool) -> Response {
        let mut resp = match (&self.content_type, body) {
            (Some(ct), true) => Response::with_body(
                HeaderValue::from_str(ct)
                    .unwrap_or(HeaderValue::from_static("application/octet-stream")),
                self.body.clone().into(),
            ),
            _ => Response::new(status),
        };
        resp = resp.status(status);
        for (n, v) in &self.headers {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(n.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                resp.insert_header(n, v);
            }
        }
        resp
    }
}

impl<S: 'static, C: Cache + 'static> Handler<S> for Cached<S, C> {
    fn call<'a>(&'a self, req: Request, ctx: &'a Ctx<S>) -> HandlerFuture<'a> {
        Box::pin(async move {
            let counters = &self.cache.counters;
            let store = &self.cache.store;
            if !public_request(&req) {
                return self.inner.call(req, ctx).await;
            }
            let target = target(&req);
            let vary_key = format!("v:{target}");
            let vary: Option<Vec<String>> = store.get(&vary_key).await.ok().flatten();
            if let Some(vary) = &vary {
                let key = variant_key(&target, vary, |n| req.header_str(n));
                if let Ok(Some(hit)) = store.get_shared::<Stored>(&key).await {
                    counters.hits.fetch_add(1, Ordering::Relaxed);
                    if not_modified(&req, hit.etag()) {
                        counters.not_modified.fetch_add(1, Ordering::Relaxed);
                        return Ok(hit.response(StatusCode::NOT_MODIFIED, false));
                    }
                    return Ok(hit.response(StatusCode::OK, true));
                }
            }
            counters.misses.fetch_add(1, Ordering::Relaxed);
            // Kept to see, after the handler, whether it made a session for this request.
            let session = req.extensions().get::<Session>().cloned();
            let conditional = RequestFacts::of(&req);
            let mut resp = self.inner.call(req, ctx).await?;
            if !cacheable(&resp) || session.as_ref().is_some_and(Session::exists) {
                return Ok(resp);
            }
            let etag = match resp
                .header_value(&header::ETAG)
                .and_then(|v| v.to_str().ok())
            {
                Some(tag) => tag.to_string(),
                None => {
                    let tag = etag_of(resp.body());
                    if let Ok(v) = HeaderValue::from_str(&tag) {
                        resp.insert_header(header::ETAG, v);
                    }
                    tag
                }
            };
            if let Some(names) = vary_of(&resp) {
                let key = variant_key(&target, &names, |n| conditional.header(n));
                let stored = Stored::of(&resp, &etag);
                // A store that refuses costs the next request a miss, nothing else.
                let _ = store.set(&vary_key, names, Ttl::After(self.ttl)).await;
                let _ = store.set(&key, stored, Ttl::After(self.ttl)).await;
            }
            if conditional.matches(&etag) {
                counters.not_modified.fetch_add(1, Ordering::Relaxed);
                let stored = Stored::of(&resp, &etag);
                return Ok(stored.response(StatusCode::NOT_MODIFIED, false));
            }
            Ok(resp)
        })
    }
}

/// What the answer's key and validation need from the request, kept before the handler takes
/// it: its headers (few; only those `Vary` names are used) and `If-None-Match`.
struct RequestFacts {
    headers: Vec<(String, String)>,
    if_none_match: Vec<String>,
}

impl RequestFacts {
    fn of(req: &Request) -> RequestFacts {
        RequestFacts {
            headers: req
                .headers()
                .map(|(n, v)| {
                    (
                        n.to_ascii_lowercase(),
                        String::from_utf8_lossy(v).into_owned(),
                    )
                })
                .collect(),
            if_none_match: req
                .header_all("if-none-match")
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .collect(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn matches(&self, etag: &str) -> bool {
        self.if_none_match.iter().any(|line| {
            line.split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == "*" || t == etag)
        })
    }
}
