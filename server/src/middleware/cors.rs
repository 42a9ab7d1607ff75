//! CORS (Fetch standard, "CORS protocol"): an exact-match origin allow-list, preflights, and
//! the response headers of cross-origin requests.

use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Method, StatusCode};

use super::{Before, Exchange, HeaderBlock, Hooks, Middleware};
use crate::context::Ctx;
use crate::error::Error;
use crate::h1::{Request, Response};

/// CORS settings.
#[derive(Debug, Clone)]
pub struct CorsConfig {
    /// Origins allowed, compared exactly (`https://app.example.com`); `*` allows any origin
    /// (and then credentials are refused). Empty: CORS is off.
    pub allowed_origins: Vec<String>,
    /// Methods a preflight may ask for.
    pub allowed_methods: Vec<Method>,
    /// Request headers a preflight may ask for (case-insensitive).
    pub allowed_headers: Vec<String>,
    /// Response headers scripts may read.
    pub exposed_headers: Vec<String>,
    /// Whether cookies and auth may be sent (`Access-Control-Allow-Credentials: true`).
    pub allow_credentials: bool,
    /// How long browsers may cache a preflight (`Access-Control-Max-Age`).
    pub max_age: Duration,
}

impl Default for CorsConfig {
    fn default() -> Self {
        CorsConfig {
            allowed_origins: Vec::new(),
            allowed_methods: vec![
                Method::GET,
                Method::HEAD,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ],
            allowed_headers: vec![
                "content-type".into(),
                "authorization".into(),
                "x-request-id".into(),
            ],
            exposed_headers: vec!["x-request-id".into()],
            allow_credentials: false,
            max_age: Duration::from_secs(600),
        }
    }
}

/// The CORS middleware.
#[derive(Debug)]
pub struct Cors {
    origins: Vec<Vec<u8>>,
    any_origin: bool,
    methods: Vec<Method>,
    headers: Vec<String>,
    methods_value: HeaderValue,
    headers_value: HeaderValue,
    expose_value: Option<HeaderValue>,
    max_age_value: HeaderValue,
    credentials: bool,
}

impl Cors {
    /// Checks and renders the settings.
    ///
    /// # Errors
    /// Credentials together with `*` (the Fetch standard forbids it, and reflecting any origin
    /// instead would hand every site the user's cookies), or a value that is not a valid header.
    pub fn new(config: &CorsConfig) -> Result<Cors, Error> {
        let any_origin = config.allowed_origins.iter().any(|o| o == "*");
        if any_origin && config.allow_credentials {
            return Err(Error::bad_request(
                "cors: allow_credentials cannot be combined with the origin \"*\"",
            ));
        }
        let join = |items: Vec<String>| {
            HeaderValue::from_str(&items.join(", "))
                .map_err(|_| Error::bad_request("cors: invalid header value"))
        };
        Ok(Cors {
            origins: config
                .allowed_origins
                .iter()
                .filter(|o| *o != "*" && *o != "null")
                .map(|o| o.as_bytes().to_vec())
                .collect(),
            any_origin,
            methods: config.allowed_methods.clone(),
            headers: config
                .allowed_headers
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            methods_value: join(
                config
                    .allowed_methods
                    .iter()
                    .map(|m| m.to_string())
                    .collect(),
            )?,
            headers_value: join(config.allowed_headers.clone())?,
            expose_value: if config.exposed_headers.is_empty() {
                None
            } else {
                Some(join(config.exposed_headers.clone())?)
            },
            max_age_value: HeaderValue::from(config.max_age.as_secs()),
            credentials: config.allow_credentials,
        })
    }

    /// Whether `origin` may read responses. `null` (sandboxed frames, `file:` pages) is never
    /// allowed: reflecting it would let any sandboxed page in.
    fn allows(&self, origin: &[u8]) -> bool {
        if origin == b"null" {
            return false;
        }
        self.any_origin || self.origins.iter().any(|o| o == origin)
    }

    /// `Access-Control-Allow-Origin`: `*` for a wildcard without credentials, else the origin.
    fn allow_origin_value(&self, origin: &HeaderValue) -> HeaderValue {
        if self.any_origin && !self.credentials {
            HeaderValue::from_static("*")
        } else {
            origin.clone()
        }
    }

    /// Whether the answer depends on the request's `Origin` (then caches need `Vary: Origin`).
    fn varies(&self) -> bool {
        !self.any_origin || self.credentials
    }

