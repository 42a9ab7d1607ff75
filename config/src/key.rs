//! The table of keys: each key's name, environment variable, rule and rendering, in one place
//! so that adding a key touches one `match` per concern and the compiler finds the rest.

use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::time::Duration;

use crate::cidr::Cidr;
use crate::database_url::DatabaseUrl;
use crate::job_queue::JobQueue;
use crate::named_database::NamedDatabase;
use crate::rate_policy::{self, RatePolicy};
use crate::secret::MASK;
use crate::secret_key::SecretKey;
use crate::settings::{
    Environment, IoDriver, LogFormat, LogLevel, RateLimitStore, Settings, MAX_INSTANCES,
    MAX_POOL_SIZE, MAX_THREADS,
};
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
/// Largest accepted `rate_limit_max_keys`, as for `cache_max_entries`: a guard against a typo
/// that would let the local store grow to gigabytes.
const MAX_RATE_LIMIT_KEYS: u64 = 100_000_000;

/// The longest `io_batch_wait`: past a few milliseconds a batch only adds latency.
const MAX_IO_BATCH_WAIT: Duration = Duration::from_millis(10);

/// A configuration key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key {
    Bind,
    Port,
    Threads,
    IoDriver,
    IoBatchWait,
    Backlog,
    MaxConnectionsPerThread,
    MaxHeadSize,
    MaxHeaders,
    MaxUriLength,
    MaxBodySize,
    MaxDrainSize,
    HeaderReadTimeout,
    BodyReadTimeout,
    WriteTimeout,
    SseKeepalive,
    KeepaliveTimeout,
    DrainTimeout,
    DrainGrace,
    HandoffSocket,
    ServerName,
    LogLevel,
    LogFormat,
    DatabaseUrl,
    DatabaseReplicaUrls,
    Databases,
    PoolSize,
    Instances,
    DbConnectTimeout,
    DbQueryTimeout,
    DbKeepalive,
    DbUserTimeout,
    ReplicaCheckInterval,
    StickyWindow,
    MigrateOnStart,
    MigrationsDir,
    StaticDir,
    CacheTtl,
    CacheMaxEntries,
    QueryCache,
    EventsRetention,
    EventsRetentionRows,
    EventsSubscriberQueue,
    JobsThreads,
    JobsQueues,
    JobsLease,
    JobsPollInterval,
    JobsRetryBase,
    SecurityHeaders,
    Hsts,
    ContentSecurityPolicy,
    CorsAllowedOrigins,
    CorsAllowCredentials,
    CorsMaxAge,
    TrustedProxies,
    Secret,
    Environment,
    SecretFallbacks,
    SessionIdleTimeout,
    SessionAbsoluteTimeout,
    RequestId,
    ServerTiming,
    AccessLog,
    AccessLogSample,
    RatelimitIetfHeaders,
    RateLimitPolicies,
    RateLimitDefault,
    RateLimitStore,
    RateLimitMaxKeys,
    RateLimitIpv6Prefix,
    TelemetryEnabled,
    TelemetryDrainInterval,
    TelemetrySampleRatio,
    RequireVersion,
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
    pub(crate) const ALL: [Key; 74] = [
        Key::Bind,
        Key::Port,
        Key::Threads,
        Key::IoDriver,
        Key::IoBatchWait,
        Key::Backlog,
        Key::MaxConnectionsPerThread,
        Key::MaxHeadSize,
        Key::MaxHeaders,
        Key::MaxUriLength,
        Key::MaxBodySize,
        Key::MaxDrainSize,
        Key::HeaderReadTimeout,
        Key::BodyReadTimeout,
        Key::WriteTimeout,
        Key::SseKeepalive,
        Key::KeepaliveTimeout,
        Key::DrainTimeout,
        Key::DrainGrace,
        Key::HandoffSocket,
        Key::ServerName,
        Key::LogLevel,
        Key::LogFormat,
        Key::DatabaseUrl,
        Key::DatabaseReplicaUrls,
        Key::Databases,
        Key::PoolSize,
        Key::Instances,
        Key::DbConnectTimeout,
        Key::DbQueryTimeout,
        Key::DbKeepalive,
        Key::DbUserTimeout,
        Key::ReplicaCheckInterval,
        Key::StickyWindow,
        Key::MigrateOnStart,
        Key::MigrationsDir,
        Key::StaticDir,
        Key::CacheTtl,
        Key::CacheMaxEntries,
        Key::QueryCache,
        Key::EventsRetention,
        Key::EventsRetentionRows,
        Key::EventsSubscriberQueue,
        Key::JobsThreads,
        Key::JobsQueues,
        Key::JobsLease,
        Key::JobsPollInterval,
        Key::JobsRetryBase,
        Key::SecurityHeaders,
        Key::Hsts,
        Key::ContentSecurityPolicy,
        Key::CorsAllowedOrigins,
        Key::CorsAllowCredentials,
        Key::CorsMaxAge,
        Key::TrustedProxies,
        Key::Secret,
        Key::Environment,
        Key::SecretFallbacks,
        Key::SessionIdleTimeout,
        Key::SessionAbsoluteTimeout,
        Key::RequestId,
        Key::ServerTiming,
        Key::AccessLog,
        Key::AccessLogSample,
        Key::RatelimitIetfHeaders,
        Key::RateLimitPolicies,
        Key::RateLimitDefault,
        Key::RateLimitStore,
        Key::RateLimitMaxKeys,
        Key::RateLimitIpv6Prefix,
        Key::TelemetryEnabled,
        Key::TelemetryDrainInterval,
        Key::TelemetrySampleRatio,
        Key::RequireVersion,
    ];

    /// The key in `pinion.toml`, and its environment variable.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Key::Bind => ("bind", "PINION_BIND"),
            Key::Port => ("port", "PINION_PORT"),
            Key::Threads => ("threads", "PINION_THREADS"),
            Key::IoDriver => ("io_driver", "PINION_IO_DRIVER"),
            Key::IoBatchWait => ("io_batch_wait", "PINION_IO_BATCH_WAIT"),
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
            Key::WriteTimeout => ("write_timeout", "PINION_WRITE_TIMEOUT"),
            Key::SseKeepalive => ("sse_keepalive", "PINION_SSE_KEEPALIVE"),
            Key::KeepaliveTimeout => ("keepalive_timeout", "PINION_KEEPALIVE_TIMEOUT"),
            Key::DrainTimeout => ("drain_timeout", "PINION_DRAIN_TIMEOUT"),
            Key::DrainGrace => ("drain_grace", "PINION_DRAIN_GRACE"),
            Key::HandoffSocket => ("handoff_socket", "PINION_HANDOFF_SOCKET"),
            Key::ServerName => ("server_name", "PINION_SERVER_NAME"),
            Key::LogLevel => ("log_level", "PINION_LOG_LEVEL"),
            Key::LogFormat => ("log_format", "PINION_LOG_FORMAT"),
            Key::DatabaseUrl => ("database_url", "PINION_DATABASE_URL"),
            Key::DatabaseReplicaUrls => ("database_replica_urls", "PINION_DATABASE_REPLICA_URLS"),
            Key::Databases => ("databases", "PINION_DATABASES"),
            Key::PoolSize => ("pool_size", "PINION_POOL_SIZE"),
            Key::Instances => ("instances", "PINION_INSTANCES"),
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
            Key::StaticDir => ("static_dir", "PINION_STATIC_DIR"),
            Key::CacheTtl => ("cache_ttl", "PINION_CACHE_TTL"),
            Key::CacheMaxEntries => ("cache_max_entries", "PINION_CACHE_MAX_ENTRIES"),
            Key::QueryCache => ("query_cache", "PINION_QUERY_CACHE"),
            Key::EventsRetention => ("events_retention", "PINION_EVENTS_RETENTION"),
            Key::EventsRetentionRows => ("events_retention_rows", "PINION_EVENTS_RETENTION_ROWS"),
            Key::EventsSubscriberQueue => {
                ("events_subscriber_queue", "PINION_EVENTS_SUBSCRIBER_QUEUE")
            }
            Key::JobsThreads => ("jobs_threads", "PINION_JOBS_THREADS"),
            Key::JobsQueues => ("jobs_queues", "PINION_JOBS_QUEUES"),
            Key::JobsLease => ("jobs_lease", "PINION_JOBS_LEASE"),
            Key::JobsPollInterval => ("jobs_poll_interval", "PINION_JOBS_POLL_INTERVAL"),
            Key::JobsRetryBase => ("jobs_retry_base", "PINION_JOBS_RETRY_BASE"),
            Key::SecurityHeaders => ("security_headers", "PINION_SECURITY_HEADERS"),
            Key::Hsts => ("hsts", "PINION_HSTS"),
            Key::ContentSecurityPolicy => {
                ("content_security_policy", "PINION_CONTENT_SECURITY_POLICY")
            }
            Key::CorsAllowedOrigins => ("cors_allowed_origins", "PINION_CORS_ALLOWED_ORIGINS"),
            Key::CorsAllowCredentials => {
                ("cors_allow_credentials", "PINION_CORS_ALLOW_CREDENTIALS")
            }
            Key::CorsMaxAge => ("cors_max_age", "PINION_CORS_MAX_AGE"),
            Key::TrustedProxies => ("trusted_proxies", "PINION_TRUSTED_PROXIES"),
            Key::Secret => ("secret_key", "PINION_SECRET_KEY"),
            Key::Environment => ("environment", "PINION_ENVIRONMENT"),
            Key::SecretFallbacks => ("secret_key_fallbacks", "PINION_SECRET_KEY_FALLBACKS"),
            Key::SessionIdleTimeout => ("session_idle_timeout", "PINION_SESSION_IDLE_TIMEOUT"),
            Key::SessionAbsoluteTimeout => (
                "session_absolute_timeout",
                "PINION_SESSION_ABSOLUTE_TIMEOUT",
            ),
            Key::RequestId => ("request_id", "PINION_REQUEST_ID"),
            Key::ServerTiming => ("server_timing", "PINION_SERVER_TIMING"),
            Key::AccessLog => ("access_log", "PINION_ACCESS_LOG"),
            Key::AccessLogSample => ("access_log_sample", "PINION_ACCESS_LOG_SAMPLE"),
            Key::RatelimitIetfHeaders => {
                ("ratelimit_ietf_headers", "PINION_RATELIMIT_IETF_HEADERS")
            }
            Key::RateLimitPolicies => ("rate_limit_policies", "PINION_RATE_LIMIT_POLICIES"),
            Key::RateLimitDefault => ("rate_limit_default", "PINION_RATE_LIMIT_DEFAULT"),
            Key::RateLimitStore => ("rate_limit_store", "PINION_RATE_LIMIT_STORE"),
            Key::RateLimitMaxKeys => ("rate_limit_max_keys", "PINION_RATE_LIMIT_MAX_KEYS"),
            Key::RateLimitIpv6Prefix => ("rate_limit_ipv6_prefix", "PINION_RATE_LIMIT_IPV6_PREFIX"),
            Key::TelemetryEnabled => ("telemetry_enabled", "PINION_TELEMETRY_ENABLED"),
            Key::TelemetryDrainInterval => (
                "telemetry_drain_interval",
                "PINION_TELEMETRY_DRAIN_INTERVAL",
            ),
            Key::TelemetrySampleRatio => {
                ("telemetry_sample_ratio", "PINION_TELEMETRY_SAMPLE_RATIO")
            }
            Key::RequireVersion => ("require_version", "PINION_REQUIRE_VERSION"),
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
            Key::IoBatchWait => {
                let d = value::duration(raw)?;
                if d > MAX_IO_BATCH_WAIT {
                    return Err("must be at most 10ms".to_string());
                }
                s.io_batch_wait = d;
            }
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
            Key::WriteTimeout => s.write_timeout = timeout(raw)?,
            Key::SseKeepalive => s.sse_keepalive = timeout(raw)?,
            Key::KeepaliveTimeout => s.keepalive_timeout = timeout(raw)?,
            Key::DrainTimeout => s.drain_timeout = timeout(raw)?,
            Key::DrainGrace => s.drain_grace = window(raw)?,
            Key::HandoffSocket => s.handoff_socket = socket_path(value::string(raw)?)?,
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
            Key::Databases => {
                let mut all: Vec<NamedDatabase> = Vec::new();
                for item in value::string_list(raw, NamedDatabase::split_list)? {
                    let db = NamedDatabase::parse(item)?;
                    if all.iter().any(|d| d.name == db.name) {
                        return Err(format!("the name `{}` is given twice", db.name));
                    }
                    all.push(db);
                }
                s.databases = all;
            }
            Key::PoolSize => {
                s.pool_size = match raw {
                    Raw::Str(text) if text.trim().eq_ignore_ascii_case("auto") => None,
                    _ => Some(int(raw, 1, MAX_POOL_SIZE as u64).map_err(|reason| {
                        format!("{reason}, or \"auto\" for max(threads + 8, 32)")
                    })?),
                }
            }
            Key::Instances => s.instances = int(raw, 1, MAX_INSTANCES as u64)?,
            Key::DbConnectTimeout => s.db_connect_timeout = timeout(raw)?,
            Key::DbQueryTimeout => s.db_query_timeout = timeout(raw)?,
            Key::DbKeepalive => s.db_keepalive = timeout(raw)?,
            Key::DbUserTimeout => s.db_user_timeout = timeout(raw)?,
            Key::ReplicaCheckInterval => s.replica_check_interval = timeout(raw)?,
            Key::StickyWindow => s.sticky_window = window(raw)?,
            Key::MigrateOnStart => s.migrate_on_start = value::boolean(raw)?,
            Key::MigrationsDir => s.migrations_dir = directory(value::string(raw)?)?,
            Key::StaticDir => s.static_dir = directory(value::string(raw)?)?,
            Key::CacheTtl => s.cache_ttl = timeout(raw)?,
            Key::CacheMaxEntries => s.cache_max_entries = int(raw, 1, 100_000_000)?,
            Key::QueryCache => s.query_cache = value::boolean(raw)?,
            Key::EventsRetention => {
                let d = value::duration(raw)?;
                if d.is_zero() || d > MAX_EVENTS_RETENTION {
                    return Err("must be greater than 0 and at most 720h".to_string());
                }
                s.events_retention = d;
            }
            Key::EventsRetentionRows => s.events_retention_rows = int(raw, 1, 1_000_000_000)?,
            Key::EventsSubscriberQueue => s.events_subscriber_queue = int(raw, 1, 100_000)?,
            Key::JobsThreads => s.jobs_threads = int(raw, 0, MAX_THREADS as u64)?,
            Key::JobsQueues => s.jobs_queues = JobQueue::parse_list(value::string(raw)?)?,
            Key::JobsLease => {
                let d = timeout(raw)?;
                if d < Duration::from_secs(1) {
                    return Err("must be at least 1s (it is renewed every third of it)".to_string());
                }
                s.jobs_lease = d;
            }
            Key::JobsPollInterval => s.jobs_poll_interval = timeout(raw)?,
            Key::JobsRetryBase => s.jobs_retry_base = timeout(raw)?,
            Key::SecurityHeaders => s.security_headers = value::boolean(raw)?,
            Key::Hsts => s.hsts = value::boolean(raw)?,
            Key::ContentSecurityPolicy => {
                s.content_security_policy = content_security_policy(value::string(raw)?)?
            }
            Key::CorsAllowedOrigins => s.cors_allowed_origins = list(raw, "origin", origin)?,
            Key::CorsAllowCredentials => s.cors_allow_credentials = value::boolean(raw)?,
            Key::CorsMaxAge => s.cors_max_age = window(raw)?,
            Key::TrustedProxies => s.trusted_proxies = list(raw, "network", Cidr::parse)?,
            Key::Secret => {
                s.secret_key = match value::string(raw)? {
                    text if text.trim().is_empty() => None,
                    text => Some(SecretKey::parse(text)?),
                }
            }
            Key::SecretFallbacks => {
                s.secret_key_fallbacks = list(raw, "key", SecretKey::parse)?;
            }
            Key::Environment => s.environment = value::one_of(raw, &Environment::CHOICES)?,
            Key::SessionIdleTimeout => s.session_idle_timeout = timeout(raw)?,
            Key::SessionAbsoluteTimeout => s.session_absolute_timeout = timeout(raw)?,
            Key::RequestId => s.request_id = value::boolean(raw)?,
            Key::ServerTiming => s.server_timing = value::boolean(raw)?,
            Key::AccessLog => s.access_log = value::boolean(raw)?,
            Key::AccessLogSample => s.access_log_sample = value::ratio(raw)?,
            Key::RatelimitIetfHeaders => s.ratelimit_ietf_headers = value::boolean(raw)?,
            Key::RateLimitPolicies => {
                let policies = list(raw, "policy", |item| RatePolicy::parse(item, MAX_TIMEOUT))?;
                for (i, policy) in policies.iter().enumerate() {
                    if policies[..i].iter().any(|p| p.name == policy.name) {
                        return Err(format!("policy name `{}` is given twice", policy.name));
                    }
                }
                s.rate_limit_policies = policies;
            }
            Key::RateLimitDefault => {
                s.rate_limit_default = match value::string(raw)?.trim() {
                    "" => None,
                    name => Some(
                        rate_policy::policy_name(name)
                            .map_err(|reason| format!("must be \"\" or a policy name: {reason}"))?
                            .to_string(),
                    ),
                }
            }
            Key::RateLimitStore => {
                s.rate_limit_store = value::one_of(raw, &RateLimitStore::CHOICES)?
            }
            Key::RateLimitMaxKeys => s.rate_limit_max_keys = int(raw, 1, MAX_RATE_LIMIT_KEYS)?,
            Key::RateLimitIpv6Prefix => s.rate_limit_ipv6_prefix = int(raw, 1, 128)?,
            Key::TelemetryEnabled => s.telemetry_enabled = value::boolean(raw)?,
            Key::TelemetryDrainInterval => s.telemetry_drain_interval = timeout(raw)?,
            Key::TelemetrySampleRatio => s.telemetry_sample_ratio = value::ratio(raw)?,
            Key::RequireVersion => {
                s.require_version = crate::version::requirement(value::string(raw)?)?
            }
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
            Key::IoBatchWait => value::render_duration(s.io_batch_wait),
            Key::Backlog => s.backlog.to_string(),
            Key::MaxConnectionsPerThread => s.max_connections_per_thread.to_string(),
            Key::MaxHeadSize => value::render_size(s.max_head_size as u64),
            Key::MaxHeaders => s.max_headers.to_string(),
            Key::MaxUriLength => value::render_size(s.max_uri_length as u64),
            Key::MaxBodySize => value::render_size(s.max_body_size),
            Key::MaxDrainSize => value::render_size(s.max_drain_size),
            Key::HeaderReadTimeout => value::render_duration(s.header_read_timeout),
            Key::BodyReadTimeout => value::render_duration(s.body_read_timeout),
            Key::WriteTimeout => value::render_duration(s.write_timeout),
            Key::SseKeepalive => value::render_duration(s.sse_keepalive),
            Key::KeepaliveTimeout => value::render_duration(s.keepalive_timeout),
            Key::DrainTimeout => value::render_duration(s.drain_timeout),
            Key::DrainGrace => value::render_duration(s.drain_grace),
            Key::HandoffSocket => value::render_string(
                &s.handoff_socket
                    .as_deref()
                    .map(|p| p.to_string_lossy())
                    .unwrap_or_default(),
            ),
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
            Key::Databases => {
                value::render_string_array(s.databases.iter().map(NamedDatabase::masked))
            }
            Key::PoolSize => match s.pool_size {
                Some(n) => n.to_string(),
                None => value::render_string("auto"),
            },
            Key::Instances => s.instances.to_string(),
            Key::DbConnectTimeout => value::render_duration(s.db_connect_timeout),
            Key::DbQueryTimeout => value::render_duration(s.db_query_timeout),
            Key::DbKeepalive => value::render_duration(s.db_keepalive),
            Key::DbUserTimeout => value::render_duration(s.db_user_timeout),
            Key::ReplicaCheckInterval => value::render_duration(s.replica_check_interval),
            Key::StickyWindow => value::render_duration(s.sticky_window),
            Key::MigrateOnStart => s.migrate_on_start.to_string(),
            Key::MigrationsDir => value::render_string(&s.migrations_dir.to_string_lossy()),
            Key::StaticDir => value::render_string(&s.static_dir.to_string_lossy()),
            Key::CacheTtl => value::render_duration(s.cache_ttl),
            Key::CacheMaxEntries => s.cache_max_entries.to_string(),
            Key::QueryCache => s.query_cache.to_string(),
            Key::EventsRetention => value::render_duration(s.events_retention),
            Key::EventsRetentionRows => s.events_retention_rows.to_string(),
            Key::EventsSubscriberQueue => s.events_subscriber_queue.to_string(),
            Key::JobsThreads => s.jobs_threads.to_string(),
            Key::JobsQueues => value::render_string(&JobQueue::render_list(&s.jobs_queues)),
            Key::JobsLease => value::render_duration(s.jobs_lease),
            Key::JobsPollInterval => value::render_duration(s.jobs_poll_interval),
            Key::JobsRetryBase => value::render_duration(s.jobs_retry_base),
            Key::SecurityHeaders => s.security_headers.to_string(),
            Key::Hsts => s.hsts.to_string(),
            Key::ContentSecurityPolicy => {
                return Rendered::Str(s.content_security_policy.as_deref().unwrap_or_default())
            }
            Key::CorsAllowedOrigins => value::render_string_array(s.cors_allowed_origins.clone()),
            Key::CorsAllowCredentials => s.cors_allow_credentials.to_string(),
            Key::CorsMaxAge => value::render_duration(s.cors_max_age),
            Key::TrustedProxies => {
                value::render_string_array(s.trusted_proxies.iter().map(Cidr::to_string))
            }
            // Masked here: a `SecretKey` has no printable form, and absent must stay `""`.
            Key::Environment => value::render_string(s.environment.as_str()),
            Key::SessionIdleTimeout => value::render_duration(s.session_idle_timeout),
            Key::SessionAbsoluteTimeout => value::render_duration(s.session_absolute_timeout),
            Key::Secret => value::render_string(match s.secret_key {
                Some(_) => MASK,
                None => "",
            }),
            Key::SecretFallbacks => {
                value::render_string_array(s.secret_key_fallbacks.iter().map(|_| MASK.to_string()))
            }
            Key::RequestId => s.request_id.to_string(),
            Key::ServerTiming => s.server_timing.to_string(),
            Key::AccessLog => s.access_log.to_string(),
            Key::AccessLogSample => s.access_log_sample.to_string(),
            Key::RatelimitIetfHeaders => s.ratelimit_ietf_headers.to_string(),
            Key::RateLimitPolicies => {
                value::render_string_array(s.rate_limit_policies.iter().map(RatePolicy::render))
            }
            Key::RateLimitDefault => {
                return Rendered::Str(s.rate_limit_default.as_deref().unwrap_or_default())
            }
            Key::RateLimitStore => value::render_string(s.rate_limit_store.as_str()),
            Key::RateLimitMaxKeys => s.rate_limit_max_keys.to_string(),
            Key::RateLimitIpv6Prefix => s.rate_limit_ipv6_prefix.to_string(),
            Key::TelemetryEnabled => s.telemetry_enabled.to_string(),
            Key::TelemetryDrainInterval => value::render_duration(s.telemetry_drain_interval),
            Key::TelemetrySampleRatio => s.telemetry_sample_ratio.to_string(),
            Key::RequireVersion => value::render_string(
                &s.require_version
                    .as_ref()
                    .map_or(String::new(), ToString::to_string),
            ),
        };
        Rendered::Toml(text)
    }
}

