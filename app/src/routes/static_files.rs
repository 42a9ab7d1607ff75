//! `GET /static/{*path}`: a static file by its content-hashed name, from memory (see
//! [`assets`](crate::assets)). In production nginx answers these URLs itself
//! (`nginx/static.conf`) and the request never reaches the app.

use pinion_server::header::{CACHE_CONTROL, ETAG};
use pinion_server::{Ctx, Error, HeaderValue, Request, Response, StatusCode};

use crate::assets::{Asset, CACHE_CONTROL as IMMUTABLE};
use crate::AppState;

/// The file named by the path after `/static/` with its type, a year-long immutable
/// `Cache-Control` and its strong `ETag`; `304 Not Modified` (no body) when `If-None-Match`
/// names that tag. Anything that is not a hashed name of the folder, including a logical
/// name, a stale hash and any `..`, is 404: the path is looked up, never opened.
pub async fn serve(req: Request, ctx: &Ctx<AppState>) -> Result<Response, Error> {
    let path = req.param("path").unwrap_or_default();
    let Some(asset) = ctx.state().assets.get(path) else {
        return Err(Error::new(StatusCode::NOT_FOUND, "no such file"));
    };
    let fresh = req
        .header_str("if-none-match")
        .is_some_and(|tags| matches_etag(tags, asset));
    let response = if fresh {
        Response::new(StatusCode::NOT_MODIFIED)
    } else {
        Response::with_body(asset.content_type.clone(), asset.body.clone())
    };
    Ok(response
        .header(CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE))
        .header(ETAG, asset.etag.clone()))
}

/// Whether an `If-None-Match` value (`*`, or a list of entity tags) names the asset's tag, by
/// the weak comparison RFC 9110 §13.1.2 asks for (`W/"x"` matches `"x"`). Hand-written: the
/// grammar is a comma-separated list of quoted tags, and no crate in the tree parses it.
fn matches_etag(if_none_match: &str, asset: &Asset) -> bool {
    let ours = asset.etag.as_bytes();
    if_none_match
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag).as_bytes() == ours)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pinion_server::Bytes;

    #[test]
    fn if_none_match_compares_weakly() {
        let asset = Asset {
            body: Bytes::new(),
            content_type: HeaderValue::from_static("text/css"),
            etag: HeaderValue::from_static("\"3f2a9c1d0b7e4a55\""),
        };
        assert!(matches_etag("\"3f2a9c1d0b7e4a55\"", &asset));
        assert!(matches_etag("W/\"3f2a9c1d0b7e4a55\"", &asset));
        assert!(matches_etag("\"old\", \"3f2a9c1d0b7e4a55\"", &asset));
        assert!(matches_etag("*", &asset));
        assert!(!matches_etag("\"old\"", &asset));
        assert!(!matches_etag("3f2a9c1d0b7e4a55", &asset), "unquoted");
        assert!(!matches_etag("", &asset));
    }
}
