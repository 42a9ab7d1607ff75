//! `Headers`: the request's header fields, for handlers that read a few.

use http::header::{HeaderMap, HeaderName, HeaderValue};

use super::{FromRequest, Rejection};
use crate::context::Ctx;
use crate::h1::Request;

/// The request's header fields as an `http::HeaderMap` (names lowercased, repeated fields
/// kept in order). Never refused: the parser already checked every field.
#[derive(Debug, Clone, Default)]
pub struct Headers(pub HeaderMap);

impl<S> FromRequest<S> for Headers {
    fn from_request(req: &Request, _ctx: &Ctx<S>) -> Result<Headers, Rejection> {
        let mut map = HeaderMap::new();
        for (name, value) in req.headers() {
            // The parser admits only valid names and values, so nothing is skipped here.
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_bytes(value),
            ) {
                map.append(n, v);
            }
        }
        Ok(Headers(map))
    }
}
