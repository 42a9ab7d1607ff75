//! `X-Request-Id`: taken from a trusted proxy, or generated; echoed on the response and
//! available to handlers and logs.

use std::cell::Cell;
use std::net::IpAddr;

use http::header::HeaderValue;

use super::{Before, Exchange, HeaderBlock, Hooks, Middleware};
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
/// sane (1–128 characters of `A-Z a-z 0-9 - _ . : + / =`), otherwise a new one — 32 hex
/// digits: a random
/// 64-bit prefix per worker and a counter, unique across instances in practice and cheap (no
/// syscall, no lock).
pub struct RequestId {
    trusted: Box<dyn Fn(IpAddr) -> bool>,
    /// The last id given out, as text: the next one is this with its 16-digit counter half
    /// incremented in place, an odometer over hex digits (rendering 32 digits per request from
    /// two integers cost ~250 instructions; the increment is a handful).
    last: std::cell::RefCell<[u8; 32]>,
    /// The last peer asked about and whether it is trusted: behind nginx (or under a load
    /// test) every request comes from the same address, and the CIDR list is not walked again.
    last_peer: Cell<Option<(IpAddr, bool)>>,
}

impl RequestId {
    /// `trusted` tells whether a peer address is a trusted proxy; `seed` makes this worker's
    /// ids distinct (mix the time, the pid and the worker index).
    pub fn new(trusted: impl Fn(IpAddr) -> bool + 'static, seed: u64) -> RequestId {
        // SplitMix64 finaliser: spreads a weak seed over all 64 bits.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        let mut last = [0u8; 32];
        hex(z ^ (z >> 31), &mut last[..16]);
        hex(0, &mut last[16..]);
        RequestId {
            trusted: Box::new(trusted),
            last: std::cell::RefCell::new(last),
            last_peer: Cell::new(None),
        }
    }

    /// Whether `ip` is a trusted proxy, remembering the last answer.
    fn is_trusted(&self, ip: IpAddr) -> bool {
        match self.last_peer.get() {
            Some((last, trusted)) if last == ip => trusted,
            _ => {
                let trusted = (self.trusted)(ip);
                self.last_peer.set(Some((ip, trusted)));
                trusted
            }
        }
    }

    /// The prefix and the next counter value (wrapping after 16 `f`s, like a `u64`).
    fn generate(&self) -> [u8; 32] {
        // Incremented in place, copied out once (a `Cell` get and set of the array cost two
        // more copies, visible in the profile).
        let mut id = self.last.borrow_mut();
        for digit in id[16..].iter_mut().rev() {
            match *digit {
                b'f' => *digit = b'0', // carry into the next digit
                b'9' => {
                    *digit = b'a';
                    break;
                }
                _ => {
                    *digit += 1;
                    break;
                }
            }
        }
        *id
    }
}

/// `x-request-id`, built at compile time (a runtime `from_static` validates the name).
const X_REQUEST_ID: http::header::HeaderName =
    http::header::HeaderName::from_static("x-request-id");

fn hex(mut v: u64, out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in out.iter_mut().rev() {
        *b = DIGITS[(v & 0xf) as usize];
        v >>= 4;
    }
}

/// Whether a proxy's id may be used: 1–[`MAX_LEN`] characters from `A-Z a-z 0-9 - _ . : + / =`
/// — enough for nginx's `$request_id` (32 hex digits), UUIDs, W3C trace ids and base64, and
/// nothing (quotes, backslashes, `;`, `,`) that could confuse a log line or a header list.
fn acceptable(v: &[u8]) -> bool {
    !v.is_empty()
        && v.len() <= MAX_LEN
        && v.iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-_.:+/=".contains(&b))
}

impl RequestId {
    /// The `before` step, which never waits or answers: sets the id on the request and the
    /// exchange. The chain calls it directly.
    ///
    /// Inlined, with the proxy's id out of line: unless the proxy in front sends ids of its
    /// own (the shipped nginx config sends `$request_id`), the generated id is the path taken, and the
    /// call with its stack frame cost about ten instructions per request (callgrind,
    /// pipelined plaintext). A proxy's id still costs only that call.
    #[inline]
    pub(crate) fn assign(&self, req: &mut Request, ex: &mut Exchange) {
        // The header is looked for only when the parser saw one and the peer is a trusted
        // proxy (one comparison behind a single proxy or a load generator).
        if req.has_request_id_header() && self.assign_given(req, ex) {
            return;
        }
        // The array is `Copy`: both get it without an enum clone.
        let id = self.generate();
        req.set_request_id(RequestIdValue::Generated(id));
        ex.set_generated_id(id);
    }

