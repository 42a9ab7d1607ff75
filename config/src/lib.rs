//! Typed settings for pinion: `pinion.toml`, overridden by the environment, overridden by the
//! command line, checked before the server starts.
//!
//! The server and the application take a [`Settings`] value; only the binary reads files,
//! environment variables and arguments, and it does so through this crate, once, at start-up:
//!
//! ```no_run
//! use pinion_config::{Overrides, Settings, Source};
//!
//! let source = Source::from_process_env()
//!     .with_file("/etc/pinion/pinion.toml")
//!     .with_overrides(Overrides { port: Some(8081), ..Overrides::default() });
//! let settings = match Settings::load(&source) {
//!     Ok(settings) => settings,
//!     Err(e) => {
//!         eprintln!("pinion: {e}");
//!         std::process::exit(2);
//!     }
//! };
//! println!("{} threads", settings.effective_threads());
//! ```
//!
//! # Precedence
//!
//! Each layer overrides the one before it, key by key:
//!
//! 1. the defaults (the `DEFAULT_*` constants, also [`Settings::default`]);
//! 2. the file, if the binary names one (flat keys at the top level of `pinion.toml`);
//! 3. the environment: `PINION_<KEY>` for every key (`PINION_MAX_BODY_SIZE=20MiB`), and the
//!    platform conventions `PORT`, `WEB_CONCURRENCY`, `DATABASE_URL` and
//!    `DATABASE_REPLICA_URLS`, which the `PINION_*` variable of the same key beats;
//! 4. the command line ([`Overrides`]: `--bind`, `--port`, `--threads`).
//!
//! # `pinion.toml`
//!
//! Every key is optional; this file spells out the defaults. Sizes are bytes, or strings with
//! a unit (`B`, `KB`, `MB`, `GB` in powers of 1000, `KiB`, `MiB`, `GiB` in powers of 1024);
//! durations are seconds, or strings with a unit (`us`, `ms`, `s`, `m`, `h`); ratios are numbers in
//! `0.0..=1.0`. Environment values use
//! the same syntax; a list is comma-separated there, and a boolean may also be `1`/`0`,
//! `yes`/`no` or `on`/`off`.
//!
//! ```toml
//! bind = "0.0.0.0"
//! port = 8080
//! threads = "auto"                  # or 1..=1024; "auto" = one per available core
//! io_driver = "auto"                # "auto" | "io_uring" | "epoll"
//! io_batch_wait = "200us"           # io_uring: most a busy worker waits to gather completions; "0s" = off
//! backlog = 4096
//! max_connections_per_thread = 16384
//! max_head_size = "64KiB"           # 431 beyond
//! max_headers = 100                 # 431 beyond
//! max_uri_length = "8KiB"           # 414 beyond
//! max_body_size = "10MiB"           # 413 beyond
//! max_drain_size = "64KiB"
//! header_read_timeout = "10s"       # 408 beyond
//! body_read_timeout = "30s"
//! keepalive_timeout = "75s"         # longer than nginx's upstream keepalive_timeout
//! drain_timeout = "30s"
//! server_name = "pinion"
//! log_level = "info"                # "error" | "warn" | "info" | "debug" | "trace"
//! log_format = "text"               # "text" | "json"
//! database_url = ""                 # "" = no database; else postgres://user:password@host/db
//! database_replica_urls = []        # read-only streaming replicas, same URL syntax
//! databases = []                    # further databases by name: ["analytics=postgres://…"]
//! pool_size = "auto"                # or 1..=10000; "auto" = max(threads + 8, 32)
//! instances = 1                     # processes sharing the primary, for the max_connections check
//! db_connect_timeout = "5s"
//! db_query_timeout = "30s"
//! db_keepalive = "30s"              # TCP keep-alive idle time
//! db_user_timeout = "10s"           # TCP_USER_TIMEOUT
//! replica_check_interval = "1s"
//! sticky_window = "5s"              # reads stay on the primary after a write; "0s" = off
//! migrate_on_start = true
//! migrations_dir = "migrations"
//! static_dir = "static"            # stylesheets and scripts, served as /static/name.HASH.ext
//! cache_ttl = "5m"
//! cache_max_entries = 20000
//! query_cache = true               # ORM reads through the query cache
//! jobs_threads = 1                  # background-job threads in `serve`; 0 = none
//! jobs_queues = "default:10"        # queue:jobs at once per worker thread
//! jobs_lease = "30s"
//! jobs_poll_interval = "1s"
//! jobs_retry_base = "1s"
//! security_headers = true           # OWASP security headers on every response
//! hsts = false                      # nginx terminates TLS and sends it
//! content_security_policy = "default-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
//! cors_allowed_origins = []         # "*" or "https://host[:port]"; [] = CORS off
//! cors_allow_credentials = false    # not with "*"
//! cors_max_age = "10m"
//! trusted_proxies = ["127.0.0.1/32", "::1/128"]  # whose X-Forwarded-For is believed
//! secret_key = ""                   # signs and encrypts cookies; >= 32 bytes; "" = random per process
//! secret_key_fallbacks = []         # older keys still accepted, for rotation
//! environment = "development"       # or "production": then secret_key is required
//! request_id = true
//! server_timing = false             # exposes per-request timings to every client
//! access_log = false                # nginx usually logs access
//! access_log_sample = 1.0           # share of requests logged, 0.0..=1.0
//! ratelimit_ietf_headers = true     # RateLimit-Policy / RateLimit
//! rate_limit_policies = []          # e.g. ["api=100/60s", "login=5/1m/5"]: name=quota/window[/burst]
//! rate_limit_default = ""           # "" = none; else a policy name
//! rate_limit_store = "local"        # "local" | "postgres" (needs database_url)
//! rate_limit_max_keys = 100000
//! telemetry_enabled = true
//! telemetry_drain_interval = "1s"
//! telemetry_sample_ratio = 0.01
//! require_version = ""              # e.g. ">=0.2": other releases refuse this file
//! ```
//!
//! # Errors
//!
//! An unknown key (in the file, or a `PINION_*` variable) or a bad value stops start-up:
//! a misspelt key silently ignored is how a production server ends up on a default. The
//! [`ConfigError`] names the key, the value, the reason and where it came from:
//!
//! ```text
//! invalid value for `port` in /etc/pinion.toml (line 3): 80800: must be an integer in 0..=65535
//! invalid value for `keepalive_timeout` in environment variable PINION_KEEPALIVE_TIMEOUT: "75 parsecs": unknown duration unit `parsecs`; use us, ms, s, m or h
//! unknown key `prot` in /etc/pinion.toml (line 2); did you mean `port`?
//! ```
//!
//! Some keys constrain others (`cors_allow_credentials` with a `"*"` origin,
//! `rate_limit_default` and `rate_limit_policies`, `rate_limit_store = "postgres"` and
//! `database_url`); those rules are checked once every layer is applied, and the error names
//! the key and the reason ([`ConfigError::is_conflict`]).
//!
//! A `require_version` that the running release ([`PINION_VERSION`]) does not satisfy is
//! refused before anything else in the configuration is read, so that an older pinion given a
//! newer file says so rather than stumbling on a key it does not know
//! ([`ConfigError::is_version_mismatch`]).
//!
//! `pinion check` prints [`Settings::render_masked`]: the effective configuration as a
//! `pinion.toml`, secrets masked. The database URLs and the secret keys are secrets ([`SECRET_KEYS`]): error
//! messages, `render_masked` and `Debug` show them with the password replaced by `****`.
//!
//! # Layout
//!
//! - `settings`: [`Settings`], its mode enums and the `DEFAULT_*` constants;
//! - `source`: [`Source`], [`Overrides`] and [`Settings::load`]: layering file, environment
//!   and command line;
//! - `key`: the table of keys: names, environment variables, rules, rendering;
//! - `value`: the shared value syntaxes (integers, sizes, durations, ratios, booleans,
//!   addresses, lists);
//! - `database_url`: [`DatabaseUrl`], a checked PostgreSQL URL that prints masked;
//! - `cidr`: [`Cidr`], an IP network, for `trusted_proxies`;
//! - `rate_policy`: [`RatePolicy`], a named rate limit, for `rate_limit_policies`;
//! - `ratio`: [`Ratio`], a share in `0.0..=1.0`, for the sampling settings;
//! - `secret`: masking secrets for output;
//! - `error`: [`ConfigError`].

