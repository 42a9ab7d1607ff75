//! The connections a deployment may open to its primary, against what the primary allows:
//! `instances` processes, each with its threads' pools, pinned and pipeline connections and
//! the query cache's listener, must fit under `max_connections` less the reserved slots, or
//! PostgreSQL refuses the connections past it ("sorry, too many clients already") at the worst
//! moment, under load, when the pools grow.
//!
//! [`ConnectionBudget`] and [`ServerLimits`] are the arithmetic, [`read_limits`] asks the
//! primary; `pinion serve` logs the warning at start-up and `pinion check` prints it.

use pinion_config::Settings;
use pinion_orm::tokio_postgres::types::ToSql;
use pinion_orm::{ConnectionManager, DbConfig, CONNECTIONS_BESIDES_POOL};

/// The most connections one deployment may hold open to its primary, from the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionBudget {
    /// Processes sharing the primary (`instances`).
    pub instances: u64,
    /// Worker threads per process: the HTTP workers and the background-job workers
    /// (`jobs_threads`), each with its own connections.
    pub threads: u64,
    /// Pooled connections per thread (`pool_size` shared out, rounded up).
    pub pool_per_thread: u64,
    /// Whether each process keeps the query cache's listening connection.
    pub listener: bool,
}

impl ConnectionBudget {
    /// The budget `settings` imply; every thread counted at its full pool, since pools grow
    /// to it under load.
    pub fn from_settings(settings: &Settings) -> ConnectionBudget {
        ConnectionBudget {
            instances: settings.instances as u64,
            threads: (settings.effective_threads() + settings.jobs_threads) as u64,
            pool_per_thread: settings.pool_size_per_thread() as u64,
            listener: settings.query_cache && settings.database_url.is_some(),
        }
    }

    /// Connections one process may open to the primary: per thread its pool and the
    /// connections besides it, plus the listener.
    pub fn per_instance(&self) -> u64 {
        let per_thread = self
            .pool_per_thread
            .saturating_add(CONNECTIONS_BESIDES_POOL as u64);
        self.threads
            .saturating_mul(per_thread)
            .saturating_add(u64::from(self.listener))
    }

    /// Connections the whole deployment may open to the primary.
    pub fn total(&self) -> u64 {
        self.instances.saturating_mul(self.per_instance())
    }

    /// The warning to give when the deployment may open more connections than `limits`
    /// allow, naming the numbers and the formula; `None` when it fits.
    pub fn check(&self, limits: &ServerLimits) -> Option<String> {
        let available = limits.available();
        if self.total() <= available {
            return None;
        }
        let listener = match self.listener {
            true => " + 1 (the query cache's listener)",
            false => "",
        };
        Some(format!(
            "the primary may refuse connections: instances × per instance = {} × {} = {} > \
             max_connections − reserved = {} − {} = {}, where per instance = threads × \
             (pool_size per thread + {CONNECTIONS_BESIDES_POOL} (pinned and pipeline)){listener} \
             = {} × ({} + {CONNECTIONS_BESIDES_POOL}){}; lower pool_size, threads or jobs_threads \
             (threads counts the HTTP and the job workers), raise max_connections, or put a \
             connection pooler (PgBouncer) in front",
            self.instances,
            self.per_instance(),
            self.total(),
            limits.max_connections,
            limits.reserved(),
            available,
            self.threads,
            self.pool_per_thread,
            match self.listener {
                true => " + 1",
                false => "",
            },
        ))
    }
}

/// The connection limits a PostgreSQL server reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// `max_connections`.
    pub max_connections: u64,
    /// `superuser_reserved_connections`: slots only superusers may take.
    pub superuser_reserved: u64,
    /// `reserved_connections` (PostgreSQL 16 and later, 0 before): slots for roles with
    /// `pg_use_reserved_connections`.
    pub reserved: u64,
}

impl ServerLimits {
    /// The slots reserved for others than an ordinary application role.
    pub fn reserved(&self) -> u64 {
        self.superuser_reserved.saturating_add(self.reserved)
    }

    /// The connections an ordinary role may open.
    pub fn available(&self) -> u64 {
        self.max_connections.saturating_sub(self.reserved())
    }

    /// The limits from `(name, setting)` rows of `pg_settings`; a setting that is absent (as
    /// `reserved_connections` before PostgreSQL 16) counts 0.
    ///
    /// # Errors
    /// When `max_connections` is missing or a setting is not a number.
    pub fn from_settings<'a>(
        rows: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<ServerLimits, String> {
        let mut max_connections = None;
        let mut limits = ServerLimits {
            max_connections: 0,
            superuser_reserved: 0,
            reserved: 0,
        };
        for (name, setting) in rows {
            let n: u64 = setting
                .trim()
                .parse()
                .map_err(|_| format!("{name} is {setting:?}, not a number"))?;
            match name {
                "max_connections" => max_connections = Some(n),
                "superuser_reserved_connections" => limits.superuser_reserved = n,
                "reserved_connections" => limits.reserved = n,
                _ => {}
            }
        }
        limits.max_connections = max_connections.ok_or("the server has no max_connections")?;
        Ok(limits)
    }
}

