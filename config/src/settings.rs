//! [`Settings`], the modes it selects between, and the `DEFAULT_*` values.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use crate::cidr::Cidr;
use crate::database_url::DatabaseUrl;
use crate::key::{Key, Rendered};
use crate::named_database::NamedDatabase;
use crate::rate_policy::RatePolicy;
use crate::ratio::Ratio;
use crate::secret::{is_secret, mask_value};
use crate::secret_key::SecretKey;
use crate::value::render_string;
use semver::VersionReq;

/// Default for [`Settings::bind`]: all IPv4 interfaces, so that nginx (or a container
/// runtime's port mapping) on another address can reach the server. Bind `127.0.0.1` when
/// nginx runs on the same host. Default is `0.0.0.0`.
pub const DEFAULT_BIND: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

/// Default for [`Settings::port`]: the conventional unprivileged port of an application server
/// behind a proxy. Default is `8080`.
pub const DEFAULT_PORT: u16 = 8080;

/// Default for [`Settings::threads`]: absent, meaning one worker thread per core the process
/// may run on (see [`Settings::effective_threads`]); thread-per-core is the design. Default is
/// `None`.
pub const DEFAULT_THREADS: Option<usize> = None;

/// The largest accepted [`Settings::threads`]: far above any core count we run on, low enough
/// to catch a typo (`threads = 80000`) before it spawns thousands of runtimes. Default is
/// `1024`.
pub const MAX_THREADS: usize = 1024;

/// Default for [`Settings::io_driver`]: io_uring where the kernel allows it, epoll otherwise.
/// Default is [`IoDriver::Auto`].
pub const DEFAULT_IO_DRIVER: IoDriver = IoDriver::Auto;

/// Default for [`Settings::io_batch_wait`]: the cap of the wait, which is a sixteenth of the
/// typical request's duration and none for requests under about 0.8 ms; 200 µs is reached
/// by requests of 3.2 ms and more (hundreds of connections waiting on the database), where
/// it halves the wake-ups. Default is 200 µs.
pub const DEFAULT_IO_BATCH_WAIT: Duration = Duration::from_micros(200);

/// Default for [`Settings::backlog`]: Linux's default `net.core.somaxconn` since 5.4; the
/// kernel clamps a larger backlog to `somaxconn` anyway. Default is `4096`.
pub const DEFAULT_BACKLOG: u32 = 4096;

/// Default for [`Settings::max_connections_per_thread`]: at the target of at most 8 KiB per
/// idle connection this bounds a thread to about 128 MiB, and it is far above what nginx's
/// upstream keep-alive pool opens. Default is `16384`.
pub const DEFAULT_MAX_CONNECTIONS_PER_THREAD: usize = 16384;

/// Default for [`Settings::max_head_size`]: twice nginx's largest default request head
/// (`large_client_header_buffers 4 8k`), so anything nginx forwards fits, while a
/// connection's read buffer stays bounded. Default is 64 KiB.
pub const DEFAULT_MAX_HEAD_SIZE: usize = 64 * 1024;

/// Default for [`Settings::max_headers`]: the same limit hyper uses; real clients send far
/// fewer, and the parser's header array is sized by it. Default is `100`.
pub const DEFAULT_MAX_HEADERS: usize = 100;

/// Default for [`Settings::max_uri_length`]: nginx's default request-line limit (one 8k
/// large header buffer), so the two agree on what is too long. Default is 8 KiB.
pub const DEFAULT_MAX_URI_LENGTH: usize = 8 * 1024;

/// Default for [`Settings::max_body_size`]: enough for form posts and JSON documents; larger
/// uploads belong in object storage, not in a request handler's memory. Default is 10 MiB.
pub const DEFAULT_MAX_BODY_SIZE: u64 = 10 * 1024 * 1024;

/// Default for [`Settings::max_drain_size`]: reading and discarding a small unread body keeps
/// a keep-alive connection usable for less than the cost of a new one; beyond this, closing is
/// cheaper. Default is 64 KiB.
pub const DEFAULT_MAX_DRAIN_SIZE: u64 = 64 * 1024;

/// Default for [`Settings::header_read_timeout`]: generous for a slow mobile client, short
/// enough that slow-header (slowloris) connections do not pile up. Default is 10 s.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Default for [`Settings::body_read_timeout`]: the time allowed for a whole request body;
/// room for a [`DEFAULT_MAX_BODY_SIZE`] upload at 350 KB/s, and far more than nginx needs,
/// which buffers a body before it sends it upstream. Default is 30 s.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Default for [`Settings::write_timeout`]: the time a write of a response may go without
/// progress before the connection is closed, as nginx's `send_timeout` (60 s) but shorter,
/// since a client that reads nothing for that long holds its response in our memory.
/// Default is 30 s.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Default for [`Settings::sse_keepalive`]: a comment line on an idle event stream this often
/// keeps proxies and browsers from timing it out (nginx's `proxy_read_timeout` is 60 s) and
/// finds clients that left. Default is 15 s, as the SSE specification suggests.
pub const DEFAULT_SSE_KEEPALIVE: Duration = Duration::from_secs(15);

/// Default for [`Settings::keepalive_timeout`]: longer than nginx's upstream
/// `keepalive_timeout` (60 s), so that nginx, not pinion, closes an idle upstream connection;
/// otherwise nginx can reuse a connection at the moment pinion closes it and answer 502.
/// Default is 75 s.
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(75);

/// Default for [`Settings::drain_timeout`]: time for in-flight requests to finish after
/// SIGTERM, well inside systemd's default `TimeoutStopSec` (90 s). Default is 30 s.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Default for [`Settings::drain_grace`]: long enough for a client that sends request after
/// request (a load balancer's pooled connection, a browser loading a page) to send its next
/// one, short enough not to hold a restart back. Default is 1 s.
pub const DEFAULT_DRAIN_GRACE: Duration = Duration::from_secs(1);

/// Default for [`Settings::session_idle_timeout`]: OWASP's upper bound for an application of
/// ordinary risk. Default is 30 min.
pub const DEFAULT_SESSION_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Default for [`Settings::session_absolute_timeout`]: a working day, OWASP's suggestion.
/// Default is 8 h.
pub const DEFAULT_SESSION_ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(8 * 3600);

/// Default for [`Settings::server_name`]: the product name, without a version, so the header
/// does not advertise which release is running. Default is `"pinion"`.
pub const DEFAULT_SERVER_NAME: &str = "pinion";

/// Default for [`Settings::log_level`]: start-up, shutdown and errors, without per-request
/// lines. Default is [`LogLevel::Info`].
pub const DEFAULT_LOG_LEVEL: LogLevel = LogLevel::Info;

/// Default for [`Settings::log_format`]: readable in a terminal and in `journalctl`.
/// Default is [`LogFormat::Text`].
pub const DEFAULT_LOG_FORMAT: LogFormat = LogFormat::Text;

/// Default for [`Settings::database_url`]: absent, so the application runs without a database
/// (the demo pages that need none still work). Default is `None`.
pub const DEFAULT_DATABASE_URL: Option<DatabaseUrl> = None;

