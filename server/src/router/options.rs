//! Per-route choices: whether the middleware chain runs, which rate-limit policy applies.

use std::rc::Rc;

/// Per-route choices, set with [`Router::configure`](crate::Router::configure).
#[derive(Debug, Clone)]
pub struct RouteOptions {
    pub(crate) middleware: bool,
    pub(crate) rate_limit: Option<Rc<str>>,
    /// Whether the policy counts GET, HEAD, OPTIONS and TRACE too.
    pub(crate) rate_limit_safe: bool,
}

impl Default for RouteOptions {
    fn default() -> Self {
        RouteOptions {
            middleware: true,
            rate_limit: None,
            rate_limit_safe: true,
        }
    }
}

impl RouteOptions {
    /// Every middleware on, no rate-limit policy.
    pub fn new() -> RouteOptions {
        RouteOptions::default()
    }

    /// Limits this route with the named policy.
    pub fn rate_limit(mut self, policy: &str) -> RouteOptions {
        self.rate_limit = Some(policy.into());
        self
    }

    /// Limits only this route's unsafe methods (POST, PUT, PATCH, DELETE) with the named
    /// policy: a login form is shown freely while its submissions are limited. Its safe
    /// methods fall under `rate_limit_default`, as unconfigured routes do.
    pub fn rate_limit_unsafe(mut self, policy: &str) -> RouteOptions {
        self.rate_limit = Some(policy.into());
        self.rate_limit_safe = false;
        self
    }

    /// Skips the whole chain for this route (health probes: cheap, never rate limited).
    pub fn bare(mut self) -> RouteOptions {
        self.middleware = false;
        self.rate_limit = None;
        self
    }
}

/// A route as the chain sees it: its template and options.
#[derive(Debug, Clone)]
pub(crate) struct RouteInfo {
    pub(crate) template: Rc<str>,
    pub(crate) options: RouteOptions,
}