/// Reads the primary's [`ServerLimits`] over one connection of its own, dialed once (within
/// `db_connect_timeout`: an unreachable primary answers quickly, not after retries), on a
/// runtime of its own. `None` without a database.
///
/// # Errors
/// When the primary cannot be reached or does not answer within `db_query_timeout`; the
/// message names no password.
pub fn read_limits(settings: &Settings) -> Option<Result<ServerLimits, String>> {
    let url = settings.database_url.as_ref()?;
    let mut cfg = DbConfig::new(url.as_str(), Vec::new());
    cfg.pool_size_per_thread = 1;
    cfg.connect = crate::startup::connect_options(settings);
    cfg.query_timeout = settings.db_query_timeout;
    let query_timeout = settings.db_query_timeout;
    let read = async move {
        let db = ConnectionManager::start(&cfg).map_err(|e| e.to_string())?;
        let client = db.primary().pooled().await.map_err(|e| e.to_string())?;
        let names = [
            "max_connections",
            "superuser_reserved_connections",
            "reserved_connections",
        ];
        let names: &[&str] = &names;
        let params: [&(dyn ToSql + Sync); 1] = [&names];
        let query = client.client().query(
            "SELECT name, setting FROM pg_settings WHERE name = ANY($1)",
            &params,
        );
        let rows = match monoio::time::timeout(query_timeout, query).await {
            Ok(rows) => rows.map_err(|e| e.to_string())?,
            Err(_) => return Err("the primary did not answer in time".to_string()),
        };
        let pairs: Vec<(String, String)> = rows
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<_, pinion_orm::tokio_postgres::Error>>()
            .map_err(|e| e.to_string())?;
        ServerLimits::from_settings(pairs.iter().map(|(n, s)| (n.as_str(), s.as_str())))
    };
    Some(crate::startup::on_runtime(read).and_then(|r| r))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(instances: u64, threads: u64, pool: u64, listener: bool) -> ConnectionBudget {
        ConnectionBudget {
            instances,
            threads,
            pool_per_thread: pool,
            listener,
        }
    }

    /// PostgreSQL's defaults: 100 connections, 3 for superusers, none otherwise reserved.
    const DEFAULTS: ServerLimits = ServerLimits {
        max_connections: 100,
        superuser_reserved: 3,
        reserved: 0,
    };

    #[test]
    fn per_instance_counts_pools_the_connections_besides_them_and_the_listener() {
        assert_eq!(budget(1, 1, 32, true).per_instance(), 35);
        assert_eq!(budget(1, 1, 32, false).per_instance(), 34);
        assert_eq!(budget(1, 4, 8, true).per_instance(), 41);
        assert_eq!(budget(3, 4, 8, true).total(), 123);
        assert_eq!(
            budget(100_000, 1024, 10_000, true).total(),
            1_024_204_900_000
        );
        assert_eq!(budget(u64::MAX, u64::MAX, u64::MAX, true).total(), u64::MAX);
    }

    #[test]
    fn the_settings_give_the_budget() {
        let source = pinion_config::Source::new().with_env([
            ("PINION_THREADS", "4"),
            ("PINION_POOL_SIZE", "10"),
            ("PINION_INSTANCES", "3"),
            ("DATABASE_URL", "postgres://app@db/app"),
        ]);
        let settings = Settings::load(&source).expect("settings");
        // Four HTTP workers and the one background-job thread `jobs_threads` gives by default.
        assert_eq!(
            ConnectionBudget::from_settings(&settings),
            budget(3, 5, 3, true)
        );
        let no_jobs = Settings {
            jobs_threads: 0,
            ..settings.clone()
        };
        assert_eq!(ConnectionBudget::from_settings(&no_jobs).threads, 4);
        let without_cache = Settings {
            query_cache: false,
            ..settings
        };
        assert!(!ConnectionBudget::from_settings(&without_cache).listener);
    }

    #[test]
    fn a_deployment_that_fits_is_not_warned() {
        // 2 × 35 = 70 ≤ 97; 97 exactly fits too.
        assert_eq!(budget(2, 1, 32, true).check(&DEFAULTS), None);
        assert_eq!(budget(1, 1, 95, false).check(&DEFAULTS), None);
    }

    #[test]
    fn a_deployment_over_the_limit_is_warned_with_the_numbers() {
        let warning = budget(3, 1, 32, true)
            .check(&DEFAULTS)
            .expect("3 × 35 = 105 > 97");
        assert!(
            warning.contains(
                "instances × per instance = 3 × 35 = 105 > max_connections − reserved = \
                 100 − 3 = 97"
            ),
            "{warning}"
        );
        assert!(warning.contains("= 1 × (32 + 2) + 1;"), "{warning}");
        assert!(warning.contains("the query cache's listener"), "{warning}");
        // One over, on PostgreSQL 16's reserved_connections.
        let pg16 = ServerLimits {
            reserved: 2,
            ..DEFAULTS
        };
        let warning = budget(1, 1, 94, false).check(&pg16).expect("96 > 95");
        assert!(warning.contains("100 − 5 = 95"), "{warning}");
        assert!(!warning.contains("listener"), "{warning}");
    }

    #[test]
    fn limits_come_from_pg_settings_rows() {
        let limits = ServerLimits::from_settings([
            ("max_connections", "200"),
            ("superuser_reserved_connections", "3"),
        ])
        .expect("limits");
        assert_eq!(
            limits,
            ServerLimits {
                max_connections: 200,
                superuser_reserved: 3,
                reserved: 0
            }
        );
        assert_eq!(limits.available(), 197);
        let pg16 = ServerLimits::from_settings([
            ("reserved_connections", "5"),
            ("max_connections", "100"),
            ("superuser_reserved_connections", "3"),
        ])
        .expect("limits");
        assert_eq!(pg16.available(), 92);
        assert!(ServerLimits::from_settings([("superuser_reserved_connections", "3")]).is_err());
        assert!(ServerLimits::from_settings([("max_connections", "many")]).is_err());
    }
}
