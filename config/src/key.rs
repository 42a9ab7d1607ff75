//! The table of keys: each key's name, environment variable, rule and rendering, in one place
//! so that adding a key touches one `match` per concern and the compiler finds the rest.

use std::path::PathBuf;
use std::time::Duration;

use crate::database_url::DatabaseUrl;
use crate::settings::{IoDriver, LogFormat, LogLevel, Settings, MAX_POOL_SIZE, MAX_THREADS};
use crate::value::{self, Raw};

/// Smallest accepted `max_head_size`: a request line and a few headers.
const MIN_HEAD_SIZE: u64 = 1024;
/// Largest accepted `max_head_size`: it bounds every connection's read buffer.
const MAX_HEAD_SIZE: u64 = 1024 * 1024;
/// Largest accepted `max_headers`.
const MAX_HEADERS: u64 = 1024;
/// Smallest accepted `max_uri_length`: room for a short path.
const MIN_URI_LENGTH: u64 = 16;
/// Longest accepted timeout: a guard against a wrong unit (`keepalive_timeout = 75000`
/// meant as milliseconds), and against deadline arithmetic overflowing.
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// Longest accepted `server_name`.
const MAX_SERVER_NAME: usize = 64;

/// A configuration key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key {
    Bind,
    Port,
    Threads,
    IoDriver,
    Backlog,
    MaxConnectionsPerThread,
    MaxHeadSize,
    MaxHeaders,
    MaxUriLength,
    MaxBodySize,
    MaxDrainSize,
    HeaderReadTimeout,
    BodyReadTimeout,
    KeepaliveTimeout,
    DrainTimeout,
    ServerName,
    LogLevel,
    LogFormat,
    DatabaseUrl,
    DatabaseReplicaUrls,
    PoolSize,
    DbConnectTimeout,
    DbQueryTimeout,
    DbKeepalive,
    DbUserTimeout,
    ReplicaCheckInterval,
    StickyWindow,
    MigrateOnStart,
    MigrationsDir,
    CacheTtl,
    CacheMaxEntries,
}

/// A key's value rendered for `pinion.toml`.
pub(crate) enum Rendered<'a> {
    /// Ready-made TOML text.
    Toml(String),
    /// A string, still to be quoted (and masked, if the key is secret).
    Str(&'a str),
}

impl Key {
    /// Every key, in the README table's order (also the order of `render_masked`).
    pub(crate) const ALL: [Key; 31] = [
        Key::Bind,
        Key::Port,
        Key::Threads,
        Key::IoDriver,
        Key::Backlog,
        Key::MaxConnectionsPerThread,
        Key::MaxHeadSize,
        Key::MaxHeaders,
        Key::MaxUriLength,
        Key::MaxBodySize,
        Key::MaxDrainSize,
        Key::HeaderReadTimeout,
        Key::BodyReadTimeout,
        Key::KeepaliveTimeout,
        Key::DrainTimeout,
        Key::ServerName,
        Key::LogLevel,
        Key::LogFormat,
        Key::DatabaseUrl,
        Key::DatabaseReplicaUrls,
        Key::PoolSize,
        Key::DbConnectTimeout,
        Key::DbQueryTimeout,
        Key::DbKeepalive,
        Key::DbUserTimeout,
        Key::ReplicaCheckInterval,
        Key::StickyWindow,
        Key::MigrateOnStart,
        Key::MigrationsDir,
        Key::CacheTtl,
        Key::CacheMaxEntries,
    ];

