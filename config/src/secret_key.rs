//! [`SecretKey`]: the key cookies are signed and encrypted with, which never prints itself.

use std::fmt;

/// Shortest accepted secret key, in bytes: HMAC-SHA256 and AES-256 want 256 bits, and the
/// cookie keys are derived from this one with HKDF, which cannot add entropy it is not given.
pub const MIN_SECRET_KEY_LEN: usize = 32;

/// A secret key (`secret_key`, `secret_key_fallbacks`): at least [`MIN_SECRET_KEY_LEN`] bytes
/// of text, from which the server derives its cookie signing and encryption keys.
///
/// It is only ever shown as `****`: [`Debug`](fmt::Debug) masks it, and the bytes are reached
/// only through [`as_bytes`](Self::as_bytes), for the code that derives keys.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey {
    text: String,
}

impl SecretKey {
    /// Checks `text` (surrounding whitespace ignored, as a file or environment may add some)
    /// and wraps it.
    ///
    /// # Errors
    ///
    /// The reason, worded to follow "invalid value for `key` ...: value:"; it never quotes
    /// the key.
    pub fn parse(text: &str) -> Result<SecretKey, String> {
        let text = text.trim();
        if text.len() < MIN_SECRET_KEY_LEN {
            return Err(format!(
                "must be at least {MIN_SECRET_KEY_LEN} bytes (it is {}); \
                 generate one with `openssl rand -base64 48`",
                text.len()
            ));
        }
        if text.chars().any(char::is_control) {
            return Err("must not contain control characters".to_string());
        }
        Ok(SecretKey {
            text: text.to_string(),
        })
    }

    /// The key's bytes, to derive the cookie keys from.
    pub fn as_bytes(&self) -> &[u8] {
        self.text.as_bytes()
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(****)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_keys_are_refused_without_being_quoted() {
        let err = SecretKey::parse("too-short-a-secret").expect_err("short");
        assert!(err.contains("at least 32 bytes (it is 18)"), "{err}");
        assert!(!err.contains("too-short"), "{err}");
        let key = SecretKey::parse("  0123456789abcdef0123456789abcdef  ").expect("32 bytes");
        assert_eq!(key.as_bytes(), b"0123456789abcdef0123456789abcdef");
        assert_eq!(format!("{key:?}"), "SecretKey(****)");
        assert!(SecretKey::parse("0123456789abcdef0123456789abcde\u{7}").is_err());
    }
}
