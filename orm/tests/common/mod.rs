//! The private PostgreSQL clusters the tests run against, started by `scripts/pg`.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A primary and its streaming replica.
pub struct Cluster {
    pub primary: String,
    pub replica: String,
    /// `(socket folder, port)` of the primary, for Unix-socket connections; `None` when the
    /// developer's own `DATABASE_URL` is used instead of the private cluster.
    pub primary_socket: Option<(PathBuf, u16)>,
    base: Option<PathBuf>,
}

fn socket_of(env: &HashMap<String, String>) -> Option<(PathBuf, u16)> {
    let dir = PathBuf::from(env.get("PINION_PGDATA_DIR")?).join("run");
    let port = env.get("PINION_PG_PORT")?.parse().expect("port");
    Some((dir, port))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn pg(args: &[&str], base: Option<&Path>) -> HashMap<String, String> {
    let mut cmd = Command::new(repo().join("scripts/pg"));
    cmd.args(args);
    if let Some(base) = base {
        cmd.env("PINION_PGDATA_DIR", base)
            .env_remove("DATABASE_URL")
            .env_remove("DATABASE_REPLICA_URLS")
            .env_remove("PINION_PG_PORT")
            .env_remove("PINION_PG_REPLICA_PORT");
    }
    let out = cmd.output().expect("scripts/pg runs");
    assert!(
        out.status.success(),
        "scripts/pg {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            (
                k.to_string(),
                v.trim_matches('\'').trim_matches('"').to_string(),
            )
        })
        .collect()
}

impl Cluster {
    /// The cluster every non-destructive test shares (the developer's `DATABASE_URL` wins).
    pub fn shared() -> Cluster {
        let env = pg(&["start"], None);
        Cluster {
            primary_socket: socket_of(&env),
            primary: env["DATABASE_URL"].clone(),
            replica: env
                .get("DATABASE_REPLICA_URLS")
                .and_then(|v| v.split(',').next().map(str::to_string))
                .expect("a replica URL"),
            base: None,
        }
    }

    /// A cluster of this test's own, which it may break (stop the replica, …).
    pub fn private(name: &str) -> Cluster {
        let base = repo().join("target").join(format!("pg-{name}"));
        let env = pg(&["start"], Some(&base));
        Cluster {
            primary_socket: socket_of(&env),
            primary: env["DATABASE_URL"].clone(),
            replica: env["DATABASE_REPLICA_URLS"].clone(),
            base: Some(base),
        }
    }

    /// Runs `scripts/pg <args>` against this (private) cluster.
    pub fn pg(&self, args: &[&str]) {
        let base = self
            .base
            .as_deref()
            .expect("only private clusters are broken on purpose");
        pg(args, Some(base));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(base) = &self.base {
            let _ = Command::new(repo().join("scripts/pg"))
                .arg("stop")
                .env("PINION_PGDATA_DIR", base)
                .output();
        }
    }
}

/// Runs `f` on a monoio runtime with timers, as a worker thread would.
/// A connection manager for the primary at `url` alone, giving up a dial after 3 s.
pub fn primary_only(url: &str) -> std::rc::Rc<pinion_orm::ConnectionManager> {
    let mut cfg = pinion_orm::DbConfig::new(url.to_string(), vec![]);
    cfg.connect.connect_timeout = Duration::from_secs(3);
    pinion_orm::ConnectionManager::start(&cfg).expect("db")
}

pub fn run<F: Future>(f: F) -> F::Output {
    monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// Polls `check` every 50 ms until it returns true or `limit` passes.
pub async fn eventually(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        monoio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Cluster {
    /// A database of the calling test's own on this cluster's primary (`<prefix>_<pid>_<n>`),
    /// so that `clear`, table drops and shared tables touch no other test; drop it with
    /// [`Cluster::drop_database`].
    pub fn fresh_database(&self, prefix: &str) -> String {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let db = format!(
            "{prefix}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        self.admin_execute(&format!("CREATE DATABASE {db}"));
        let base = self
            .primary
            .rsplit_once('/')
            .expect("a URL with a database")
            .0;
        format!("{base}/{db}")
    }

    /// Drops a database made by [`Cluster::fresh_database`].
    pub fn drop_database(&self, url: &str) {
        let name = url.rsplit_once('/').expect("db").1.to_string();
        self.admin_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    }

    /// Runs `sql` on the cluster's own database (CREATE and DROP DATABASE).
    fn admin_execute(&self, sql: &str) {
        run(async {
            let admin = pinion_orm::ConnectionManager::start(&pinion_orm::DbConfig::new(
                self.primary.clone(),
                vec![],
            ))
            .expect("db");
            admin
                .primary()
                .batch_execute(sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        });
    }
}

/// A test transaction closure's own error, to roll back on.
#[derive(Debug)]
pub enum Abort {
    #[allow(dead_code, reason = "shown by Debug when a test fails")]
    Db(pinion_orm::Error),
    Changed,
}

impl From<pinion_orm::Error> for Abort {
    fn from(e: pinion_orm::Error) -> Abort {
        Abort::Db(e)
    }
}

/// A query cache over a LocMemCache of 1 000 entries.
pub fn cache() -> std::sync::Arc<pinion_orm::QueryCache> {
    pinion_orm::QueryCache::new(pinion_cache::LocMemCache::new(
        &pinion_cache::LocMemConfig {
            cache: pinion_cache::CacheConfig::default(),
            max_entries: 1_000,
        },
    ))
}
