//! The router: `matchit` for paths, then method dispatch with 405 and `Allow`.
//!
//! Built once per worker thread by the application's factory, so handlers and their state may
//! be `!Send`; a lookup allocates only when the matched route captures parameters.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use http::header::HeaderValue;
use http::{Method, StatusCode};

use crate::context::Ctx;
use crate::error::Error;
use crate::h1::request::decode_path_param;
use crate::h1::{Request, Response};
use crate::handler::IntoHandler;
mod layer;
mod options;

pub use layer::{Layer, Next};
pub(crate) use options::RouteInfo;
pub use options::RouteOptions;

use crate::middleware::{Chain, Stack};

/// The future a handler returns, boxed so that routes with different handlers share a table.
pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = Result<Response, Error>> + 'a>>;

/// Something that answers requests: implemented for every
/// `async fn(Request, &Ctx<S>) -> Result<Response, Error>`.
pub trait Handler<S>: 'static {
    /// Handles one request on the worker thread that read it.
    fn call<'a>(&'a self, req: Request, ctx: &'a Ctx<S>) -> HandlerFuture<'a>;
}

impl<S: 'static, F> Handler<S> for F
where
    F: AsyncFn(Request, &Ctx<S>) -> Result<Response, Error> + 'static,
{
    fn call<'a>(&'a self, req: Request, ctx: &'a Ctx<S>) -> HandlerFuture<'a> {
        Box::pin(self(req, ctx))
    }
}

/// What stands in a route's slot for the instant [`Router::layer`] moves its handler into
/// the layer; never called.
struct Unrouted;

impl<S: 'static> Handler<S> for Unrouted {
    fn call<'a>(&'a self, _req: Request, _ctx: &'a Ctx<S>) -> HandlerFuture<'a> {
        Box::pin(async { Ok(Response::new(StatusCode::NOT_FOUND)) })
    }
}

/// One path with its handlers per method.
struct Route<S> {
    info: RouteInfo,
    handlers: Vec<(MethodFilter, Box<dyn Handler<S>>)>,
    /// The `Allow` header value for 405 and OPTIONS, rebuilt when a method is added.
    allow: HeaderValue,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum MethodFilter {
    Any,
    Only(Method),
}

/// Maps paths and methods to handlers.
pub struct Router<S> {
    paths: matchit::Router<usize>,
    by_template: HashMap<String, usize>,
    routes: Vec<Route<S>>,
    chain: Chain<S>,
}

/// What [`Router::find`] decided.
pub(crate) enum Dispatch<'r, S> {
    /// A handler, its route and its captured, decoded parameters.
    Handler(&'r dyn Handler<S>, &'r RouteInfo, Vec<(Box<str>, Box<str>)>),
    /// No route has this path.
    NotFound,
    /// The path exists, the method does not: 405 with this `Allow`.
    MethodNotAllowed(&'r RouteInfo, &'r HeaderValue),
    /// `OPTIONS` on a path without an explicit OPTIONS handler: 204 with this `Allow`.
    Options(&'r RouteInfo, &'r HeaderValue),
}

impl<'r, S> Dispatch<'r, S> {
    /// The matched route, if the path matched one.
    pub(crate) fn route(&self) -> Option<&'r RouteInfo> {
        match self {
            Dispatch::Handler(_, r, _)
            | Dispatch::MethodNotAllowed(r, _)
            | Dispatch::Options(r, _) => Some(r),
            Dispatch::NotFound => None,
        }
    }
}

impl<S: 'static> Default for Router<S> {
    fn default() -> Self {
        Router::new()
    }
}

