//! Rate limiting: GCRA per client key, policies per route, the draft-ietf-httpapi
//! `RateLimit` fields and 429 answers.
//!
//! The pieces, in the order a request meets them:
//! - [`KeyExtractor`] / [`client_ip`]: who the request counts against — the peer, the client a
//!   trusted proxy names in `X-Forwarded-For` ([`parse_trusted_proxies`]), or the
//!   application's own key;
//! - [`Policy`]: `quota` per `window` with a `burst`, named for the headers;
//! - a store that keeps one TAT per key and decides with [`gcra`]: [`LocalStore`] in process
//!   (shared by the worker threads), or `pinion_orm::PgRateStore` in PostgreSQL (shared by every
//!   instance) behind a small [`RateStore`] adapter in the application;
//! - [`Decision`] → [`HeaderMode::apply`] on the handler's response, or
//!   [`too_many_requests`] instead of calling the handler.
//!
//! ```
//! use std::time::Duration;
//! use pinion_server::ratelimit::{
//!     parse_trusted_proxies, too_many_requests, HeaderMode, KeyExtractor, LocalStore, Policy,
//! };
//! use pinion_server::{Request, Response};
//!
//! // At start-up:
//! let policy = Policy::new("api", 100, Duration::from_secs(60))?.with_burst(20)?;
//! let store = LocalStore::shared(10_000);
//! let keys = KeyExtractor::new(parse_trusted_proxies("10.0.0.0/8, ::1")?);
//!
//! // Per request, before the handler:
//! let limit = |req: &Request, handler: fn() -> Response| {
//!     let decision = store.decide_at(&policy, keys.key(req), store.now());
//!     if !decision.allowed {
//!         return too_many_requests(&policy, &decision, HeaderMode::Ietf);
//!     }
//!     let mut response = handler();
//!     HeaderMode::Ietf.apply(&mut response, &policy, &decision);
//!     response
//! };
//! # let _ = limit;
//! # Ok::<(), pinion_server::ratelimit::InvalidConfig>(())
//! ```

mod client;
mod error;
mod gcra;
mod header;
mod local;
mod policy;

use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;

pub use client::{
    client_ip, client_ip_from, parse_trusted_proxies, AppKeyFn, ClientKey, KeyExtractor,
};
pub use error::InvalidConfig;
pub use gcra::{gcra, Decision};
pub use header::{
    rate_limit_value, too_many_requests, HeaderMode, DEFAULT_IETF_HEADERS, RATELIMIT,
    RATELIMIT_POLICY,
};
/// Re-exported: trusted proxies are `IpNet`s.
pub use ipnet::IpNet;
pub use local::{LocalStore, DEFAULT_MAX_KEYS};
pub use policy::{Policy, MAX_POLICY_NAME};

use crate::error::Error;

/// Where TATs live, as the middleware sees it: one decision per request.
///
/// [`LocalStore`] implements it (never failing). The PostgreSQL store lives in `pinion-orm`,
/// which this crate does not depend on; the application adapts it:
///
/// ```ignore
/// struct Shared(Rc<pinion_orm::PgRateStore>);
///
/// impl RateStore for Shared {
///     async fn decide(&self, policy: &Policy, client: ClientKey) -> Result<Decision, Error> {
///         let key = policy.store_key(&client);
///         let s = self.0.decide(&key, policy.emission_interval(), policy.tolerance())
///             .await.map_err(Error::internal)?;
///         Ok(Decision::from_tat(policy, s.allowed, s.tat, s.now))
///     }
/// }
/// ```
///
/// Futures need not be `Send`: pinion runs one runtime per core.
pub trait RateStore {
    /// Decides for `client` under `policy` now, recording the new TAT when allowed.
    ///
    /// # Errors
    /// When the store cannot be reached. Whether to let the request through then (fail open)
    /// or refuse it is the caller's choice; failing open, with the error logged, keeps a
    /// database outage from becoming a total one.
    fn decide(
        &self,
        policy: &Policy,
        client: ClientKey,
    ) -> impl Future<Output = Result<Decision, Error>>;

    /// The decision without waiting, for a store that never does I/O (the local one); `None`
    /// means "call [`decide`](RateStore::decide)". Lets the middleware skip boxing a future on
    /// every request when the state is in process.
    fn decide_now(&self, _policy: &Policy, _client: &ClientKey) -> Option<Decision> {
        None
    }
}

/// Decides at [`LocalStore::now`]; never fails, never waits.
impl RateStore for LocalStore {
    fn decide(
        &self,
        policy: &Policy,
        client: ClientKey,
    ) -> impl Future<Output = Result<Decision, Error>> {
        std::future::ready(Ok(self.decide_at(policy, client, self.now())))
    }

    fn decide_now(&self, policy: &Policy, client: &ClientKey) -> Option<Decision> {
        Some(self.decide_at(policy, client.clone(), self.now()))
    }
}

impl<S: RateStore + ?Sized> RateStore for Arc<S> {
    fn decide(
        &self,
        policy: &Policy,
        client: ClientKey,
    ) -> impl Future<Output = Result<Decision, Error>> {
        S::decide(self, policy, client)
    }

    fn decide_now(&self, policy: &Policy, client: &ClientKey) -> Option<Decision> {
        S::decide_now(self, policy, client)
    }
}

impl<S: RateStore + ?Sized> RateStore for Rc<S> {
    fn decide(
        &self,
        policy: &Policy,
        client: ClientKey,
    ) -> impl Future<Output = Result<Decision, Error>> {
        S::decide(self, policy, client)
    }

    fn decide_now(&self, policy: &Policy, client: &ClientKey) -> Option<Decision> {
        S::decide_now(self, policy, client)
    }
}
