//! The app's middleware stack and telemetry, built from the settings for each worker.

use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pinion_config::RateLimitStore;
use pinion_config::Settings;
use pinion_orm::{ConnectionManager, PgRateStore};
use pinion_server::middleware::RateLimit;
use pinion_server::middleware::{
    AccessLog, Cors, CorsConfig, RequestId, SecurityHeaders, SecurityHeadersConfig, ServerTiming,
};
use pinion_server::ratelimit::{
    ClientKey, Decision, HeaderMode, IpNet, KeyExtractor, LocalStore, Policy, RateStore,
};
use pinion_server::telemetry::trace::TraceWriter;
use pinion_server::telemetry::{Telemetry, TelemetryConfig, ThreadTelemetry};
use pinion_server::{Error, Stack};

use crate::AppState;

/// How often a worker writes its buffered access-log records.
const ACCESS_LOG_FLUSH: Duration = Duration::from_millis(100);

/// The process-wide telemetry, when enabled; sampled traces go to `traces` when given (the
/// binary's own log writer), to `tracing` otherwise.
pub fn telemetry(settings: &Settings, traces: Option<TraceWriter>) -> Option<Arc<Telemetry>> {
    settings.telemetry_enabled.then(|| {
        let t = Telemetry::new(TelemetryConfig {
            enabled: true,
            drain_interval: settings.telemetry_drain_interval,
            sample_ratio: settings.telemetry_sample_ratio.get(),
        });
        Arc::new(match traces {
            Some(w) => t.with_trace_writer(w),
            None => t,
        })
    })
}

/// Builds worker `worker`'s stack; also spawns its background tasks (telemetry folding,
/// access-log writing), so it must run on the worker's runtime.
///
/// # Errors
/// A setting the middleware refuses (checked once at start-up by [`check`]).
pub fn stack(
    settings: &Settings,
    worker: usize,
    telemetry: Option<Rc<ThreadTelemetry>>,
    limits: &Limits,
    db: Option<&Rc<ConnectionManager>>,
) -> Result<Stack<AppState>, String> {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id()) << 32
        ^ worker as u64;
    let mut stack = Stack::new();
    if settings.request_id {
        let trusted = settings.trusted_proxies.clone();
        stack = stack.request_id(RequestId::new(
            move |ip: IpAddr| trusted.iter().any(|c| c.contains(ip)),
            seed,
        ));
    }
    if let Some(t) = &telemetry {
        monoio::spawn(Rc::clone(t).run_folder(settings.telemetry_drain_interval));
        stack = stack.telemetry(Rc::clone(t));
    }
    if !limits.policies.is_empty() {
        let keys = KeyExtractor::new(trusted_nets(settings))
            .with_ipv6_prefix(settings.rate_limit_ipv6_prefix);
        let mode = HeaderMode::from_setting(settings.ratelimit_ietf_headers);
        let default = settings.rate_limit_default.as_deref();
        let policies = limits.policies.clone();
        match (&limits.local, db) {
            (Some(local), _) => {
                let mut m = RateLimit::new(Arc::clone(local), policies, default, keys, mode);
                if let Some(t) = &telemetry {
                    m = m.with_telemetry(Rc::clone(t));
                }
                stack = stack.rate_limit(m);
            }
            (None, Some(db)) => {
                let store = Rc::new(PgRateStore::new(Rc::clone(db)));
                if worker == 0 {
                    store.spawn_purger(Duration::from_secs(60));
                }
                let mut m = RateLimit::new(Shared(store), policies, default, keys, mode);
                if let Some(t) = &telemetry {
                    m = m.with_telemetry(Rc::clone(t));
                }
                stack = stack.rate_limit(m);
            }
            (None, None) => return Err("rate_limit_store = \"postgres\" needs a database".into()),
        }
    }
    if settings.access_log {
        let log = AccessLog::new(settings.access_log_sample.get(), seed);
        monoio::spawn(log.flusher(ACCESS_LOG_FLUSH));
        stack = stack.observe(log);
    }
    if settings.server_timing {
        stack = stack.server_timing(ServerTiming);
    }
    if settings.security_headers {
        let config = SecurityHeadersConfig {
            content_security_policy: settings.content_security_policy.clone().unwrap_or_default(),
            hsts: settings.hsts,
            ..SecurityHeadersConfig::default()
        };
        stack = stack.security_headers(SecurityHeaders::new(&config).map_err(|e| e.to_string())?);
    }
    if !settings.cors_allowed_origins.is_empty() {
        let config = CorsConfig {
            allowed_origins: settings.cors_allowed_origins.clone(),
            allow_credentials: settings.cors_allow_credentials,
            max_age: settings.cors_max_age,
            ..CorsConfig::default()
        };
        stack = stack.cors(Cors::new(&config).map_err(|e| e.to_string())?);
    }
    Ok(stack)
}