/// The longest `events_retention`: a month of events is more than any reconnecting page needs.
const MAX_EVENTS_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

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

/// The rules between keys, checked once every layer (file, environment, command line) is
/// applied, since each key alone may come from a different layer.
///
/// # Errors
///
/// The first rule broken, as the key to blame and the reason, which names the other key.
pub(crate) fn check_combinations(s: &Settings) -> Result<(), (Key, String)> {
    if s.environment == Environment::Production && s.secret_key.is_none() {
        return Err((
            Key::Secret,
            "must be set when `environment` is \"production\": without it every process signs \
             cookies with a random key of its own, so sessions end at each restart and do not \
             verify on the other instances; set secret_key (or PINION_SECRET_KEY) to at least \
             32 random bytes"
                .to_string(),
        ));
    }
    if s.drain_grace >= s.drain_timeout {
        return Err((
            Key::DrainGrace,
            format!(
                "must be shorter than `drain_timeout` ({}): the grace is part of the drain",
                value::render_duration_unquoted(s.drain_timeout)
            ),
        ));
    }
    if s.session_idle_timeout > s.session_absolute_timeout {
        return Err((
            Key::SessionIdleTimeout,
            format!(
                "must not be longer than `session_absolute_timeout` ({}): a session ends at \
                 the absolute timeout whatever its activity",
                value::render_duration_unquoted(s.session_absolute_timeout)
            ),
        ));
    }
    if s.cors_allow_credentials && s.cors_allowed_origins.iter().any(|o| o == "*") {
        return Err((
            Key::CorsAllowCredentials,
            "cannot be true while `cors_allowed_origins` contains \"*\": browsers refuse \
             credentials with a wildcard origin, and allowing every origin with credentials \
             would let any site act as a signed-in user; list the origins instead"
                .to_string(),
        ));
    }
    if let Some(name) = &s.rate_limit_default {
        if !s.rate_limit_policies.iter().any(|p| &p.name == name) {
            let known = match s.rate_limit_policies.is_empty() {
                true => "it is empty".to_string(),
                false => {
                    let names: Vec<String> = s
                        .rate_limit_policies
                        .iter()
                        .map(|p| format!("`{}`", p.name))
                        .collect();
                    format!("it has {}", names.join(", "))
                }
            };
            return Err((
                Key::RateLimitDefault,
                format!("names no policy in `rate_limit_policies` ({known})"),
            ));
        }
    }
    if s.rate_limit_store == RateLimitStore::Postgres && s.database_url.is_none() {
        return Err((
            Key::RateLimitStore,
            "\"postgres\" keeps the state in the primary database, but `database_url` is \
             empty; set it, or use \"local\""
                .to_string(),
        ));
    }
    Ok(())
}

