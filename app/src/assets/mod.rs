//! Static files with content-hashed names: read once at start-up from `static_dir`, kept in
//! memory, and served under [`PREFIX`] with a year-long, immutable `Cache-Control`.
//!
//! A file `app.css` whose SHA-256 starts `3f2a9c1d0b7e4a55…` is served as
//! `/static/app.3f2a9c1d0b7e4a55.css`: the name changes whenever the content does, so
//! browsers and proxies may keep it for a year without asking again, and a deploy is seen at
//! once because the pages link the new name. Templates ask for the URL by the logical name
//! ([`Assets::url`], through [`Layout::asset`](crate::layout::Layout::asset)).
//!
//! Only the hashed names are served, from a map built at start-up: a request path is looked
//! up, never joined to a directory, so `..`, encoded slashes or a symlink cannot reach a file
//! outside the folder. Symlinks in the folder are followed only to files inside it.

mod content_type;

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use pinion_server::{Bytes, HeaderValue};
use sha2::{Digest, Sha256};

/// Where the hashed names are served: `GET /static/{*path}`, and nginx's location in
/// production (`nginx/static.conf`).
pub const PREFIX: &str = "/static/";

/// The `Cache-Control` of a hashed name: a year (the longest lifetime caches honour), and
/// `immutable` so that browsers do not revalidate it on reload either.
pub const CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// Hex digits of the SHA-256 in a hashed name: 64 bits, so two versions of one file
/// collide with odds of 2^-64, in a name still short to read.
pub const HASH_LEN: usize = 16;

/// One static file, ready to be answered: the body is shared, so serving it copies nothing.
#[derive(Debug, Clone)]
pub struct Asset {
    /// The file's bytes, read at start-up.
    pub body: Bytes,
    /// Its media type, by extension.
    pub content_type: HeaderValue,
    /// Its strong `ETag`, the quoted hash of its name (a name has exactly one content).
    pub etag: HeaderValue,
}

/// The static files of a process, by logical name (`app.css`) and by hashed name
/// (`app.3f2a9c1d0b7e4a55.css`). Built once, then shared read-only by every worker.
#[derive(Debug, Default)]
pub struct Assets {
    /// Logical name (relative path, `/`-separated) to URL (`/static/` + hashed name).
    urls: HashMap<String, String>,
    /// Hashed name (relative path, without [`PREFIX`]) to the file.
    files: HashMap<String, Asset>,
}

/// Why the static folder could not be read.
#[derive(Debug)]
pub struct LoadError {
    /// The file or folder that failed.
    pub path: PathBuf,
    /// The operating system's reason.
    pub source: io::Error,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot read {}: {}", self.path.display(), self.source)
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl Assets {
    /// No files: what a worker has when the application did not load any (tests of handlers
    /// that render no page). Every [`url`](Self::url) is `None`.
    pub fn empty() -> Assets {
        Assets::default()
    }

    /// Reads every file under `dir` (recursively) into memory and names each by its hash.
    ///
    /// Skipped, with a warning: hidden files and folders (`.gitignore`), names with characters
    /// other than ASCII letters, digits, `.`, `-` and `_` (so that a URL never needs escaping),
    /// symlinked folders, and symlinks to files outside `dir`.
    ///
    /// # Errors
    /// When `dir` or a file in it cannot be read (missing, not a folder, no permission).
    pub fn load(dir: &Path) -> Result<Assets, LoadError> {
        let fail = |path: &Path| {
            let path = path.to_path_buf();
            move |source| LoadError { path, source }
        };
        let root = dir.canonicalize().map_err(fail(dir))?;
        if !root.is_dir() {
            return Err(LoadError {
                path: dir.to_path_buf(),
                source: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
            });
        }
        let mut assets = Assets::empty();
        // Folders still to read, with their logical prefix (`""` or `"fonts/"`).
        let mut pending = vec![(root.clone(), String::new())];
        while let Some((folder, prefix)) = pending.pop() {
            for entry in std::fs::read_dir(&folder).map_err(fail(&folder))? {
                let entry = entry.map_err(fail(&folder))?;
                let path = entry.path();
                let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                    tracing::warn!(path = %path.display(), "static file skipped: name not UTF-8");
                    continue;
                };
                if name.starts_with('.') {
                    continue;
                }
                if !is_url_safe(&name) {
                    tracing::warn!(path = %path.display(), "static file skipped: name needs escaping");
                    continue;
                }
                let kind = entry.file_type().map_err(fail(&path))?;
                let logical = format!("{prefix}{name}");
                if kind.is_dir() {
                    pending.push((path, format!("{logical}/")));
                    continue;
                }
                if kind.is_symlink() {
                    // Followed only to a file inside the folder: never out of it, and never to
                    // a folder (no loops).
                    let target = path.canonicalize().map_err(fail(&path))?;
                    if !target.starts_with(&root) || !target.is_file() {
                        tracing::warn!(
                            path = %path.display(),
                            "static file skipped: a symlink to a folder or out of static_dir"
                        );
                        continue;
                    }
                } else if !kind.is_file() {
                    continue;
                }
                let body = std::fs::read(&path).map_err(fail(&path))?;
                assets.insert(logical, body);
            }
        }
        Ok(assets)
    }

    /// Adds the file `logical` (a relative, `/`-separated path) with its content.
    fn insert(&mut self, logical: String, body: Vec<u8>) {
        let hash = short_hash(&body);
        let hashed = hashed_name(&logical, &hash);
        let asset = Asset {
            body: Bytes::from(body),
            content_type: HeaderValue::from_static(content_type::for_name(&logical)),
            // Hex digits and quotes only: always a valid header value.
            etag: HeaderValue::from_str(&format!("\"{hash}\""))
                .unwrap_or_else(|_| HeaderValue::from_static("\"\"")),
        };
        self.urls.insert(logical, format!("{PREFIX}{hashed}"));
        self.files.insert(hashed, asset);
    }