    /// Takes the proxy's `X-Request-Id` when the peer is trusted and the value acceptable.
    ///
    /// # Return
    /// Whether it did (otherwise the caller generates one).
    #[cold]
    #[inline(never)]
    fn assign_given(&self, req: &mut Request, ex: &mut Exchange) -> bool {
        if !self.is_trusted(req.peer_addr().ip()) {
            return false;
        }
        let given = req
            .header("x-request-id")
            .filter(|v| acceptable(v))
            .and_then(|v| HeaderValue::from_bytes(v).ok());
        let Some(given) = given else {
            return false;
        };
        req.set_request_id(RequestIdValue::Given(given.clone()));
        ex.set_given_id(given);
        true
    }
}

impl<S: 'static> Middleware<S> for RequestId {
    fn name(&self) -> &'static str {
        "request-id"
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
        self.assign(req, ex);
        Before::Continue
    }

    fn after(&self, ex: &Exchange, resp: &Response, out: &mut HeaderBlock, _ctx: &Ctx<S>) {
        if !resp.headers.is_empty() && resp.header_value(&X_REQUEST_ID).is_some() {
            return; // the handler set its own
        }
        match ex.generated_id() {
            // Fixed sizes, copied straight into the block: a line built on the stack and then
            // copied cost a `memcpy` call and about 40 instructions more.
            Some(text) => out.push_fixed(b"x-request-id: ", text, b"\r\n"),
            None => {
                if let Some(id) = ex.request_id() {
                    out.push_str("x-request-id", id.as_bytes());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter_half(id: &[u8; 32]) -> &str {
        std::str::from_utf8(&id[16..]).expect("hex")
    }

    fn text(id: &[u8; 32]) -> &str {
        std::str::from_utf8(id).expect("hex")
    }

    #[test]
    fn ids_count_up_in_hex_after_a_fixed_prefix() {
        let r = RequestId::new(|_| false, 7);
        let ids: Vec<[u8; 32]> = (0..300).map(|_| r.generate()).collect();
        let prefix = &text(&ids[0])[..16];
        for (i, id) in ids.iter().enumerate() {
            assert!(text(id).bytes().all(|b| b.is_ascii_hexdigit()));
            assert_eq!(&text(id)[..16], prefix);
            assert_eq!(counter_half(id), format!("{:016x}", i + 1));
        }
        assert_ne!(
            text(&RequestId::new(|_| false, 8).generate())[..16],
            *prefix,
            "seeds give workers distinct prefixes"
        );
    }

    #[test]
    fn only_plain_ids_are_taken_from_a_proxy() {
        for ok in [
            "0f8fad5bd9cb469fa16570867728950e",
            "550e8400-e29b-41d4-a716-446655440000",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "YWJjZA==",
            "a",
        ] {
            assert!(acceptable(ok.as_bytes()), "{ok}");
        }
        let long = "a".repeat(MAX_LEN + 1);
        for bad in [
            "",
            "a b",
            "a\"b",
            "a\\b",
            "a;b",
            "a,b",
            "<script>",
            long.as_str(),
        ] {
            assert!(!acceptable(bad.as_bytes()), "{bad}");
        }
        assert!(!acceptable(b"a\xc2\x85b"));
    }

    #[test]
    fn the_counter_wraps_like_a_u64() {
        let r = RequestId::new(|_| false, 1);
        r.last.borrow_mut()[16..].copy_from_slice(b"fffffffffffffffe");
        assert_eq!(counter_half(&r.generate()), "ffffffffffffffff");
        assert_eq!(counter_half(&r.generate()), "0000000000000000");
        assert_eq!(counter_half(&r.generate()), "0000000000000001");
    }
}