    /// The key in `pinion.toml`, and its environment variable.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Key::Bind => ("bind", "PINION_BIND"),
            Key::Port => ("port", "PINION_PORT"),
            Key::Threads => ("threads", "PINION_THREADS"),
            Key::IoDriver => ("io_driver", "PINION_IO_DRIVER"),
            Key::Backlog => ("backlog", "PINION_BACKLOG"),
            Key::MaxConnectionsPerThread => (
                "max_connections_per_thread",
                "PINION_MAX_CONNECTIONS_PER_THREAD",
            ),
            Key::MaxHeadSize => ("max_head_size", "PINION_MAX_HEAD_SIZE"),
            Key::MaxHeaders => ("max_headers", "PINION_MAX_HEADERS"),
            Key::MaxUriLength => ("max_uri_length", "PINION_MAX_URI_LENGTH"),
            Key::MaxBodySize => ("max_body_size", "PINION_MAX_BODY_SIZE"),
            Key::MaxDrainSize => ("max_drain_size", "PINION_MAX_DRAIN_SIZE"),
            Key::HeaderReadTimeout => ("header_read_timeout", "PINION_HEADER_READ_TIMEOUT"),
            Key::BodyReadTimeout => ("body_read_timeout", "PINION_BODY_READ_TIMEOUT"),
            Key::KeepaliveTimeout => ("keepalive_timeout", "PINION_KEEPALIVE_TIMEOUT"),
            Key::DrainTimeout => ("drain_timeout", "PINION_DRAIN_TIMEOUT"),
            Key::ServerName => ("server_name", "PINION_SERVER_NAME"),
            Key::LogLevel => ("log_level", "PINION_LOG_LEVEL"),
            Key::LogFormat => ("log_format", "PINION_LOG_FORMAT"),
            Key::DatabaseUrl => ("database_url", "PINION_DATABASE_URL"),
            Key::DatabaseReplicaUrls => ("database_replica_urls", "PINION_DATABASE_REPLICA_URLS"),
            Key::PoolSize => ("pool_size", "PINION_POOL_SIZE"),
            Key::DbConnectTimeout => ("db_connect_timeout", "PINION_DB_CONNECT_TIMEOUT"),
            Key::DbQueryTimeout => ("db_query_timeout", "PINION_DB_QUERY_TIMEOUT"),
            Key::DbKeepalive => ("db_keepalive", "PINION_DB_KEEPALIVE"),
            Key::DbUserTimeout => ("db_user_timeout", "PINION_DB_USER_TIMEOUT"),
            Key::ReplicaCheckInterval => {
                ("replica_check_interval", "PINION_REPLICA_CHECK_INTERVAL")
            }
            Key::StickyWindow => ("sticky_window", "PINION_STICKY_WINDOW"),
            Key::MigrateOnStart => ("migrate_on_start", "PINION_MIGRATE_ON_START"),
            Key::MigrationsDir => ("migrations_dir", "PINION_MIGRATIONS_DIR"),
            Key::CacheTtl => ("cache_ttl", "PINION_CACHE_TTL"),
            Key::CacheMaxEntries => ("cache_max_entries", "PINION_CACHE_MAX_ENTRIES"),
        }
    }

    /// The key as written in `pinion.toml`.
    pub(crate) fn name(self) -> &'static str {
        self.names().0
    }

    /// The `PINION_*` environment variable that overrides the key.
    pub(crate) fn env_var(self) -> &'static str {
        self.names().1
    }

    /// The key named `name` in `pinion.toml`.
    pub(crate) fn from_name(name: &str) -> Option<Key> {
        Key::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The key that environment variable `var` sets.
    pub(crate) fn from_env_var(var: &str) -> Option<Key> {
        Key::ALL.into_iter().find(|k| k.env_var() == var)
    }

    /// The key closest to a misspelt one, if it is within two edits (after reading `-` as
    /// `_` and ignoring case, so `Max-Body-Size` finds `max_body_size`).
    pub(crate) fn suggest(written: &str) -> Option<Key> {
        let normalized = written.to_ascii_lowercase().replace('-', "_");
        Key::ALL
            .into_iter()
            .map(|k| (edit_distance(&normalized, k.name()), k))
            .filter(|&(d, _)| d <= 2)
            .min_by_key(|&(d, _)| d)
            .map(|(_, k)| k)
    }

    /// Parses `raw`, checks the key's rule and stores the value in `settings`.
    ///
    /// # Errors
    ///
    /// The reason the value was refused, worded to follow "invalid value for `key` ...: value:".
    pub(crate) fn assign(self, settings: &mut Settings, raw: &Raw<'_>) -> Result<(), String> {
        let s = settings;
        match self {
            Key::Bind => s.bind = value::ip_addr(raw)?,
            Key::Port => s.port = int(raw, 0, u64::from(u16::MAX))?,
            Key::Threads => {
                s.threads = match raw {
                    Raw::Str(text) if text.trim().eq_ignore_ascii_case("auto") => None,
                    _ => Some(int(raw, 1, MAX_THREADS as u64).map_err(|reason| {
                        format!("{reason}, or \"auto\" for one per available core")
                    })?),
                }
            }
            Key::IoDriver => s.io_driver = value::one_of(raw, &IoDriver::CHOICES)?,
            Key::Backlog => s.backlog = int(raw, 1, 65535)?,
            Key::MaxConnectionsPerThread => s.max_connections_per_thread = int(raw, 1, u64::MAX)?,
            Key::MaxHeadSize => {
                let n = value::size(raw)?;
                if !(MIN_HEAD_SIZE..=MAX_HEAD_SIZE).contains(&n) {
                    return Err("must be between 1KiB and 1MiB".to_string());
                }
                s.max_head_size = to_usize(n)?;
            }
            Key::MaxHeaders => s.max_headers = int(raw, 1, MAX_HEADERS)?,
            Key::MaxUriLength => {
                let n = value::size(raw)?;
                if n < MIN_URI_LENGTH {
                    return Err(format!("must be at least {MIN_URI_LENGTH} bytes"));
                }
                s.max_uri_length = to_usize(n)?;
            }
            Key::MaxBodySize => s.max_body_size = value::size(raw)?,
            Key::MaxDrainSize => s.max_drain_size = value::size(raw)?,
            Key::HeaderReadTimeout => s.header_read_timeout = timeout(raw)?,
            Key::BodyReadTimeout => s.body_read_timeout = timeout(raw)?,
            Key::KeepaliveTimeout => s.keepalive_timeout = timeout(raw)?,
            Key::DrainTimeout => s.drain_timeout = timeout(raw)?,
            Key::ServerName => s.server_name = server_name(value::string(raw)?)?,
            Key::LogLevel => s.log_level = value::one_of(raw, &LogLevel::CHOICES)?,
            Key::LogFormat => s.log_format = value::one_of(raw, &LogFormat::CHOICES)?,
            Key::DatabaseUrl => {
                s.database_url = match value::string(raw)? {
                    text if text.trim().is_empty() => None,
                    text => Some(DatabaseUrl::parse(text)?),
                }
            }
            Key::DatabaseReplicaUrls => {
                let items = value::string_list(raw, DatabaseUrl::split_list)?;
                let several = items.len() > 1;
                s.database_replica_urls = items
                    .into_iter()
                    .enumerate()
                    .map(|(i, item)| {
                        DatabaseUrl::parse(item).map_err(|reason| match several {
                            true => format!("URL {}: {reason}", i + 1),
                            false => reason,
                        })
                    })
                    .collect::<Result<_, _>>()?;
            }
            Key::PoolSize => {
                s.pool_size = match raw {
                    Raw::Str(text) if text.trim().eq_ignore_ascii_case("auto") => None,
                    _ => Some(int(raw, 1, MAX_POOL_SIZE as u64).map_err(|reason| {
                        format!("{reason}, or \"auto\" for max(threads + 8, 32)")
                    })?),
                }
            }
            Key::DbConnectTimeout => s.db_connect_timeout = timeout(raw)?,
            Key::DbQueryTimeout => s.db_query_timeout = timeout(raw)?,
            Key::DbKeepalive => s.db_keepalive = timeout(raw)?,
            Key::DbUserTimeout => s.db_user_timeout = timeout(raw)?,
            Key::ReplicaCheckInterval => s.replica_check_interval = timeout(raw)?,
            Key::StickyWindow => s.sticky_window = window(raw)?,
            Key::MigrateOnStart => s.migrate_on_start = value::boolean(raw)?,
            Key::MigrationsDir => s.migrations_dir = directory(value::string(raw)?)?,
            Key::CacheTtl => s.cache_ttl = timeout(raw)?,
            Key::CacheMaxEntries => s.cache_max_entries = int(raw, 1, 100_000_000)?,
        }
        Ok(())
    }

    /// The key's current value in `settings`, as `pinion.toml` would spell it.
    pub(crate) fn render(self, s: &Settings) -> Rendered<'_> {
        let text = match self {
            Key::Bind => value::render_string(&s.bind.to_string()),
            Key::Port => s.port.to_string(),
            Key::Threads => match s.threads {
                Some(n) => n.to_string(),
                None => value::render_string("auto"),
            },
            Key::IoDriver => value::render_string(s.io_driver.as_str()),
            Key::Backlog => s.backlog.to_string(),
            Key::MaxConnectionsPerThread => s.max_connections_per_thread.to_string(),
            Key::MaxHeadSize => value::render_size(s.max_head_size as u64),
            Key::MaxHeaders => s.max_headers.to_string(),
            Key::MaxUriLength => value::render_size(s.max_uri_length as u64),
            Key::MaxBodySize => value::render_size(s.max_body_size),
            Key::MaxDrainSize => value::render_size(s.max_drain_size),
            Key::HeaderReadTimeout => value::render_duration(s.header_read_timeout),
            Key::BodyReadTimeout => value::render_duration(s.body_read_timeout),
            Key::KeepaliveTimeout => value::render_duration(s.keepalive_timeout),
            Key::DrainTimeout => value::render_duration(s.drain_timeout),
            Key::ServerName => return Rendered::Str(&s.server_name),
            Key::LogLevel => value::render_string(s.log_level.as_str()),
            Key::LogFormat => value::render_string(s.log_format.as_str()),
            // Rendered masked here rather than through `Rendered::Str`: the masked form is the
            // only printable form of a `DatabaseUrl`, and absent must stay `""`, not `"****"`.
            Key::DatabaseUrl => value::render_string(
                &s.database_url
                    .as_ref()
                    .map_or(String::new(), DatabaseUrl::masked),
            ),
            Key::DatabaseReplicaUrls => {
                value::render_string_array(s.database_replica_urls.iter().map(DatabaseUrl::masked))
            }
            Key::PoolSize => match s.pool_size {
                Some(n) => n.to_string(),
                None => value::render_string("auto"),
            },
            Key::DbConnectTimeout => value::render_duration(s.db_connect_timeout),
            Key::DbQueryTimeout => value::render_duration(s.db_query_timeout),
            Key::DbKeepalive => value::render_duration(s.db_keepalive),
            Key::DbUserTimeout => value::render_duration(s.db_user_timeout),
            Key::ReplicaCheckInterval => value::render_duration(s.replica_check_interval),
            Key::StickyWindow => value::render_duration(s.sticky_window),
            Key::MigrateOnStart => s.migrate_on_start.to_string(),
            Key::MigrationsDir => value::render_string(&s.migrations_dir.to_string_lossy()),
            Key::CacheTtl => value::render_duration(s.cache_ttl),
            Key::CacheMaxEntries => s.cache_max_entries.to_string(),
        };
        Rendered::Toml(text)
    }
}

