//! [`CookieKeys`]: the process's signing and encryption keys, derived from `secret_key`.

use std::fmt;

use cookie::Key;
use pinion_config::Settings;

/// The keys signed and private cookies are written with (`current`) and still read with
/// (`current`, then each of `fallbacks`).
///
/// Each is derived with HKDF-SHA256 from a `secret_key` (or one of `secret_key_fallbacks`)
/// into a 256-bit signing key and a 256-bit encryption key, so one secret setting serves both.
/// Built once per process and shared by every worker (an `Arc` in each context), so that a
/// cookie signed on one thread verifies on the others.
pub(crate) struct CookieKeys {
    current: Key,
    fallbacks: Vec<Key>,
}

impl CookieKeys {
    /// Keys from the settings. Without `secret_key`, a random key made now, with a warning:
    /// what it signs stops verifying when the process restarts, and other instances cannot read
    /// it.
    pub(crate) fn from_settings(settings: &Settings) -> CookieKeys {
        let current = match &settings.secret_key {
            Some(secret) => Key::derive_from(secret.as_bytes()),
            None => {
                tracing::warn!(
                    "secret_key is not set: cookies are signed with a random key made at \
                     start-up, so they stop verifying at a restart and on other instances; \
                     set secret_key (or PINION_SECRET_KEY) in production"
                );
                Key::generate()
            }
        };
        let fallbacks = settings
            .secret_key_fallbacks
            .iter()
            .map(|secret| Key::derive_from(secret.as_bytes()))
            .collect();
        CookieKeys { current, fallbacks }
    }

    /// A random key and no fallbacks, for unit tests that build a context without settings.
    #[cfg(test)]
    pub(crate) fn random() -> CookieKeys {
        CookieKeys {
            current: Key::generate(),
            fallbacks: Vec::new(),
        }
    }

    /// The key cookies are written with.
    pub(crate) fn current(&self) -> &Key {
        &self.current
    }

    /// A 256-bit key for `purpose` from each secret, current first: HMAC-SHA256 of the
    /// purpose under the secret's signing key, so that a key for CSRF tokens is not the one
    /// that signs cookies, and one leaked purpose key reveals nothing of the others.
    pub(crate) fn derived(&self, purpose: &str) -> Vec<[u8; 32]> {
        use hmac::{Hmac, Mac};
        std::iter::once(&self.current)
            .chain(&self.fallbacks)
            .map(|key| {
                let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key.signing())
                    .expect("HMAC takes a key of any length");
                mac.update(b"pinion derived key: ");
                mac.update(purpose.as_bytes());
                mac.finalize().into_bytes().into()
            })
            .collect()
    }

    /// Older keys, tried in order when the current one does not verify a cookie.
    pub(crate) fn fallbacks(&self) -> &[Key] {
        &self.fallbacks
    }
}

impl fmt::Debug for CookieKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CookieKeys")
            .field("current", &"****")
            .field("fallbacks", &self.fallbacks.len())
            .finish()
    }
}