impl<S: 'static> Router<S> {
    /// An empty router: every request is a 404.
    pub fn new() -> Router<S> {
        Router {
            paths: matchit::Router::new(),
            by_template: HashMap::new(),
            routes: Vec::new(),
            chain: Chain::empty(),
        }
    }

    /// Sets the middleware chain (see [`Stack`] for its fixed order).
    pub fn middleware(mut self, stack: Stack<S>) -> Router<S> {
        self.chain = stack.into_chain();
        self
    }

    pub(crate) fn chain(&self) -> &Chain<S> {
        &self.chain
    }

    /// Sets the options of the route `path` (already routed), e.g. a rate-limit policy, or
    /// [`RouteOptions::bare`] for health probes.
    ///
    /// # Panics
    /// When `path` is not a routed template (a programming error, found at start-up).
    pub fn configure(mut self, path: &str, options: RouteOptions) -> Router<S> {
        let Some(&idx) = self.by_template.get(path) else {
            panic!("configure({path:?}): no such route");
        };
        self.routes[idx].info.options = options;
        self
    }

    /// Routes `method` on `path` to `handler`. Paths use matchit syntax: `/users/{id}`,
    /// `/static/{*rest}`.
    ///
    /// # Panics
    /// When `path` is not a valid template or conflicts with an existing one (a programming
    /// error, found at start-up), or when the same method is routed twice on one path.
    pub fn route<T>(
        self,
        method: Method,
        path: &str,
        handler: impl IntoHandler<T, S>,
    ) -> Router<S> {
        self.add(MethodFilter::Only(method), path, handler.into_handler())
    }

    /// Routes GET (and so HEAD) on `path`.
    pub fn get<T>(self, path: &str, handler: impl IntoHandler<T, S>) -> Router<S> {
        self.route(Method::GET, path, handler)
    }

    /// Routes POST on `path`.
    pub fn post<T>(self, path: &str, handler: impl IntoHandler<T, S>) -> Router<S> {
        self.route(Method::POST, path, handler)
    }

    /// Routes PUT on `path`.
    pub fn put<T>(self, path: &str, handler: impl IntoHandler<T, S>) -> Router<S> {
        self.route(Method::PUT, path, handler)
    }

    /// Routes DELETE on `path`.
    pub fn delete<T>(self, path: &str, handler: impl IntoHandler<T, S>) -> Router<S> {
        self.route(Method::DELETE, path, handler)
    }

    /// Wraps every handler routed so far in `layer` (routes added later are not wrapped):
    /// the last layer added runs first.
    pub fn layer(mut self, layer: impl Layer<S>) -> Router<S> {
        let layer: std::rc::Rc<dyn Layer<S>> = std::rc::Rc::new(layer);
        for route in &mut self.routes {
            for (_, handler) in &mut route.handlers {
                let inner = std::mem::replace(handler, Box::new(Unrouted));
                *handler = Box::new(layer::Layered {
                    layer: std::rc::Rc::clone(&layer),
                    inner,
                });
            }
        }
        self
    }

    /// Routes every method on `path` (methods routed explicitly on it take precedence).
    pub fn any<T>(self, path: &str, handler: impl IntoHandler<T, S>) -> Router<S> {
        self.add(MethodFilter::Any, path, handler.into_handler())
    }

    fn add(mut self, filter: MethodFilter, path: &str, handler: Box<dyn Handler<S>>) -> Router<S> {
        let idx = match self.by_template.get(path) {
            Some(&idx) => idx,
            None => {
                let idx = self.routes.len();
                if let Err(e) = self.paths.insert(path, idx) {
                    panic!("invalid route {path:?}: {e}");
                }
                self.by_template.insert(path.to_string(), idx);
                self.routes.push(Route {
                    info: RouteInfo {
                        template: path.into(),
                        options: RouteOptions::default(),
                    },
                    handlers: Vec::new(),
                    allow: HeaderValue::from_static(""),
                });
                idx
            }
        };
        let route = &mut self.routes[idx];
        assert!(
            !route.handlers.iter().any(|(f, _)| *f == filter),
            "route {path:?} has {filter:?} twice"
        );
        route.handlers.push((filter, handler));
        // Explicit methods first, so that `any` is the fallback.
        route
            .handlers
            .sort_by_key(|(f, _)| matches!(f, MethodFilter::Any));
        route.allow = allow_value(&route.handlers);
        self
    }

    /// Finds the handler for `method` and `path`. HEAD falls back to GET.
    pub(crate) fn find(&self, method: &Method, path: &str) -> Dispatch<'_, S> {
        let Ok(matched) = self.paths.at(path) else {
            return Dispatch::NotFound;
        };
        let route = &self.routes[*matched.value];
        let pick = |m: &Method| {
            route
                .handlers
                .iter()
                .find(|(f, _)| matches!(f, MethodFilter::Only(x) if x == m))
        };
        let found = pick(method)
            .or_else(|| {
                (method == Method::HEAD)
                    .then(|| pick(&Method::GET))
                    .flatten()
            })
            .or_else(|| route.handlers.iter().find(|(f, _)| *f == MethodFilter::Any));
        match found {
            Some((_, handler)) => {
                let params = matched
                    .params
                    .iter()
                    .map(|(k, v)| (Box::from(k), decode_path_param(v)))
                    .collect();
                Dispatch::Handler(&**handler, &route.info, params)
            }
            None if method == Method::OPTIONS => Dispatch::Options(&route.info, &route.allow),
            None => Dispatch::MethodNotAllowed(&route.info, &route.allow),
        }
    }
}

/// `GET, HEAD, POST, OPTIONS`-style list of what a route answers.
fn allow_value<S>(handlers: &[(MethodFilter, Box<dyn Handler<S>>)]) -> HeaderValue {
    let mut methods: Vec<&str> = Vec::new();
    for (f, _) in handlers {
        match f {
            MethodFilter::Any => {
                return HeaderValue::from_static(
                    "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, TRACE",
                )
            }
            MethodFilter::Only(m) => {
                methods.push(m.as_str());
                if *m == Method::GET {
                    methods.push("HEAD");
                }
            }
        }
    }
    if !methods.contains(&"OPTIONS") {
        methods.push("OPTIONS");
    }
    methods.dedup();
    HeaderValue::from_str(&methods.join(", ")).unwrap_or(HeaderValue::from_static("OPTIONS"))
}

/// The response for a request the router could not hand to a handler.
pub(crate) fn fallback_response(found: &Dispatch<'_, impl Sized>) -> Option<Response> {
    match found {
        Dispatch::Handler(..) => None,
        Dispatch::NotFound => Some(Error::not_found().into_response()),
        Dispatch::MethodNotAllowed(_, allow) => Some(
            Error::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
                .into_response()
                .header(http::header::ALLOW, (*allow).clone()),
        ),
        Dispatch::Options(_, allow) => Some(
            Response::new(StatusCode::NO_CONTENT).header(http::header::ALLOW, (*allow).clone()),
        ),
    }
}
