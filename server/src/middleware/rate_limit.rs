//! The rate-limiting step: one GCRA decision per request, against the route's policy.

use std::collections::HashMap;
use std::rc::Rc;

use super::{Before, Exchange, Hooks, Middleware};
use crate::context::Ctx;
use crate::h1::{Request, Response};
use crate::ratelimit::{
    rate_limit_value, too_many_requests, Decision, HeaderMode, KeyExtractor, Policy, RateStore,
    RATELIMIT, RATELIMIT_POLICY,
};
use crate::telemetry::ThreadTelemetry;

/// Limits each route by its policy ([`RouteOptions::rate_limit`](crate::RouteOptions), or the
/// default policy), per client key (peer, trusted `X-Forwarded-For` client, or an app key).
///
/// An allowed request gets `RateLimit-Policy` and `RateLimit` headers (unless switched off); a
/// denied one a 429 with `Retry-After` and a problem+json body, and the denial is counted in
/// `pinion_rate_limit_hits_total{policy}`. When the store fails (PostgreSQL unreachable) the
/// request goes through and the error is logged: a database outage must not turn into a total
/// one.
pub struct RateLimit<St> {
    store: St,
    policies: HashMap<Box<str>, Policy>,
    default: Option<Box<str>>,
    keys: KeyExtractor,
    mode: HeaderMode,
    telemetry: Option<Rc<ThreadTelemetry>>,
}

impl<St: RateStore + 'static> RateLimit<St> {
    /// A limiter over `store` with `policies`; `default` names the policy of routes that name
    /// none (`None`: those are not limited).
    pub fn new(
        store: St,
        policies: Vec<Policy>,
        default: Option<&str>,
        keys: KeyExtractor,
        mode: HeaderMode,
    ) -> RateLimit<St> {
        RateLimit {
            store,
            policies: policies
                .into_iter()
                .map(|p| (Box::from(p.name()), p))
                .collect(),
            default: default.map(Box::from),
            keys,
            mode,
            telemetry: None,
        }
    }

    /// Counts denials in this worker's telemetry.
    pub fn with_telemetry(mut self, telemetry: Rc<ThreadTelemetry>) -> RateLimit<St> {
        self.telemetry = Some(telemetry);
        self
    }

    fn policy_for(&self, ex: &Exchange) -> Option<&Policy> {
        let name = ex.rate_policy().or(self.default.as_deref())?;
        self.policies.get(name)
    }

    fn decided(&self, policy: &Policy, decision: Decision, ex: &mut Exchange) -> Option<Response> {
        if decision.allowed {
            if self.mode == HeaderMode::Ietf {
                ex.push_header(&RATELIMIT_POLICY, policy.policy_header());
                ex.push_header(&RATELIMIT, &rate_limit_value(policy, &decision));
            }
            None
        } else {
            if let Some(t) = &self.telemetry {
                t.rate_limited(policy.name());
            }
            Some(too_many_requests(policy, &decision, self.mode))
        }
    }
}

impl<S: 'static, St: RateStore + 'static> Middleware<S> for RateLimit<St> {
    fn name(&self) -> &'static str {
        "rate-limit"
    }

    fn hooks(&self) -> Hooks {
        Hooks::BEFORE
    }

    fn needs_path(&self) -> bool {
        false
    }

    fn wants_before(&self, ex: &Exchange) -> bool {
        // No lookup: a route without a policy, under no default, is all most requests are.
        self.default.is_some() || ex.rate_policy().is_some()
    }

    fn before<'a>(
        &'a self,
        req: &'a mut Request,
        ex: &'a mut Exchange,
        _ctx: &'a Ctx<S>,
    ) -> Before<'a> {
        let Some(policy) = self.policy_for(ex) else {
            return Before::Continue;
        };
        let client = self.keys.key(req);
        if let Some(decision) = self.store.decide_now(policy, &client) {
            return match self.decided(policy, decision, ex) {
                Some(resp) => Before::Respond(resp),
                None => Before::Continue,
            };
        }
        Before::Wait(Box::pin(async move {
            match self.store.decide(policy, client).await {
                Ok(decision) => self.decided(policy, decision, ex),
                Err(e) => {
                    tracing::warn!(policy = policy.name(), error = %e, "rate-limit store failed, request let through");
                    None
                }
            }
        }))
    }
}