mod cidr;
mod database_url;
mod error;
mod job_queue;
mod key;
mod named_database;
mod rate_policy;
mod ratio;
mod secret;
mod secret_key;
mod settings;
mod source;
mod value;
mod version;

pub use cidr::Cidr;
pub use database_url::DatabaseUrl;
pub use error::ConfigError;
pub use job_queue::{JobQueue, DEFAULT_QUEUE_CONCURRENCY};
pub use named_database::NamedDatabase;
pub use rate_policy::RatePolicy;
pub use ratio::Ratio;
pub use secret::{mask_url_password, SECRET_KEYS};
pub use secret_key::{SecretKey, MIN_SECRET_KEY_LEN};
/// Re-exported: [`Settings::require_version`] is one, and callers that build settings in code
/// need not depend on the same semver release themselves.
pub use semver::VersionReq;
pub use settings::{
    Environment, IoDriver, LogFormat, LogLevel, RateLimitStore, Settings, AUTO_POOL_SIZE_HEADROOM,
    AUTO_POOL_SIZE_MIN, DEFAULT_ACCESS_LOG, DEFAULT_ACCESS_LOG_SAMPLE, DEFAULT_BACKLOG,
    DEFAULT_BIND, DEFAULT_BODY_READ_TIMEOUT, DEFAULT_CACHE_MAX_ENTRIES, DEFAULT_CACHE_TTL,
    DEFAULT_CONTENT_SECURITY_POLICY, DEFAULT_CORS_ALLOW_CREDENTIALS, DEFAULT_CORS_MAX_AGE,
    DEFAULT_DATABASE_URL, DEFAULT_DB_CONNECT_TIMEOUT, DEFAULT_DB_KEEPALIVE,
    DEFAULT_DB_QUERY_TIMEOUT, DEFAULT_DB_USER_TIMEOUT, DEFAULT_DRAIN_GRACE, DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_ENVIRONMENT, DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_HSTS, DEFAULT_IO_BATCH_WAIT,
    DEFAULT_IO_DRIVER, DEFAULT_KEEPALIVE_TIMEOUT, DEFAULT_LOG_FORMAT, DEFAULT_LOG_LEVEL,
    DEFAULT_MAX_BODY_SIZE, DEFAULT_MAX_CONNECTIONS_PER_THREAD, DEFAULT_MAX_DRAIN_SIZE,
    DEFAULT_MAX_HEADERS, DEFAULT_MAX_HEAD_SIZE, DEFAULT_MAX_URI_LENGTH, DEFAULT_MIGRATE_ON_START,
    DEFAULT_MIGRATIONS_DIR, DEFAULT_POOL_SIZE, DEFAULT_PORT, DEFAULT_QUERY_CACHE,
    DEFAULT_RATELIMIT_IETF_HEADERS, DEFAULT_RATE_LIMIT_DEFAULT, DEFAULT_RATE_LIMIT_IPV6_PREFIX,
    DEFAULT_RATE_LIMIT_MAX_KEYS, DEFAULT_RATE_LIMIT_STORE, DEFAULT_REPLICA_CHECK_INTERVAL,
    DEFAULT_REQUEST_ID, DEFAULT_SECURITY_HEADERS, DEFAULT_SERVER_NAME, DEFAULT_SERVER_TIMING,
    DEFAULT_SESSION_ABSOLUTE_TIMEOUT, DEFAULT_SESSION_IDLE_TIMEOUT, DEFAULT_SSE_KEEPALIVE,
    DEFAULT_STATIC_DIR, DEFAULT_STICKY_WINDOW, DEFAULT_TELEMETRY_DRAIN_INTERVAL,
    DEFAULT_TELEMETRY_ENABLED, DEFAULT_TELEMETRY_SAMPLE_RATIO, DEFAULT_THREADS,
    DEFAULT_TRUSTED_PROXIES, DEFAULT_WRITE_TIMEOUT, MAX_POOL_SIZE, MAX_THREADS,
};
pub use settings::{
    DEFAULT_EVENTS_RETENTION, DEFAULT_EVENTS_RETENTION_ROWS, DEFAULT_EVENTS_SUBSCRIBER_QUEUE,
};
pub use settings::{DEFAULT_INSTANCES, DEFAULT_REQUIRE_VERSION, MAX_INSTANCES};
pub use settings::{
    DEFAULT_JOBS_LEASE, DEFAULT_JOBS_POLL_INTERVAL, DEFAULT_JOBS_RETRY_BASE, DEFAULT_JOBS_THREADS,
};
pub use source::{Overrides, Source, RESERVED_ENV_VARS};
pub use version::PINION_VERSION;
