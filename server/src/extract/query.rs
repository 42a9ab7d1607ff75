//! `Query<T>`: the query string, typed.

use serde::de::DeserializeOwned;

use super::{check_form_encoding, field_error, FromRequest, Rejection};
use crate::context::Ctx;
use crate::h1::Request;

/// The query string deserialized into `T` (`?q=rust&tag=a&tag=b` into a struct with a
/// `Vec<String>` field for the repeated key). A missing query string is an empty one.
///
/// Refused with 400 when the query does not fit `T` (a missing field, a number that is not
/// one, malformed percent-encoding); the detail names the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query<T>(pub T);

impl<S, T: DeserializeOwned> FromRequest<S> for Query<T> {
    fn from_request(req: &Request, _ctx: &Ctx<S>) -> Result<Query<T>, Rejection> {
        let query = req.query().unwrap_or_default().as_bytes();
        check_form_encoding(query, "query string")
            .map_err(|r| Rejection::bad_request(r.detail().to_string()))?;
        serde_path_to_error::deserialize(serde_html_form::Deserializer::from_bytes(query))
            .map(Query)
            .map_err(|e| Rejection::bad_request(format!("query string: {}", field_error(&e))))
    }
}
