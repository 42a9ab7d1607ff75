//! Security headers with OWASP's recommended defaults (OWASP Secure Headers Project).

use http::header::{self, HeaderName, HeaderValue};

use super::{HeaderBlock, Hooks, Middleware};
use crate::context::Ctx;
use crate::error::Error;
use crate::h1::Response;
use crate::middleware::Exchange;

/// Default `Content-Security-Policy` for HTML responses: same-origin everything, no plugins,
/// no framing (the modern form of `X-Frame-Options: DENY`), no base-tag or form hijacking.
pub const DEFAULT_CSP: &str =
    "default-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'";
/// Default `Permissions-Policy`: powerful features off unless the app turns them on.
///
/// Without `interest-cohort=()`, the FLoC opt-out of 2021: Chrome dropped FLoC in 2022 and now
/// reports the feature as unrecognised in the console of every page that sends it, and the
/// 20 bytes went out on every response.
pub const DEFAULT_PERMISSIONS_POLICY: &str =
    "camera=(), microphone=(), geolocation=(), payment=(), usb=()";
/// Default `Referrer-Policy`: full URL same-origin, origin only cross-origin, nothing on
/// downgrade.
pub const DEFAULT_REFERRER_POLICY: &str = "strict-origin-when-cross-origin";

/// Which security headers to send.
#[derive(Debug, Clone)]
pub struct SecurityHeadersConfig {
    /// `Content-Security-Policy` for `text/html` responses (empty: none).
    pub content_security_policy: String,
    /// `Referrer-Policy`.
    pub referrer_policy: String,
    /// `Permissions-Policy` (empty: none).
    pub permissions_policy: String,
    /// Send `Strict-Transport-Security`. Off by default: nginx terminates TLS and is the right
    /// place for HSTS; turn it on when pinion's responses are only ever served over HTTPS.
    pub hsts: bool,
    /// `max-age` of HSTS, in seconds (a year by default, with `includeSubDomains`).
    pub hsts_max_age: u64,
}

impl Default for SecurityHeadersConfig {
    fn default() -> Self {
        SecurityHeadersConfig {
            content_security_policy: DEFAULT_CSP.to_string(),
            referrer_policy: DEFAULT_REFERRER_POLICY.to_string(),
            permissions_policy: DEFAULT_PERMISSIONS_POLICY.to_string(),
            hsts: false,
            hsts_max_age: 31_536_000,
        }
    }
}

/// Adds `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`, `Referrer-Policy`,
/// `Cross-Origin-Opener-Policy: same-origin`, `Cross-Origin-Resource-Policy: same-origin`,
/// `Permissions-Policy`, a `Content-Security-Policy` on HTML, and optionally HSTS — except
/// where the handler set the header itself.
#[derive(Debug)]
pub struct SecurityHeaders {
    /// Every header but CSP, pre-rendered: one copy per response.
    block: Box<[u8]>,
    names: Vec<HeaderName>,
    csp: Option<HeaderValue>,
}

impl SecurityHeaders {
    /// Renders the headers once.
    ///
    /// # Errors
    /// A configured value that is not a valid header value (a newline, say).
    pub fn new(config: &SecurityHeadersConfig) -> Result<SecurityHeaders, Error> {
        let value = |v: &str, what: &str| {
            HeaderValue::from_str(v)
                .map_err(|_| Error::bad_request(format!("invalid {what} value")))
        };
        let mut headers: Vec<(HeaderName, HeaderValue)> = vec![
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (
                header::REFERRER_POLICY,
                value(&config.referrer_policy, "referrer policy")?,
            ),
            (
                HeaderName::from_static("cross-origin-opener-policy"),
                HeaderValue::from_static("same-origin"),
            ),
            (
                HeaderName::from_static("cross-origin-resource-policy"),
                HeaderValue::from_static("same-origin"),
            ),
        ];
        if !config.permissions_policy.is_empty() {
            headers.push((
                HeaderName::from_static("permissions-policy"),
                value(&config.permissions_policy, "permissions policy")?,
            ));
        }
        if config.hsts {
            headers.push((
                header::STRICT_TRANSPORT_SECURITY,
                value(
                    &format!("max-age={}; includeSubDomains", config.hsts_max_age),
                    "hsts",
                )?,
            ));
        }
        let mut rendered = bytes::BytesMut::new();
        let mut block = HeaderBlock::over(&mut rendered);
        for (n, v) in &headers {
            block.push(n, v);
        }
        let csp = if config.content_security_policy.is_empty() {
            None
        } else {
            Some(value(
                &config.content_security_policy,
                "content security policy",
            )?)
        };
        Ok(SecurityHeaders {
            block: rendered[..].into(),
            names: headers.into_iter().map(|(n, _)| n).collect(),
            csp,
        })
    }
}

impl<S: 'static> Middleware<S> for SecurityHeaders {
    fn name(&self) -> &'static str {
        "security-headers"
    }

    fn hooks(&self) -> Hooks {
        Hooks::AFTER
    }

    fn needs_path(&self) -> bool {
        false
    }

    fn after(&self, _ex: &Exchange, resp: &Response, out: &mut HeaderBlock, _ctx: &Ctx<S>) {
        if resp.headers.is_empty() {
            out.push_block(&self.block);
        } else {
            // The handler set some headers: add ours one by one, skipping those it chose.
            let block = std::str::from_utf8(&self.block).unwrap_or("");
            for (line, name) in block.split_terminator("\r\n").zip(&self.names) {
                if resp.header_value(name).is_none() {
                    out.push_block(line.as_bytes());
                    out.push_block(b"\r\n");
                }
            }
        }
        if let Some(csp) = &self.csp {
            let is_html = resp
                .content_type
                .as_ref()
                .is_some_and(|ct| is_html(ct.as_bytes()));
            if is_html
                && resp
                    .header_value(&header::CONTENT_SECURITY_POLICY)
                    .is_none()
            {
                out.push(&header::CONTENT_SECURITY_POLICY, csp);
            }
        }
    }
}

/// Whether a `Content-Type` is HTML: media types are case-insensitive (RFC 9110 §8.3.1), so
/// `Text/HTML; charset=utf-8` is one too.
/// It runs on every response, so the media type is compared where it starts, eight bytes as
/// one word: `| 0x20` lowercases the letters and keeps `/` (only a control character, which a
/// header value cannot hold, would map onto them too).
fn is_html(content_type: &[u8]) -> bool {
    const LOWER: u64 = 0x2020_2020_2020_2020;
    let Some((media_type, rest)) = content_type.trim_ascii_start().split_at_checked(9) else {
        return false;
    };
    let mut first = [0u8; 8];
    first.copy_from_slice(&media_type[..8]);
    u64::from_le_bytes(first) | LOWER == u64::from_le_bytes(*b"text/htm")
        && media_type[8] | 0x20 == b'l'
        && matches!(rest.trim_ascii_start().first(), None | Some(b';'))
}

#[cfg(test)]
mod tests {
    use super::is_html;

    #[test]
    fn html_is_recognised_in_any_case_and_nothing_else_is() {
        for ct in [
            "text/html",
            "Text/HTML",
            "TEXT/HTML; charset=utf-8",
            "text/html ;q=1",
            " text/html",
            "text/html;",
        ] {
            assert!(is_html(ct.as_bytes()), "{ct}");
        }
        for ct in [
            "text/plain",
            "text/htmlx",
            "text/html x",
            "application/json",
            "",
            "text/htm",
        ] {
            assert!(!is_html(ct.as_bytes()), "{ct}");
        }
    }
}
