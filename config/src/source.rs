//! Where settings come from: [`Source`] (file, environment, command line) and
//! [`Settings::load`], which layers them over the defaults.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::error::{ConfigError, Origin};
use crate::key::{self, Key};
use crate::secret::{is_secret, mask_raw};
use crate::settings::Settings;
use crate::value::Raw;

/// The conventional port variable of platforms (Heroku, Cloud Run, Fly): overridden by
/// `PINION_PORT`.
const ENV_PORT: &str = "PORT";
/// The conventional worker-count variable (Heroku, gunicorn): overridden by
/// `PINION_THREADS`.
const ENV_WEB_CONCURRENCY: &str = "WEB_CONCURRENCY";
/// The conventional database variable (Heroku, Render, Rails, sqlx): overridden by
/// `PINION_DATABASE_URL`.
const ENV_DATABASE_URL: &str = "DATABASE_URL";
/// The same convention for the replicas, comma-separated: overridden by
/// `PINION_DATABASE_REPLICA_URLS`.
const ENV_DATABASE_REPLICA_URLS: &str = "DATABASE_REPLICA_URLS";
/// The prefix of every setting's variable.
const ENV_PREFIX: &str = "PINION_";
/// `PINION_*` variables that are not settings, so they are not reported as unknown:
/// `PINION_CONFIG` is where the binary looks for the file's path; the `PINION_PG*` ones are
/// exported by `scripts/pg` (the private PostgreSQL cluster) into the same shell, so
/// `eval "$(scripts/pg start)"; pinion serve` must not trip over them.
pub const RESERVED_ENV_VARS: &[&str] = &[
    "PINION_CONFIG",
    "PINION_PG_PORT",
    "PINION_PG_REPLICA_PORT",
    "PINION_PG_BIN",
    "PINION_PGDATA_DIR",
    "PINION_PG_WAIT",
];

/// Values from the command line, applied after the environment.
///
/// Typed because the binary's argument parser has already parsed them; [`Settings::load`]
/// still checks them against the same rules as the file (`threads` must be 1..=1024).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--bind`: overrides [`Settings::bind`].
    pub bind: Option<IpAddr>,
    /// `--port`: overrides [`Settings::port`].
    pub port: Option<u16>,
    /// `--threads`: overrides [`Settings::threads`].
    pub threads: Option<usize>,
}

/// What to load settings from: an optional file, an environment and command-line overrides.
///
/// The library never reads the process's arguments or environment by itself (only the binary
/// does, see the style guide): the binary builds a `Source` and passes it to
/// [`Settings::load`]. Tests pass a literal environment instead of mutating the process's.
///
/// ```
/// use pinion_config::{Settings, Source};
///
/// let source = Source::new().with_env([("PINION_PORT", "0"), ("HOME", "/root")]);
/// let settings = Settings::load(&source)?;
/// assert_eq!(settings.port, 0);
/// # Ok::<(), pinion_config::ConfigError>(())
/// ```
#[derive(Clone, Default)]
pub struct Source {
    file: Option<PathBuf>,
    env: Vec<(String, String)>,
    reserved_env: Vec<String>,
    overrides: Overrides,
}

impl Source {
    /// A source with no file, an empty environment and no overrides: loading it gives the
    /// defaults.
    pub fn new() -> Source {
        Source::default()
    }

    /// A source whose environment is this process's (no file, no overrides yet).
    ///
    /// Variables whose name or value is not UTF-8 are read lossily: if one of them is a
    /// pinion variable, its value will fail validation and be reported, not skipped.
    pub fn from_process_env() -> Source {
        Source::new().with_env(std::env::vars_os().map(|(name, value)| {
            (
                name.to_string_lossy().into_owned(),
                value.to_string_lossy().into_owned(),
            )
        }))
    }

    /// Reads `pinion.toml` settings from `path`. The file must exist: a path the operator gave
    /// that cannot be read is an error, not a silent fall-back to defaults.
    pub fn with_file(mut self, path: impl Into<PathBuf>) -> Source {
        self.file = Some(path.into());
        self
    }

