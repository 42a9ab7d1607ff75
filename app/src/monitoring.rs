//! What an operator's alerts need beyond the request counters: the build, readiness, and the
//! state of each database server (up, replica lag, connections against `max_connections`).
//!
//! The database figures are read **at scrape** by the `/metrics` handler through the
//! scraping worker's own connections ([`Monitoring::sample`]), the way `postgres_exporter`
//! does: nothing runs between scrapes, and a scrape sees the servers as they are, not as they
//! were at the last poll. One small statement per database per scrape (every 15 s by default).
//!
//! | name | type | labels |
//! | --- | --- | --- |
//! | `pinion_build_info` | gauge (1) | `version`, `revision` |
//! | `pinion_ready` | gauge | |
//! | `pinion_db_up` | gauge | `database`, `role` |
//! | `pinion_db_replica_lag_seconds` | gauge | `database` |
//! | `pinion_db_replica_lag_bytes` | gauge | `database` |
//! | `pinion_db_server_connections` | gauge | `database` |
//! | `pinion_db_server_max_connections` | gauge | `database` |
//!
//! The server-wide figures are the same on every instance: aggregate them with `max by
//! (database)`, not `sum`.

use pinion_orm::{ConnectionManager, Database, FromRow, Role};
use prometheus::{GaugeVec, IntGauge, IntGaugeVec, Opts, Registry};

/// The version `pinion_build_info` reports: the crate's.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The revision `pinion_build_info` reports: `PINION_REVISION` at build time (`make build`
/// sets it to the git commit), else `unknown`.
pub const REVISION: &str = match option_env!("PINION_REVISION") {
    Some(r) => r,
    None => "unknown",
};

/// One statement per server: whether it is a replica, its client connections, its
/// `max_connections`, its WAL position (replayed on a replica, written on a primary), whether
/// a replica has received WAL it has not replayed yet, and how long ago it replayed its last
/// transaction.
const SAMPLE_SQL: &str = "SELECT pg_is_in_recovery(), \
     (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'), \
     current_setting('max_connections')::int8, \
     pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() \
     ELSE pg_current_wal_lsn() END, '0/0')::int8, \
     pg_is_in_recovery() AND pg_last_wal_receive_lsn() IS DISTINCT FROM pg_last_wal_replay_lsn(), \
     COALESCE(extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8, 0)";

/// The gauges of this module, registered once per process and set by the `/metrics` handler.
pub struct Monitoring {
    ready: IntGauge,
    db_up: IntGaugeVec,
    lag_seconds: GaugeVec,
    lag_bytes: IntGaugeVec,
    connections: IntGaugeVec,
    max_connections: IntGaugeVec,
}

/// What one server said, in [`SAMPLE_SQL`]'s column order.
#[derive(pinion_orm::FromRow)]
struct Sample {
    in_recovery: bool,
    connections: i64,
    max_connections: i64,
    lsn: i64,
    replaying: bool,
    replay_age: f64,
}

fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> Result<IntGaugeVec, prometheus::Error> {
    IntGaugeVec::new(Opts::new(name, help), labels)
}

/// Registers `pinion_build_info` in `registry` (for `pinion worker --metrics-port` too).
///
/// # Errors
/// When `registry` already has it.
pub fn register_build_info(registry: &Registry) -> Result<(), prometheus::Error> {
    let info = gauge_vec(
        "pinion_build_info",
        "Always 1: the version and revision this process runs.",
        &["version", "revision"],
    )?;
    info.with_label_values(&[VERSION, REVISION]).set(1);
    registry.register(Box::new(info))
}