/// Default for [`Settings::pool_size`]: absent, meaning "auto" (see
/// [`Settings::effective_pool_size`]). Default is `None`.
pub const DEFAULT_POOL_SIZE: Option<usize> = None;

/// The largest accepted [`Settings::pool_size`]: above any `max_connections` a PostgreSQL
/// server is run with, low enough to catch a typo. Default is `10000`.
pub const MAX_POOL_SIZE: usize = 10_000;

/// The smallest pool "auto" chooses: enough connections to keep a small server's queries
/// overlapping while some wait on the network, still a small share of PostgreSQL's default
/// `max_connections` (100). Default is `32`.
pub const AUTO_POOL_SIZE_MIN: usize = 32;

/// Connections "auto" adds to one per thread on a many-core host, so that a thread whose
/// connection is busy with a slow query does not always wait. Default is `8`.
pub const AUTO_POOL_SIZE_HEADROOM: usize = 8;

/// Default for [`Settings::instances`]: one process per primary, the single-host deployment.
/// Default is `1`.
pub const DEFAULT_INSTANCES: usize = 1;

/// The largest accepted [`Settings::instances`]: far above any fleet that shares one primary,
/// low enough that the connection arithmetic cannot overflow. Default is `100000`.
pub const MAX_INSTANCES: usize = 100_000;

/// Default for [`Settings::require_version`]: none, so a configuration runs on any release
/// until its author pins one. Default is `None`.
pub const DEFAULT_REQUIRE_VERSION: Option<VersionReq> = None;

/// Default for [`Settings::db_connect_timeout`]: a TCP handshake plus the PostgreSQL
/// start-up take milliseconds on a LAN; five seconds rides out a lost SYN (the first
/// retransmission is after 1 s) without hanging start-up on an unreachable host. Default is
/// 5 s.
pub const DEFAULT_DB_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Default for [`Settings::db_query_timeout`]: the same as [`DEFAULT_BODY_READ_TIMEOUT`], well
/// under nginx's `proxy_read_timeout` (60 s), so a stuck query fails the request before the
/// proxy gives up on it. Default is 30 s.
pub const DEFAULT_DB_QUERY_TIMEOUT: Duration = Duration::from_secs(30);

/// Default for [`Settings::db_keepalive`]: probes an idle pooled connection well before
/// firewalls and NAT tables drop idle flows (commonly after 5 minutes or more), where the
/// kernel's default (2 hours) would not. Default is 30 s.
pub const DEFAULT_DB_KEEPALIVE: Duration = Duration::from_secs(30);

/// Default for [`Settings::db_user_timeout`]: a connection whose peer has vanished (failed
/// over, partitioned) is dropped after ten seconds of unacknowledged data instead of the
/// kernel's retransmission limit of about 15 minutes. Default is 10 s.
pub const DEFAULT_DB_USER_TIMEOUT: Duration = Duration::from_secs(10);

/// Default for [`Settings::replica_check_interval`]: a recovered replica takes reads again
/// within a second, for one cheap query per replica per second. Default is 1 s.
pub const DEFAULT_REPLICA_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Default for [`Settings::cache_ttl`]: Django's `TIMEOUT` default, long enough to absorb
/// read bursts, short enough that stale data ages out without explicit invalidation. Default is
/// 300 s.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(300);

/// Default for [`Settings::query_cache`]: on, since its invalidation follows every write the
/// ORM makes, here and in other instances. Default is `true`.
pub const DEFAULT_QUERY_CACHE: bool = true;

/// Default for [`Settings::events_retention`]: longer than a laptop's lid usually stays
/// closed on an open page, short enough for the events table to stay small. Default is 1 h.
pub const DEFAULT_EVENTS_RETENTION: Duration = Duration::from_secs(3600);

/// Default for [`Settings::events_retention_rows`]. Default is 100 000.
pub const DEFAULT_EVENTS_RETENTION_ROWS: u64 = 100_000;

/// Default for [`Settings::events_subscriber_queue`]: what a client that stopped reading holds
/// in memory at most (the events themselves are shared). Default is 64.
pub const DEFAULT_EVENTS_SUBSCRIBER_QUEUE: usize = 64;

/// Default for [`Settings::jobs_threads`]: one thread of background jobs beside the HTTP
/// workers, enough for a demo's mails and confirmations; a busy queue gets `pinion worker`
/// processes of its own. Default is 1.
pub const DEFAULT_JOBS_THREADS: usize = 1;

/// Default for [`Settings::jobs_lease`]: long enough that a stalled database round trip does
/// not lose a lease (it is renewed every third of it), short enough that a killed worker's
/// jobs run again within half a minute. Default is 30 s.
pub const DEFAULT_JOBS_LEASE: Duration = Duration::from_secs(30);

/// Default for [`Settings::jobs_poll_interval`]: how late a delayed job or a retry may start
/// (enqueues wake workers at once through `NOTIFY`). Default is 1 s.
pub const DEFAULT_JOBS_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Default for [`Settings::jobs_retry_base`]: the first retry after a second, doubling up to
/// an hour. Default is 1 s.
pub const DEFAULT_JOBS_RETRY_BASE: Duration = Duration::from_secs(1);

/// Default for [`Settings::cache_max_entries`]: room for the TechEmpower `world` table (10 000
/// rows) with headroom, a few MiB of memory. Default is 20 000.
pub const DEFAULT_CACHE_MAX_ENTRIES: usize = 20_000;

/// Default for [`Settings::sticky_window`]: longer than streaming-replication lag on a healthy
/// LAN (milliseconds), so a client reads its own writes after a redirect even on a lagging
/// replica. Default is 5 s.
pub const DEFAULT_STICKY_WINDOW: Duration = Duration::from_secs(5);

/// Default for [`Settings::migrate_on_start`]: `serve` brings the schema up to date, so a
/// single-host deployment is one command. Default is `true`.
pub const DEFAULT_MIGRATE_ON_START: bool = true;

/// Default for [`Settings::migrations_dir`]: `migrations`, relative to the working directory.
/// Default is `"migrations"`.
pub const DEFAULT_MIGRATIONS_DIR: &str = "migrations";

/// Default for [`Settings::static_dir`]: `static`, relative to the working directory, which is
/// the repository's top level under `make run`. Default is `"static"`.
pub const DEFAULT_STATIC_DIR: &str = "static";

/// Default for [`Settings::security_headers`]: the OWASP secure-headers baseline costs a few
/// bytes per response and closes whole classes of attack (MIME sniffing, clickjacking).
/// Default is `true`.
pub const DEFAULT_SECURITY_HEADERS: bool = true;

/// Default for [`Settings::hsts`]: off, because nginx terminates TLS and is the place to send
/// `Strict-Transport-Security`; a header from plain-HTTP pinion would be a promise it cannot
/// keep. Default is `false`.
pub const DEFAULT_HSTS: bool = false;

