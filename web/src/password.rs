//! Password hashes for accounts: argon2id with OWASP's parameters (19 MiB of memory, two
//! passes, one lane), a random salt per hash from the OS, stored as a PHC string
//! (`$argon2id$v=19$m=19456,t=2,p=1$…`) that carries its parameters, so that a hash made
//! with older parameters still verifies and [`needs_rehash`] says when to replace it.
//! The `argon2` crate (RustCrypto) does the work and compares in constant time.
//!
//! ```
//! let stored = pinion_web::password::hash("correct horse battery staple")?;
//! assert!(pinion_web::password::verify("correct horse battery staple", &stored)?);
//! assert!(!pinion_web::password::verify("Tr0ub4dor&3", &stored)?);
//! # Ok::<(), pinion_web::password::PasswordError>(())
//! ```

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// OWASP's argon2id minimum (Password Storage Cheat Sheet): 19 MiB, two passes, one lane.
const MEMORY_KIB: u32 = 19 * 1024;
const PASSES: u32 = 2;
const LANES: u32 = 1;

/// Why a password could not be hashed, or a stored hash not read.
#[derive(Debug)]
pub struct PasswordError(Failure);

#[derive(Debug)]
enum Failure {
    Hash(argon2::password_hash::Error),
    /// No thread could be started for the work.
    Thread(std::io::Error),
}

impl std::fmt::Display for PasswordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Failure::Hash(e) => write!(f, "password hash: {e}"),
            Failure::Thread(e) => write!(f, "password hash: no thread to hash on: {e}"),
        }
    }
}

impl std::error::Error for PasswordError {}

impl From<argon2::password_hash::Error> for PasswordError {
    fn from(e: argon2::password_hash::Error) -> Self {
        PasswordError(Failure::Hash(e))
    }
}

impl From<argon2::Error> for PasswordError {
    fn from(e: argon2::Error) -> Self {
        PasswordError(Failure::Hash(e.into()))
    }
}

fn hasher() -> Result<Argon2<'static>, PasswordError> {
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// The argon2id hash of `password` with a fresh random salt, as a PHC string to store.
///
/// # Errors
/// Only if the OS gives no randomness or the parameters are refused (neither happens on a
/// working system).
pub fn hash(password: &str) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(hasher()?
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Whether `password` matches `stored` (a PHC string from [`hash`], with whatever
/// parameters it was made with). The comparison takes the same time wherever the two differ.
///
/// # Errors
/// When `stored` is not a PHC string of a known algorithm: a corrupt row, not a wrong
/// password.
pub fn verify(password: &str, stored: &str) -> Result<bool, PasswordError> {
    let parsed = PasswordHash::new(stored)?;
    if parsed.hash.is_none() {
        // A PHC string cut short: its salt, but no hash to compare with.
        return Err(argon2::password_hash::Error::PhcStringField.into());
    }
    match Argon2::default().verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Whether `stored` was made with other parameters than [`hash`] uses now: hash the password
/// again after a successful [`verify`] and store the new hash.
pub fn needs_rehash(stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return true;
    };
    let current = Params::new(MEMORY_KIB, PASSES, LANES, None).ok();
    let theirs = Params::try_from(&parsed).ok();
    parsed.algorithm != Algorithm::Argon2id.ident()
        || parsed.version != Some(Version::V0x13.into())
        || match (current, theirs) {
            (Some(c), Some(t)) => {
                (c.m_cost(), c.t_cost(), c.p_cost()) != (t.m_cost(), t.t_cost(), t.p_cost())
            }
            _ => true,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only_and_carries_owasp_parameters() {
        let stored = hash("s3cret pass").unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored}"
        );
        assert!(verify("s3cret pass", &stored).unwrap());
        assert!(!verify("s3cret pasS", &stored).unwrap());
        assert!(!verify("", &stored).unwrap());
        assert!(!needs_rehash(&stored));
        // A fresh salt each time: the same password never gives the same hash.
        assert_ne!(stored, hash("s3cret pass").unwrap());
    }

    #[test]
    fn older_parameters_verify_and_ask_for_a_rehash() {
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8 * 1024, 1, 1, None).unwrap(),
        );
        let salt = SaltString::generate(&mut OsRng);
        let old = weak.hash_password(b"pw", &salt).unwrap().to_string();
        assert!(verify("pw", &old).unwrap());
        assert!(needs_rehash(&old));
    }

    #[test]
    fn a_corrupt_stored_hash_is_an_error_not_a_mismatch() {
        assert!(verify("pw", "not a hash").is_err());
        assert!(verify("pw", "$argon2id$v=19$m=19456,t=2,p=1$short").is_err());
        assert!(needs_rehash("not a hash"));
    }
}

/// At most this many hashes run at once in the process: one per CPU, so that a burst of
/// logins queues instead of taking 19 MiB and a core each.
static HASHING: std::sync::LazyLock<tokio::sync::Semaphore> = std::sync::LazyLock::new(|| {
    tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
});

/// Runs `work` on a thread of its own, at most [`HASHING`] at once: a hash takes tens of
/// milliseconds of CPU, which on a worker thread would stall every connection it serves.
async fn off_worker<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, PasswordError> + Send + 'static,
) -> Result<T, PasswordError> {
    let _permit = HASHING
        .acquire()
        .await
        .map_err(|_| PasswordError(Failure::Hash(argon2::password_hash::Error::Crypto)))?;
    let (done, result) = futures_channel::oneshot::channel();
    std::thread::Builder::new()
        .name("pinion-password".into())
        .spawn(move || {
            let _ = done.send(work());
        })
        .map_err(|e| PasswordError(Failure::Thread(e)))?;
    result
        .await
        .map_err(|_| PasswordError(Failure::Hash(argon2::password_hash::Error::Crypto)))?
}

/// [`hash`] on a thread of its own, for a handler: the worker goes on serving meanwhile.
///
/// # Errors
/// As [`hash`]; also when no thread can be started.
pub async fn hash_async(password: String) -> Result<String, PasswordError> {
    off_worker(move || hash(&password)).await
}

/// A hash that matches no password, made once: what an unknown account is checked against,
/// so that it takes as long as a known one.
static DUMMY: std::sync::LazyLock<Option<String>> =
    std::sync::LazyLock::new(|| hash("pinion: no such account").ok());

/// Whether `password` matches `stored`, on a thread of its own; for an unknown account
/// (`stored` is `None`) it checks against a dummy hash and answers `false`, taking the same
/// time, so that neither the answer nor its delay tells whether an account exists.
///
/// # Errors
/// As [`verify`]; also when no thread can be started.
pub async fn verify_async(password: String, stored: Option<String>) -> Result<bool, PasswordError> {
    off_worker(move || match stored {
        Some(stored) => verify(&password, &stored),
        None => {
            if let Some(dummy) = DUMMY.as_deref() {
                let _ = verify(&password, dummy);
            }
            Ok(false)
        }
    })
    .await
}

#[cfg(test)]
mod off_worker_tests {
    use super::*;

    #[test]
    fn hashes_made_off_the_worker_verify_and_unknown_accounts_fail() {
        let rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new().build();
        rt.expect("runtime").block_on(async {
            let stored = hash_async("correct horse battery".into())
                .await
                .expect("hash");
            assert!(
                verify_async("correct horse battery".into(), Some(stored.clone()))
                    .await
                    .expect("verify")
            );
            assert!(!verify_async("wrong".into(), Some(stored))
                .await
                .expect("verify"));
            assert!(!verify_async("anything".into(), None).await.expect("dummy"));
        });
    }
}
