//! `X-Request-Id`: taken from a trusted proxy, or generated; echoed on the response and
//! available to handlers and logs.

use std::cell::Cell;
use std::net::IpAddr;

use http::header::HeaderValue;

use super::{Before, Exchange, HeaderBlock, Middleware};
use crate::context::Ctx;
use crate::h1::{Request, Response};

/// Longest request id accepted from a proxy; longer ones are replaced.
const MAX_LEN: usize = 128;

/// A request id: generated ones are kept inline (no allocation per request; a `HeaderValue`
/// copy showed up as malloc/free in the plaintext profile), a proxy's as it came.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestIdValue {
    /// 32 lowercase hex digits made here.
    Generated([u8; 32]),
    /// Taken from a trusted proxy's `X-Request-Id`.
    Given(HeaderValue),
}

impl RequestIdValue {
    /// The id's bytes (visible ASCII).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            RequestIdValue::Generated(b) => b,
            RequestIdValue::Given(v) => v.as_bytes(),
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }
}

/// Sets the request id: the proxy's `X-Request-Id` when the peer is trusted and the value is
/// sane (1–128 visible ASCII characters), otherwise a new one — 32 hex digits: a random
/// 64-bit prefix per worker and a counter, unique across instances in practice and cheap (no
/// syscall, no lock).
pub struct RequestId {
    trusted: Box<dyn Fn(IpAddr) -> bool>,
    prefix: u64,
    counter: Cell<u64>,
}

impl RequestId {
    /// `trusted` tells whether a peer address is a trusted proxy; `seed` makes this worker's
    /// ids distinct (mix the time, the pid and the worker index).
    pub fn new(trusted: impl Fn(IpAddr) -> bool + 'static, seed: u64) -> RequestId {
        // SplitMix64 finaliser: spreads a weak seed over all 64 bits.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        RequestId {
            trusted: Box::new(trusted),
            prefix: z ^ (z >> 31),
            counter: Cell::new(0),
        }
    }

    fn generate(&self) -> RequestIdValue {
        let n = self.counter.get().wrapping_add(1);
        self.counter.set(n);
        let mut out = [0u8; 32];
        hex(self.prefix, &mut out[..16]);
        hex(n, &mut out[16..]);
        RequestIdValue::Generated(out)
    }
}

fn hex(mut v: u64, out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in out.iter_mut().rev() {
        *b = DIGITS[(v & 0xf) as usize];
        v >>= 4;
    }
}

fn acceptable(v: &[u8]) -> bool {
    !v.is_empty() && v.len() <= MAX_LEN && v.iter().all(|b| b.is_ascii_graphic())
}

impl<S: 'static> Middleware<S> for RequestId {
    fn name(&self) -> &'static str {
        "request-id"
    }

    fn before<'a>(
        &'a self,
        req: &'a mut Request,
        ex: &'a mut Exchange,
        _ctx: &'a Ctx<S>,
    ) -> Before<'a> {
        let from_proxy = req
            .header("x-request-id")
            .filter(|v| acceptable(v) && (self.trusted)(req.peer_addr().ip()))
            .and_then(|v| HeaderValue::from_bytes(v).ok())
            .map(RequestIdValue::Given);
        let id = from_proxy.unwrap_or_else(|| self.generate());
        req.set_request_id(id.clone());
        ex.request_id = Some(id);
        Before::Continue
    }

    fn after(&self, ex: &Exchange, resp: &Response, out: &mut HeaderBlock, _ctx: &Ctx<S>) {
        if let Some(id) = &ex.request_id {
            if resp
                .header_value(&http::header::HeaderName::from_static("x-request-id"))
                .is_none()
            {
                out.push_str("x-request-id", id.as_bytes());
            }
        }
    }
}
