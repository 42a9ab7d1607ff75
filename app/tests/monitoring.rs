//! The gauges an operator's alerts read (`pinion::monitoring`), against a real primary and
//! streaming replica of the test's own: the build, readiness, each server up, the replica's
//! replay lag while its replay is paused and after it resumes, connections against
//! `max_connections`, a replica stopped and started again, and the primary stopped.

mod common;

use std::time::Duration;

use common::pg::PrivateCluster;
use common::Served;

/// How long a state change may take to show in `/metrics` (the replica checker runs every
/// 200 ms here; a stopped primary is noticed when its connection drops).
const SETTLE: Duration = Duration::from_secs(20);

fn serve(cluster: &PrivateCluster) -> Served {
    let mut env = cluster.database_env();
    env.push(("PINION_REPLICA_CHECK_INTERVAL".into(), "200ms".into()));
    common::serve(env)
}

/// The value of the series whose name and labels are exactly `series` (`name{a="b"}`), if
/// `/metrics` has it.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Waits until `/metrics` of `served` satisfies `check`, which says what it saw otherwise.
fn wait_metrics<T>(
    served: &Served,
    what: &str,
    mut check: impl FnMut(&str) -> Result<T, String>,
) -> T {
    common::wait_for(what, SETTLE, || check(&common::metrics(served.addr))).0
}

/// Resumes the replica's replay when dropped, so a failed test leaves it replaying.
struct Paused<'a>(&'a PrivateCluster);

impl Paused<'_> {
    fn resume(self) {}
}

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        self.0.psql("replica", "SELECT pg_wal_replay_resume()");
    }
}

#[test]
fn the_database_gauges_follow_the_servers_lag_and_outages() {
    let cluster = PrivateCluster::start("monitoring");
    cluster.psql("replica", "SELECT pg_wal_replay_resume()");
    let served = serve(&cluster);
    let max: f64 = cluster
        .psql("primary", "SHOW max_connections")
        .trim()
        .parse()
        .expect("max_connections is a number");

    let text = wait_metrics(&served, "both databases up and caught up", |t| {
        let up = (
            value(t, r#"pinion_db_up{database="default",role="primary"}"#),
            value(t, r#"pinion_db_up{database="replica1",role="replica"}"#),
            value(t, r#"pinion_db_replica_lag_bytes{database="replica1"}"#),
        );
        (up == (Some(1.0), Some(1.0), Some(0.0)))
            .then(|| t.to_string())
            .ok_or(format!("{up:?}"))
    });
    assert_eq!(
        value(
            &text,
            &format!(
                r#"pinion_build_info{{revision="{}",version="{}"}}"#,
                pinion_app::monitoring::REVISION,
                env!("CARGO_PKG_VERSION")
            )
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(value(&text, "pinion_ready"), Some(1.0), "{text}");
    assert_eq!(
        value(
            &text,
            r#"pinion_db_replica_lag_seconds{database="replica1"}"#
        ),
        Some(0.0),
        "{text}"
    );
    for db in ["default", "replica1"] {
        assert_eq!(
            value(
                &text,
                &format!(r#"pinion_db_server_max_connections{{database="{db}"}}"#)
            ),
            Some(max),
            "{text}"
        );
        // This instance's own connections are among the server's clients.
        let in_use = value(
            &text,
            &format!(r#"pinion_db_server_connections{{database="{db}"}}"#),
        )
        .unwrap_or_else(|| panic!("no connection count for {db}: {text}"));
        assert!(in_use >= 1.0 && in_use <= max, "{db}: {in_use} of {max}");
    }

    // Replay paused, a write on the primary: the replica is behind in bytes and in seconds.
    let paused = Paused(&cluster);
    cluster.psql("replica", "SELECT pg_wal_replay_pause()");
    cluster.psql(
        "primary",
        "CREATE TABLE IF NOT EXISTS monitoring_lag (v int); INSERT INTO monitoring_lag VALUES (1)",
    );
    let (bytes, seconds) = wait_metrics(&served, "the replica's lag to show", |t| {
        let lag = (
            value(t, r#"pinion_db_replica_lag_bytes{database="replica1"}"#),
            value(t, r#"pinion_db_replica_lag_seconds{database="replica1"}"#),
        );
        match lag {
            (Some(b), Some(s)) if b > 0.0 && s > 0.0 => Ok((b, s)),
            _ => Err(format!("{lag:?}")),
        }
    });
    assert!(bytes > 0.0 && seconds > 0.0, "{bytes} bytes, {seconds} s");
    paused.resume();
    wait_metrics(&served, "the replica to catch up after resuming", |t| {
        let lag = (
            value(t, r#"pinion_db_replica_lag_bytes{database="replica1"}"#),
            value(t, r#"pinion_db_replica_lag_seconds{database="replica1"}"#),
        );
        (lag == (Some(0.0), Some(0.0)))
            .then_some(())
            .ok_or(format!("{lag:?}"))
    });

    // The replica stopped: reported down, its lag gone rather than frozen; still ready.
    cluster.pg(&["stop-replica", "immediate"]);
    wait_metrics(&served, "the replica reported down", |t| {
        let seen = (
            value(t, r#"pinion_db_up{database="replica1",role="replica"}"#),
            value(t, r#"pinion_db_replica_lag_seconds{database="replica1"}"#),
            value(t, "pinion_ready"),
        );
        (seen == (Some(0.0), None, Some(1.0)))
            .then_some(())
            .ok_or(format!("{seen:?}"))
    });
    cluster.pg(&["start-replica"]);
    wait_metrics(&served, "the replica back up", |t| {
        let up = value(t, r#"pinion_db_up{database="replica1",role="replica"}"#);
        (up == Some(1.0)).then_some(()).ok_or(format!("{up:?}"))
    });

    // The primary stopped: not ready, and the primary reported down.
    cluster.pg(&["stop"]);
    wait_metrics(&served, "the primary reported down and not ready", |t| {
        let seen = (
            value(t, r#"pinion_db_up{database="default",role="primary"}"#),
            value(t, "pinion_ready"),
        );
        (seen == (Some(0.0), Some(0.0)))
            .then_some(())
            .ok_or(format!("{seen:?}"))
    });
}
