//! Key layout: Django's `KEY_PREFIX`, `VERSION` and `KEY_FUNCTION`.

use std::cell::Cell;
use std::fmt;
use std::ops::Deref;

/// Writes the real key for `key` into `out` (which arrives empty).
///
/// Arguments are the prefix, the version and the caller's key. Writing into a buffer rather
/// than returning a `String` lets the get path reuse one per-thread allocation.
pub type KeyFunction = fn(prefix: &str, version: u32, key: &str, out: &mut String);

/// Django's default key function: `"{prefix}:{version}:{key}"`.
pub fn default_key_function(prefix: &str, version: u32, key: &str, out: &mut String) {
    let mut version_text = itoa::Buffer::new();
    let version_text = version_text.format(version);
    out.reserve(prefix.len() + version_text.len() + key.len() + 2);
    out.push_str(prefix);
    out.push(':');
    out.push_str(version_text);
    out.push(':');
    out.push_str(key);
}

/// Turns callers' keys into real keys: prefix, version and key function together.
#[derive(Clone)]
pub struct KeyMaker {
    prefix: Box<str>,
    version: u32,
    layout: Layout,
}

/// How real keys are made.
#[derive(Clone)]
enum Layout {
    /// [`default_key_function`], with `"{prefix}:{version}:"` rendered once: a real key is then
    /// one copy, and [`LocMemCache`](crate::LocMemCache) can look keys up by `(head, key)`
    /// without building them at all.
    Default { head: Box<str> },
    /// A replaced key function.
    Custom(KeyFunction),
}

impl KeyMaker {
    /// A key maker with Django's default key function.
    pub fn new(prefix: &str, version: u32) -> Self {
        let mut head = String::new();
        default_key_function(prefix, version, "", &mut head);
        KeyMaker {
            prefix: prefix.into(),
            version,
            layout: Layout::Default { head: head.into() },
        }
    }

    /// Replaces the key function (Django's `KEY_FUNCTION`).
    pub fn with_function(mut self, function: KeyFunction) -> Self {
        self.layout = Layout::Custom(function);
        self
    }

    /// `"{prefix}:{version}:"` when the key function is the default one: every real key is this
    /// head followed by the caller's key.
    pub(crate) fn default_head(&self) -> Option<&str> {
        match &self.layout {
            Layout::Default { head } => Some(head),
            Layout::Custom(_) => None,
        }
    }

    /// Writes the real key for `key` into `out`.
    fn write(&self, key: &str, out: &mut String) {
        match &self.layout {
            Layout::Default { head } => {
                out.reserve(head.len() + key.len());
                out.push_str(head);
                out.push_str(key);
            }
            Layout::Custom(function) => function(&self.prefix, self.version, key, out),
        }
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The real key for `key`, as an owned `String`.
    pub fn make_key(&self, key: &str) -> String {
        let mut out = String::new();
        self.write(key, &mut out);
        out
    }

    /// The real key for `key`, in this thread's reusable buffer (no allocation on the hot path).
    pub(crate) fn make(&self, key: &str) -> MadeKey {
        let mut buf = KEY_BUF.try_with(Cell::take).unwrap_or_default();
        buf.clear();
        self.write(key, &mut buf);
        MadeKey { buf }
    }
}

impl Default for KeyMaker {
    fn default() -> Self {
        KeyMaker::new(
            crate::config::DEFAULT_KEY_PREFIX,
            crate::config::DEFAULT_VERSION,
        )
    }
}

impl fmt::Debug for KeyMaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyMaker")
            .field("prefix", &self.prefix)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

thread_local! {
    /// One spare key buffer per thread. A [`MadeKey`] takes it and puts it back on drop; a
    /// nested or concurrent key on the same thread finds it empty and allocates its own. Saves an
    /// allocation per `get` (`benches/locmem.rs`, `locmem/get`).
    static KEY_BUF: Cell<String> = const { Cell::new(String::new()) };
}

/// A real key, borrowed from the thread's key buffer until dropped.
pub(crate) struct MadeKey {
    buf: String,
}

impl Deref for MadeKey {
    type Target = str;

    fn deref(&self) -> &str {
        &self.buf
    }
}

impl Drop for MadeKey {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        // During thread teardown the slot may be gone: the buffer is then simply freed.
        let _ = KEY_BUF.try_with(|slot| slot.set(buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_layout_is_django_s() {
        assert_eq!(KeyMaker::default().make_key("foo"), ":1:foo");
        assert_eq!(KeyMaker::new("site", 7).make_key("foo"), "site:7:foo");
        assert_eq!(&*KeyMaker::new("site", 7).make("foo"), "site:7:foo");
    }

    #[test]
    fn key_function_is_replaceable() {
        fn flat(_: &str, _: u32, key: &str, out: &mut String) {
            out.push_str(key);
        }
        let maker = KeyMaker::new("p", 2).with_function(flat);
        assert_eq!(&*maker.make("foo"), "foo");
        assert_eq!(maker.default_head(), None);
        assert_eq!(KeyMaker::new("p", 2).default_head(), Some("p:2:"));
    }

    #[test]
    fn nested_keys_do_not_share_the_buffer() {
        let maker = KeyMaker::new("p", 1);
        let a = maker.make("a");
        let b = maker.make("b");
        assert_eq!((&*a, &*b), ("p:1:a", "p:1:b"));
        drop(a);
        let c = maker.make("c");
        assert_eq!(&*c, "p:1:c");
    }
}
