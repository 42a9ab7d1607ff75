//! `Form<T>`: an `application/x-www-form-urlencoded` body, typed.

use serde::de::DeserializeOwned;

use super::{check_form_encoding, field_error, FromRequest, Rejection};
use crate::context::Ctx;
use crate::h1::Request;

/// A form body deserialized into `T`, as an HTML `<form method="post">` sends it; repeated
/// keys (checkboxes, multiple selects) go into a `Vec` field.
///
/// Refused with 415 unless the body is `application/x-www-form-urlencoded`, 400 for malformed
/// percent-encoding, and 422 for a body whose fields do not fit `T` or are not UTF-8 (the
/// detail names the field). A body over `max_body_size` never reaches the extractor: it got
/// 413 before it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Form<T>(pub T);

impl<S, T: DeserializeOwned> FromRequest<S> for Form<T> {
    fn from_request(req: &Request, _ctx: &Ctx<S>) -> Result<Form<T>, Rejection> {
        if !has_media_type(req, "application/x-www-form-urlencoded") {
            return Err(Rejection::unsupported_media_type(
                "application/x-www-form-urlencoded",
            ));
        }
        let body = req.body();
        check_form_encoding(body, "form")?;
        serde_path_to_error::deserialize(serde_html_form::Deserializer::from_bytes(body))
            .map(Form)
            .map_err(|e| Rejection::unprocessable(format!("form: {}", field_error(&e))))
    }
}

/// Whether the request's `Content-Type` is `media_type` (parameters such as `charset`
/// ignored, case-insensitive).
pub(super) fn has_media_type(req: &Request, media_type: &str) -> bool {
    req.content_type()
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|mt| mt.trim().eq_ignore_ascii_case(media_type))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::StatusCode;

    use super::*;
    use crate::h1::head::{self, Limits};

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Order {
        item: String,
        quantity: u32,
    }

    fn form_request(body: &'static [u8]) -> Request {
        let raw = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded; charset=utf-8\r\n\r\n";
        let limits = Limits {
            max_head: 8192,
            max_headers: 32,
            max_uri: 1024,
            max_body: 1 << 20,
        };
        let head = head::parse(raw, &limits)
            .expect("valid head")
            .expect("complete head");
        let head_bytes = Bytes::copy_from_slice(&raw[..head.len]);
        let peer = "127.0.0.1:1".parse().expect("addr");
        Request::new(head, head_bytes, Bytes::from_static(body), peer)
    }

    #[test]
    fn a_mistyped_field_is_named_in_the_detail() {
        let ctx = Ctx::new(
            (),
            0,
            Default::default(),
            std::sync::Arc::new(crate::cookie::CookieKeys::random()),
        );
        let req = form_request(b"item=tea&quantity=two");
        let rejection = Form::<Order>::from_request(&req, &ctx).expect_err("mistyped");
        assert_eq!(rejection.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            rejection.detail(),
            "form: quantity: invalid digit found in string"
        );
        let missing =
            Form::<Order>::from_request(&form_request(b"item=tea"), &ctx).expect_err("missing");
        assert_eq!(missing.detail(), "form: missing field `quantity`");
    }
}