/// Default for [`Settings::content_security_policy`]: the OWASP starting policy, same-origin
/// resources only, no plugins, no framing, no `<base>` or form targets elsewhere. Default is
/// `"default-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'self';
/// form-action 'self'"`.
pub const DEFAULT_CONTENT_SECURITY_POLICY: &str = "default-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'";

/// Default for [`Settings::cors_allow_credentials`]: off, so cookies are not sent on
/// cross-origin requests unless the operator says so. Default is `false`.
pub const DEFAULT_CORS_ALLOW_CREDENTIALS: bool = false;

/// Default for [`Settings::cors_max_age`]: ten minutes, Chromium's cap on
/// `Access-Control-Max-Age`, so a longer value would gain nothing there. Default is 10 min.
pub const DEFAULT_CORS_MAX_AGE: Duration = Duration::from_secs(600);

/// Default for [`Settings::trusted_proxies`]: the loopback addresses, where nginx runs in the
/// usual single-host deployment; a peer elsewhere cannot forge `X-Forwarded-For`. Default is
/// `127.0.0.1/32` and `::1/128`.
pub const DEFAULT_TRUSTED_PROXIES: [Cidr; 2] = [
    Cidr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 32).expect("a host network"),
    Cidr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 128).expect("a host network"),
];

/// Default for [`Settings::request_id`]: a request id ties the access log, the application's
/// log lines and the client's report of one request together. Default is `true`.
pub const DEFAULT_REQUEST_ID: bool = true;

/// Default for [`Settings::server_timing`]: off. The header shows every client, in browsers'
/// developer tools, how long the server worked on its request; the W3C Server Timing
/// specification warns that such timings can leak what a request touched (a cache hit or a
/// slow query, a side channel), so it is for development or trusted clients. The duration
/// metric in `/metrics` does not depend on it. Default is `false`.
pub const DEFAULT_SERVER_TIMING: bool = false;

/// Default for [`Settings::access_log`]: off, because nginx in front usually logs every
/// request already. Default is `false`.
pub const DEFAULT_ACCESS_LOG: bool = false;

/// Default for [`Settings::access_log_sample`]: every request, once the access log is on.
/// Default is `1.0`.
pub const DEFAULT_ACCESS_LOG_SAMPLE: Ratio = Ratio::ONE;

/// Default for [`Settings::ratelimit_ietf_headers`]: clients that read `RateLimit-Policy` and
/// `RateLimit` can slow down before they get a 429. Default is `true`.
pub const DEFAULT_RATELIMIT_IETF_HEADERS: bool = true;

/// Default for [`Settings::rate_limit_default`]: none, so no route is limited unless a policy
/// is named for it. Default is `None`.
pub const DEFAULT_RATE_LIMIT_DEFAULT: Option<String> = None;

/// Default for [`Settings::rate_limit_store`]: in this process, which needs no database and
/// costs no round trip; exact per instance. Default is [`RateLimitStore::Local`].
pub const DEFAULT_RATE_LIMIT_STORE: RateLimitStore = RateLimitStore::Local;

/// Default for [`Settings::rate_limit_max_keys`]: a hundred thousand clients at a few dozen
/// bytes each, a few MiB, while bounding what a flood of distinct addresses can cost.
/// Default is `100000`.
pub const DEFAULT_RATE_LIMIT_MAX_KEYS: usize = 100_000;

/// Default for [`Settings::rate_limit_ipv6_prefix`]: a /64, the smallest network an ISP or a
/// cloud provider hands one subscriber or one machine (RFC 6177), so every address a client
/// can pick shares its limit. Default is `64`.
pub const DEFAULT_RATE_LIMIT_IPV6_PREFIX: u8 = 64;

/// Default for [`Settings::telemetry_enabled`]: request metrics are cheap (per-thread
/// counters, folded in periodically) and `/metrics` is what monitoring scrapes. Default is
/// `true`.
pub const DEFAULT_TELEMETRY_ENABLED: bool = true;

/// Default for [`Settings::telemetry_drain_interval`]: a second, well under any scrape
/// interval (15 s is common), so `/metrics` is never more than a second behind. Default is
/// 1 s.
pub const DEFAULT_TELEMETRY_DRAIN_INTERVAL: Duration = Duration::from_secs(1);

/// Default for [`Settings::telemetry_sample_ratio`]: one request in a hundred has its
/// per-phase timings logged, enough to see where time goes without flooding the log.
/// Default is `0.01`.
pub const DEFAULT_TELEMETRY_SAMPLE_RATIO: Ratio = Ratio::new(0.01).expect("in 0.0..=1.0");

/// Which I/O driver the worker runtimes use.
///
/// io_uring is faster where it is available, but some kernels and container sandboxes
/// (seccomp profiles, gVisor) forbid it; `Auto` probes and falls back, the other two force a
/// choice (e.g. to compare them in a benchmark, or to avoid a probe that a sandbox logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IoDriver {
    /// io_uring if the kernel allows it, epoll otherwise.
    Auto,
    /// io_uring; start-up fails if it is unavailable.
    IoUring,
    /// epoll, even where io_uring is available.
    Epoll,
}

impl IoDriver {
    /// Spellings in configuration, in documentation order.
    pub(crate) const CHOICES: [(&'static str, IoDriver); 3] = [
        ("auto", IoDriver::Auto),
        ("io_uring", IoDriver::IoUring),
        ("epoll", IoDriver::Epoll),
    ];

    /// The name as written in `pinion.toml` (`"auto"`, `"io_uring"`, `"epoll"`), for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            IoDriver::Auto => "auto",
            IoDriver::IoUring => "io_uring",
            IoDriver::Epoll => "epoll",
        }
    }
}

impl fmt::Display for IoDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The most verbose log level emitted.
///
/// An enum rather than a filter string so that a typo is a start-up error; the binary maps it
/// onto its logging library.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Errors and warnings.
    Warn,
    /// Lifecycle events (listening, draining) as well.
    Info,
    /// Diagnostic detail, including per-connection events.
    Debug,
    /// Everything; slow, for development.
    Trace,
}