/// A list of `what`s (an array, or comma-separated in the environment), each parsed by
/// `parse`; the failing item is numbered when there are several.
fn list<T>(
    raw: &Raw<'_>,
    what: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    let items = value::string_list(raw, value::split_commas)?;
    let several = items.len() > 1;
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            parse(item).map_err(|reason| match several {
                true => format!("{what} {}: {reason}", i + 1),
                false => reason,
            })
        })
        .collect()
}

/// The `Content-Security-Policy` value: `""` (or spaces) for none, else visible ASCII and
/// spaces, so that it can be written into a response head as it is and cannot inject a header
/// line.
fn content_security_policy(text: &str) -> Result<Option<String>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if !text.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
        return Err(
            "must be visible ASCII characters and spaces, without control characters \
                    (it is sent as the Content-Security-Policy header)"
                .to_string(),
        );
    }
    Ok(Some(text.to_string()))
}

/// A CORS origin: `*`, or `scheme://host[:port]` with scheme `http` or `https`, normalized the
/// way browsers serialize the `Origin` header (lowercase, default port left out, IPv6 literal
/// compressed) so that the server can compare it exactly.
fn origin(text: &str) -> Result<String, String> {
    const EXPECTED: &str = "\"*\" or an origin such as \"https://example.com\" or \
                            \"http://localhost:3000\"";
    let text = text.trim();
    if text == "*" {
        return Ok(text.to_string());
    }
    let (scheme, rest) = text
        .split_once("://")
        .ok_or_else(|| format!("must be {EXPECTED}"))?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => {
            return Err(format!(
                "must start with http:// or https://; expected {EXPECTED}"
            ))
        }
    };
    if rest.contains(['/', '?', '#']) {
        return Err(
            "must not have a path, query or trailing slash: an origin is scheme://host[:port]"
                .to_string(),
        );
    }
    if rest.contains('@') {
        return Err("must not have a user name: an origin is scheme://host[:port]".to_string());
    }
    let (host, port) = match rest.strip_prefix('[') {
        Some(literal) => {
            let (addr, tail) = literal
                .split_once(']')
                .ok_or_else(|| "has an unclosed `[` in its host".to_string())?;
            let addr: Ipv6Addr = addr
                .parse()
                .map_err(|_| format!("has `[{addr}]` as host, which is not an IPv6 address"))?;
            let port = match tail {
                "" => None,
                _ => Some(tail.strip_prefix(':').ok_or_else(|| {
                    "must be scheme://host[:port]; found text after the host".to_string()
                })?),
            };
            (format!("[{addr}]"), port)
        }
        None => {
            let (host, port) = match rest.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            };
            if host.is_empty() {
                return Err("must name a host: an origin is scheme://host[:port]".to_string());
            }
            if !host.is_ascii() {
                return Err(
                    "must be ASCII; write an internationalized domain in punycode (xn--...), \
                     as browsers send it"
                        .to_string(),
                );
            }
            if !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
            {
                return Err(format!(
                    "has host `{host}`; a host is letters, digits, `.`, `-` and `_`"
                ));
            }
            (host.to_ascii_lowercase(), port)
        }
    };
    let port = match port {
        None => String::new(),
        Some(port) => match port.parse::<u16>() {
            Ok(n) if n >= 1 && port.bytes().all(|b| b.is_ascii_digit()) => {
                match n == default_port {
                    true => String::new(),
                    false => format!(":{n}"),
                }
            }
            _ => {
                return Err(format!(
                    "has port `{port}`; it must be an integer in 1..=65535"
                ))
            }
        },
    };
    Ok(format!("{scheme}://{host}{port}"))
}

