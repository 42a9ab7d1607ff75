//! The `Content-Type` of a static file, from its extension.
//!
//! A short table rather than the `mime_guess` crate: the static folder holds a stylesheet, a
//! script and perhaps a few images and fonts, and a wrong or missing type matters (browsers
//! refuse a script or stylesheet of the wrong type under `X-Content-Type-Options: nosniff`,
//! which the security headers send), so the list is kept short and explicit.

/// The media type for a file named `name`, by its extension (ASCII case-insensitive);
/// `application/octet-stream` for an extension the table does not know, which browsers
/// download rather than run.
pub(crate) fn for_name(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map_or("", |(_, ext)| ext);
    match ext.to_ascii_lowercase().as_str() {
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "map" | "json" => "application/json",
        "html" | "htm" => "text/html; charset=utf-8",
        "txt" => "text/plain; charset=utf-8",
        "md" => "text/markdown; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "webmanifest" => "application/manifest+json",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_extension() {
        assert_eq!(for_name("app.css"), "text/css; charset=utf-8");
        assert_eq!(for_name("htmx.min.js"), "text/javascript; charset=utf-8");
        assert_eq!(for_name("LOGO.PNG"), "image/png");
        assert_eq!(for_name("font.woff2"), "font/woff2");
        assert_eq!(for_name("Makefile"), "application/octet-stream");
        assert_eq!(for_name("archive.tar.zst"), "application/octet-stream");
    }
}