impl Monitoring {
    /// The gauges, registered in `registry` with `pinion_build_info`.
    ///
    /// # Errors
    /// When `registry` already has metrics of these names.
    pub fn register(registry: &Registry) -> Result<Monitoring, prometheus::Error> {
        register_build_info(registry)?;
        let database = &["database"];
        let m = Monitoring {
            ready: IntGauge::new(
                "pinion_ready",
                "1 when /health/ready answers 200: not draining and the primary connected.",
            )?,
            db_up: gauge_vec(
                "pinion_db_up",
                "1 while the database answers this instance (the primary connected, a replica healthy).",
                &["database", "role"],
            )?,
            lag_seconds: GaugeVec::new(
                Opts::new(
                    "pinion_db_replica_lag_seconds",
                    "How far a replica's replay is behind the primary, in seconds (0 when caught up).",
                ),
                database,
            )?,
            lag_bytes: gauge_vec(
                "pinion_db_replica_lag_bytes",
                "How far a replica's replay is behind the primary's WAL position, in bytes.",
                database,
            )?,
            connections: gauge_vec(
                "pinion_db_server_connections",
                "Client connections on the database server, from every client (pg_stat_activity).",
                database,
            )?,
            max_connections: gauge_vec(
                "pinion_db_server_max_connections",
                "The database server's max_connections.",
                database,
            )?,
        };
        registry.register(Box::new(m.ready.clone()))?;
        registry.register(Box::new(m.db_up.clone()))?;
        registry.register(Box::new(m.lag_seconds.clone()))?;
        registry.register(Box::new(m.lag_bytes.clone()))?;
        registry.register(Box::new(m.connections.clone()))?;
        registry.register(Box::new(m.max_connections.clone()))?;
        Ok(m)
    }

    /// Sets `pinion_ready`.
    pub fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }

    /// Reads every database of `db` (the primary first, for the replicas' lag) and sets the
    /// database gauges. A database that does not answer is reported down, and its other
    /// series are removed rather than left at their last value.
    pub async fn sample(&self, db: &ConnectionManager) {
        let mut primary_lsn = None;
        let mut replicas = Vec::new();
        for d in db.databases() {
            match d.role() {
                Role::Primary => primary_lsn = self.sample_one(d).await.map(|s| s.lsn),
                Role::Replica => replicas.push(d),
                Role::Other => {
                    self.sample_one(d).await;
                }
            }
        }
        for d in replicas {
            let Some(s) = self.sample_one(d).await else {
                let _ = self.lag_seconds.remove_label_values(&[d.name()]);
                let _ = self.lag_bytes.remove_label_values(&[d.name()]);
                continue;
            };
            let Some(primary) = primary_lsn.filter(|_| s.in_recovery) else {
                // Without the primary's position there is no lag to compare against.
                let _ = self.lag_seconds.remove_label_values(&[d.name()]);
                let _ = self.lag_bytes.remove_label_values(&[d.name()]);
                continue;
            };
            let behind = primary.saturating_sub(s.lsn).max(0);
            // The usual measure: caught up (replayed all it received, or up to the primary's
            // position read just before) is 0 however long ago the last transaction was;
            // otherwise the age of the last replayed transaction. A replica cut off from the
            // primary replays all it received: its lag shows in bytes.
            let seconds = if behind == 0 || !s.replaying {
                0.0
            } else {
                s.replay_age
            };
            self.lag_seconds
                .with_label_values(&[d.name()])
                .set(seconds.max(0.0));
            self.lag_bytes.with_label_values(&[d.name()]).set(behind);
        }
    }

    async fn sample_one(&self, d: &Database) -> Option<Sample> {
        let name = d.name();
        let role = d.role().as_str();
        let reachable = match d.role() {
            Role::Replica => d.is_healthy(),
            Role::Primary | Role::Other => d.is_connected(),
        };
        let sample = if reachable {
            match read(d).await {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(database = name, "monitoring sample failed: {e}");
                    None
                }
            }
        } else {
            None
        };
        self.db_up
            .with_label_values(&[name, role])
            .set(i64::from(sample.is_some()));
        match &sample {
            Some(s) => {
                self.connections
                    .with_label_values(&[name])
                    .set(s.connections);
                self.max_connections
                    .with_label_values(&[name])
                    .set(s.max_connections);
            }
            None => {
                let _ = self.connections.remove_label_values(&[name]);
                let _ = self.max_connections.remove_label_values(&[name]);
            }
        }
        sample
    }
}

async fn read(d: &Database) -> Result<Sample, pinion_orm::Error> {
    let row = d.query_one(SAMPLE_SQL, &[]).await?;
    Sample::from_row(&row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gauges_register_once_with_the_build_info() {
        let registry = Registry::new();
        let m = Monitoring::register(&registry).expect("registers");
        m.set_ready(true);
        let names: Vec<String> = registry
            .gather()
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        assert!(
            names.contains(&"pinion_build_info".to_string()),
            "{names:?}"
        );
        assert!(names.contains(&"pinion_ready".to_string()), "{names:?}");
        assert!(Monitoring::register(&registry).is_err());
    }
}