    /// The URL of the file `logical` (`app.css`, `fonts/inter.woff2`): `/static/` and its
    /// hashed name, or `None` when the folder has no such file.
    pub fn url(&self, logical: &str) -> Option<&str> {
        self.urls.get(logical).map(String::as_str)
    }

    /// The file whose hashed name is `hashed` (the request path after [`PREFIX`],
    /// percent-decoded). A logical name, a stale hash or any other path is `None`.
    pub fn get(&self, hashed: &str) -> Option<&Asset> {
        self.files.get(hashed)
    }

    /// Number of files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether there are no files.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Total size of the files in bytes (logged at start-up: it is resident memory).
    pub fn total_bytes(&self) -> usize {
        self.files.values().map(|a| a.body.len()).sum()
    }
}

/// Whether `name` is made only of characters a URL path carries unescaped.
fn is_url_safe(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// The first [`HASH_LEN`] hex digits of the SHA-256 of `body`.
fn short_hash(body: &[u8]) -> String {
    use std::fmt::Write;
    let digest = Sha256::digest(body);
    let mut hex = String::with_capacity(HASH_LEN);
    for byte in &digest[..HASH_LEN / 2] {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// `dir/name.ext` with `hash` before the last extension: `dir/name.HASH.ext`; a name without
/// an extension gets it at the end (`LICENSE.HASH`).
fn hashed_name(logical: &str, hash: &str) -> String {
    let (dir, file) = logical
        .rsplit_once('/')
        .map_or(("", logical), |(d, f)| (d, f));
    let file = match file.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{stem}.{hash}.{ext}"),
        _ => format!("{file}.{hash}"),
    };
    if dir.is_empty() {
        file
    } else {
        format!("{dir}/{file}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder under the system's temporary folder, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir =
                std::env::temp_dir().join(format!("pinion-assets-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("temp dir");
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn names_carry_the_hash_before_the_extension() {
        assert_eq!(hashed_name("app.css", "ab12"), "app.ab12.css");
        assert_eq!(hashed_name("htmx.min.js", "ab12"), "htmx.min.ab12.js");
        assert_eq!(hashed_name("fonts/a.woff2", "ab12"), "fonts/a.ab12.woff2");
        assert_eq!(hashed_name("LICENSE", "ab12"), "LICENSE.ab12");
    }

    #[test]
    fn the_hash_is_the_start_of_the_sha256() {
        // SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223…
        assert_eq!(short_hash(b"abc"), "ba7816bf8f01cfea");
    }

    #[test]
    fn loads_a_folder_and_serves_only_hashed_names() {
        let dir = TempDir::new("load");
        std::fs::create_dir_all(dir.0.join("fonts")).expect("mkdir");
        std::fs::write(dir.0.join("app.css"), "body{}").expect("write");
        std::fs::write(dir.0.join("fonts/a.woff2"), [0u8, 1, 2]).expect("write");
        std::fs::write(dir.0.join(".hidden"), "x").expect("write");
        std::fs::write(dir.0.join("with space.css"), "x").expect("write");
        let assets = Assets::load(&dir.0).expect("loads");
        assert_eq!(assets.len(), 2);
        let url = assets.url("app.css").expect("app.css");
        let hash = short_hash(b"body{}");
        assert_eq!(url, format!("/static/app.{hash}.css"));
        let asset = assets.get(&url[PREFIX.len()..]).expect("by hashed name");
        assert_eq!(&asset.body[..], b"body{}");
        assert_eq!(asset.content_type, "text/css; charset=utf-8");
        assert_eq!(asset.etag, format!("\"{hash}\"").as_str());
        assert!(
            assets.get("app.css").is_none(),
            "logical names are not served"
        );
        assert!(assets.url("fonts/a.woff2").is_some());
        assert!(assets.url(".hidden").is_none());
        assert!(assets.url("with space.css").is_none());
    }

    #[test]
    fn symlinks_are_followed_only_to_files_inside() {
        let outside = TempDir::new("outside");
        std::fs::write(outside.0.join("secret.txt"), "secret").expect("write");
        let dir = TempDir::new("links");
        std::fs::write(dir.0.join("real.css"), "a{}").expect("write");
        std::os::unix::fs::symlink(outside.0.join("secret.txt"), dir.0.join("escape.txt"))
            .expect("symlink");
        std::os::unix::fs::symlink(&outside.0, dir.0.join("escaped")).expect("symlink");
        std::os::unix::fs::symlink(".", dir.0.join("loop")).expect("symlink");
        std::os::unix::fs::symlink(dir.0.join("real.css"), dir.0.join("alias.css"))
            .expect("symlink");
        let assets = Assets::load(&dir.0).expect("loads");
        assert!(assets.url("escape.txt").is_none());
        assert!(assets.url("escaped/secret.txt").is_none());
        assert!(assets.url("loop/real.css").is_none());
        assert!(assets.url("alias.css").is_some());
        assert!(assets
            .files
            .values()
            .all(|a| !a.body.starts_with(b"secret")));
    }

    #[test]
    fn a_missing_folder_is_an_error_naming_it() {
        let e = Assets::load(Path::new("/no/such/static")).expect_err("missing");
        assert!(e.to_string().contains("/no/such/static"), "{e}");
        let dir = TempDir::new("file");
        let file = dir.0.join("a.css");
        std::fs::write(&file, "a{}").expect("write");
        assert!(Assets::load(&file).is_err(), "a file is not a folder");
    }
}
