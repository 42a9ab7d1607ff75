//! [`CookieJar`]: the request's cookies in, `Set-Cookie` headers out.

use std::sync::Arc;

use cookie::{Cookie, Key, SameSite};
use http::header::{HeaderValue, SET_COOKIE};

use super::keys::CookieKeys;
use crate::context::Ctx;
use crate::extract::{FromRequest, Rejection};
use crate::h1::{Request, Response};
use crate::response::IntoResponse;

/// The cookies of a request, and the ones a handler sets or removes.
///
/// Taken as an extractor (never refused: a malformed pair in `Cookie` is skipped) and returned
/// beside the response, `(jar, response)`, which writes one `Set-Cookie` header per cookie
/// added or removed. Cookies added through the jar get safe defaults for whatever they leave
/// unset: `HttpOnly`, `SameSite=Lax`, `Path=/`, and `Secure` when the request came over HTTPS
/// (`X-Forwarded-Proto: https` from a trusted proxy).
///
/// [`signed`](Self::signed) cookies carry an HMAC-SHA256 tag, so a client can read but not
/// change them; [`private`](Self::private) ones are encrypted (AES-256-GCM), so it can do
/// neither. Both use keys derived from `secret_key`; one that does not verify under it or any
/// of `secret_key_fallbacks` is treated as absent (and logged at debug, without its value).
pub struct CookieJar {
    jar: cookie::CookieJar,
    keys: Arc<CookieKeys>,
    secure: bool,
}

impl CookieJar {
    /// A jar of the cookies in `headers` (the values of the request's `Cookie` fields), with
    /// `keys` for signed and private cookies; `secure` adds `Secure` to the cookies it sets.
    pub(crate) fn from_headers<'a>(
        headers: impl Iterator<Item = &'a [u8]>,
        keys: Arc<CookieKeys>,
        secure: bool,
    ) -> CookieJar {
        let mut jar = cookie::CookieJar::new();
        for value in headers.filter_map(|v| std::str::from_utf8(v).ok()) {
            for parsed in Cookie::split_parse_encoded(value.to_owned()).flatten() {
                jar.add_original(parsed);
            }
        }
        CookieJar { jar, keys, secure }
    }

    /// A jar that read no cookie, for a layer that sets one after the handler has taken the
    /// request (a session layer reads its cookie with
    /// [`Ctx::signed_cookie`](crate::Ctx::signed_cookie), which builds no jar): `https` adds
    /// `Secure`, as [`Ctx::is_https`](crate::Ctx::is_https) says.
    pub fn for_response<S>(ctx: &Ctx<S>, https: bool) -> CookieJar {
        CookieJar::from_headers(std::iter::empty(), Arc::clone(ctx.cookie_keys()), https)
    }

    /// Answers with an expired `Set-Cookie` for `name` (`Path=/`), whether or not this jar read
    /// it: for a jar made with [`for_response`](Self::for_response).
    pub fn expire(&mut self, name: &str) {
        self.jar.add_original(Cookie::new(name.to_string(), ""));
        self.remove(Cookie::from(name.to_string()));
    }

    /// The cookie `name` as the client sent it (or as this handler set it), unverified.
    pub fn get(&self, name: &str) -> Option<&Cookie<'static>> {
        self.jar.get(name)
    }

    /// Sets a cookie (`("name", "value")` or a [`Cookie`] built with its attributes), with the
    /// defaults for what it leaves unset.
    pub fn add(&mut self, cookie: impl Into<Cookie<'static>>) {
        let cookie = self.with_defaults(cookie.into());
        self.jar.add(cookie);
    }

    /// Removes a cookie the client sent: answers with an expired `Set-Cookie` for it. A cookie
    /// set with another path or a domain must be named with the same ones
    /// (`Cookie::build("name").path("/admin")`); a bare name means `Path=/`.
    pub fn remove(&mut self, cookie: impl Into<Cookie<'static>>) {
        let cookie = self.with_path(cookie.into());
        self.jar.remove(cookie);
    }

    /// The signed cookies: readable by the client, not changeable.
    pub fn signed(&mut self) -> Sealed<'_> {
        Sealed {
            jar: self,
            seal: Seal::Signed,
        }
    }

    /// The private cookies: encrypted, so the client can neither read nor change them.
    pub fn private(&mut self) -> Sealed<'_> {
        Sealed {
            jar: self,
            seal: Seal::Private,
        }
    }

    /// `cookie` with the defaults applied where it says nothing.
    fn with_defaults(&self, mut cookie: Cookie<'static>) -> Cookie<'static> {
        if cookie.http_only().is_none() {
            cookie.set_http_only(true);
        }
        if cookie.same_site().is_none() {
            cookie.set_same_site(SameSite::Lax);
        }
        if cookie.secure().is_none() && self.secure {
            cookie.set_secure(true);
        }
        self.with_path(cookie)
    }

    fn with_path(&self, mut cookie: Cookie<'static>) -> Cookie<'static> {
        if cookie.path().is_none() {
            cookie.set_path("/");
        }
        cookie
    }

    /// Reads `name` with `open` under the current key, then under each fallback; a cookie
    /// opened with a fallback is written again under the current key (as a session cookie: the
    /// client does not send back its lifetime, so a handler that wants one adds it again).
    fn open(
        &mut self,
        name: &str,
        kind: &'static str,
        open: fn(&cookie::CookieJar, &Key, &str) -> Option<Cookie<'static>>,
        seal: fn(&mut cookie::CookieJar, &Key, Cookie<'static>),
    ) -> Option<Cookie<'static>> {
        let keys = Arc::clone(&self.keys);
        if let Some(cookie) = open(&self.jar, keys.current(), name) {
            return Some(cookie);
        }
        self.jar.get(name)?;
        for fallback in keys.fallbacks() {
            if let Some(cookie) = open(&self.jar, fallback, name) {
                let resealed = self.with_defaults(cookie.clone());
                seal(&mut self.jar, keys.current(), resealed);
                return Some(cookie);
            }
        }
        tracing::debug!(
            cookie = name,
            kind,
            "cookie failed verification; treated as absent"
        );
        None
    }

    /// Writes one `Set-Cookie` per cookie added or removed onto `resp`.
    fn write_to(&self, resp: &mut Response) {
        for cookie in self.jar.delta() {
            match HeaderValue::from_str(&cookie.encoded().to_string()) {
                Ok(value) => resp.insert_header(SET_COOKIE, value),
                Err(_) => tracing::warn!(
                    cookie = cookie.name(),
                    "cookie not sent: its name or attributes are not a valid header value"
                ),
            }
        }
    }
}

impl std::fmt::Debug for CookieJar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: values may be session ids.
        let names: Vec<&str> = self.jar.iter().map(|c| c.name()).collect();
        f.debug_struct("CookieJar")
            .field("names", &names)
            .field("secure", &self.secure)
            .finish()
    }
}

