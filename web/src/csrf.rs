//! CSRF protection bound to the session: OWASP's signed double-submit token, checked after
//! Fetch Metadata and `Origin`.
//!
//! A token is `base64url(r ‖ HMAC-SHA256(k, session id ‖ r))` with `r` 16 fresh random bytes
//! and `k` a key derived from `secret_key` for this purpose alone
//! ([`Ctx::derived_keys`](pinion_server::Ctx::derived_keys)). Every token the session was
//! given stays valid while its id does; a rotated id (at login) invalidates the tokens of
//! the one before. A token of another session, or of no session, never verifies, and the
//! comparison takes the same time however much of it matches.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use pinion_server::Request;

use crate::session::id::SessionId;

/// The form field a token travels in.
pub const FORM_FIELD: &str = "csrf_token";

/// The header a token travels in (htmx sends it through `hx-headers`).
pub const HEADER: &str = "x-csrf-token";

const NONCE: usize = 16;
const MAC: usize = 32;

type HmacSha256 = Hmac<sha2::Sha256>;

/// Why an unsafe request was refused; each is answered 403, the reason logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `Sec-Fetch-Site: cross-site`: the browser says another site sent it.
    CrossSite,
    /// `Origin` names a site that is neither this one nor a trusted origin.
    ForeignOrigin,
    /// No token in the header or the form.
    MissingToken,
    /// A token that is not this session's.
    WrongToken,
}

impl Refusal {
    /// For the log line.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Refusal::CrossSite => "Sec-Fetch-Site is cross-site",
            Refusal::ForeignOrigin => "Origin is not this site or a trusted origin",
            Refusal::MissingToken => "no CSRF token in the X-CSRF-Token header or the form",
            Refusal::WrongToken => "the CSRF token is not this session's",
        }
    }
}

/// The keys tokens are made with (the first) and accepted under (any).
pub(crate) struct CsrfKeys(Vec<[u8; 32]>);

impl CsrfKeys {
    pub(crate) fn new(keys: Vec<[u8; 32]>) -> CsrfKeys {
        CsrfKeys(keys)
    }

    fn mac(key: &[u8; 32], id: &SessionId, nonce: &[u8]) -> HmacSha256 {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(id.as_bytes());
        mac.update(nonce);
        mac
    }

    /// A new token for session `id`.
    ///
    /// # Errors
    /// When the OS cannot provide random bytes.
    pub(crate) fn issue(&self, id: &SessionId) -> Result<String, getrandom::Error> {
        let mut raw = [0u8; NONCE + MAC];
        getrandom::getrandom(&mut raw[..NONCE])?;
        let key = self
            .0
            .first()
            .expect("derived_keys returns the current key first");
        let tag = CsrfKeys::mac(key, id, &raw[..NONCE])
            .finalize()
            .into_bytes();
        raw[NONCE..].copy_from_slice(&tag);
        Ok(URL_SAFE_NO_PAD.encode(raw))
    }

    /// Whether `token` was issued to session `id` (under any of the keys).
    pub(crate) fn verify(&self, id: &SessionId, token: &str) -> bool {
        let mut raw = [0u8; NONCE + MAC];
        if !matches!(URL_SAFE_NO_PAD.decode_slice(token.trim(), &mut raw), Ok(n) if n == raw.len())
        {
            return false;
        }
        let (nonce, tag) = raw.split_at(NONCE);
        self.0
            .iter()
            .any(|key| CsrfKeys::mac(key, id, nonce).verify_slice(tag).is_ok())
    }
}

/// Whether `method` can change state: every method but GET, HEAD, OPTIONS and TRACE.
pub(crate) fn is_unsafe(method: &pinion_server::Method) -> bool {
    !matches!(
        *method,
        pinion_server::Method::GET
            | pinion_server::Method::HEAD
            | pinion_server::Method::OPTIONS
            | pinion_server::Method::TRACE
    )
}

/// The checks that need no session: Fetch Metadata first (a browser that sends it says
/// where the request came from), then `Origin` against this site (`https` or not, with the
/// request's `Host`) and `trusted`.
pub(crate) fn check_origin(req: &Request, https: bool, trusted: &[String]) -> Result<(), Refusal> {
    if req
        .header_str("sec-fetch-site")
        .is_some_and(|s| s.trim().eq_ignore_ascii_case("cross-site"))
    {
        return Err(Refusal::CrossSite);
    }
    let Some(origin) = req.header_str("origin").map(str::trim) else {
        // Older browsers and non-browser clients send none; the token decides.
        return Ok(());
    };
    let own = req.header_str("host").is_some_and(|host| {
        let scheme = if https { "https://" } else { "http://" };
        origin
            .get(..scheme.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
            && origin[scheme.len()..].eq_ignore_ascii_case(host.trim())
    });
    if own || trusted.iter().any(|t| t.eq_ignore_ascii_case(origin)) {
        Ok(())
    } else {
        Err(Refusal::ForeignOrigin)
    }
}

/// The token the request carries: the header, else the form field of a
/// `application/x-www-form-urlencoded` body.
pub(crate) fn token_of(req: &Request) -> Option<String> {
    if let Some(t) = req.header_str(HEADER) {
        return Some(t.to_string());
    }
    let form = req.content_type().is_some_and(|ct| {
        ct.trim()
            .to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded")
    });
    if !form {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct Field {
        csrf_token: Option<String>,
    }
    serde_html_form::from_bytes::<Field>(req.body())
        .ok()
        .and_then(|f| f.csrf_token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_for_its_session_only_and_under_fallback_keys() {
        let keys = CsrfKeys::new(vec![[1; 32], [2; 32]]);
        let (a, b) = (
            SessionId::generate().expect("id"),
            SessionId::generate().expect("id"),
        );
        let token = keys.issue(&a).expect("token");
        assert_eq!(token.len(), 64);
        assert!(keys.verify(&a, &token));
        assert!(!keys.verify(&b, &token), "another session's token");
        assert_ne!(
            keys.issue(&a).expect("token"),
            token,
            "a fresh nonce each time"
        );
        // Any change breaks it.
        let mut changed = token.clone().into_bytes();
        changed[40] = if changed[40] == b'A' { b'B' } else { b'A' };
        assert!(!keys.verify(&a, &String::from_utf8(changed).expect("ascii")));
        assert!(!keys.verify(&a, &token[..63]));
        assert!(!keys.verify(&a, ""));
        // Issued under a key that is now a fallback: still accepted.
        let rotated = CsrfKeys::new(vec![[3; 32], [1; 32]]);
        assert!(rotated.verify(&a, &token));
        assert!(!CsrfKeys::new(vec![[3; 32]]).verify(&a, &token));
    }

    #[test]
    fn only_unsafe_methods_are_checked() {
        use pinion_server::Method;
        for m in [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE] {
            assert!(!is_unsafe(&m), "{m}");
        }
        for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(is_unsafe(&m), "{m}");
        }
    }
}
