//! [`SessionId`]: the random id a session cookie carries, and the key its row is stored under.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Bytes of randomness in an id: 256 bits, twice OWASP's 128-bit floor, so that guessing one
/// among millions of live sessions stays out of reach.
const ID_BYTES: usize = 32;

/// A session id: random bytes from the operating system's CSPRNG. Only the cookie carries it;
/// the database and the L1 know its SHA-256 ([`SessionId::key`]), so a leaked table, log or
/// cache dump holds no id that would open a session.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SessionId([u8; ID_BYTES]);

/// The SHA-256 of a [`SessionId`]: the primary key of its row and of its L1 entry.
pub(crate) type Key = [u8; 32];

impl SessionId {
    /// A new id.
    ///
    /// # Errors
    /// When the OS cannot provide random bytes (the process has no business going on then).
    pub(crate) fn generate() -> Result<SessionId, getrandom::Error> {
        let mut bytes = [0u8; ID_BYTES];
        getrandom::getrandom(&mut bytes)?;
        Ok(SessionId(bytes))
    }

    /// The id a cookie's value encodes (base64url, no padding), if it is one.
    pub(crate) fn parse(text: &str) -> Option<SessionId> {
        let mut bytes = [0u8; ID_BYTES];
        match URL_SAFE_NO_PAD.decode_slice(text, &mut bytes) {
            Ok(ID_BYTES) => Some(SessionId(bytes)),
            _ => None,
        }
    }

    /// The id as the cookie carries it.
    pub(crate) fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// The key its row is stored under.
    pub(crate) fn key(&self) -> Key {
        Sha256::digest(self.0).into()
    }

    /// The raw bytes, for the CSRF token's HMAC.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionId(****)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_random_round_trip_and_hide_in_debug() {
        let a = SessionId::generate().expect("random");
        let b = SessionId::generate().expect("random");
        assert_ne!(a, b);
        assert_eq!(SessionId::parse(&a.encode()), Some(a.clone()));
        assert_eq!(a.encode().len(), 43);
        assert_ne!(a.key(), b.key());
        assert_eq!(format!("{a:?}"), "SessionId(****)");
        // Too short, too long, not base64url.
        assert_eq!(SessionId::parse(&a.encode()[1..]), None);
        assert_eq!(SessionId::parse(&format!("{}AA", a.encode())), None);
        assert_eq!(SessionId::parse("not an id at all, not base64!"), None);
    }
}