    /// Adds environment variables; a name given twice takes its last value. Only `PINION_*`,
    /// `PORT`, `WEB_CONCURRENCY`, `DATABASE_URL` and `DATABASE_REPLICA_URLS` are read, so
    /// passing a whole environment is fine.
    pub fn with_env<I, K, V>(mut self, vars: I) -> Source
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.env
            .extend(vars.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Marks a `PINION_*` variable as the binary's own (like `PINION_CONFIG`, which is always
    /// reserved, see [`RESERVED_ENV_VARS`]), so that loading does not reject it as unknown.
    pub fn with_reserved_env(mut self, name: impl Into<String>) -> Source {
        self.reserved_env.push(name.into());
        self
    }

    /// Sets the command-line overrides, applied last.
    pub fn with_overrides(mut self, overrides: Overrides) -> Source {
        self.overrides = overrides;
        self
    }

    /// The configuration file, if one was given.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The environment, as given (a name given twice appears twice, last value last).
    pub(crate) fn env_vars(&self) -> impl Iterator<Item = (&str, &str)> {
        self.env.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    fn is_reserved(&self, var: &str) -> bool {
        RESERVED_ENV_VARS.contains(&var) || self.reserved_env.iter().any(|r| r == var)
    }
}

impl fmt::Debug for Source {
    /// Shows the environment's variable names only: a process environment holds secrets
    /// (`DATABASE_URL`, tokens), and a `Source` may end up in a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source")
            .field("file", &self.file)
            .field("env", &self.env.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .field("reserved_env", &self.reserved_env)
            .field("overrides", &self.overrides)
            .finish()
    }
}

impl Settings {
    /// Loads settings: the defaults, overridden by the file, overridden by the environment,
    /// overridden by the command line.
    ///
    /// In the environment, `PINION_<KEY>` sets `<key>` (e.g. `PINION_MAX_BODY_SIZE=20MiB`),
    /// with the same syntax as the file; lists (`database_replica_urls`) are comma-separated.
    /// `PORT`, `WEB_CONCURRENCY`, `DATABASE_URL` and `DATABASE_REPLICA_URLS` set `port`,
    /// `threads`, `database_url` and `database_replica_urls` too, for platforms that set them,
    /// but the `PINION_*` variable of the same key wins.
    ///
    /// # Errors
    ///
    /// Start-up should stop on any of these, with the error's message:
    /// - the file cannot be read, or is not valid TOML ([`ConfigError::is_io`],
    ///   [`ConfigError::is_parse`]; the message has the line and column);
    /// - the file has a key that is not a setting, or the environment has a `PINION_*`
    ///   variable that is not one ([`ConfigError::is_unknown_key`]; the message suggests the
    ///   closest key);
    /// - a value does not parse or breaks its key's rule ([`ConfigError::is_invalid_value`]);
    /// - values valid one by one contradict each other, checked once every layer is applied
    ///   ([`ConfigError::is_conflict`]; the message names both keys);
    /// - `require_version` does not match [`PINION_VERSION`](crate::PINION_VERSION)
    ///   ([`ConfigError::is_version_mismatch`]; the message names both versions).
    ///
    /// The first error found is returned, file before environment before command line before
    /// the checks between keys; a version mismatch comes before all of them, since a
    /// configuration written for a newer pinion may well have keys this one does not know.
    pub fn load(source: &Source) -> Result<Settings, ConfigError> {
        crate::version::check_first(source)?;
        let mut settings = Settings::default();
        if let Some(path) = &source.file {
            apply_file(&mut settings, path)?;
        }
        apply_env(&mut settings, source)?;
        apply_overrides(&mut settings, &source.overrides)?;
        key::check_combinations(&settings).map_err(|(key, reason)| {
            ConfigError::conflict(key.name(), settings.masked_value(key), reason)
        })?;
        Ok(settings)
    }
}

/// Reads, parses and applies the configuration file.
fn apply_file(settings: &mut Settings, path: &Path) -> Result<(), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::read(path, e))?;
    apply_toml(settings, &text, path)
}

