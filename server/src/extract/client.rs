//! `ClientAddr`: who sent the request, behind trusted proxies.

use std::net::IpAddr;

use super::{FromRequest, Rejection};
use crate::context::Ctx;
use crate::h1::Request;
use crate::ratelimit::client_ip;

/// The client's address: the peer's, or, when the peer is one of the `trusted_proxies`, the
/// client that `X-Forwarded-For` names (read from the right, as the rate limiter reads it).
/// Never refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl<S> FromRequest<S> for ClientAddr {
    fn from_request(req: &Request, ctx: &Ctx<S>) -> Result<ClientAddr, Rejection> {
        Ok(ClientAddr(client_ip(req, ctx.trusted_proxies())))
    }
}