/// An integer in `min..=max`, converted to the field's type.
fn int<T: TryFrom<u64>>(raw: &Raw<'_>, min: u64, max: u64) -> Result<T, String> {
    let n = value::integer(raw, min, max)?;
    T::try_from(n).map_err(|_| "is too large for this platform".to_string())
}

/// A size that must fit in memory (`usize`).
fn to_usize(n: u64) -> Result<usize, String> {
    usize::try_from(n).map_err(|_| "is too large for this platform".to_string())
}

/// A timeout: a duration greater than zero and at most [`MAX_TIMEOUT`].
fn timeout(raw: &Raw<'_>) -> Result<Duration, String> {
    let d = value::duration(raw)?;
    if d.is_zero() {
        return Err("must be greater than 0".to_string());
    }
    if d > MAX_TIMEOUT {
        return Err("must be at most 24h".to_string());
    }
    Ok(d)
}

/// A window that may be zero (off): a duration of at most [`MAX_TIMEOUT`].
fn window(raw: &Raw<'_>) -> Result<Duration, String> {
    let d = value::duration(raw)?;
    if d > MAX_TIMEOUT {
        return Err("must be at most 24h".to_string());
    }
    Ok(d)
}

/// A directory path: not empty, and without control characters (a NUL cannot be in a path; a
/// newline is a pasting mistake).
fn directory(path: &str) -> Result<PathBuf, String> {
    if path.trim().is_empty() {
        return Err("must not be empty".to_string());
    }
    if path.chars().any(char::is_control) {
        return Err("must not contain control characters".to_string());
    }
    Ok(PathBuf::from(path))
}