/// Applies the text of a configuration file; `path` is for messages.
fn apply_toml(settings: &mut Settings, text: &str, path: &Path) -> Result<(), ConfigError> {
    use toml::Spanned;
    // Spans give each error its line. A map, because TOML itself rejects duplicate keys.
    let table: BTreeMap<Spanned<String>, Spanned<toml::Value>> =
        toml::from_str(text).map_err(|e| {
            let (line, column) = line_column(text, e.span().map_or(0, |s| s.start));
            ConfigError::parse(path, line, column, e.message())
        })?;
    // Report problems in the order they appear in the file.
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|(key, _)| key.span().start);
    for (key, value) in entries {
        let origin = Origin::File {
            path: path.to_path_buf(),
            line: Some(line_column(text, key.span().start).0),
        };
        let Some(known) = Key::from_name(key.get_ref()) else {
            let help = if value.get_ref().is_table() {
                "; pinion.toml has no tables, every key is at the top level".to_string()
            } else {
                unknown_key_help(key.get_ref(), |k| format!("`{}`", k.name()))
            };
            return Err(ConfigError::unknown_key(key.get_ref(), origin, help));
        };
        let raw = Raw::from_toml(value.get_ref());
        assign(settings, known, &raw, origin)?;
    }
    Ok(())
}

/// Applies the conventional variables (`PORT`, ...), then every `PINION_*` variable.
fn apply_env(settings: &mut Settings, source: &Source) -> Result<(), ConfigError> {
    // Sorted, so that with several bad variables the same one is reported every time.
    let vars: BTreeMap<&str, &str> = source
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let conventional = [
        (ENV_PORT, Key::Port),
        (ENV_WEB_CONCURRENCY, Key::Threads),
        (ENV_DATABASE_URL, Key::DatabaseUrl),
        (ENV_DATABASE_REPLICA_URLS, Key::DatabaseReplicaUrls),
    ];
    for (var, key) in conventional {
        // The PINION_ variable wins, so the conventional one is not even checked.
        if let (Some(value), false) = (vars.get(var), vars.contains_key(key.env_var())) {
            assign(
                settings,
                key,
                &Raw::Str(value),
                Origin::Env(var.to_string()),
            )?;
        }
    }
    for (&var, &value) in vars.range(ENV_PREFIX..) {
        if !var.starts_with(ENV_PREFIX) {
            break;
        }
        if source.is_reserved(var) {
            continue;
        }
        let Some(key) = Key::from_env_var(var) else {
            let help = unknown_key_help(&var[ENV_PREFIX.len()..], |k| k.env_var().to_string());
            return Err(ConfigError::unknown_key(
                var,
                Origin::Env(var.to_string()),
                help,
            ));
        };
        assign(
            settings,
            key,
            &Raw::Str(value),
            Origin::Env(var.to_string()),
        )?;
    }
    Ok(())
}

/// Applies the command-line overrides, checking them like any other value.
fn apply_overrides(settings: &mut Settings, overrides: &Overrides) -> Result<(), ConfigError> {
    if let Some(bind) = overrides.bind {
        settings.bind = bind;
    }
    if let Some(port) = overrides.port {
        settings.port = port;
    }
    if let Some(threads) = overrides.threads {
        // Saturating: a huge count is then rejected as out of range rather than wrapped.
        let raw = Raw::Int(i64::try_from(threads).unwrap_or(i64::MAX));
        assign(settings, Key::Threads, &raw, Origin::CommandLine)?;
    }
    Ok(())
}

/// Applies one value, turning a refusal into an error that names the key, value and origin.
fn assign(
    settings: &mut Settings,
    key: Key,
    raw: &Raw<'_>,
    origin: Origin,
) -> Result<(), ConfigError> {
    key.assign(settings, raw).map_err(|reason| {
        let value = match is_secret(key.name()) {
            true => mask_raw(raw),
            false => raw.display(),
        };
        ConfigError::invalid_value(key.name(), value, reason, origin)
    })
}

/// The end of an unknown-key message: the closest key, or the list of keys.
fn unknown_key_help(written: &str, spell: impl Fn(Key) -> String) -> String {
    match Key::suggest(written) {
        Some(key) => format!("; did you mean {}?", spell(key)),
        None => {
            let all: Vec<String> = Key::ALL.into_iter().map(spell).collect();
            format!("; known keys are {}", all.join(", "))
        }
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_environment_values() {
        let source = Source::new().with_env([("DATABASE_URL", "postgres://u:hunter2@h/db")]);
        let debug = format!("{source:?}");
        assert!(debug.contains("DATABASE_URL"), "{debug}");
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    #[test]
    fn line_columns() {
        let text = "a = 1\nbb = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 4), (1, 5));
        assert_eq!(line_column(text, 6), (2, 1));
        assert_eq!(line_column(text, 9), (2, 4));
        assert_eq!(line_column(text, 100), (3, 1));
    }
}
