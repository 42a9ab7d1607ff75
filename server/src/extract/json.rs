//! `Json<T>`: a JSON body in, or a JSON response out.

use bytes::Bytes;
use http::header::HeaderValue;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{field_error, FromRequest, Rejection};
use crate::context::Ctx;
use crate::error::Error;
use crate::h1::{Request, Response};
use crate::response::IntoResponse;

/// A JSON body deserialized into `T`; as a return value, `T` serialized as the response body.
///
/// Refused with 415 unless the body is `application/json` (or another `+json` type), 400 for
/// a body that is not JSON, and 422 for JSON that does not fit `T`, naming the field
/// (`items[2].price: invalid type: string "x", expected u32`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Json<T>(pub T);

impl<S, T: DeserializeOwned> FromRequest<S> for Json<T> {
    fn from_request(req: &Request, _ctx: &Ctx<S>) -> Result<Json<T>, Rejection> {
        let is_json = req
            .content_type()
            .and_then(|ct| ct.split(';').next())
            .map(str::trim)
            .is_some_and(|mt| {
                mt.eq_ignore_ascii_case("application/json")
                    || (mt.len() > 5 && mt[mt.len() - 5..].eq_ignore_ascii_case("+json"))
            });
        if !is_json {
            return Err(Rejection::unsupported_media_type("application/json"));
        }
        let mut de = serde_json::Deserializer::from_slice(req.body());
        let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            if e.inner().is_data() {
                Rejection::unprocessable(format!("json: {}", field_error(&e)))
            } else {
                Rejection::bad_request(format!("json: {}", e.inner()))
            }
        })?;
        de.end()
            .map_err(|e| Rejection::bad_request(format!("json: {e}")))?;
        Ok(Json(value))
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(body) => Response::with_body(
                HeaderValue::from_static("application/json"),
                Bytes::from(body),
            ),
            Err(e) => Error::internal(e).into_response(),
        }
    }
}