/// The `Server` header value: 1 to 64 visible ASCII characters, spaces allowed inside (as in
/// `pinion (linux)`), so it can be written into a response head without escaping and cannot
/// inject a header line.
fn server_name(name: &str) -> Result<String, String> {
    if name.is_empty() {
        return Err("must not be empty".to_string());
    }
    if name.len() > MAX_SERVER_NAME {
        return Err(format!("must be at most {MAX_SERVER_NAME} characters"));
    }
    if !name.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return Err("must be visible ASCII characters (it is sent as the Server header)".into());
    }
    if name.starts_with(' ') || name.ends_with(' ') {
        return Err("must not start or end with a space".to_string());
    }
    Ok(name.to_string())
}

/// Levenshtein distance, for "did you mean": keys are short, so the quadratic algorithm with
/// one row is plenty.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_vars_are_prefixed_upper_case_names() {
        for key in Key::ALL {
            assert_eq!(
                key.env_var(),
                format!("PINION_{}", key.name().to_ascii_uppercase())
            );
            assert_eq!(Key::from_name(key.name()), Some(key));
            assert_eq!(Key::from_env_var(key.env_var()), Some(key));
        }
    }

    #[test]
    fn distances() {
        assert_eq!(edit_distance("port", "port"), 0);
        assert_eq!(edit_distance("prot", "port"), 2);
        assert_eq!(edit_distance("pot", "port"), 1);
        assert_eq!(edit_distance("", "bind"), 4);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggestions() {
        assert_eq!(Key::suggest("prot"), Some(Key::Port));
        assert_eq!(Key::suggest("thread"), Some(Key::Threads));
        assert_eq!(Key::suggest("max-body-size"), Some(Key::MaxBodySize));
        assert_eq!(Key::suggest("MAX_HEADER"), Some(Key::MaxHeaders));
        assert_eq!(Key::suggest("database-url"), Some(Key::DatabaseUrl));
        assert_eq!(Key::suggest("DATABASE_URLS"), Some(Key::DatabaseUrl));
        assert_eq!(
            Key::suggest("database_replica_url"),
            Some(Key::DatabaseReplicaUrls)
        );
        assert_eq!(Key::suggest("poolsize"), Some(Key::PoolSize));
        assert_eq!(
            Key::suggest("migrate_on_startup"),
            Some(Key::MigrateOnStart)
        );
        assert_eq!(Key::suggest("redis_url"), None);
    }

    #[test]
    fn directories() {
        assert_eq!(directory("migrations"), Ok(PathBuf::from("migrations")));
        assert_eq!(
            directory("/srv/app/db migrations"),
            Ok(PathBuf::from("/srv/app/db migrations"))
        );
        assert!(directory("").is_err());
        assert!(directory("  ").is_err());
        assert!(directory("a\0b").is_err());
        assert!(directory("migrations\n").is_err());
    }

    #[test]
    fn server_names() {
        assert_eq!(server_name("pinion/1.0"), Ok("pinion/1.0".to_string()));
        assert_eq!(
            server_name("pinion (linux)"),
            Ok("pinion (linux)".to_string())
        );
        assert!(server_name("").is_err());
        assert!(server_name("a\r\nSet-Cookie: x").is_err());
        assert!(server_name("pinión").is_err());
        assert!(server_name(" pinion").is_err());
        assert!(server_name(&"x".repeat(64)).is_ok());
        assert!(server_name(&"x".repeat(65)).is_err());
    }
}
