//! Loading settings through the public API: defaults, file, environment, command line, and the
//! errors an operator sees.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pinion_config::{
    mask_url_password, Cidr, ConfigError, DatabaseUrl, IoDriver, LogFormat, LogLevel, Overrides,
    RateLimitStore, RatePolicy, Ratio, Settings, Source, VersionReq, PINION_VERSION, SECRET_KEYS,
};

/// A `pinion.toml` under the temp directory, removed when dropped.
struct TempFile {
    path: PathBuf,
}

impl TempFile {
    fn new(contents: &str) -> TempFile {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "pinion-config-test-{}-{}.toml",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, contents).expect("write temp file");
        TempFile { path }
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn load_file(contents: &str) -> (TempFile, Result<Settings, ConfigError>) {
    let file = TempFile::new(contents);
    let result = Settings::load(&Source::new().with_file(file.path()));
    (file, result)
}

fn load_env(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    Settings::load(&Source::new().with_env(vars.iter().copied()))
}

#[test]
fn defaults_without_file_or_environment() {
    let settings = Settings::load(&Source::new()).expect("defaults load");
    assert_eq!(settings, Settings::default());
}

#[test]
fn irrelevant_environment_is_ignored() {
    let settings =
        load_env(&[("HOME", "/root"), ("PINIONX", "1"), ("pinion_port", "1")]).expect("load");
    assert_eq!(settings, Settings::default());
}

#[test]
fn file_overrides_defaults() {
    let (_file, result) = load_file(
        r#"
# a comment
bind = "127.0.0.1"
port = 9000
threads = 4
io_driver = "epoll"
backlog = 1024
max_connections_per_thread = 100
max_head_size = "32KiB"
max_headers = 50
max_uri_length = 2048
max_body_size = "1 MB"
max_drain_size = 0
header_read_timeout = "500ms"
body_read_timeout = 5
keepalive_timeout = "2m"
drain_timeout = "1h"
server_name = "pinion (test)"
log_level = "debug"
log_format = "json"
database_url = "postgres://app:secret@db1:5432/app?sslmode=require"
database_replica_urls = ["postgres://app:secret@db2/app", "postgresql:///app?host=/run/postgresql"]
pool_size = 40
db_connect_timeout = "2s"
db_query_timeout = "1m"
db_keepalive = 15
db_user_timeout = "20s"
replica_check_interval = "250ms"
sticky_window = 0
migrate_on_start = false
migrations_dir = "db/migrations"
"#,
    );
    let s = result.expect("load");
    assert_eq!(s.bind, IpAddr::from([127, 0, 0, 1]));
    assert_eq!(s.port, 9000);
    assert_eq!(s.threads, Some(4));
    assert_eq!(s.io_driver, IoDriver::Epoll);
    assert_eq!(s.backlog, 1024);
    assert_eq!(s.max_connections_per_thread, 100);
    assert_eq!(s.max_head_size, 32 * 1024);
    assert_eq!(s.max_headers, 50);
    assert_eq!(s.max_uri_length, 2048);
    assert_eq!(s.max_body_size, 1_000_000);
    assert_eq!(s.max_drain_size, 0);
    assert_eq!(s.header_read_timeout, Duration::from_millis(500));
    assert_eq!(s.body_read_timeout, Duration::from_secs(5));
    assert_eq!(s.keepalive_timeout, Duration::from_secs(120));
    assert_eq!(s.drain_timeout, Duration::from_secs(3600));
    assert_eq!(s.server_name, "pinion (test)");
    assert_eq!(s.log_level, LogLevel::Debug);
    assert_eq!(s.log_format, LogFormat::Json);
    assert_eq!(
        s.database_url.as_ref().map(DatabaseUrl::as_str),
        Some("postgres://app:secret@db1:5432/app?sslmode=require")
    );
    assert_eq!(
        urls(&s.database_replica_urls),
        [
            "postgres://app:secret@db2/app",
            "postgresql:///app?host=/run/postgresql"
        ]
    );
    assert_eq!(s.pool_size, Some(40));
    assert_eq!(s.db_connect_timeout, Duration::from_secs(2));
    assert_eq!(s.db_query_timeout, Duration::from_secs(60));
    assert_eq!(s.db_keepalive, Duration::from_secs(15));
    assert_eq!(s.db_user_timeout, Duration::from_secs(20));
    assert_eq!(s.replica_check_interval, Duration::from_millis(250));
    assert_eq!(s.sticky_window, Duration::ZERO);
    assert!(!s.migrate_on_start);
    assert_eq!(s.migrations_dir, PathBuf::from("db/migrations"));
}

fn urls(list: &[DatabaseUrl]) -> Vec<&str> {
    list.iter().map(DatabaseUrl::as_str).collect()
}

fn database_url(s: &Settings) -> Option<&str> {
    s.database_url.as_ref().map(DatabaseUrl::as_str)
}

#[test]
fn partial_file_keeps_other_defaults() {
    let (_file, result) = load_file("port = 9000\n");
    let s = result.expect("load");
    assert_eq!(
        s,
        Settings {
            port: 9000,
            ..Settings::default()
        }
    );
}

#[test]
fn environment_overrides_file() {
    let file = TempFile::new("port = 9000\nmax_body_size = \"1MiB\"\nlog_level = \"warn\"\n");
    let source = Source::new().with_file(file.path()).with_env([
        ("PINION_PORT", "9001"),
        ("PINION_MAX_BODY_SIZE", "20 MiB"),
        ("PINION_KEEPALIVE_TIMEOUT", "90s"),
        ("PINION_IO_DRIVER", "io_uring"),
        ("PINION_THREADS", "auto"),
        ("PINION_BIND", "::1"),
    ]);
    let s = Settings::load(&source).expect("load");
    assert_eq!(s.port, 9001);
    assert_eq!(s.max_body_size, 20 * 1024 * 1024);
    assert_eq!(s.keepalive_timeout, Duration::from_secs(90));
    assert_eq!(s.io_driver, IoDriver::IoUring);
    assert_eq!(s.threads, None);
    assert_eq!(s.bind, "::1".parse::<IpAddr>().expect("ip"));
    // From the file, untouched by the environment.
    assert_eq!(s.log_level, LogLevel::Warn);
}

#[test]
fn port_and_web_concurrency_conventions() {
    let s = load_env(&[("PORT", "5000"), ("WEB_CONCURRENCY", "3")]).expect("load");
    assert_eq!((s.port, s.threads), (5000, Some(3)));

    // They override the file too: they are environment.
    let file = TempFile::new("port = 9000\nthreads = 8\n");
    let source = Source::new()
        .with_file(file.path())
        .with_env([("PORT", "5000"), ("WEB_CONCURRENCY", "3")]);
    let s = Settings::load(&source).expect("load");
    assert_eq!((s.port, s.threads), (5000, Some(3)));
}

#[test]
fn pinion_variables_beat_the_conventions() {
    let s = load_env(&[
        ("PORT", "5000"),
        ("PINION_PORT", "6000"),
        ("WEB_CONCURRENCY", "3"),
        ("PINION_THREADS", "2"),
    ])
    .expect("load");
    assert_eq!((s.port, s.threads), (6000, Some(2)));

    // Order of the environment does not matter.
    let s = load_env(&[("PINION_PORT", "6000"), ("PORT", "5000")]).expect("load");
    assert_eq!(s.port, 6000);

    // A conventional variable that is overridden is not even checked.
    let s = load_env(&[("PORT", "not-a-port"), ("PINION_PORT", "6000")]).expect("load");
    assert_eq!(s.port, 6000);
}

#[test]
fn bad_conventional_variable_is_named() {
    let err = load_env(&[("PORT", "http")]).expect_err("bad PORT");
    assert!(err.is_invalid_value());
    assert_eq!(err.key(), Some("port"));
    assert_eq!(err.env_var(), Some("PORT"));
    assert_eq!(
        err.to_string(),
        "invalid value for `port` in environment variable PORT: \"http\": \
         must be an integer in 0..=65535"
    );

    let err = load_env(&[("WEB_CONCURRENCY", "0")]).expect_err("bad WEB_CONCURRENCY");
    assert_eq!(err.key(), Some("threads"));
    assert_eq!(err.env_var(), Some("WEB_CONCURRENCY"));
}

#[test]
fn command_line_overrides_environment() {
    let source = Source::new()
        .with_env([("PINION_PORT", "6000"), ("PINION_THREADS", "2")])
        .with_overrides(Overrides {
            bind: Some(IpAddr::from([127, 0, 0, 1])),
            port: Some(0),
            threads: Some(5),
        });
    let s = Settings::load(&source).expect("load");
    assert_eq!(s.bind, IpAddr::from([127, 0, 0, 1]));
    assert_eq!(s.port, 0);
    assert_eq!(s.threads, Some(5));

    let partial = Source::new()
        .with_env([("PINION_PORT", "6000")])
        .with_overrides(Overrides {
            threads: Some(1),
            ..Overrides::default()
        });
    let s = Settings::load(&partial).expect("load");
    assert_eq!((s.port, s.threads), (6000, Some(1)));
}

#[test]
fn command_line_overrides_are_validated() {
    for threads in [0, 1025, usize::MAX] {
        let source = Source::new().with_overrides(Overrides {
            threads: Some(threads),
            ..Overrides::default()
        });
        let err = Settings::load(&source).expect_err("bad --threads");
        assert!(err.is_invalid_value());
        assert_eq!(err.key(), Some("threads"));
        assert!(
            err.to_string()
                .starts_with("invalid value for `threads` on the command line: "),
            "{err}"
        );
    }
}

/// Every rule: values that pass and values that fail, through the file and the environment.
/// `file` values are TOML text; `env` values are environment strings.
struct Rule {
    key: &'static str,
    good_file: &'static [&'static str],
    bad_file: &'static [(&'static str, &'static str)],
    good_env: &'static [&'static str],
    bad_env: &'static [(&'static str, &'static str)],
}

