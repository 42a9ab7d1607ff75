//! A private PostgreSQL primary and replica of one test's own, which it may break (stop the
//! replica, terminate backends): `scripts/pg` with `PINION_PGDATA_DIR` under `target/`, as the
//! ORM's tests do (`orm/tests/common/mod.rs`, `Cluster::private`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use super::repo;

/// A primary and its streaming replica in `target/pg-app-<name>`; stopped (data kept, for the
/// next run) on drop.
pub struct PrivateCluster {
    base: PathBuf,
    /// What `scripts/pg start` printed: `DATABASE_URL`, `DATABASE_REPLICA_URLS`, …
    pub env: HashMap<String, String>,
}

impl PrivateCluster {
    /// Starts the cluster (initialising it on first use) and waits until the replica streams.
    pub fn start(name: &str) -> PrivateCluster {
        let base = repo().join("target").join(format!("pg-app-{name}"));
        let stdout = run(&base, &["start"]);
        let env = stdout
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| {
                (
                    k.to_string(),
                    v.trim_matches('\'').trim_matches('"').to_string(),
                )
            })
            .collect();
        PrivateCluster { base, env }
    }

    /// Runs `scripts/pg <args>` on this cluster (`stop-replica immediate`, `start-replica`, …)
    /// and returns its stdout; panics with its stderr when it fails.
    pub fn pg(&self, args: &[&str]) -> String {
        run(&self.base, args)
    }

    /// Runs `sql` as superuser on database `pinion` of `role` (`primary` or `replica`) and
    /// returns psql's unaligned, tuples-only output.
    pub fn psql(&self, role: &str, sql: &str) -> String {
        run(
            &self.base,
            &[
                "psql",
                role,
                "-U",
                "postgres",
                "-X",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ],
        )
    }

    /// The environment that points `pinion serve` at this cluster (primary and replica) and
    /// the repository's migrations.
    pub fn database_env(&self) -> Vec<(String, String)> {
        vec![
            ("DATABASE_URL".into(), self.env["DATABASE_URL"].clone()),
            (
                "DATABASE_REPLICA_URLS".into(),
                self.env["DATABASE_REPLICA_URLS"].clone(),
            ),
            (
                "PINION_MIGRATIONS_DIR".into(),
                repo()
                    .join("migrations")
                    .to_str()
                    .expect("utf-8 path")
                    .into(),
            ),
        ]
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = command(&self.base, &["stop"]).output();
    }
}

/// `scripts/pg <args>` on the cluster in `base`, without the developer's database variables
/// (a `DATABASE_URL` of theirs would make `start` use it instead).
fn command(base: &std::path::Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(repo().join("scripts/pg"));
    cmd.args(args)
        .env("PINION_PGDATA_DIR", base)
        .env_remove("DATABASE_URL")
        .env_remove("DATABASE_REPLICA_URLS")
        .env_remove("PINION_PG_PORT")
        .env_remove("PINION_PG_REPLICA_PORT");
    cmd
}

fn run(base: &std::path::Path, args: &[&str]) -> String {
    let out = command(base, args).output().expect("scripts/pg runs");
    assert!(
        out.status.success(),
        "scripts/pg {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