/// A directory path: not empty, and without control characters (a NUL cannot be in a path; a
/// newline is a pasting mistake).
/// A Unix socket's path, or none for `""`. The kernel limits a socket path to 107 bytes.
fn socket_path(path: &str) -> Result<Option<PathBuf>, String> {
    if path.is_empty() {
        return Ok(None);
    }
    if path.chars().any(char::is_control) {
        return Err("must not contain control characters".to_string());
    }
    if path.len() > 107 {
        return Err(format!(
            "is {} bytes long; a Unix socket path has at most 107",
            path.len()
        ));
    }
    Ok(Some(PathBuf::from(path)))
}

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
    fn origins() {
        for (text, expected) in [
            ("*", "*"),
            ("https://example.com", "https://example.com"),
            (" HTTPS://Example.COM ", "https://example.com"),
            ("http://localhost:3000", "http://localhost:3000"),
            ("https://example.com:443", "https://example.com"),
            ("http://example.com:80", "http://example.com"),
            ("http://example.com:443", "http://example.com:443"),
            ("http://[::1]:8080", "http://[::1]:8080"),
            ("http://[0:0:0:0:0:0:0:1]", "http://[::1]"),
            ("http://127.0.0.1:5173", "http://127.0.0.1:5173"),
            (
                "https://xn--bcher-kva.example",
                "https://xn--bcher-kva.example",
            ),
        ] {
            assert_eq!(origin(text).as_deref(), Ok(expected), "{text:?}");
            assert_eq!(origin(expected).as_deref(), Ok(expected), "{expected:?}");
        }
        for (text, reason) in [
            ("example.com", "must be \"*\" or an origin"),
            ("", "must be \"*\" or an origin"),
            ("null", "must be \"*\" or an origin"),
            ("ftp://example.com", "must start with http:// or https://"),
            ("https://example.com/", "trailing slash"),
            ("https://example.com/app", "must not have a path"),
            ("https://example.com?x", "must not have a path, query"),
            ("https://u@example.com", "user name"),
            ("https://", "must name a host"),
            ("https://:8080", "must name a host"),
            ("https://bücher.example", "punycode"),
            ("https://exa mple.com", "has host `exa mple.com`"),
            ("https://*.example.com", "has host `*.example.com`"),
            ("https://example.com:0", "has port `0`"),
            ("https://example.com:65536", "has port `65536`"),
            ("https://example.com:", "has port ``"),
            ("https://example.com:+1", "has port `+1`"),
            ("http://[::1", "unclosed"),
            ("http://[nope]", "not an IPv6 address"),
            ("http://[::1]x", "text after the host"),
        ] {
            let err = origin(text).expect_err(text);
            assert!(err.contains(reason), "{text:?}: {err}");
        }
    }

    #[test]
    fn content_security_policies() {
        assert_eq!(content_security_policy(""), Ok(None));
        assert_eq!(content_security_policy("  "), Ok(None));
        assert_eq!(
            content_security_policy(" default-src 'none' "),
            Ok(Some("default-src 'none'".to_string()))
        );
        for bad in ["a\r\nSet-Cookie: x", "a\tb", "a\0b", "script-src 'é'"] {
            assert!(content_security_policy(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn combinations() {
        let ok = Settings::default();
        assert_eq!(check_combinations(&ok), Ok(()));

        let wildcard = Settings {
            cors_allowed_origins: vec!["https://a.example".to_string(), "*".to_string()],
            cors_allow_credentials: true,
            ..Settings::default()
        };
        let (key, reason) = check_combinations(&wildcard).expect_err("credentials with *");
        assert_eq!(key, Key::CorsAllowCredentials);
        assert!(reason.contains("wildcard"), "{reason}");
        let listed = Settings {
            cors_allowed_origins: vec!["https://a.example".to_string()],
            ..wildcard
        };
        assert_eq!(check_combinations(&listed), Ok(()));

        let policy = RatePolicy::parse("api=100/60s", MAX_TIMEOUT).expect("policy");
        let missing = Settings {
            rate_limit_default: Some("web".to_string()),
            rate_limit_policies: vec![policy],
            ..Settings::default()
        };
        let (key, reason) = check_combinations(&missing).expect_err("unknown default");
        assert_eq!(key, Key::RateLimitDefault);
        assert!(reason.contains("it has `api`"), "{reason}");
        let found = Settings {
            rate_limit_default: Some("api".to_string()),
            ..missing
        };
        assert_eq!(check_combinations(&found), Ok(()));

        let postgres = Settings {
            rate_limit_store: RateLimitStore::Postgres,
            ..Settings::default()
        };
        let (key, reason) = check_combinations(&postgres).expect_err("no database");
        assert_eq!(key, Key::RateLimitStore);
        assert!(reason.contains("`database_url` is empty"), "{reason}");
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
