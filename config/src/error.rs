//! [`ConfigError`]: the one error type of this crate.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Why the configuration could not be loaded.
///
/// Opaque on purpose (callers match on predicates, not on a public enum, so new cases are not
/// breaking changes). Its `Display` is one complete, lowercase line meant for the operator: it
/// names the key or environment variable, the offending value, the reason, and where the value
/// came from, e.g.
///
/// ```text
/// invalid value for `port` in /etc/pinion.toml (line 3): 80800: must be an integer in 0..=65535
/// unknown key `prot` in /etc/pinion.toml (line 2); did you mean `port`?
/// unknown environment variable PINION_PROT; did you mean PINION_PORT?
/// invalid combination: `rate_limit_store` = "postgres": "postgres" keeps the state in the primary database, but `database_url` is empty; set it, or use "local"
/// invalid TOML in /etc/pinion.toml at line 4, column 9: invalid string, expected `"`
/// require_version (PINION_REQUIRE_VERSION): this is pinion 0.1.0, the configuration requires >=0.2
/// ```
///
/// The text is not a stable interface: match on [`is_unknown_key`](Self::is_unknown_key) and
/// friends and read [`key`](Self::key), never the message. [`source`](std::error::Error::source)
/// is `None`: the message already includes the underlying I/O or TOML error, and error reporters
/// that walk the chain would otherwise print it twice.
pub struct ConfigError {
    // Boxed so that `Result<Settings, ConfigError>` stays small on the success path.
    inner: Box<Kind>,
}

/// What went wrong; private so that it can grow.
#[derive(Debug)]
enum Kind {
    /// The configuration file could not be read.
    Read { path: PathBuf, error: io::Error },
    /// The configuration file is not valid TOML.
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// A key in the file, or a `PINION_*` variable, that names no setting.
    UnknownKey {
        /// The key (file) or the variable name (environment), as written.
        key: String,
        origin: Origin,
        /// The rest of the message: a suggestion or the list of known keys.
        help: String,
    },
    /// A known key with a value that does not parse or is out of range.
    InvalidValue {
        key: &'static str,
        /// The value as written (quoted if it was a string), or masked for secret keys.
        value: String,
        reason: String,
        origin: Origin,
    },
    /// Values that are valid one by one but not together (checked after every layer is
    /// applied, so without an origin).
    Conflict {
        /// The key blamed; the reason names the other.
        key: &'static str,
        /// The key's effective value, masked for secret keys.
        value: String,
        reason: String,
    },
    /// The configuration's `require_version` does not match the running pinion: it was
    /// written for another release, so it is refused as a whole rather than read in part.
    VersionMismatch {
        /// The requirement, as semver renders it (`>=0.2`).
        required: String,
        /// The running version ([`PINION_VERSION`](crate::PINION_VERSION)).
        running: String,
        origin: Origin,
    },
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A key in the configuration file, with its 1-based line when known.
    File { path: PathBuf, line: Option<usize> },
    /// An environment variable (`PINION_PORT`, `PORT`, ...).
    Env(String),
    /// The command-line overrides the binary passed in.
    CommandLine,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line: None } => write!(f, "in {}", path.display()),
            Origin::File {
                path,
                line: Some(line),
            } => write!(f, "in {} (line {line})", path.display()),
            Origin::Env(var) => write!(f, "in environment variable {var}"),
            Origin::CommandLine => f.write_str("on the command line"),
        }
    }
}

impl ConfigError {
    fn new(kind: Kind) -> ConfigError {
        ConfigError {
            inner: Box::new(kind),
        }
    }

    pub(crate) fn read(path: &Path, error: io::Error) -> ConfigError {
        ConfigError::new(Kind::Read {
            path: path.to_path_buf(),
            error,
        })
    }

    pub(crate) fn parse(path: &Path, line: usize, column: usize, message: &str) -> ConfigError {
        ConfigError::new(Kind::Parse {
            path: path.to_path_buf(),
            line,
            column,
            // The toml crate's messages can span lines; keep ours on one.
            message: message.trim().replace('\n', "; "),
        })
    }

    pub(crate) fn unknown_key(key: &str, origin: Origin, help: String) -> ConfigError {
        ConfigError::new(Kind::UnknownKey {
            key: key.to_string(),
            origin,
            help,
        })
    }

    pub(crate) fn invalid_value(
        key: &'static str,
        value: String,
        reason: String,
        origin: Origin,
    ) -> ConfigError {
        ConfigError::new(Kind::InvalidValue {
            key,
            value,
            reason,
            origin,
        })
    }

    pub(crate) fn conflict(key: &'static str, value: String, reason: String) -> ConfigError {
        ConfigError::new(Kind::Conflict { key, value, reason })
    }

    pub(crate) fn version_mismatch(
        required: String,
        running: String,
        origin: Origin,
    ) -> ConfigError {
        ConfigError::new(Kind::VersionMismatch {
            required,
            running,
            origin,
        })
    }