const RULES: &[Rule] = &[
    Rule {
        key: "bind",
        good_file: &[r#""127.0.0.1""#, r#""::""#],
        bad_file: &[
            (r#""localhost""#, "must be an IP address"),
            ("5", "found an integer"),
        ],
        good_env: &["10.0.0.1", "::1"],
        bad_env: &[
            ("", "must be an IP address"),
            ("[::1]", "must be an IP address"),
        ],
    },
    Rule {
        key: "port",
        good_file: &["0", "65535", r#""8080""#],
        bad_file: &[
            ("65536", "must be an integer in 0..=65535"),
            ("-1", "must be an integer in 0..=65535"),
            ("80.5", "found a float"),
        ],
        good_env: &["0", "443"],
        bad_env: &[
            ("80800", "0..=65535"),
            ("", "0..=65535"),
            ("http", "0..=65535"),
        ],
    },
    Rule {
        key: "threads",
        good_file: &["1", "1024", r#""auto""#],
        bad_file: &[
            ("0", "must be an integer in 1..=1024, or \"auto\""),
            ("1025", "must be an integer in 1..=1024"),
            ("true", "found a boolean"),
        ],
        good_env: &["16", "AUTO"],
        bad_env: &[("0", "1..=1024"), ("many", "1..=1024")],
    },
    Rule {
        key: "io_batch_wait",
        good_file: &[r#""200us""#, "0"],
        bad_file: &[(r#""11ms""#, "must be at most 10ms"), ("true", "found a boolean")],
        good_env: &["1ms"],
        bad_env: &[("1s", "must be at most 10ms")],
    },
    Rule {
        key: "io_driver",
        good_file: &[r#""auto""#, r#""io_uring""#, r#""epoll""#],
        bad_file: &[
            (
                r#""uring""#,
                r#"must be one of "auto", "io_uring", "epoll""#,
            ),
            ("1", "found an integer"),
        ],
        good_env: &["EPOLL"],
        bad_env: &[("", "must be one of")],
    },
    Rule {
        key: "backlog",
        good_file: &["1", "65535"],
        bad_file: &[
            ("0", "must be an integer in 1..=65535"),
            ("65536", "must be an integer in 1..=65535"),
        ],
        good_env: &["128"],
        bad_env: &[("-5", "1..=65535")],
    },
    Rule {
        key: "max_connections_per_thread",
        good_file: &["1", "1000000"],
        bad_file: &[("0", "must be an integer of at least 1")],
        good_env: &["10"],
        bad_env: &[("lots", "must be an integer of at least 1")],
    },
    Rule {
        key: "max_head_size",
        good_file: &["1024", r#""1KiB""#, r#""1MiB""#, r#""1MB""#],
        bad_file: &[
            ("1023", "must be between 1KiB and 1MiB"),
            (r#""1025KiB""#, "must be between 1KiB and 1MiB"),
            (r#""2GiB""#, "must be between 1KiB and 1MiB"),
            ("-1", "must not be negative"),
        ],
        good_env: &["8 KiB"],
        bad_env: &[("10 parsecs", "unknown size unit `parsecs`")],
    },
    Rule {
        key: "max_headers",
        good_file: &["1", "1024"],
        bad_file: &[
            ("0", "must be an integer in 1..=1024"),
            ("1025", "must be an integer in 1..=1024"),
        ],
        good_env: &["64"],
        bad_env: &[("1k", "must be an integer in 1..=1024")],
    },
    Rule {
        key: "max_uri_length",
        good_file: &["16", r#""64KiB""#],
        bad_file: &[("15", "must be at least 16 bytes")],
        good_env: &["2KiB"],
        bad_env: &[("15B", "must be at least 16 bytes")],
    },
    Rule {
        key: "max_body_size",
        good_file: &["0", r#""1GiB""#, r#""500MB""#],
        bad_file: &[
            ("-1", "must not be negative"),
            ("[1]", "found an array"),
            (r#""99999999999GiB""#, "is too large"),
        ],
        good_env: &["10485760", "10 MiB"],
        bad_env: &[
            ("-1", "must start with a whole number"),
            ("", "is empty"),
            ("10 parsecs", "unknown size unit"),
        ],
    },
    Rule {
        key: "max_drain_size",
        good_file: &["0", r#""64KiB""#],
        bad_file: &[(r#""1.5KiB""#, "must be a whole number")],
        good_env: &["1MB"],
        bad_env: &[("lots", "must start with a whole number")],
    },
    Rule {
        key: "header_read_timeout",
        good_file: &["1", r#""1ms""#, r#""24h""#],
        bad_file: &[
            ("0", "must be greater than 0"),
            (r#""0ms""#, "must be greater than 0"),
            (r#""25h""#, "must be at most 24h"),
            ("-1", "must not be negative"),
            ("1.5", "found a float"),
        ],
        good_env: &["10", "500ms"],
        bad_env: &[
            ("10 parsecs", "unknown duration unit `parsecs`"),
            ("", "is empty"),
            ("-1", "must start with a whole number"),
            ("99999999999h", "is too large"),
        ],
    },
    Rule {
        key: "body_read_timeout",
        good_file: &[r#""30s""#],
        bad_file: &[(r#""0s""#, "must be greater than 0")],
        good_env: &["1m"],
        bad_env: &[("1d", "unknown duration unit `d`")],
    },
    Rule {
        key: "write_timeout",
        good_file: &[r#""30s""#, "5"],
        bad_file: &[
            (r#""0s""#, "must be greater than 0"),
            (r#""25h""#, "must be at most 24h"),
        ],
        good_env: &["500ms"],
        bad_env: &[("0", "must be greater than 0")],
    },
    Rule {
        key: "sse_keepalive",
        good_file: &[r#""15s""#, "1"],
        bad_file: &[
            (r#""0s""#, "must be greater than 0"),
            (r#""2d""#, "unknown duration unit `d`"),
        ],
        good_env: &["250ms"],
        bad_env: &[("-1s", "must start with a whole number")],
    },
    Rule {
        key: "keepalive_timeout",
        good_file: &[r#""75s""#],
        bad_file: &[("0", "must be greater than 0")],
        good_env: &["2m"],
        bad_env: &[("0", "must be greater than 0")],
    },
    Rule {
        key: "session_idle_timeout",
        good_file: &[r#""10m""#],
        bad_file: &[("0", "must be greater than 0")],
        good_env: &["15m"],
        bad_env: &[("soon", "must start with a whole number")],
    },
    Rule {
        key: "session_absolute_timeout",
        good_file: &[r#""12h""#],
        bad_file: &[("86401", "must be at most 24h")],
        good_env: &["4h"],
        bad_env: &[("0s", "must be greater than 0")],
    },
    Rule {
        key: "drain_timeout",
        good_file: &[r#""1h""#],
        bad_file: &[("86401", "must be at most 24h")],
        good_env: &["90s"],
        bad_env: &[("0h", "must be greater than 0")],
    },
    Rule {
        key: "drain_grace",
        good_file: &[r#""2s""#, "0"],
        bad_file: &[(r#""1 fortnight""#, "unknown duration unit")],
        good_env: &["500ms"],
        bad_env: &[("25h", "must be at most 24h")],
    },
    Rule {
        key: "handoff_socket",
        good_file: &[r#""/run/pinion/handoff.sock""#, r#""""#],
        bad_file: &[("1", "string")],
        good_env: &["handoff.sock"],
        bad_env: &[(
            "/run/a-very-long-directory-name-that-goes-on/and-on-and-on/and-on-and-on/and-on-and-on/and-on/until-it-is/too-long.sock",
            "a Unix socket path has at most 107",
        )],
    },
    Rule {
        key: "server_name",
        good_file: &[r#""pinion/1.0""#, r#""a""#],
        bad_file: &[
            (r#""""#, "must not be empty"),
            (r#""a\r\nX-Injected: 1""#, "must be visible ASCII"),
            (
                r#""xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx""#,
                "must be at most 64 characters",
            ),
            ("1", "must be a string, found an integer"),
        ],
        good_env: &["edge (eu-west)"],
        bad_env: &[("", "must not be empty"), ("tab\there", "visible ASCII")],
    },
    Rule {
        key: "log_level",
        good_file: &[
            r#""error""#,
            r#""warn""#,
            r#""info""#,
            r#""debug""#,
            r#""trace""#,
        ],
        bad_file: &[(
            r#""verbose""#,
            r#"must be one of "error", "warn", "info", "debug", "trace""#,
        )],
        good_env: &["DEBUG"],
        bad_env: &[("warning", "must be one of")],
    },
    Rule {
        key: "log_format",
        good_file: &[r#""text""#, r#""json""#],
        bad_file: &[(r#""xml""#, r#"must be one of "text", "json""#)],
        good_env: &["json"],
        bad_env: &[("logfmt", "must be one of")],
    },
    // Values with a password are checked in `database_urls_never_print_passwords`; here the
    // masked value shown equals the value written.
    Rule {
        key: "database_url",
        good_file: &[
            r#""""#,
            r#""postgres://u:pw@h/db""#,
            r#""postgresql://h1:5432,h2:5433/db?target_session_attrs=read-write""#,
            r#""postgres:///db?host=/run/postgresql""#,
        ],
        bad_file: &[
            (
                r#""mysql://h/db""#,
                "must be a URL starting with postgres://",
            ),
            (r#""host=h dbname=db""#, "key=value connection strings"),
            (r#""postgres:///db""#, "must name a host"),
            (r#""postgres://h:99999/db""#, "port"),
            ("5432", "must be a string, found an integer"),
            (r#"["postgres://h/db"]"#, "must be a string, found an array"),
        ],
        good_env: &["postgres://h/db", "", "  "],
        bad_env: &[
            ("http://h/db", "must be a URL starting with postgres://"),
            ("postgres://h:port/db", "port"),
        ],
    },
    Rule {
        key: "database_replica_urls",
        good_file: &[
            "[]",
            r#"["postgres://u:pw@r1/db"]"#,
            r#"["postgres://r1/db", "postgresql://r2:5433/db"]"#,
            // The environment's syntax works in the file too.
            r#""postgres://r1/db, postgres://r2/db""#,
        ],
        bad_file: &[
            (
                r#"["mysql://r1/db"]"#,
                "must be a URL starting with postgres://",
            ),
            (r#"["postgres://r1/db", "r2"]"#, "URL 2: must be a URL"),
            (r#"["postgres://r1/db", 5]"#, "item 2 is an integer"),
            ("5", "or a comma-separated string, found an integer"),
        ],
        good_env: &["", "postgres://r1/db", "postgres://r1/db, postgres://r2/db"],
        bad_env: &[
            ("mysql://r1/db", "must be a URL starting with postgres://"),
            ("postgres://r1/db, postgres://r2:x/db", "URL 2: has a port"),
        ],
    },
    Rule {
        key: "databases",
        good_file: &[
            "[]",
            r#"["analytics=postgres://u:pw@a1/db"]"#,
            r#"["analytics=postgres://a1/db", "reports=postgresql://r2:5433/db"]"#,
            r#""analytics=postgres://a1/db, reports=postgres://r2/db""#,
        ],
        bad_file: &[
            (
                r#"["postgres://a1/db"]"#,
                "each item must be name=postgres://",
            ),
            (r#"["default=postgres://a1/db"]"#, "is taken by the primary"),
            (r#"["replica1=postgres://a1/db"]"#, "or a replica"),
            (r#"["Big=postgres://a1/db"]"#, "must be lower-case letters"),
            (
                r#"["a=postgres://h1/db", "a=postgres://h2/db"]"#,
                "given twice",
            ),
            (
                r#"["a=mysql://h1/db"]"#,
                "`a`: must be a URL starting with postgres://",
            ),
            ("5", "or a comma-separated string, found an integer"),
        ],
        good_env: &["", "analytics=postgres://a1/db, reports=postgres://r2/db"],
        bad_env: &[
            ("analytics=postgres://a1:x/db", "`analytics`: has a port"),
            ("analytics", "each item must be name=postgres://"),
        ],
    },
    Rule {
        key: "pool_size",
        good_file: &["1", "10000", r#""auto""#],
        bad_file: &[
            ("0", "must be an integer in 1..=10000, or \"auto\""),
            ("10001", "must be an integer in 1..=10000"),
            ("false", "found a boolean"),
        ],
        good_env: &["64", "Auto"],
        bad_env: &[("", "1..=10000"), ("lots", "1..=10000")],
    },
    Rule {
        key: "instances",
        good_file: &["1", "100000", r#""12""#],
        bad_file: &[
            ("0", "must be an integer in 1..=100000"),
            ("100001", "must be an integer in 1..=100000"),
            (r#""auto""#, "must be an integer in 1..=100000"),
        ],
        good_env: &["4"],
        bad_env: &[("", "1..=100000"), ("-2", "1..=100000")],
    },
    Rule {
        key: "db_connect_timeout",
        good_file: &[r#""5s""#, "1"],
        bad_file: &[
            ("0", "must be greater than 0"),
            (r#""25h""#, "must be at most 24h"),
        ],
        good_env: &["500ms"],
        bad_env: &[
            ("0s", "must be greater than 0"),
            ("5 sec", "unknown duration unit"),
        ],
    },
    Rule {
        key: "db_query_timeout",
        good_file: &[r#""30s""#],
        bad_file: &[(r#""0ms""#, "must be greater than 0")],
        good_env: &["2m"],
        bad_env: &[("", "is empty")],
    },
    Rule {
        key: "db_keepalive",
        good_file: &[r#""30s""#],
        bad_file: &[("0", "must be greater than 0")],
        good_env: &["1m"],
        bad_env: &[("-1", "must start with a whole number")],
    },
    Rule {
        key: "db_user_timeout",
        good_file: &[r#""10s""#],
        bad_file: &[("0", "must be greater than 0")],
        good_env: &["10000ms"],
        bad_env: &[("1.5s", "must be a whole number")],
    },
    Rule {
        key: "replica_check_interval",
        good_file: &[r#""1s""#, r#""100ms""#],
        bad_file: &[("0", "must be greater than 0")],
        good_env: &["5s"],
        bad_env: &[("0", "must be greater than 0")],
    },
    Rule {
        key: "sticky_window",
        good_file: &["0", r#""0s""#, r#""5s""#, r#""24h""#],
        bad_file: &[
            (r#""25h""#, "must be at most 24h"),
            ("-1", "must not be negative"),
        ],
        good_env: &["0", "10s"],
        bad_env: &[("soon", "must start with a whole number")],
    },
    Rule {
        key: "migrate_on_start",
        good_file: &["true", "false", r#""yes""#],
        bad_file: &[
            (
                "1",
                "must be true or false (or 1/0, yes/no, on/off), found an integer",
            ),
            (r#""maybe""#, "must be true or false"),
        ],
        good_env: &["true", "FALSE", "1", "0", "yes", "no", "on", "off"],
        bad_env: &[
            ("", "must be true or false"),
            ("2", "must be true or false"),
        ],
    },
    Rule {
        key: "migrations_dir",
        good_file: &[r#""migrations""#, r#""/srv/app/migrations""#, r#""./db""#],
        bad_file: &[
            (r#""""#, "must not be empty"),
            ("1", "must be a string, found an integer"),
        ],
        good_env: &["db/migrations"],
        bad_env: &[("", "must not be empty"), (" ", "must not be empty")],
    },
    Rule {
        key: "static_dir",
        good_file: &[r#""static""#, r#""/srv/app/static""#, r#""./assets""#],
        bad_file: &[
            (r#""""#, "must not be empty"),
            ("1", "must be a string, found an integer"),
        ],
        good_env: &["app/static"],
        bad_env: &[("", "must not be empty"), (" ", "must not be empty")],
    },
    Rule {
        key: "cache_ttl",
        good_file: &["300", r#""5m""#, r#""250ms""#],
        bad_file: &[
            ("0", "must be greater than 0"),
            (r#""25h""#, "must be at most 24h"),
        ],
        good_env: &["60s"],
        bad_env: &[("forever", "must start with a whole number")],
    },
    Rule {
        key: "cache_max_entries",
        good_file: &["1", "20000"],
        bad_file: &[("0", "must be"), (r#""lots""#, "must be")],
        good_env: &["50000"],
        bad_env: &[("-5", "must be")],
    },
    Rule {
        key: "query_cache",
        good_file: &["true", "false"],
        bad_file: &[
            ("1", "must be true or false"),
            (r#""sure""#, "must be true or false"),
        ],
        good_env: &["off", "false"],
        bad_env: &[("maybe", "must be true or false")],
    },
    Rule {
        key: "events_retention",
        good_file: &[r#""1h""#, r#""720h""#, "60"],
        bad_file: &[
            ("0", "must be greater than 0"),
            (r#""721h""#, "at most 720h"),
        ],
        good_env: &["15m"],
        bad_env: &[("a while", "must start with a whole number")],
    },
    Rule {
        key: "events_retention_rows",
        good_file: &["1", "100000"],
        bad_file: &[("0", "must be"), (r#""many""#, "must be")],
        good_env: &["5000"],
        bad_env: &[("-1", "must be")],
    },
    Rule {
        key: "events_subscriber_queue",
        good_file: &["1", "64", "100000"],
        bad_file: &[("0", "must be"), ("100001", "must be")],
        good_env: &["16"],
        bad_env: &[("lots", "must be")],
    },
    Rule {
        key: "jobs_threads",
        good_file: &["0", "1", "8"],
        bad_file: &[("-1", "must be"), (r#""two""#, "must be")],
        good_env: &["2"],
        bad_env: &[("lots", "must be")],
    },
    Rule {
        key: "jobs_queues",
        good_file: &[r#""default""#, r#""default:20,mail:2""#],
        bad_file: &[
            (r#""mail:0""#, "concurrency of 1..=100000"),
            (r#""a,a""#, "listed twice"),
            (r#"" , ""#, "no queue"),
        ],
        good_env: &["default:5"],
        bad_env: &[("mail:x", "must be a whole number")],
    },
    Rule {
        key: "jobs_lease",
        good_file: &[r#""30s""#, r#""1s""#],
        bad_file: &[(r#""500ms""#, "at least 1s"), ("0", "greater than 0")],
        good_env: &["2m"],
        bad_env: &[("soon", "must start with a whole number")],
    },
    Rule {
        key: "jobs_poll_interval",
        good_file: &[r#""1s""#, r#""100ms""#],
        bad_file: &[("0", "greater than 0")],
        good_env: &["5s"],
        bad_env: &[("often", "must start with a whole number")],
    },
    Rule {
        key: "jobs_retry_base",
        good_file: &[r#""1s""#, r#""50ms""#],
        bad_file: &[("0", "greater than 0")],
        good_env: &["10s"],
        bad_env: &[("later", "must start with a whole number")],
    },
    Rule {
        key: "security_headers",
        good_file: &["true", "false"],
        bad_file: &[
            ("1", "must be true or false"),
            (r#""sure""#, "must be true or false"),
        ],
        good_env: &["off", "1"],
        bad_env: &[("", "must be true or false")],
    },
    Rule {
        key: "hsts",
        good_file: &["true", "false"],
        bad_file: &[(r#""max-age=31536000""#, "must be true or false")],
        good_env: &["yes"],
        bad_env: &[("2", "must be true or false")],
    },
    Rule {
        key: "content_security_policy",
        good_file: &[
            r#""""#,
            r#""default-src 'none'""#,
            r#""default-src 'self'; img-src https://cdn.example.com""#,
        ],
        bad_file: &[
            (
                r#""default-src 'self'\r\nX-Injected: 1""#,
                "without control characters",
            ),
            (r#""script-src 'é'""#, "must be visible ASCII"),
            ("true", "must be a string, found a boolean"),
        ],
        good_env: &["", "default-src 'self'"],
        bad_env: &[("default-src\t'self'", "without control characters")],
    },
    Rule {
        key: "cors_allowed_origins",
        good_file: &[
            "[]",
            r#"["*"]"#,
            r#"["https://example.com", "http://localhost:3000", "http://[::1]:8080"]"#,
            r#""https://a.example, https://b.example""#,
        ],
        bad_file: &[
            (r#"["https://example.com/"]"#, "trailing slash"),
            (r#"["example.com"]"#, "must be \"*\" or an origin"),
            (
                r#"["https://a.example", "ftp://b.example"]"#,
                "origin 2: must start with http://",
            ),
            (r#"["https://a.example:99999"]"#, "has port `99999`"),
            ("1", "found an integer"),
        ],
        good_env: &["", "*", "https://a.example,https://b.example:8443"],
        bad_env: &[
            ("https://a.example/path", "must not have a path"),
            (
                "https://a.example, null",
                "origin 2: must be \"*\" or an origin",
            ),
        ],
    },
    // `true` with a "*" origin is checked in `cors_credentials_exclude_a_wildcard_origin`.
    Rule {
        key: "cors_allow_credentials",
        good_file: &["true", "false"],
        bad_file: &[("0", "must be true or false")],
        good_env: &["true", "no"],
        bad_env: &[("include", "must be true or false")],
    },
    Rule {
        key: "cors_max_age",
        good_file: &["0", "600", r#""10m""#, r#""24h""#],
        bad_file: &[
            (r#""25h""#, "must be at most 24h"),
            ("-1", "must not be negative"),
        ],
        good_env: &["0s", "1h"],
        bad_env: &[("10 minutes", "unknown duration unit `minutes`")],
    },
    Rule {
        key: "trusted_proxies",
        good_file: &[
            "[]",
            r#"["10.0.0.0/8", "::1/128"]"#,
            r#"["192.168.1.10", "fd00::/8", "0.0.0.0/0"]"#,
        ],
        bad_file: &[
            (r#"["10.0.0.0/33"]"#, "must be in 0..=32"),
            (r#"["10.0.0.1/8"]"#, "did you mean 10.0.0.0/8?"),
            (
                r#"["10.0.0.0/8", "nginx"]"#,
                "network 2: must be an IP network",
            ),
            (r#"["::/129"]"#, "must be in 0..=128"),
            (r#"[10]"#, "item 1 is an integer"),
        ],
        good_env: &["", "127.0.0.1", "10.0.0.0/8, 172.16.0.0/12, ::1/128"],
        bad_env: &[
            ("localhost", "must be an IP network"),
            (
                "10.0.0.0/8,10.0.0.0/x",
                "network 2: has a prefix length `x`",
            ),
        ],
    },
    Rule {
        key: "secret_key",
        good_file: &[r#""""#, r#""0123456789abcdef0123456789abcdef""#],
        bad_file: &[
            (r#""short""#, "must be at least 32 bytes (it is 5)"),
            ("32", "must be a string"),
        ],
        good_env: &["", "an environment secret of 32 bytes!"],
        bad_env: &[("short", "must be at least 32 bytes")],
    },
    // "production" needs `secret_key` as well: `production_needs_a_secret_key`.
    Rule {
        key: "environment",
        good_file: &[r#""development""#],
        bad_file: &[(
            r#""staging""#,
            r#"must be one of "development", "production""#,
        )],
        good_env: &["development"],
        bad_env: &[("prod", "must be one of")],
    },
    Rule {
        key: "secret_key_fallbacks",
        good_file: &["[]", r#"["0123456789abcdef0123456789abcdef"]"#],
        bad_file: &[
            (
                r#"["0123456789abcdef0123456789abcdef", "short"]"#,
                "key 2: must be at least 32 bytes",
            ),
            ("[1]", "item 1 is an integer"),
        ],
        good_env: &[
            "",
            "0123456789abcdef0123456789abcdef,fedcba9876543210fedcba9876543210",
        ],
        bad_env: &[("short", "must be at least 32 bytes")],
    },
    Rule {
        key: "request_id",
        good_file: &["true", "false"],
        bad_file: &[("0", "must be true or false")],
        good_env: &["on"],
        bad_env: &[("uuid", "must be true or false")],
    },
    Rule {
        key: "server_timing",
        good_file: &["true", "false"],
        bad_file: &[(r#""always""#, "must be true or false")],
        good_env: &["OFF"],
        bad_env: &[("", "must be true or false")],
    },
    Rule {
        key: "access_log",
        good_file: &["true", "false"],
        bad_file: &[(r#""stdout""#, "must be true or false")],
        good_env: &["1"],
        bad_env: &[("json", "must be true or false")],
    },
    Rule {
        key: "access_log_sample",
        good_file: &["0.0", "0.25", "1.0", "0", "1", r#""0.5""#, "1e-3"],
        bad_file: &[
            ("1.5", "must be in 0.0..=1.0"),
            ("-0.1", "must be in 0.0..=1.0"),
            ("2", "must be in 0.0..=1.0"),
            ("nan", "must be a finite number"),
            ("inf", "must be a finite number"),
            ("true", "found a boolean"),
        ],
        good_env: &["0.25", "1", "0", ".5"],
        bad_env: &[
            ("25%", "must be a number in 0.0..=1.0"),
            ("NaN", "must be a finite number"),
            ("1.01", "must be in 0.0..=1.0"),
            ("", "must be a number in 0.0..=1.0"),
        ],
    },
    Rule {
        key: "ratelimit_ietf_headers",
        good_file: &["true", "false"],
        bad_file: &[(r#""draft-10""#, "must be true or false")],
        good_env: &["no"],
        bad_env: &[("maybe", "must be true or false")],
    },
    Rule {
        key: "rate_limit_policies",
        good_file: &[
            "[]",
            r#"["api=100/60s"]"#,
            r#"["api=100/60s", "login=5/1m/5", "x=5/1m/2"]"#,
            r#""api=100/60s, login=5/1m""#,
        ],
        bad_file: &[
            (r#"["=5/1s"]"#, "policy name must not be empty"),
            (r#"["a=0/1s"]"#, "quota must be an integer in 1..="),
            (r#"["a=5"]"#, "must be name=quota/window"),
            (r#"["a=5/0s"]"#, "window must be greater than 0"),
            (r#"["a=5/1s", "a=10/1m"]"#, "policy name `a` is given twice"),
            (
                r#"["a=5/1s", "B=1/1s"]"#,
                "policy 2: policy name `B` must be lowercase",
            ),
            (r#"["a=5/1s/0"]"#, "burst must be an integer in 1..="),
            (r#"["a=5/25h"]"#, "window must be at most 24h"),
            ("5", "found an integer"),
        ],
        good_env: &["", "api=100/60s", "api=100/60s,login=5/1m/5"],
        bad_env: &[
            ("api=100/60s,api=1/1s", "policy name `api` is given twice"),
            (
                "api=100/1 week",
                "window `1 week`: unknown duration unit `week`",
            ),
        ],
    },
    // Naming a policy that does not exist is checked in `rate_limit_default_names_a_policy`.
    Rule {
        key: "rate_limit_default",
        good_file: &[r#""""#, r#"" ""#],
        bad_file: &[
            (
                r#""API""#,
                "must be \"\" or a policy name: policy name `API` must be lowercase",
            ),
            ("1", "must be a string, found an integer"),
        ],
        good_env: &[""],
        bad_env: &[("api login", "must be \"\" or a policy name")],
    },
    // "postgres" without `database_url` is checked in `postgres_rate_limit_store_needs_a_database`.
    Rule {
        key: "rate_limit_store",
        good_file: &[r#""local""#],
        bad_file: &[
            (r#""redis""#, r#"must be one of "local", "postgres""#),
            ("true", "found a boolean"),
        ],
        good_env: &["LOCAL"],
        bad_env: &[("memory", "must be one of")],
    },
    Rule {
        key: "rate_limit_max_keys",
        good_file: &["1", "100000", "100000000"],
        bad_file: &[
            ("0", "must be an integer in 1..=100000000"),
            ("100000001", "must be an integer in 1..=100000000"),
        ],
        good_env: &["5000"],
        bad_env: &[("1e6", "must be an integer in 1..=100000000")],
    },
    Rule {
        key: "rate_limit_ipv6_prefix",
        good_file: &["1", "64", "128"],
        bad_file: &[
            ("0", "must be an integer in 1..=128"),
            ("129", "must be an integer in 1..=128"),
            (r#""/64""#, "must be an integer in 1..=128"),
        ],
        good_env: &["56"],
        bad_env: &[("/64", "must be an integer in 1..=128")],
    },
    Rule {
        key: "telemetry_enabled",
        good_file: &["true", "false"],
        bad_file: &[(r#""prometheus""#, "must be true or false")],
        good_env: &["0"],
        bad_env: &[("", "must be true or false")],
    },
    Rule {
        key: "telemetry_drain_interval",
        good_file: &["1", r#""100ms""#, r#""1m""#],
        bad_file: &[
            ("0", "must be greater than 0"),
            (r#""25h""#, "must be at most 24h"),
        ],
        good_env: &["250ms"],
        bad_env: &[
            ("0ms", "must be greater than 0"),
            ("fast", "must start with a whole number"),
        ],
    },
    Rule {
        key: "telemetry_sample_ratio",
        good_file: &["0.01", "0", "1.0", "1e-4"],
        bad_file: &[
            ("-1", "must be in 0.0..=1.0"),
            ("+inf", "must be a finite number"),
            (r#""1%""#, "must be a number in 0.0..=1.0"),
        ],
        good_env: &["0.001", "1.0"],
        bad_env: &[
            ("10", "must be in 0.0..=1.0"),
            ("inf", "must be a finite number"),
        ],
    },
    Rule {
        // Only requirements the running release meets: the others are not invalid values but
        // mismatches (`require_version_refuses_other_releases`).
        key: "require_version",
        good_file: &[r#""""#, r#"">=0.1""#, r#""*""#, r#""<1000""#],
        bad_file: &[
            (r#""latest""#, r#"must be a version requirement such as ">=0.2""#),
            (r#""0.1 || 0.2""#, "must be a version requirement"),
            ("1", "found an integer"),
        ],
        good_env: &["", ">=0.0.1, <1000"],
        bad_env: &[(">=", "must be a version requirement")],
    },
];

#[test]
fn every_rule_names_the_key() {
    for rule in RULES {
        let env_var = format!("PINION_{}", rule.key.to_ascii_uppercase());
        for value in rule.good_file {
            let (_file, result) = load_file(&format!("{} = {value}\n", rule.key));
            if let Err(e) = result {
                panic!("{} = {value} should load: {e}", rule.key);
            }
        }
        for (value, reason) in rule.bad_file {
            // Line 2, after a comment, to check the line is reported.
            let (file, result) = load_file(&format!("# pinion\n{} = {value}\n", rule.key));
            let err = result.expect_err(&format!("{} = {value} should fail", rule.key));
            let message = err.to_string();
            assert!(err.is_invalid_value(), "{message}");
            assert_eq!(err.key(), Some(rule.key), "{message}");
            assert_eq!(err.path(), Some(file.path()), "{message}");
            assert_eq!(err.line(), Some(2), "{message}");
            let prefix = format!(
                "invalid value for `{}` in {} (line 2): ",
                rule.key,
                file.path().display()
            );
            assert!(message.starts_with(&prefix), "{message}");
            assert!(message.contains(reason), "{message} lacks {reason:?}");
        }
        for value in rule.good_env {
            if let Err(e) = load_env(&[(&env_var, value)]) {
                panic!("{env_var}={value} should load: {e}");
            }
        }
        for (value, reason) in rule.bad_env {
            let err = load_env(&[(&env_var, value)]).expect_err(&format!("{env_var}={value}"));
            let message = err.to_string();
            assert!(err.is_invalid_value(), "{message}");
            assert_eq!(err.key(), Some(rule.key), "{message}");
            assert_eq!(err.env_var(), Some(env_var.as_str()), "{message}");
            // A secret that is not a URL is shown masked whole.
            let shown = match SECRET_KEYS.contains(&rule.key) && !value.contains("://") {
                true => "****",
                false => value,
            };
            let expected = format!(
                "invalid value for `{}` in environment variable {env_var}: {shown:?}: ",
                rule.key
            );
            assert!(message.starts_with(&expected), "{message}");
            assert!(message.contains(reason), "{message} lacks {reason:?}");
        }
    }
}

#[test]
fn every_key_has_rules() {
    let rendered = Settings::default().render_masked();
    for line in rendered.lines().filter(|l| !l.starts_with('#')) {
        let key = line.split(" = ").next().unwrap_or_default();
        assert!(
            RULES.iter().any(|r| r.key == key),
            "no validation cases for `{key}`"
        );
    }
}

#[test]
fn invalid_value_message_is_complete() {
    let (file, result) = load_file("bind = \"::\"\nport = 80800\n");
    let err = result.expect_err("port out of range");
    assert_eq!(
        err.to_string(),
        format!(
            "invalid value for `port` in {} (line 2): 80800: must be an integer in 0..=65535",
            file.path().display()
        )
    );
}

#[test]
fn unknown_key_in_file_suggests_the_closest() {
    let (file, result) = load_file("port = 1\n\nprot = 2\n");
    let err = result.expect_err("unknown key");
    assert!(err.is_unknown_key());
    assert_eq!(err.key(), Some("prot"));
    assert_eq!(err.line(), Some(3));
    assert_eq!(
        err.to_string(),
        format!(
            "unknown key `prot` in {} (line 3); did you mean `port`?",
            file.path().display()
        )
    );

    let (_file, result) = load_file("max-body-size = \"1MiB\"\n");
    let err = result.expect_err("dashes");
    assert!(
        err.to_string().ends_with("did you mean `max_body_size`?"),
        "{err}"
    );
}

#[test]
fn unknown_key_without_a_close_match_lists_the_keys() {
    let (_file, result) = load_file("session_token = \"hunter2\"\n");
    let err = result.expect_err("unknown key");
    assert!(err.is_unknown_key());
    assert_eq!(err.key(), Some("session_token"));
    let message = err.to_string();
    assert!(
        message.contains("; known keys are `bind`, `port`, "),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn tables_are_unknown_keys_with_a_hint() {
    let (_file, result) = load_file("[server]\nport = 8080\n");
    let err = result.expect_err("table");
    assert!(err.is_unknown_key());
    assert_eq!(err.key(), Some("server"));
    assert!(err.to_string().contains("no tables"), "{err}");
}

#[test]
fn first_error_in_file_order() {
    let (_file, result) = load_file("zzz = 1\nport = -1\n");
    assert_eq!(result.expect_err("errors").key(), Some("zzz"));
}

#[test]
fn unknown_pinion_variable() {
    let err = load_env(&[("PINION_PROT", "80")]).expect_err("unknown variable");
    assert!(err.is_unknown_key());
    assert_eq!(err.key(), Some("PINION_PROT"));
    assert_eq!(err.env_var(), Some("PINION_PROT"));
    assert_eq!(
        err.to_string(),
        "unknown environment variable PINION_PROT; did you mean PINION_PORT?"
    );

    let err = load_env(&[("PINION_SESSION_SECRET", "x")]).expect_err("unknown variable");
    assert!(
        err.to_string()
            .starts_with("unknown environment variable PINION_SESSION_SECRET; known keys are PINION_BIND, PINION_PORT,"),
        "{err}"
    );

    let err = load_env(&[("PINION_DATABASE_URI", "postgres://u:secret@h/db")])
        .expect_err("misspelt variable");
    assert_eq!(
        err.to_string(),
        "unknown environment variable PINION_DATABASE_URI; did you mean PINION_DATABASE_URL?"
    );
}

#[test]
fn reserved_pinion_variables_are_not_settings() {
    load_env(&[("PINION_CONFIG", "/etc/pinion.toml")]).expect("PINION_CONFIG is reserved");
    let source = Source::new()
        .with_env([("PINION_LOG_FILTER", "pinion=debug")])
        .with_reserved_env("PINION_LOG_FILTER");
    Settings::load(&source).expect("reserved by the binary");
}

#[test]
fn invalid_toml_reports_line_and_column() {
    let (file, result) = load_file("port = 8080\nbind = \"0.0.0.0\n");
    let err = result.expect_err("unterminated string");
    assert!(err.is_parse());
    assert_eq!(err.line(), Some(2));
    assert_eq!(err.path(), Some(file.path()));
    let message = err.to_string();
    let prefix = format!(
        "invalid TOML in {} at line 2, column ",
        file.path().display()
    );
    assert!(message.starts_with(&prefix), "{message}");
    assert!(!message.contains('\n'), "{message}");

    let (_file, result) = load_file("port = 1\nport = 2\n");
    let err = result.expect_err("duplicate key");
    assert!(err.is_parse());
    assert_eq!(err.line(), Some(2), "{err}");
}

#[test]
fn missing_file_names_the_path() {
    let path = std::env::temp_dir().join(format!(
        "pinion-config-test-{}-missing.toml",
        std::process::id()
    ));
    let err = Settings::load(&Source::new().with_file(&path)).expect_err("missing file");
    assert!(err.is_io());
    assert_eq!(err.path(), Some(path.as_path()));
    assert_eq!(err.key(), None);
    assert!(
        err.to_string().starts_with(&format!(
            "cannot read configuration file {}: ",
            path.display()
        )),
        "{err}"
    );
}

#[test]
fn render_masked_round_trips() {
    let custom = Settings {
        bind: "::1".parse().expect("ip"),
        port: 0,
        threads: Some(7),
        io_driver: IoDriver::Epoll,
        io_batch_wait: Duration::from_micros(250),
        backlog: 100,
        max_connections_per_thread: 3,
        max_head_size: 1500,
        max_headers: 1024,
        max_uri_length: 16,
        max_body_size: u64::MAX,
        max_drain_size: 1_000_000,
        header_read_timeout: Duration::from_millis(1500),
        body_read_timeout: Duration::from_secs(61),
        write_timeout: Duration::from_millis(2500),
        sse_keepalive: Duration::from_millis(750),
        keepalive_timeout: Duration::from_secs(7200),
        drain_timeout: Duration::from_secs(1),
        drain_grace: Duration::from_millis(250),
        handoff_socket: Some(std::path::PathBuf::from("/run/pinion/handoff.sock")),
        server_name: "it's \"quoted\" \\ here".to_string(),
        log_level: LogLevel::Trace,
        log_format: LogFormat::Json,
        // Without passwords: those are masked, so they cannot round-trip.
        database_url: Some(parse_url("postgres://app@h1:5432,h2/app?sslmode=require")),
        database_replica_urls: vec![
            parse_url("postgres://r1/app"),
            parse_url("postgresql:///app?host=/run/postgresql"),
        ],
        databases: load_env(&[("PINION_DATABASES", "analytics=postgres://a1/app")])
            .expect("valid databases")
            .databases,
        pool_size: Some(10_000),
        instances: 16,
        db_connect_timeout: Duration::from_millis(250),
        db_query_timeout: Duration::from_secs(86_400),
        db_keepalive: Duration::from_secs(1),
        db_user_timeout: Duration::from_secs(90),
        replica_check_interval: Duration::from_millis(100),
        sticky_window: Duration::ZERO,
        migrate_on_start: false,
        migrations_dir: PathBuf::from("/srv/pinion/migrations \"v2\""),
        static_dir: PathBuf::from("/srv/pinion/static"),
        cache_ttl: Duration::from_millis(90_500),
        cache_max_entries: 1234,
        query_cache: false,
        events_retention: Duration::from_secs(7200),
        events_retention_rows: 500,
        events_subscriber_queue: 8,
        jobs_threads: 0,
        jobs_queues: vec![
            pinion_config::JobQueue {
                name: "default".to_string(),
                concurrency: 50,
            },
            pinion_config::JobQueue {
                name: "mail".to_string(),
                concurrency: 2,
            },
        ],
        jobs_lease: Duration::from_secs(5),
        jobs_poll_interval: Duration::from_millis(250),
        jobs_retry_base: Duration::from_millis(100),
        security_headers: false,
        hsts: true,
        content_security_policy: None,
        cors_allowed_origins: vec![
            "https://example.com".to_string(),
            "http://[::1]:8080".to_string(),
        ],
        cors_allow_credentials: true,
        cors_max_age: Duration::ZERO,
        trusted_proxies: vec![cidr("10.0.0.0/8"), cidr("fd00::/8"), cidr("192.0.2.7")],
        // Secret: masked, so they cannot round-trip (`secret_keys_are_masked` checks them).
        secret_key: None,
        secret_key_fallbacks: Vec::new(),
        environment: pinion_config::Environment::Development,
        session_idle_timeout: Duration::from_secs(60),
        session_absolute_timeout: Duration::from_secs(7200),
        request_id: false,
        server_timing: false,
        access_log: true,
        access_log_sample: Ratio::new(1.0 / 3.0).expect("ratio"),
        ratelimit_ietf_headers: false,
        rate_limit_policies: vec![
            RatePolicy {
                name: "api".to_string(),
                quota: 100,
                window: Duration::from_secs(60),
                burst: 100,
            },
            RatePolicy {
                name: "login-2".to_string(),
                quota: 5,
                window: Duration::from_millis(1500),
                burst: 2,
            },
        ],
        rate_limit_default: Some("login-2".to_string()),
        rate_limit_store: RateLimitStore::Postgres,
        rate_limit_max_keys: 1,
        rate_limit_ipv6_prefix: 48,
        telemetry_enabled: false,
        telemetry_drain_interval: Duration::from_millis(100),
        telemetry_sample_ratio: Ratio::new(1e-7).expect("ratio"),
        require_version: Some(VersionReq::parse(">=0.1, <1000").expect("requirement")),
    };
    for settings in [Settings::default(), custom] {
        let rendered = settings.render_masked();
        let (_file, result) = load_file(&rendered);
        match result {
            Ok(loaded) => assert_eq!(loaded, settings, "{rendered}"),
            Err(e) => panic!("{e}\n{rendered}"),
        }
    }
}

#[test]
fn readme_table_lists_every_key_with_its_default() {
    let table = include_str!("../../README.md");
    let rendered = Settings::default().render_masked();
    for line in rendered.lines().filter(|l| !l.starts_with('#')) {
        let (key, default) = line.split_once(" = ").expect("key = value");
        let env_var = format!("PINION_{}", key.to_ascii_uppercase());
        let row = table
            .lines()
            .find(|row| row.starts_with(&format!("| `{key}` |")))
            .unwrap_or_else(|| panic!("README.md has no row for `{key}`"));
        assert!(row.contains(&format!("`{env_var}`")), "{row}");
        assert!(
            row.contains(&format!("`{default}`")),
            "row for `{key}` should show the default `{default}`: {row}"
        );
    }
}

#[test]
fn mask_url_password_is_public() {
    assert_eq!(
        mask_url_password("postgres://u:secret@h/db"),
        "postgres://u:****@h/db"
    );
    assert_eq!(mask_url_password("postgres://u@h/db"), "postgres://u@h/db");
}

#[test]
fn process_environment_source_loads() {
    // The test runner's environment has no PINION_* variables of ours; this checks the
    // conversion compiles and runs, without mutating the process environment.
    let source = Source::from_process_env();
    assert_eq!(source.file(), None);
    let has_pinion_vars = std::env::vars_os().any(|(k, _)| {
        let k = k.to_string_lossy();
        k.starts_with("PINION_")
            || [
                "PORT",
                "WEB_CONCURRENCY",
                "DATABASE_URL",
                "DATABASE_REPLICA_URLS",
            ]
            .contains(&k.as_ref())
    });
    if !has_pinion_vars {
        assert_eq!(Settings::load(&source).expect("load"), Settings::default());
    }
}

/// A URL known to be valid, loaded through the public API.
fn parse_url(url: &str) -> DatabaseUrl {
    let settings = load_env(&[("PINION_DATABASE_URL", url)]).expect("valid URL");
    settings.database_url.expect("a URL")
}

#[test]
fn database_defaults() {
    let s = Settings::load(&Source::new()).expect("defaults");
    assert_eq!(s.database_url, None);
    assert!(s.database_replica_urls.is_empty());
    assert_eq!(s.pool_size, None);
    assert_eq!(s.db_connect_timeout, Duration::from_secs(5));
    assert_eq!(s.db_query_timeout, Duration::from_secs(30));
    assert_eq!(s.db_keepalive, Duration::from_secs(30));
    assert_eq!(s.db_user_timeout, Duration::from_secs(10));
    assert_eq!(s.replica_check_interval, Duration::from_secs(1));
    assert_eq!(s.sticky_window, Duration::from_secs(5));
    assert!(s.migrate_on_start);
    assert_eq!(s.migrations_dir, PathBuf::from("migrations"));
    assert_eq!(s.static_dir, PathBuf::from("static"));
}

#[test]
fn database_url_conventions() {
    let primary = "postgres://app:pw@db1/app";
    let replicas = "postgres://app:pw@db2/app , postgres://app:pw@db3/app";

    let s = load_env(&[
        ("DATABASE_URL", primary),
        ("DATABASE_REPLICA_URLS", replicas),
    ])
    .expect("load");
    assert_eq!(database_url(&s), Some(primary));
    assert_eq!(
        urls(&s.database_replica_urls),
        ["postgres://app:pw@db2/app", "postgres://app:pw@db3/app"]
    );

    // The PINION_ variables win, and the conventional ones they override are not checked.
    let s = load_env(&[
        ("DATABASE_URL", "mysql://app:pw@old/app"),
        ("PINION_DATABASE_URL", "postgres://app:pw@new/app"),
        ("DATABASE_REPLICA_URLS", replicas),
        ("PINION_DATABASE_REPLICA_URLS", ""),
    ])
    .expect("load");
    assert_eq!(database_url(&s), Some("postgres://app:pw@new/app"));
    assert!(s.database_replica_urls.is_empty());

    // They override the file: they are environment. An empty value means none.
    let file = TempFile::new(&format!(
        "database_url = \"{primary}\"\ndatabase_replica_urls = [\"{primary}\"]\n"
    ));
    let source = Source::new()
        .with_file(file.path())
        .with_env([("DATABASE_URL", ""), ("DATABASE_REPLICA_URLS", " ")]);
    let s = Settings::load(&source).expect("load");
    assert_eq!(s.database_url, None);
    assert!(s.database_replica_urls.is_empty());

    let source = Source::new()
        .with_file(file.path())
        .with_env([("DATABASE_URL", "postgres://other/app")]);
    let s = Settings::load(&source).expect("load");
    assert_eq!(database_url(&s), Some("postgres://other/app"));
    assert_eq!(urls(&s.database_replica_urls), [primary]);
}

#[test]
fn replica_list_in_the_environment() {
    let s = load_env(&[(
        "PINION_DATABASE_REPLICA_URLS",
        " postgres://r1/db,postgresql://u:p,w@r2:5433/db ,, postgres://u@r3a,r3b/db?sslmode=require, ",
    )])
    .expect("load");
    assert_eq!(
        urls(&s.database_replica_urls),
        [
            "postgres://r1/db",
            "postgresql://u:p,w@r2:5433/db",
            "postgres://u@r3a,r3b/db?sslmode=require"
        ]
    );
    for empty in ["", " ", ",", " , "] {
        let s = load_env(&[("PINION_DATABASE_REPLICA_URLS", empty)]).expect("load");
        assert!(s.database_replica_urls.is_empty(), "{empty:?}");
    }
}

#[test]
fn database_urls_never_print_passwords() {
    // Environment, conventional and PINION_.
    for var in ["DATABASE_URL", "PINION_DATABASE_URL"] {
        let err = load_env(&[(var, "mysql://app:hunter2@h/db")]).expect_err("mysql");
        assert!(err.is_invalid_value());
        assert_eq!(err.key(), Some("database_url"));
        assert_eq!(err.env_var(), Some(var));
        assert_eq!(
            err.to_string(),
            format!(
                "invalid value for `database_url` in environment variable {var}: \
                 \"mysql://app:****@h/db\": must be a URL starting with postgres:// or postgresql://"
            )
        );
        assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
    }
    let err = load_env(&[(
        "DATABASE_REPLICA_URLS",
        "postgres://u:hunter2@r1/db,mysql://u:hunter3@r2/db",
    )])
    .expect_err("mysql replica");
    assert_eq!(err.key(), Some("database_replica_urls"));
    let message = err.to_string();
    assert!(
        message.contains("\"postgres://u:****@r1/db, mysql://u:****@r2/db\": URL 2: must be a URL"),
        "{message}"
    );

    // Whatever the mistake, the password is not shown.
    let bad = [
        "postgres://u:hunter2@h:port/db",
        "postgres://u:hun/ter2@h/db",
        "postgres://u:hunter2%@h/db",
        "postgres://u:hunter 2@h/db",
        "postgres://u:hunter2@/db",
        "u:hunter2@h/db",
        "host=h password=hunter2",
        // tokio-postgres decodes parameter names: this is the password too.
        "postgres://app@127.0.0.1:1/db?pass%77ord=hunter2&bad=%zz",
        "postgres://app@127.0.0.1:port/db?pass%77ord=hunter2",
    ];
    for url in bad {
        let quoted = format!("{url:?}");
        let results = [
            load_env(&[("PINION_DATABASE_URL", url)]),
            load_env(&[("PINION_DATABASE_REPLICA_URLS", url)]),
            load_file(&format!("database_url = {quoted}\n")).1,
            load_file(&format!(
                "database_replica_urls = [\"postgres://r/db\", {quoted}]\n"
            ))
            .1,
        ];
        for result in results {
            match result {
                Ok(s) => panic!("{url} should be refused: {s:?}"),
                Err(err) => {
                    let shown = format!("{err} {err:?}");
                    assert!(
                        !shown.contains("hunter") && !shown.contains("ter2"),
                        "{shown}"
                    );
                }
            }
        }
    }
}

#[test]
fn render_masked_and_debug_hide_passwords() {
    let (_file, result) = load_file(
        "database_url = \"postgres://u:hunter2@h/db\"\n\
         database_replica_urls = [\"postgres://u:hunter3@r/db\", \"postgres://r2/db?password=hunter4\"]\n",
    );
    let s = result.expect("load");
    let rendered = s.render_masked();
    assert!(
        rendered.contains("database_url = \"postgres://u:****@h/db\"\n"),
        "{rendered}"
    );
    assert!(
        rendered.contains(
            "database_replica_urls = [\"postgres://u:****@r/db\", \"postgres://r2/db?password=****\"]\n"
        ),
        "{rendered}"
    );
    let debug = format!("{s:?} {s:#?}");
    assert!(debug.contains("postgres://u:****@h/db"), "{debug}");
    for text in [&rendered, &debug] {
        assert!(!text.contains("hunter"), "{text}");
    }
    // The masked file still loads: `pinion check` output is a valid pinion.toml.
    let (_file, result) = load_file(&rendered);
    let reloaded = result.expect("masked output loads");
    assert_eq!(database_url(&reloaded), Some("postgres://u:****@h/db"));
}

#[test]
fn pool_size_through_loading() {
    let load = |vars: &[(&str, &str)]| load_env(vars).expect("load");
    let s = load(&[("PINION_THREADS", "1")]);
    assert_eq!(
        (s.effective_pool_size(), s.pool_size_per_thread()),
        (32, 32)
    );
    let s = load(&[("PINION_THREADS", "24")]);
    assert_eq!((s.effective_pool_size(), s.pool_size_per_thread()), (32, 2));
    let s = load(&[("PINION_THREADS", "4"), ("PINION_POOL_SIZE", "10")]);
    assert_eq!((s.effective_pool_size(), s.pool_size_per_thread()), (10, 3));
    let s = load(&[("WEB_CONCURRENCY", "100"), ("PINION_POOL_SIZE", "auto")]);
    assert_eq!(
        (s.effective_pool_size(), s.pool_size_per_thread()),
        (108, 2)
    );
}

#[test]
fn boolean_forms() {
    for (text, expected) in [
        ("true", true),
        ("True", true),
        ("1", true),
        ("yes", true),
        ("ON", true),
        ("false", false),
        ("0", false),
        ("No", false),
        (" off ", false),
    ] {
        let s = load_env(&[("PINION_MIGRATE_ON_START", text)]).expect(text);
        assert_eq!(s.migrate_on_start, expected, "{text:?}");
    }
    let (_file, result) = load_file("migrate_on_start = false\n");
    assert!(!result.expect("load").migrate_on_start);
}

/// A network known to be valid, loaded through the public API.
fn cidr(text: &str) -> Cidr {
    let settings = load_env(&[("PINION_TRUSTED_PROXIES", text)]).expect("valid network");
    settings.trusted_proxies[0]
}

fn policy(name: &str, quota: u32, window: Duration, burst: u32) -> RatePolicy {
    RatePolicy {
        name: name.to_string(),
        quota,
        window,
        burst,
    }
}

#[test]
fn rate_limit_policies_parse() {
    let (_file, result) = load_file(
        "rate_limit_policies = [\"api=100/60s\", \"x=5/1m/2\", \"login=5/1m/5\", \"fine=3/250ms\"]\n",
    );
    let s = result.expect("load");
    assert_eq!(
        s.rate_limit_policies,
        [
            policy("api", 100, Duration::from_secs(60), 100),
            policy("x", 5, Duration::from_secs(60), 2),
            policy("login", 5, Duration::from_secs(60), 5),
            policy("fine", 3, Duration::from_millis(250), 3),
        ]
    );
    let rendered = s.render_masked();
    assert!(
        rendered.contains(
            "rate_limit_policies = [\"api=100/1m\", \"x=5/1m/2\", \"login=5/1m\", \"fine=3/250ms\"]\n"
        ),
        "{rendered}"
    );

    let s = load_env(&[("PINION_RATE_LIMIT_POLICIES", " api=100/60s , x=5/1m/2 ,")]).expect("load");
    assert_eq!(
        s.rate_limit_policies,
        [
            policy("api", 100, Duration::from_secs(60), 100),
            policy("x", 5, Duration::from_secs(60), 2),
        ]
    );

    for (value, reason) in [
        ("=5/1s", "policy name must not be empty"),
        ("a=0/1s", "quota must be an integer in 1..="),
        ("a=5", "must be name=quota/window"),
        ("a=5/0s", "window must be greater than 0"),
        ("a=5/1s,b=1/1s,a=2/2s", "policy name `a` is given twice"),
    ] {
        let err = load_env(&[("PINION_RATE_LIMIT_POLICIES", value)]).expect_err(value);
        assert!(err.is_invalid_value(), "{err}");
        assert_eq!(err.key(), Some("rate_limit_policies"));
        assert!(err.to_string().contains(reason), "{err} lacks {reason:?}");
    }
}

#[test]
fn production_needs_a_secret_key() {
    let err = load_env(&[("PINION_ENVIRONMENT", "production")]).expect_err("no secret_key");
    assert!(err.is_conflict(), "{err}");
    assert_eq!(err.key(), Some("secret_key"));
    let message = err.to_string();
    assert!(
        message.contains("`secret_key`") && message.contains("PINION_SECRET_KEY"),
        "{message}"
    );
    let ok = load_env(&[
        ("PINION_ENVIRONMENT", "production"),
        ("PINION_SECRET_KEY", "an environment secret of 32 bytes!"),
    ])
    .expect("production with a secret key");
    assert_eq!(ok.environment, pinion_config::Environment::Production);
    assert!(!ok.render_masked().contains("an environment secret"));
}

#[test]
fn session_timeouts_default_to_owasp_and_the_idle_one_fits_in_the_absolute_one() {
    let defaults = load_env(&[]).expect("defaults");
    assert_eq!(defaults.session_idle_timeout, Duration::from_secs(30 * 60));
    assert_eq!(
        defaults.session_absolute_timeout,
        Duration::from_secs(8 * 3600)
    );
    let set = load_env(&[
        ("PINION_SESSION_IDLE_TIMEOUT", "5m"),
        ("PINION_SESSION_ABSOLUTE_TIMEOUT", "1h"),
    ])
    .expect("both set");
    assert_eq!(set.session_idle_timeout, Duration::from_secs(300));
    assert_eq!(set.session_absolute_timeout, Duration::from_secs(3600));
    let err = load_env(&[("PINION_SESSION_IDLE_TIMEOUT", "9h")]).expect_err("idle > absolute");
    assert_eq!(err.key(), Some("session_idle_timeout"));
    assert!(
        err.to_string().contains("session_absolute_timeout"),
        "{err}"
    );
    let err = load_env(&[("PINION_SESSION_ABSOLUTE_TIMEOUT", "0s")]).expect_err("zero");
    assert_eq!(err.key(), Some("session_absolute_timeout"));
}

#[test]
fn the_drain_grace_fits_in_the_drain_timeout() {
    let defaults = load_env(&[]).expect("defaults");
    assert_eq!(defaults.drain_grace, Duration::from_secs(1));
    let err = load_env(&[("PINION_DRAIN_GRACE", "30s")]).expect_err("grace = timeout");
    assert!(err.is_conflict(), "{err}");
    assert_eq!(err.key(), Some("drain_grace"));
    assert!(
        err.to_string()
            .contains("shorter than `drain_timeout` (30s)"),
        "{err}"
    );
    let set =
        load_env(&[("PINION_DRAIN_GRACE", "0"), ("PINION_DRAIN_TIMEOUT", "2s")]).expect("no grace");
    assert_eq!(set.drain_grace, Duration::ZERO);
}

#[test]
fn cors_credentials_exclude_a_wildcard_origin() {
    let err = load_env(&[
        ("PINION_CORS_ALLOWED_ORIGINS", "https://a.example,*"),
        ("PINION_CORS_ALLOW_CREDENTIALS", "true"),
    ])
    .expect_err("credentials with *");
    assert!(err.is_conflict(), "{err}");
    assert!(!err.is_invalid_value(), "{err}");
    assert_eq!(err.key(), Some("cors_allow_credentials"));
    assert_eq!(err.env_var(), None);
    let message = err.to_string();
    assert!(
        message.starts_with(
            "invalid combination: `cors_allow_credentials` = true: cannot be true while \
             `cors_allowed_origins` contains \"*\": browsers refuse credentials"
        ),
        "{message}"
    );

    // Checked after every layer: the file's wildcard is replaced by the environment's list.
    let file = TempFile::new("cors_allowed_origins = [\"*\"]\ncors_allow_credentials = true\n");
    let source = Source::new().with_file(file.path());
    let err = Settings::load(&source).expect_err("file alone");
    assert_eq!(err.key(), Some("cors_allow_credentials"));
    let source = source.with_env([("PINION_CORS_ALLOWED_ORIGINS", "https://app.example")]);
    let s = Settings::load(&source).expect("origins listed");
    assert!(s.cors_allow_credentials);
    assert_eq!(s.cors_allowed_origins, ["https://app.example"]);

    // A wildcard without credentials is fine.
    let s = load_env(&[("PINION_CORS_ALLOWED_ORIGINS", "*")]).expect("wildcard");
    assert_eq!(s.cors_allowed_origins, ["*"]);
}

#[test]
fn cors_origins_are_normalized() {
    let s = load_env(&[(
        "PINION_CORS_ALLOWED_ORIGINS",
        "HTTPS://App.Example:443, http://localhost:3000, http://[0::1]:80",
    )])
    .expect("load");
    assert_eq!(
        s.cors_allowed_origins,
        [
            "https://app.example",
            "http://localhost:3000",
            "http://[::1]"
        ]
    );
}

#[test]
fn rate_limit_default_names_a_policy() {
    let err = load_env(&[("PINION_RATE_LIMIT_DEFAULT", "api")]).expect_err("no policies");
    assert!(err.is_conflict(), "{err}");
    assert_eq!(err.key(), Some("rate_limit_default"));
    assert_eq!(
        err.to_string(),
        "invalid combination: `rate_limit_default` = \"api\": names no policy in \
         `rate_limit_policies` (it is empty)"
    );

    let err = load_env(&[
        ("PINION_RATE_LIMIT_POLICIES", "api=100/60s,login=5/1m"),
        ("PINION_RATE_LIMIT_DEFAULT", "web"),
    ])
    .expect_err("unknown policy");
    assert_eq!(err.key(), Some("rate_limit_default"));
    assert!(
        err.to_string().ends_with("(it has `api`, `login`)"),
        "{err}"
    );

    let (_file, result) =
        load_file("rate_limit_policies = [\"api=100/60s\"]\nrate_limit_default = \"api\"\n");
    let s = result.expect("load");
    assert_eq!(s.rate_limit_default.as_deref(), Some("api"));
    let s = load_env(&[("PINION_RATE_LIMIT_DEFAULT", " ")]).expect("none");
    assert_eq!(s.rate_limit_default, None);
}

#[test]
fn postgres_rate_limit_store_needs_a_database() {
    let err = load_env(&[("PINION_RATE_LIMIT_STORE", "postgres")]).expect_err("no database");
    assert!(err.is_conflict(), "{err}");
    assert_eq!(err.key(), Some("rate_limit_store"));
    assert!(
        err.to_string().starts_with(
            "invalid combination: `rate_limit_store` = \"postgres\": \"postgres\" keeps the \
             state in the primary database, but `database_url` is empty"
        ),
        "{err}"
    );
    let s = load_env(&[
        ("PINION_RATE_LIMIT_STORE", "Postgres"),
        ("DATABASE_URL", "postgres://app@db/app"),
    ])
    .expect("with a database");
    assert_eq!(s.rate_limit_store, RateLimitStore::Postgres);
}

#[test]
fn trusted_proxies_match_peers() {
    let s = load_env(&[("PINION_TRUSTED_PROXIES", "10.0.0.0/8, ::1")]).expect("load");
    let trusted = |ip: &str| {
        let ip: IpAddr = ip.parse().expect("ip");
        s.trusted_proxies.iter().any(|net| net.contains(ip))
    };
    assert!(trusted("10.1.2.3"));
    assert!(trusted("::ffff:10.1.2.3"));
    assert!(trusted("::1"));
    assert!(!trusted("127.0.0.1"));
    assert!(!trusted("192.168.0.1"));
    assert_eq!(s.trusted_proxies[1].prefix(), 128);

    let defaults = Settings::default();
    let loopback = |ip: &str| {
        let ip: IpAddr = ip.parse().expect("ip");
        defaults.trusted_proxies.iter().any(|net| net.contains(ip))
    };
    assert!(loopback("127.0.0.1") && loopback("::1") && !loopback("127.0.0.2"));
}

#[test]
fn ratios_through_loading() {
    let (_file, result) = load_file("access_log_sample = 0.25\ntelemetry_sample_ratio = 0\n");
    let s = result.expect("load");
    assert_eq!(s.access_log_sample.get(), 0.25);
    assert_eq!(s.telemetry_sample_ratio, Ratio::ZERO);
    let s = load_env(&[("PINION_ACCESS_LOG_SAMPLE", "0.25")]).expect("load");
    assert_eq!(s.access_log_sample.get(), 0.25);
    let rendered = Settings::default().render_masked();
    assert!(rendered.contains("access_log_sample = 1.0\n"), "{rendered}");
    assert!(
        rendered.contains("telemetry_sample_ratio = 0.01\n"),
        "{rendered}"
    );
}

#[test]
fn secret_keys_load_from_file_and_environment_and_are_masked() {
    const KEY: &str = "k3y-0123456789abcdef0123456789abcdef";
    const OLD: &str = "old-0123456789abcdef0123456789abcdef";
    const OLDER: &str = "older-0123456789abcdef0123456789abcdef";
    let (_file, result) = load_file(&format!(
        "secret_key = \"{KEY}\"\nsecret_key_fallbacks = [\"{OLD}\", \"{OLDER}\"]\n"
    ));
    let settings = result.expect("valid keys");
    let key = settings.secret_key.as_ref().expect("secret_key set");
    assert_eq!(key.as_bytes(), KEY.as_bytes());
    assert_eq!(settings.secret_key_fallbacks.len(), 2);
    assert_eq!(
        settings.secret_key_fallbacks[1].as_bytes(),
        OLDER.as_bytes()
    );
    let rendered = settings.render_masked();
    assert!(rendered.contains("secret_key = \"****\"\n"), "{rendered}");
    assert!(
        rendered.contains("secret_key_fallbacks = [\"****\", \"****\"]\n"),
        "{rendered}"
    );
    for secret in ["k3y-", "old-", "older-"] {
        assert!(!rendered.contains(secret), "{rendered}");
        assert!(!format!("{settings:?}").contains(secret), "{settings:?}");
    }

    let from_env = load_env(&[
        ("PINION_SECRET_KEY", KEY),
        ("PINION_SECRET_KEY_FALLBACKS", &format!("{OLD},{OLDER}")),
    ])
    .expect("valid keys in the environment");
    assert_eq!(from_env.secret_key, settings.secret_key);
    assert_eq!(from_env.secret_key_fallbacks, settings.secret_key_fallbacks);

    let unset = Settings::default().render_masked();
    assert!(unset.contains("secret_key = \"\"\n"), "{unset}");
    assert!(unset.contains("secret_key_fallbacks = []\n"), "{unset}");
}

#[test]
fn a_short_secret_key_is_refused_and_not_quoted() {
    let err = load_env(&[("PINION_SECRET_KEY", "hunter2hunter2")]).expect_err("short");
    assert!(err.is_invalid_value());
    assert_eq!(err.key(), Some("secret_key"));
    let message = err.to_string();
    assert!(message.contains("at least 32 bytes"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
    assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");

    let (_file, result) = load_file(&format!(
        "secret_key_fallbacks = [\"{}\", \"hunter2\"]\n",
        "x".repeat(40)
    ));
    let err = result.expect_err("short fallback");
    assert_eq!(err.key(), Some("secret_key_fallbacks"));
    let message = err.to_string();
    assert!(
        message.contains("key 2: must be at least 32 bytes"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn require_version_accepts_the_running_release() {
    let exact = format!("={PINION_VERSION}");
    let s = load_env(&[("PINION_REQUIRE_VERSION", &exact)]).expect("the running release");
    assert_eq!(
        s.require_version,
        Some(VersionReq::parse(&exact).expect("requirement"))
    );
    let rendered = s.render_masked();
    assert!(
        rendered.contains(&format!("require_version = \"{exact}\"\n")),
        "{rendered}"
    );
    let (_file, result) = load_file(&format!("require_version = \"{exact}\"\n"));
    assert_eq!(
        result.expect("in the file").require_version,
        s.require_version
    );
}

#[test]
fn require_version_refuses_other_releases() {
    let err = load_env(&[("PINION_REQUIRE_VERSION", ">=1000")]).expect_err("a later release");
    assert!(err.is_version_mismatch(), "{err}");
    assert!(!err.is_invalid_value(), "{err}");
    assert_eq!(err.key(), Some("require_version"));
    assert_eq!(err.env_var(), Some("PINION_REQUIRE_VERSION"));
    assert_eq!(
        err.to_string(),
        format!(
            "require_version (PINION_REQUIRE_VERSION): this is pinion {PINION_VERSION}, the \
             configuration requires >=1000"
        )
    );

    // From the file, which the error names; the environment's requirement wins over it.
    let (file, result) = load_file("require_version = \"<0.0.1\"\n");
    let err = result.expect_err("an earlier release");
    assert!(err.is_version_mismatch(), "{err}");
    assert_eq!(err.path(), Some(file.path()));
    assert!(err.to_string().ends_with("requires <0.0.1"), "{err}");
    let source = Source::new()
        .with_file(file.path())
        .with_env([("PINION_REQUIRE_VERSION", "*")]);
    assert_eq!(
        Settings::load(&source).expect("overridden").require_version,
        Some(VersionReq::STAR)
    );
}

#[test]
fn require_version_is_checked_before_keys_this_release_does_not_know() {
    // A file written for a later release, with a key added since: the version is the news.
    let future = "port = 8080\nkey_from_the_future = true\nrequire_version = \">=1000\"\n";
    let (_file, result) = load_file(future);
    let err = result.expect_err("a later release's file");
    assert!(err.is_version_mismatch(), "{err}");
    // Without the requirement, the same file fails on the key.
    let (_file, result) = load_file("port = 8080\nkey_from_the_future = true\n");
    assert!(result.expect_err("unknown key").is_unknown_key());
    // An unparsable requirement is an invalid value, reported with its line.
    let (_file, result) = load_file("port = 8080\nrequire_version = \"newest\"\n");
    let err = result.expect_err("not a requirement");
    assert!(err.is_invalid_value(), "{err}");
    assert_eq!(err.key(), Some("require_version"));
    assert_eq!(err.line(), Some(2));
}

#[test]
fn instances_default_to_one() {
    assert_eq!(load_env(&[]).expect("defaults").instances, 1);
    let s = load_env(&[("PINION_INSTANCES", "12")]).expect("twelve");
    assert_eq!(s.instances, 12);
    assert!(s.render_masked().contains("instances = 12\n"));
}