/// The policy the demo's login submissions are limited by: the one of that name in
/// `rate_limit_policies`, else five per minute per client.
pub const LOGIN_POLICY: &str = "login";

/// Rate-limit state shared by the workers, built once.
pub struct Limits {
    /// The policies, checked.
    pub policies: Vec<Policy>,
    /// The in-process store, when `rate_limit_store = "local"`.
    pub local: Option<Arc<LocalStore>>,
}

impl Limits {
    /// The policies from the settings, and the local store when it is the one configured.
    ///
    /// # Errors
    /// A policy the limiter refuses.
    pub fn new(settings: &Settings) -> Result<Limits, String> {
        let policies = settings
            .rate_limit_policies
            .iter()
            .map(|p| {
                Policy::new(&p.name, p.quota, p.window)
                    .and_then(|policy| policy.with_burst(p.burst))
                    .map_err(|e| format!("rate_limit_policies: {}: {e}", p.name))
            })
            .collect::<Result<Vec<Policy>, _>>()?;
        let mut policies = policies;
        if !policies.iter().any(|p| p.name() == LOGIN_POLICY) {
            // The demo's login form is limited whatever the settings say.
            policies.push(
                Policy::new(LOGIN_POLICY, 5, std::time::Duration::from_secs(60))
                    .map_err(|e| format!("the built-in login policy: {e}"))?,
            );
        }
        let local = (settings.rate_limit_store == RateLimitStore::Local && !policies.is_empty())
            .then(|| LocalStore::shared(settings.rate_limit_max_keys));
        Ok(Limits { policies, local })
    }
}

/// The PostgreSQL store behind the server's [`RateStore`] trait (the server does not depend
/// on the ORM, so the adapter lives here).
struct Shared(Rc<PgRateStore>);

impl RateStore for Shared {
    async fn decide(&self, policy: &Policy, client: ClientKey) -> Result<Decision, Error> {
        let s = self
            .0
            .decide(
                &policy.store_key(&client),
                policy.emission_interval(),
                policy.tolerance(),
            )
            .await
            .map_err(Error::internal)?;
        Ok(Decision::from_tat(policy, s.allowed, s.tat, s.now))
    }
}

/// The trusted proxies as the rate limiter takes them.
fn trusted_nets(settings: &Settings) -> Vec<IpNet> {
    settings
        .trusted_proxies
        .iter()
        .filter_map(|c| IpNet::new(c.addr(), c.prefix()).ok())
        .collect()
}

/// Checks the middleware settings once, before any worker starts, so that a bad value stops
/// start-up with a message instead of failing inside a worker.
///
/// # Errors
/// What the middleware refuses.
pub fn check(settings: &Settings) -> Result<(), String> {
    if settings.security_headers {
        let csp = settings.content_security_policy.clone().unwrap_or_default();
        SecurityHeaders::new(&SecurityHeadersConfig {
            content_security_policy: csp,
            hsts: settings.hsts,
            ..SecurityHeadersConfig::default()
        })
        .map_err(|e| format!("security headers: {e}"))?;
    }
    if !settings.cors_allowed_origins.is_empty() {
        Cors::new(&CorsConfig {
            allowed_origins: settings.cors_allowed_origins.clone(),
            allow_credentials: settings.cors_allow_credentials,
            max_age: settings.cors_max_age,
            ..CorsConfig::default()
        })
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}