    /// Returns true if the configuration file could not be read (missing, unreadable, not
    /// UTF-8).
    pub fn is_io(&self) -> bool {
        matches!(*self.inner, Kind::Read { .. })
    }

    /// Returns true if the configuration file is not valid TOML.
    pub fn is_parse(&self) -> bool {
        matches!(*self.inner, Kind::Parse { .. })
    }

    /// Returns true if a key in the file, or a `PINION_*` environment variable, names no
    /// setting. Unknown keys are errors rather than warnings because a misspelt key would
    /// otherwise silently leave the default in force.
    pub fn is_unknown_key(&self) -> bool {
        matches!(*self.inner, Kind::UnknownKey { .. })
    }

    /// Returns true if a known key has a value that does not parse or is out of range.
    pub fn is_invalid_value(&self) -> bool {
        matches!(*self.inner, Kind::InvalidValue { .. })
    }

    /// Returns true if values that are valid one by one contradict each other
    /// (`cors_allow_credentials = true` with a `"*"` origin, `rate_limit_default` naming no
    /// policy, `rate_limit_store = "postgres"` without `database_url`).
    pub fn is_conflict(&self) -> bool {
        matches!(*self.inner, Kind::Conflict { .. })
    }

    /// Returns true if `require_version` does not match the running pinion
    /// ([`PINION_VERSION`](crate::PINION_VERSION)): the configuration was written for another
    /// release, and start-up should stop rather than run it with keys misread or missing.
    pub fn is_version_mismatch(&self) -> bool {
        matches!(*self.inner, Kind::VersionMismatch { .. })
    }

    /// The offending key: for an invalid value or a conflict, the setting's name (`"port"`, even when the
    /// value came from `PINION_PORT` or `PORT`); for an unknown key, the key or environment
    /// variable as written (`"prot"`, `"PINION_PROT"`). `None` for I/O and TOML errors.
    pub fn key(&self) -> Option<&str> {
        match &*self.inner {
            Kind::InvalidValue { key, .. } | Kind::Conflict { key, .. } => Some(key),
            Kind::UnknownKey { key, .. } => Some(key),
            Kind::VersionMismatch { .. } => Some("require_version"),
            Kind::Read { .. } | Kind::Parse { .. } => None,
        }
    }

    /// The environment variable the offending value or name came from, if any.
    pub fn env_var(&self) -> Option<&str> {
        match self.origin() {
            Some(Origin::Env(var)) => Some(var),
            _ => None,
        }
    }

    /// The configuration file the error is in, if it is about the file.
    pub fn path(&self) -> Option<&Path> {
        match &*self.inner {
            Kind::Read { path, .. } | Kind::Parse { path, .. } => Some(path),
            _ => match self.origin() {
                Some(Origin::File { path, .. }) => Some(path),
                _ => None,
            },
        }
    }

    /// The 1-based line in the configuration file, when the error points into it.
    pub fn line(&self) -> Option<usize> {
        match &*self.inner {
            Kind::Parse { line, .. } => Some(*line),
            _ => match self.origin() {
                Some(Origin::File { line, .. }) => *line,
                _ => None,
            },
        }
    }

    fn origin(&self) -> Option<&Origin> {
        match &*self.inner {
            Kind::UnknownKey { origin, .. }
            | Kind::InvalidValue { origin, .. }
            | Kind::VersionMismatch { origin, .. } => Some(origin),
            Kind::Read { .. } | Kind::Parse { .. } | Kind::Conflict { .. } => None,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.inner {
            Kind::Read { path, error } => {
                write!(
                    f,
                    "cannot read configuration file {}: {error}",
                    path.display()
                )
            }
            Kind::Parse {
                path,
                line,
                column,
                message,
            } => write!(
                f,
                "invalid TOML in {} at line {line}, column {column}: {message}",
                path.display()
            ),
            Kind::UnknownKey {
                key,
                origin: Origin::Env(_),
                help,
            } => write!(f, "unknown environment variable {key}{help}"),
            Kind::UnknownKey { key, origin, help } => {
                write!(f, "unknown key `{key}` {origin}{help}")
            }
            Kind::InvalidValue {
                key,
                value,
                reason,
                origin,
            } => write!(f, "invalid value for `{key}` {origin}: {value}: {reason}"),
            Kind::Conflict { key, value, reason } => {
                write!(f, "invalid combination: `{key}` = {value}: {reason}")
            }
            Kind::VersionMismatch {
                required, running, ..
            } => write!(
                f,
                "require_version (PINION_REQUIRE_VERSION): this is pinion {running}, the \
                 configuration requires {required}"
            ),
        }
    }
}

impl fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Debug shows the message too, so `.expect()` and test failures read well.
        f.debug_struct("ConfigError")
            .field("kind", &self.inner)
            .field("message", &self.to_string())
            .finish()
    }
}

impl std::error::Error for ConfigError {}