/// Which protection a [`Sealed`] view applies.
#[derive(Clone, Copy)]
enum Seal {
    /// HMAC-SHA256: readable, not changeable.
    Signed,
    /// AES-256-GCM: neither readable nor changeable.
    Private,
}

/// The signed ([`CookieJar::signed`]) or private ([`CookieJar::private`]) cookies of a jar.
pub struct Sealed<'a> {
    jar: &'a mut CookieJar,
    seal: Seal,
}

impl Sealed<'_> {
    /// The cookie `name` verified (signed) or decrypted (private), or `None` when it is absent
    /// or was changed. One sealed with a key of `secret_key_fallbacks` is accepted and sealed
    /// again with `secret_key` in the response.
    pub fn get(&mut self, name: &str) -> Option<Cookie<'static>> {
        match self.seal {
            Seal::Signed => self.jar.open(
                name,
                "signed",
                |jar, key, name| jar.signed(key).get(name),
                |jar, key, cookie| jar.signed_mut(key).add(cookie),
            ),
            Seal::Private => self.jar.open(
                name,
                "private",
                |jar, key, name| jar.private(key).get(name),
                |jar, key, cookie| jar.private_mut(key).add(cookie),
            ),
        }
    }

    /// Sets a sealed cookie, with the jar's defaults.
    pub fn add(&mut self, cookie: impl Into<Cookie<'static>>) {
        let cookie = self.jar.with_defaults(cookie.into());
        let keys = Arc::clone(&self.jar.keys);
        match self.seal {
            Seal::Signed => self.jar.jar.signed_mut(keys.current()).add(cookie),
            Seal::Private => self.jar.jar.private_mut(keys.current()).add(cookie),
        }
    }

    /// Removes a sealed cookie, as [`CookieJar::remove`].
    pub fn remove(&mut self, cookie: impl Into<Cookie<'static>>) {
        self.jar.remove(cookie);
    }
}

/// The signed cookie `name` of `req`, verified under the current key or a fallback, without
/// building a jar (see [`Ctx::signed_cookie`]). `None` without allocating when the request has
/// no `Cookie` header.
pub(crate) fn signed_in_request(
    req: &Request,
    keys: &CookieKeys,
    name: &str,
) -> Option<Cookie<'static>> {
    // Plain loops: this runs on every request of a route that reads one cookie, and most
    // requests send none.
    let mut sent = None;
    for value in req.header_all("cookie") {
        let Ok(text) = std::str::from_utf8(value) else {
            continue;
        };
        for cookie in Cookie::split_parse_encoded(text).flatten() {
            if cookie.name() == name {
                sent = Some(cookie.into_owned());
            }
        }
    }
    let sent = sent?;
    let empty = cookie::CookieJar::new();
    let opened = std::iter::once(keys.current())
        .chain(keys.fallbacks())
        .find_map(|key| empty.signed(key).verify(sent.clone()));
    if opened.is_none() {
        tracing::debug!(
            cookie = name,
            kind = "signed",
            "cookie failed verification; treated as absent"
        );
    }
    opened
}

impl<S> FromRequest<S> for CookieJar {
    fn from_request(req: &Request, ctx: &Ctx<S>) -> Result<CookieJar, Rejection> {
        Ok(CookieJar::from_headers(
            req.header_all("cookie"),
            Arc::clone(ctx.cookie_keys()),
            ctx.is_https(req),
        ))
    }
}

impl<T: IntoResponse> IntoResponse for (CookieJar, T) {
    /// `T`'s response with a `Set-Cookie` for every cookie the jar added or removed.
    fn into_response(self) -> Response {
        let (jar, body) = self;
        let mut resp = body.into_response();
        jar.write_to(&mut resp);
        resp
    }
}