    /// Adds `Origin` to a `Vary` the handler set, before the response is encoded: one field
    /// line listing both, since a cache that reads only one `Vary` line (nginx before 1.23
    /// reads the last) would otherwise drop one of them. A response without `Vary` gets its
    /// own line in [`Middleware::after`]; one whose `Vary` already names `Origin` or `*` is
    /// left alone.
    pub(crate) fn merge_vary(&self, resp: &mut Response) {
        if !self.varies() || resp.header_value(&header::VARY).is_none() {
            return;
        }
        let lists = |v: &HeaderValue| {
            v.as_bytes().split(|&b| b == b',').any(|token| {
                let token = token.trim_ascii();
                token == b"*" || token.eq_ignore_ascii_case(b"origin")
            })
        };
        if resp
            .headers
            .iter()
            .any(|(n, v)| n == header::VARY && lists(v))
        {
            return;
        }
        let Some((_, first)) = resp.headers.iter_mut().find(|(n, _)| n == header::VARY) else {
            return;
        };
        let mut merged = first.as_bytes().trim_ascii().to_vec();
        if !merged.is_empty() {
            merged.extend_from_slice(b", ");
        }
        merged.extend_from_slice(b"Origin");
        if let Ok(value) = HeaderValue::from_bytes(&merged) {
            *first = value;
        }
    }

    fn preflight(&self, req: &Request, origin: &HeaderValue) -> Response {
        let mut resp = Response::new(StatusCode::NO_CONTENT);
        resp.insert_header(
            header::VARY,
            HeaderValue::from_static(
                "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
            ),
        );
        let method_ok = req
            .header("access-control-request-method")
            .and_then(|m| Method::from_bytes(m).ok())
            .is_some_and(|m| self.methods.contains(&m));
        let headers_ok = req
            .header_str("access-control-request-headers")
            .is_none_or(|list| {
                list.split(',')
                    .map(|h| h.trim())
                    .filter(|h| !h.is_empty())
                    .all(|h| self.headers.iter().any(|a| a.eq_ignore_ascii_case(h)))
            });
        if !(self.allows(origin.as_bytes()) && method_ok && headers_ok) {
            // No Access-Control-Allow-* headers: the browser refuses the real request.
            return resp.status(StatusCode::FORBIDDEN);
        }
        resp.insert_header(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            self.allow_origin_value(origin),
        );
        resp.insert_header(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            self.methods_value.clone(),
        );
        resp.insert_header(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            self.headers_value.clone(),
        );
        resp.insert_header(header::ACCESS_CONTROL_MAX_AGE, self.max_age_value.clone());
        if self.credentials {
            resp.insert_header(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        resp
    }

    /// The `before` step, which never waits: answers a preflight (`OPTIONS` with
    /// `Access-Control-Request-Method`) and otherwise keeps the `Origin` for the response
    /// headers. The chain calls it directly.
    pub(crate) fn check(&self, req: &Request, ex: &mut Exchange) -> Option<Response> {
        let origin = req
            .header("origin")
            .and_then(|o| HeaderValue::from_bytes(o).ok())?;
        if req.method() == Method::OPTIONS && req.header("access-control-request-method").is_some()
        {
            return Some(self.preflight(req, &origin));
        }
        ex.set_origin(origin);
        None
    }
}

impl<S: 'static> Middleware<S> for Cors {
    fn name(&self) -> &'static str {
        "cors"
    }

    fn hooks(&self) -> Hooks {
        Hooks::AROUND
    }

    fn needs_path(&self) -> bool {
        false
    }

    fn before<'a>(
        &'a self,
        req: &'a mut Request,
        ex: &'a mut Exchange,
        _ctx: &'a Ctx<S>,
    ) -> Before<'a> {
        match self.check(req, ex) {
            Some(resp) => Before::Respond(resp),
            None => Before::Continue,
        }
    }

    fn after(&self, ex: &Exchange, resp: &Response, out: &mut HeaderBlock, _ctx: &Ctx<S>) {
        // A preflight carries its own headers.
        if resp
            .header_value(&header::ACCESS_CONTROL_ALLOW_METHODS)
            .is_some()
        {
            return;
        }
        if self.varies() && resp.header_value(&header::VARY).is_none() {
            out.push(&header::VARY, &HeaderValue::from_static("Origin"));
        }
        let Some(origin) = ex.origin() else { return };
        if !self.allows(origin.as_bytes()) {
            return;
        }
        out.push(
            &header::ACCESS_CONTROL_ALLOW_ORIGIN,
            &self.allow_origin_value(origin),
        );
        if self.credentials {
            out.push(
                &header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                &HeaderValue::from_static("true"),
            );
        }
        if let Some(expose) = &self.expose_value {
            out.push(&header::ACCESS_CONTROL_EXPOSE_HEADERS, expose);
        }
    }
}