impl LogLevel {
    /// Spellings in configuration, in documentation order.
    pub(crate) const CHOICES: [(&'static str, LogLevel); 5] = [
        ("error", LogLevel::Error),
        ("warn", LogLevel::Warn),
        ("info", LogLevel::Info),
        ("debug", LogLevel::Debug),
        ("trace", LogLevel::Trace),
    ];

    /// The name as written in `pinion.toml` (`"info"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the process is deployed as: [`Environment::Production`] refuses what is only
/// acceptable on a developer's machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Environment {
    /// A developer's machine: a missing `secret_key` is a warning (a random key per process).
    Development,
    /// A deployment: start-up is refused without `secret_key`, so that cookies verify across
    /// restarts and instances.
    Production,
}

impl Environment {
    /// Spellings in configuration, in documentation order.
    pub(crate) const CHOICES: [(&'static str, Environment); 2] = [
        ("development", Environment::Development),
        ("production", Environment::Production),
    ];

    /// The name as written in `pinion.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Development => "development",
            Environment::Production => "production",
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Default for [`Settings::environment`]: a developer's machine, so that `make run` needs no
/// secret.
pub const DEFAULT_ENVIRONMENT: Environment = Environment::Development;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogFormat {
    /// Human-readable lines, for terminals and `journalctl`.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

impl LogFormat {
    /// Spellings in configuration, in documentation order.
    pub(crate) const CHOICES: [(&'static str, LogFormat); 2] =
        [("text", LogFormat::Text), ("json", LogFormat::Json)];

    /// The name as written in `pinion.toml` (`"text"`, `"json"`).
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the rate limiter keeps its GCRA state (one timestamp per client and policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateLimitStore {
    /// In this process's memory, bounded by [`Settings::rate_limit_max_keys`]: no round trip,
    /// but each instance counts on its own, so N instances allow N times the quota.
    Local,
    /// In the primary database, shared by every instance: one query per limited request;
    /// needs [`Settings::database_url`].
    Postgres,
}

impl RateLimitStore {
    /// Spellings in configuration, in documentation order.
    pub(crate) const CHOICES: [(&'static str, RateLimitStore); 2] = [
        ("local", RateLimitStore::Local),
        ("postgres", RateLimitStore::Postgres),
    ];

    /// The name as written in `pinion.toml` (`"local"`, `"postgres"`).
    pub fn as_str(self) -> &'static str {
        match self {
            RateLimitStore::Local => "local",
            RateLimitStore::Postgres => "postgres",
        }
    }
}

impl fmt::Display for RateLimitStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The typed, validated configuration of a pinion process.
///
/// Built by [`Settings::load`] from defaults, `pinion.toml`, the environment and command-line
/// overrides, in that order (see the [crate documentation](crate)). [`Settings::default`]
/// gives the defaults alone, which is what tests of other crates usually start from. Fields
/// are public so that tests can adjust them; values set in code are not re-validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Address the listeners bind. Default is [`DEFAULT_BIND`].
    pub bind: IpAddr,
    /// TCP port of the listeners; 0 asks the kernel for a free port (tests use it). Default is
    /// [`DEFAULT_PORT`].
    pub port: u16,
    /// Worker threads, one runtime and listener each; `None` means one per available core
    /// (see [`Settings::effective_threads`]). Default is [`DEFAULT_THREADS`].
    pub threads: Option<usize>,
    /// I/O driver of the worker runtimes. Default is [`DEFAULT_IO_DRIVER`].
    pub io_driver: IoDriver,
    /// With io_uring: while a worker is busy (its last wake-up found more than one
    /// completion), it may sleep gathering up to 64 completions instead of waking for each
    /// (Linux 6.12+; ignored by older kernels and by epoll). The wait is a sixteenth of the
    /// worker's median request duration over the last telemetry interval, none below 50 µs,
    /// and at most this; without telemetry there is no batching. 0 is off.
    /// Default is [`DEFAULT_IO_BATCH_WAIT`].
    pub io_batch_wait: Duration,
    /// `listen(2)` backlog of each listener. Default is [`DEFAULT_BACKLOG`].
    pub backlog: u32,
    /// Open connections per worker thread; at the cap, that thread stops accepting until one
    /// closes (other threads' listeners take the load). Default is
    /// [`DEFAULT_MAX_CONNECTIONS_PER_THREAD`].
    pub max_connections_per_thread: usize,
    /// Largest request head (request line and headers) in bytes; larger gets 431. Default is
    /// [`DEFAULT_MAX_HEAD_SIZE`].
    pub max_head_size: usize,
    /// Most header fields in a request; more gets 431. Default is [`DEFAULT_MAX_HEADERS`].
    pub max_headers: usize,
    /// Longest request target in bytes; longer gets 414. Default is
    /// [`DEFAULT_MAX_URI_LENGTH`].
    pub max_uri_length: usize,
    /// Largest request body in bytes; larger gets 413. Default is [`DEFAULT_MAX_BODY_SIZE`].
    pub max_body_size: u64,
    /// Most bytes of a body the handler left unread that are read and discarded to keep the
    /// connection alive; a longer remainder closes the connection instead. Default is
    /// [`DEFAULT_MAX_DRAIN_SIZE`].
    pub max_drain_size: u64,
    /// Time allowed to receive a complete request head, from the first byte or from the end
    /// of the previous response; exceeded gets 408. Default is
    /// [`DEFAULT_HEADER_READ_TIMEOUT`].
    pub header_read_timeout: Duration,
    /// Time allowed to receive a whole request body, from the end of its head (one deadline
    /// per body, so a body trickled a byte at a time is cut off too); exceeded gets 408 and
    /// the connection closes. Default is [`DEFAULT_BODY_READ_TIMEOUT`].
    pub body_read_timeout: Duration,
    /// Time a response write may make no progress (the client reads nothing) before the
    /// connection is closed, freeing the response it held. Default is
    /// [`DEFAULT_WRITE_TIMEOUT`].
    pub write_timeout: Duration,
    /// How long a Server-Sent Events stream may stay silent before a keep-alive comment is
    /// sent on it. Default is [`DEFAULT_SSE_KEEPALIVE`].
    pub sse_keepalive: Duration,
    /// How long an idle keep-alive connection is kept open. Default is
    /// [`DEFAULT_KEEPALIVE_TIMEOUT`].
    pub keepalive_timeout: Duration,
    /// Graceful-shutdown deadline: after it, connections still open are closed and the process
    /// exits. Default is [`DEFAULT_DRAIN_TIMEOUT`].
    pub drain_timeout: Duration,
    /// How long, once draining begins, an idle keep-alive connection still waits for its next
    /// request, which is answered with `Connection: close`; 0 closes idle connections at once.
    /// Must be shorter than `drain_timeout`. Default is [`DEFAULT_DRAIN_GRACE`].
    pub drain_grace: Duration,
    /// A Unix socket on which this process hands its listening sockets to its successor, and
    /// through which it takes them from its predecessor: a restart then resets no connection.
    /// `None` (the default) binds fresh listeners at every start.
    pub handoff_socket: Option<PathBuf>,
    /// Value of the `Server` response header. Default is [`DEFAULT_SERVER_NAME`].
    pub server_name: String,
    /// Most verbose log level emitted. Default is [`DEFAULT_LOG_LEVEL`].
    pub log_level: LogLevel,
    /// Log line format. Default is [`DEFAULT_LOG_FORMAT`].
    pub log_format: LogFormat,
    /// The primary database, which takes writes (and reads, when no replica is healthy);
    /// `None` runs the application without a database. A secret: `Debug` and
    /// [`render_masked`](Self::render_masked) mask its password. Default is
    /// [`DEFAULT_DATABASE_URL`].
    pub database_url: Option<DatabaseUrl>,
    /// Streaming replicas that take reads; empty sends every query to the primary. Secrets,
    /// like [`database_url`](Self::database_url). Default is empty.
    pub database_replica_urls: Vec<DatabaseUrl>,
    /// Databases besides the primary and its replicas, as `name=url`: models bound with
    /// `#[model(database = "name")]` and `.using("name")` reads and writes go there, on the
    /// primary's connection settings. Secrets, like [`database_url`](Self::database_url).
    /// Default is empty.
    pub databases: Vec<NamedDatabase>,
    /// Connections per database per process, for transactions; `None` means "auto" (see
    /// [`Settings::effective_pool_size`] and [`Settings::pool_size_per_thread`]). Default is
    /// [`DEFAULT_POOL_SIZE`].
    pub pool_size: Option<usize>,
    /// How many pinion processes share the primary (hosts times processes per host), so that
    /// start-up and `pinion check` can warn when together they may open more connections
    /// than its `max_connections` allows. It changes nothing else. Default is
    /// [`DEFAULT_INSTANCES`].
    pub instances: usize,
    /// Time allowed to open a database connection: TCP (or Unix socket) connect and PostgreSQL start-up.
    /// Default is [`DEFAULT_DB_CONNECT_TIMEOUT`].
    pub db_connect_timeout: Duration,
    /// Deadline of one query, from sending it to its last row. Default is
    /// [`DEFAULT_DB_QUERY_TIMEOUT`].
    pub db_query_timeout: Duration,
    /// TCP keep-alive idle time on database sockets (`TCP_KEEPIDLE`). Default is
    /// [`DEFAULT_DB_KEEPALIVE`].
    pub db_keepalive: Duration,
    /// `TCP_USER_TIMEOUT` on database sockets: data unacknowledged for this long drops the
    /// connection. Default is [`DEFAULT_DB_USER_TIMEOUT`].
    pub db_user_timeout: Duration,
    /// How often every replica, healthy or not, is pinged to decide whether it takes reads.
    /// Default is [`DEFAULT_REPLICA_CHECK_INTERVAL`].
    pub replica_check_interval: Duration,
    /// After a write, that client's reads stay on the primary this long (tracked by a cookie),
    /// so it reads its own writes despite replication lag; zero turns this off. Default is
    /// [`DEFAULT_STICKY_WINDOW`].
    pub sticky_window: Duration,
    /// Whether `serve` applies pending migrations before listening. Default is
    /// [`DEFAULT_MIGRATE_ON_START`].
    pub migrate_on_start: bool,
    /// Folder of `*.sql` migrations; a relative path is taken from the working directory.
    /// Default is [`DEFAULT_MIGRATIONS_DIR`].
    pub migrations_dir: PathBuf,
    /// Folder of static files (stylesheets, scripts), read and content-hashed once at start-up
    /// and served under `/static/` with a year-long `Cache-Control`; nginx serves the same
    /// folder in production. A relative path is taken from the working directory. Default is
    /// [`DEFAULT_STATIC_DIR`].
    pub static_dir: PathBuf,

    /// How long a cached value lives when the caller gives no TTL (Django's `TIMEOUT`).
    /// Default is [`DEFAULT_CACHE_TTL`].
    pub cache_ttl: Duration,
    /// Most entries the in-process cache (LocMemCache) holds before it evicts. Default is
    /// [`DEFAULT_CACHE_MAX_ENTRIES`].
    pub cache_max_entries: usize,
    /// Whether ORM query-set reads go through the query cache (an in-process LocMemCache of
    /// `cache_max_entries`, invalidated by table versions across instances). Default is
    /// [`DEFAULT_QUERY_CACHE`].
    pub query_cache: bool,
    /// How long published events are kept for clients that reconnect with `Last-Event-ID`
    /// (pinion-events prunes older ones). Default is [`DEFAULT_EVENTS_RETENTION`].
    pub events_retention: Duration,
    /// At most this many of the latest events are kept, whatever their age. Default is
    /// [`DEFAULT_EVENTS_RETENTION_ROWS`].
    pub events_retention_rows: u64,
    /// Events one live-page subscriber may have waiting; past that it is no longer fed and
    /// catches up from the process's log of recent events once it has sent them, and one
    /// that falls further behind than the log reaches is cut off (a resync event, then the
    /// browser reconnects and replays). Default is [`DEFAULT_EVENTS_SUBSCRIBER_QUEUE`].
    pub events_subscriber_queue: usize,

    /// Background-job worker threads `serve` runs beside its HTTP workers (each with its own
    /// runtime and connections); 0 runs none, for deployments with `pinion worker` processes.
    /// Default is [`DEFAULT_JOBS_THREADS`].
    pub jobs_threads: usize,
    /// The queues workers run and the jobs each worker thread runs at once per queue. Default
    /// is `default` with [`DEFAULT_QUEUE_CONCURRENCY`](crate::DEFAULT_QUEUE_CONCURRENCY).
    pub jobs_queues: Vec<crate::JobQueue>,
    /// How long a claimed job is leased to its worker; a worker that dies leaves a lease that
    /// runs out, and the job runs again elsewhere. Default is [`DEFAULT_JOBS_LEASE`].
    pub jobs_lease: Duration,
    /// How often an idle worker looks for due jobs without being woken. Default is
    /// [`DEFAULT_JOBS_POLL_INTERVAL`].
    pub jobs_poll_interval: Duration,
    /// The delay before a failed job's first retry, doubled at each further one (at most an
    /// hour), with jitter. Default is [`DEFAULT_JOBS_RETRY_BASE`].
    pub jobs_retry_base: Duration,

    /// Whether every response gets the OWASP security headers. Default is
    /// [`DEFAULT_SECURITY_HEADERS`].
    pub security_headers: bool,
    /// Whether responses carry `Strict-Transport-Security`. Default is [`DEFAULT_HSTS`].
    pub hsts: bool,
    /// `Content-Security-Policy` of HTML responses; `None` sends none. Visible ASCII and
    /// spaces only. Default is [`DEFAULT_CONTENT_SECURITY_POLICY`].
    pub content_security_policy: Option<String>,
    /// Origins allowed to make cross-origin requests, compared exactly with the `Origin`
    /// header: each `"*"` (any origin) or `scheme://host[:port]`, stored lowercase and without
    /// a default port, as browsers send it. Empty turns CORS off. Default is empty.
    pub cors_allowed_origins: Vec<String>,
    /// Whether CORS responses allow credentials (`Access-Control-Allow-Credentials: true`);
    /// cannot be combined with a `"*"` origin. Default is [`DEFAULT_CORS_ALLOW_CREDENTIALS`].
    pub cors_allow_credentials: bool,
    /// How long a browser may cache a preflight answer (`Access-Control-Max-Age`); zero
    /// means every cross-origin request is preflighted again. Default is
    /// [`DEFAULT_CORS_MAX_AGE`].
    pub cors_max_age: Duration,
    /// Peers whose `X-Forwarded-For` and `X-Request-Id` are believed; from any other peer
    /// those headers are ignored, since anyone can send them. Empty trusts no peer. Default
    /// is [`DEFAULT_TRUSTED_PROXIES`].
    pub trusted_proxies: Vec<Cidr>,
    /// The key cookies are signed (HMAC-SHA256) and encrypted (AES-256-GCM) with, at least 32
    /// bytes. `None` (the default, `""`) makes the server use a random key per process, with
    /// a warning: cookies it signed stop verifying at the next restart and on other instances.
    /// Secret.
    pub secret_key: Option<SecretKey>,
    /// `development` or `production`; production refuses to start without
    /// [`secret_key`](Self::secret_key). Default is [`DEFAULT_ENVIRONMENT`].
    pub environment: Environment,
    /// Earlier secret keys, still accepted when verifying and decrypting cookies, so that a
    /// key can be rotated without logging everybody out (Django's `SECRET_KEY_FALLBACKS`); a
    /// cookie read with one of them is written back under `secret_key`. Default is empty.
    /// Secret.
    pub secret_key_fallbacks: Vec<SecretKey>,
    /// How long a session lives without a request; the next one after it starts anonymous.
    /// Default is [`DEFAULT_SESSION_IDLE_TIMEOUT`].
    pub session_idle_timeout: Duration,
    /// How long a session lives after it began (or was rotated at login), however active.
    /// Default is [`DEFAULT_SESSION_ABSOLUTE_TIMEOUT`].
    pub session_absolute_timeout: Duration,
    /// Whether each request gets an id (`X-Request-Id`: a trusted proxy's, or a new one).
    /// Default is [`DEFAULT_REQUEST_ID`].
    pub request_id: bool,
    /// Whether responses carry a `Server-Timing` header. Default is
    /// [`DEFAULT_SERVER_TIMING`].
    pub server_timing: bool,
    /// Whether pinion writes a structured access log line per request. Default is
    /// [`DEFAULT_ACCESS_LOG`].
    pub access_log: bool,
    /// Share of requests the access log records. Default is [`DEFAULT_ACCESS_LOG_SAMPLE`].
    pub access_log_sample: Ratio,

    /// Whether limited responses carry `RateLimit-Policy` and `RateLimit`
    /// (draft-ietf-httpapi-ratelimit-headers-10). Default is
    /// [`DEFAULT_RATELIMIT_IETF_HEADERS`].
    pub ratelimit_ietf_headers: bool,
    /// Named GCRA policies, names unique. Default is empty.
    pub rate_limit_policies: Vec<RatePolicy>,
    /// The policy applied to every route not configured otherwise (health probes are exempt);
    /// `None` leaves such routes unlimited. Names one of
    /// [`rate_limit_policies`](Self::rate_limit_policies). Default is
    /// [`DEFAULT_RATE_LIMIT_DEFAULT`].
    pub rate_limit_default: Option<String>,
    /// Where the rate limiter keeps its state; [`RateLimitStore::Postgres`] needs
    /// [`database_url`](Self::database_url). Default is [`DEFAULT_RATE_LIMIT_STORE`].
    pub rate_limit_store: RateLimitStore,
    /// Most keys (client and policy pairs) the local store holds, bounding its memory.
    /// Default is [`DEFAULT_RATE_LIMIT_MAX_KEYS`].
    pub rate_limit_max_keys: usize,
    /// Prefix length IPv6 clients are keyed by (1..=128): one client usually holds a whole
    /// /64, so keying by full address would give each of its addresses a fresh burst. IPv4
    /// clients are keyed by their full address. Default is
    /// [`DEFAULT_RATE_LIMIT_IPV6_PREFIX`].
    pub rate_limit_ipv6_prefix: u8,

    /// Whether `/metrics` is served and request metrics are recorded. Default is
    /// [`DEFAULT_TELEMETRY_ENABLED`].
    pub telemetry_enabled: bool,
    /// How often each thread's metrics are folded into the shared registry. Default is
    /// [`DEFAULT_TELEMETRY_DRAIN_INTERVAL`].
    pub telemetry_drain_interval: Duration,
    /// Share of requests whose per-phase timings are logged. Default is
    /// [`DEFAULT_TELEMETRY_SAMPLE_RATIO`].
    pub telemetry_sample_ratio: Ratio,

    /// The pinion releases this configuration is written for, as a Cargo version requirement
    /// (`>=0.2`); loading refuses it on any other release
    /// ([`ConfigError::is_version_mismatch`](crate::ConfigError::is_version_mismatch)), before
    /// reading the rest, whose keys an older release may not know. `None` runs on any.
    /// Default is [`DEFAULT_REQUIRE_VERSION`].
    pub require_version: Option<VersionReq>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            bind: DEFAULT_BIND,
            port: DEFAULT_PORT,
            threads: DEFAULT_THREADS,
            io_driver: DEFAULT_IO_DRIVER,
            io_batch_wait: DEFAULT_IO_BATCH_WAIT,
            backlog: DEFAULT_BACKLOG,
            max_connections_per_thread: DEFAULT_MAX_CONNECTIONS_PER_THREAD,
            max_head_size: DEFAULT_MAX_HEAD_SIZE,
            max_headers: DEFAULT_MAX_HEADERS,
            max_uri_length: DEFAULT_MAX_URI_LENGTH,
            max_body_size: DEFAULT_MAX_BODY_SIZE,
            max_drain_size: DEFAULT_MAX_DRAIN_SIZE,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            sse_keepalive: DEFAULT_SSE_KEEPALIVE,
            keepalive_timeout: DEFAULT_KEEPALIVE_TIMEOUT,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            drain_grace: DEFAULT_DRAIN_GRACE,
            handoff_socket: None,
            server_name: DEFAULT_SERVER_NAME.to_string(),
            log_level: DEFAULT_LOG_LEVEL,
            log_format: DEFAULT_LOG_FORMAT,
            database_url: DEFAULT_DATABASE_URL,
            database_replica_urls: Vec::new(),
            databases: Vec::new(),
            pool_size: DEFAULT_POOL_SIZE,
            instances: DEFAULT_INSTANCES,
            db_connect_timeout: DEFAULT_DB_CONNECT_TIMEOUT,
            db_query_timeout: DEFAULT_DB_QUERY_TIMEOUT,
            db_keepalive: DEFAULT_DB_KEEPALIVE,
            db_user_timeout: DEFAULT_DB_USER_TIMEOUT,
            replica_check_interval: DEFAULT_REPLICA_CHECK_INTERVAL,
            sticky_window: DEFAULT_STICKY_WINDOW,
            migrate_on_start: DEFAULT_MIGRATE_ON_START,
            migrations_dir: PathBuf::from(DEFAULT_MIGRATIONS_DIR),
            static_dir: PathBuf::from(DEFAULT_STATIC_DIR),
            cache_ttl: DEFAULT_CACHE_TTL,
            cache_max_entries: DEFAULT_CACHE_MAX_ENTRIES,
            query_cache: DEFAULT_QUERY_CACHE,
            events_retention: DEFAULT_EVENTS_RETENTION,
            events_retention_rows: DEFAULT_EVENTS_RETENTION_ROWS,
            events_subscriber_queue: DEFAULT_EVENTS_SUBSCRIBER_QUEUE,
            jobs_threads: DEFAULT_JOBS_THREADS,
            jobs_queues: vec![crate::JobQueue {
                name: "default".to_string(),
                concurrency: crate::DEFAULT_QUEUE_CONCURRENCY,
            }],
            jobs_lease: DEFAULT_JOBS_LEASE,
            jobs_poll_interval: DEFAULT_JOBS_POLL_INTERVAL,
            jobs_retry_base: DEFAULT_JOBS_RETRY_BASE,
            security_headers: DEFAULT_SECURITY_HEADERS,
            hsts: DEFAULT_HSTS,
            content_security_policy: Some(DEFAULT_CONTENT_SECURITY_POLICY.to_string()),
            cors_allowed_origins: Vec::new(),
            cors_allow_credentials: DEFAULT_CORS_ALLOW_CREDENTIALS,
            cors_max_age: DEFAULT_CORS_MAX_AGE,
            trusted_proxies: DEFAULT_TRUSTED_PROXIES.to_vec(),
            secret_key: None,
            environment: DEFAULT_ENVIRONMENT,
            session_idle_timeout: DEFAULT_SESSION_IDLE_TIMEOUT,
            session_absolute_timeout: DEFAULT_SESSION_ABSOLUTE_TIMEOUT,
            secret_key_fallbacks: Vec::new(),
            request_id: DEFAULT_REQUEST_ID,
            server_timing: DEFAULT_SERVER_TIMING,
            access_log: DEFAULT_ACCESS_LOG,
            access_log_sample: DEFAULT_ACCESS_LOG_SAMPLE,
            ratelimit_ietf_headers: DEFAULT_RATELIMIT_IETF_HEADERS,
            rate_limit_policies: Vec::new(),
            rate_limit_default: DEFAULT_RATE_LIMIT_DEFAULT,
            rate_limit_store: DEFAULT_RATE_LIMIT_STORE,
            rate_limit_max_keys: DEFAULT_RATE_LIMIT_MAX_KEYS,
            rate_limit_ipv6_prefix: DEFAULT_RATE_LIMIT_IPV6_PREFIX,
            telemetry_enabled: DEFAULT_TELEMETRY_ENABLED,
            telemetry_drain_interval: DEFAULT_TELEMETRY_DRAIN_INTERVAL,
            telemetry_sample_ratio: DEFAULT_TELEMETRY_SAMPLE_RATIO,
            require_version: DEFAULT_REQUIRE_VERSION,
        }
    }
}

impl Settings {
    /// The number of worker threads to start: [`threads`](Self::threads) if set, else the
    /// number of cores this process may run on.
    ///
    /// # Return
    ///
    /// At least 1. The core count comes from [`std::thread::available_parallelism`], which
    /// honours the CPU affinity mask (`taskset`, systemd `CPUAffinity=`) and cgroup quotas, so
    /// a server pinned to two cores starts two threads; if it cannot be determined, 1.
    pub fn effective_threads(&self) -> usize {
        self.threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, NonZeroUsize::get))
            .max(1)
    }

    /// The number of connections the process keeps to each database (the primary, and each
    /// replica): [`pool_size`](Self::pool_size) if set, else "auto", which is one per worker
    /// thread plus [`AUTO_POOL_SIZE_HEADROOM`], and at least [`AUTO_POOL_SIZE_MIN`].
    ///
    /// # Return
    ///
    /// At least 1. With "auto": `max(effective_threads + 8, 32)`, e.g. 32 for 1 to 24 threads,
    /// 72 for 64 threads.
    pub fn effective_pool_size(&self) -> usize {
        self.pool_size
            .unwrap_or_else(|| {
                (self.effective_threads() + AUTO_POOL_SIZE_HEADROOM).max(AUTO_POOL_SIZE_MIN)
            })
            .max(1)
    }

    /// The connections each worker thread keeps to each database: the
    /// [`effective_pool_size`](Self::effective_pool_size) shared among the
    /// [`effective_threads`](Self::effective_threads), rounded up.
    ///
    /// # Return
    ///
    /// At least 1, so that every thread can run queries. Because it rounds up, the process
    /// may open up to `pool_size_per_thread() * effective_threads()` connections, slightly
    /// more than `pool_size` (`pool_size = 10` on 4 threads is 3 each, 12 in all).
    pub fn pool_size_per_thread(&self) -> usize {
        self.effective_pool_size()
            .div_ceil(self.effective_threads())
            .max(1)
    }

    /// The effective configuration as a `pinion.toml`, for `pinion check`.
    ///
    /// Every key appears, in the order of the README's table, with values in the units a
    /// person would write (`"64KiB"`, `"75s"`); an absent `threads` or `pool_size` is written
    /// `"auto"`, an absent `database_url` `""`.
    /// Values of [`SECRET_KEYS`](crate::SECRET_KEYS) are masked (URLs keep all but their
    /// password), so the output is safe to paste into an issue.
    ///
    /// # Return
    ///
    /// Valid TOML that loads back to equal `Settings` (apart from masked secrets and durations
    /// finer than a millisecond, which the file syntax cannot express).
    pub fn render_masked(&self) -> String {
        let mut out = String::from("# effective pinion configuration; secrets are masked\n");
        for key in Key::ALL {
            let value = self.masked_value(key);
            out.push_str(key.name());
            out.push_str(" = ");
            out.push_str(&value);
            out.push('\n');
        }
        out
    }

    /// One key's value as TOML text, masked if the key is secret.
    pub(crate) fn masked_value(&self, key: Key) -> String {
        match key.render(self) {
            Rendered::Toml(text) => text,
            Rendered::Str(s) if is_secret(key.name()) => render_string(&mask_value(s)),
            Rendered::Str(s) => render_string(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let s = Settings::default();
        assert_eq!(s.bind, IpAddr::from([0, 0, 0, 0]));
        assert_eq!(s.port, 8080);
        assert_eq!(s.threads, None);
        assert_eq!(s.io_driver, IoDriver::Auto);
        assert_eq!(s.backlog, 4096);
        assert_eq!(s.max_connections_per_thread, 16384);
        assert_eq!(s.max_head_size, 65536);
        assert_eq!(s.max_headers, 100);
        assert_eq!(s.max_uri_length, 8192);
        assert_eq!(s.max_body_size, 10 * 1024 * 1024);
        assert_eq!(s.max_drain_size, 65536);
        assert_eq!(s.header_read_timeout, Duration::from_secs(10));
        assert_eq!(s.body_read_timeout, Duration::from_secs(30));
        assert_eq!(s.write_timeout, Duration::from_secs(30));
        assert_eq!(s.sse_keepalive, Duration::from_secs(15));
        assert_eq!(s.keepalive_timeout, Duration::from_secs(75));
        assert_eq!(s.drain_timeout, Duration::from_secs(30));
        assert_eq!(s.server_name, "pinion");
        assert_eq!(s.log_level, LogLevel::Info);
        assert_eq!(s.log_format, LogFormat::Text);
        assert_eq!(s.database_url, None);
        assert_eq!(s.database_replica_urls, Vec::new());
        assert_eq!(s.pool_size, None);
        assert_eq!(s.db_connect_timeout, Duration::from_secs(5));
        assert_eq!(s.db_query_timeout, Duration::from_secs(30));
        assert_eq!(s.db_keepalive, Duration::from_secs(30));
        assert_eq!(s.db_user_timeout, Duration::from_secs(10));
        assert_eq!(s.replica_check_interval, Duration::from_secs(1));
        assert_eq!(s.sticky_window, Duration::from_secs(5));
        assert!(s.migrate_on_start);
        assert_eq!(s.migrations_dir, PathBuf::from("migrations"));
        assert!(s.security_headers);
        assert!(!s.hsts);
        assert_eq!(
            s.content_security_policy.as_deref(),
            Some("default-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'")
        );
        assert!(s.cors_allowed_origins.is_empty());
        assert!(!s.cors_allow_credentials);
        assert_eq!(s.cors_max_age, Duration::from_secs(600));
        let proxies: Vec<String> = s.trusted_proxies.iter().map(Cidr::to_string).collect();
        assert_eq!(proxies, ["127.0.0.1/32", "::1/128"]);
        assert!(s.request_id);
        assert!(!s.server_timing);
        assert!(!s.access_log);
        assert_eq!(s.access_log_sample.get(), 1.0);
        assert!(s.ratelimit_ietf_headers);
        assert!(s.rate_limit_policies.is_empty());
        assert_eq!(s.rate_limit_default, None);
        assert_eq!(s.rate_limit_store, RateLimitStore::Local);
        assert_eq!(s.rate_limit_max_keys, 100_000);
        assert_eq!(s.rate_limit_ipv6_prefix, 64);
        assert!(s.telemetry_enabled);
        assert_eq!(s.telemetry_drain_interval, Duration::from_secs(1));
        assert_eq!(s.telemetry_sample_ratio.get(), 0.01);
        assert_eq!(s.instances, 1);
        assert_eq!(s.require_version, None);
    }

    #[test]
    fn pool_sizes() {
        let with = |threads, pool_size| Settings {
            threads: Some(threads),
            pool_size,
            ..Settings::default()
        };
        // (threads, pool_size, effective_pool_size, pool_size_per_thread)
        let cases = [
            (1, None, 32, 32),
            (4, None, 32, 8),
            (24, None, 32, 2),
            (25, None, 33, 2),
            (64, None, 72, 2),
            (1024, None, 1032, 2),
            (4, Some(10), 10, 3),
            (4, Some(12), 12, 3),
            (4, Some(1), 1, 1),
            (1, Some(10_000), 10_000, 10_000),
            // Set in code, bypassing validation: still at least one.
            (4, Some(0), 1, 1),
        ];
        for (threads, pool_size, total, per_thread) in cases {
            let s = with(threads, pool_size);
            assert_eq!(s.effective_pool_size(), total, "{threads} {pool_size:?}");
            assert_eq!(
                s.pool_size_per_thread(),
                per_thread,
                "{threads} {pool_size:?}"
            );
        }
        let auto = Settings::default();
        assert!(auto.effective_pool_size() >= 32);
        assert!(auto.pool_size_per_thread() >= 1);
    }

    #[test]
    fn secrets_never_shown() {
        let s = Settings {
            database_url: Some(DatabaseUrl::parse("postgres://u:hunter2@h/db").expect("url")),
            database_replica_urls: vec![
                DatabaseUrl::parse("postgres://u:hunter3@r1/db").expect("url"),
                DatabaseUrl::parse("postgres://r2/db?password=hunter4").expect("url"),
            ],
            ..Settings::default()
        };
        for text in [s.render_masked(), format!("{s:?}"), format!("{s:#?}")] {
            assert!(!text.contains("hunter"), "{text}");
            assert!(text.contains("postgres://u:****@h/db"), "{text}");
            assert!(text.contains("postgres://u:****@r1/db"), "{text}");
            assert!(text.contains("postgres://r2/db?password=****"), "{text}");
        }
    }

    #[test]
    fn effective_threads() {
        let mut s = Settings::default();
        assert!(s.effective_threads() >= 1);
        s.threads = Some(3);
        assert_eq!(s.effective_threads(), 3);
        // Set in code, bypassing validation: still at least one thread.
        s.threads = Some(0);
        assert_eq!(s.effective_threads(), 1);
    }

    #[test]
    fn enum_names_match_their_choices() {
        for (name, v) in IoDriver::CHOICES {
            assert_eq!(v.as_str(), name);
            assert_eq!(v.to_string(), name);
        }
        for (name, v) in LogLevel::CHOICES {
            assert_eq!(v.as_str(), name);
        }
        for (name, v) in LogFormat::CHOICES {
            assert_eq!(v.as_str(), name);
        }
        for (name, v) in RateLimitStore::CHOICES {
            assert_eq!(v.as_str(), name);
            assert_eq!(v.to_string(), name);
        }
    }

    #[test]
    fn render_masked_lists_every_key_in_order() {
        let text = Settings::default().render_masked();
        let keys: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split(" = ").next().unwrap_or_default())
            .collect();
        let expected: Vec<&str> = Key::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(keys, expected);
        assert!(text.contains("threads = \"auto\"\n"), "{text}");
        assert!(text.contains("max_head_size = \"64KiB\"\n"), "{text}");
        assert!(text.contains("keepalive_timeout = \"75s\"\n"), "{text}");
        assert!(text.contains("io_driver = \"auto\"\n"), "{text}");
        assert!(text.contains("bind = \"0.0.0.0\"\n"), "{text}");
        assert!(text.contains("port = 8080\n"), "{text}");
        assert!(text.contains("database_url = \"\"\n"), "{text}");
        assert!(text.contains("database_replica_urls = []\n"), "{text}");
        assert!(text.contains("pool_size = \"auto\"\n"), "{text}");
        assert!(text.contains("migrate_on_start = true\n"), "{text}");
        assert!(text.contains("migrations_dir = \"migrations\"\n"), "{text}");
        assert!(text.contains("cors_allowed_origins = []\n"), "{text}");
        assert!(text.contains("cors_max_age = \"10m\"\n"), "{text}");
        assert!(
            text.contains("trusted_proxies = [\"127.0.0.1/32\", \"::1/128\"]\n"),
            "{text}"
        );
        assert!(text.contains("access_log_sample = 1.0\n"), "{text}");
        assert!(text.contains("rate_limit_policies = []\n"), "{text}");
        assert!(text.contains("rate_limit_default = \"\"\n"), "{text}");
        assert!(text.contains("rate_limit_store = \"local\"\n"), "{text}");
        assert!(text.contains("telemetry_sample_ratio = 0.01\n"), "{text}");
        assert!(text.contains("instances = 1\n"), "{text}");
        assert!(text.contains("require_version = \"\"\n"), "{text}");
    }
}
