//! Start-up wiring the `pinion` binary runs once: the database configuration from the
//! settings, and [`Workers`], what every worker thread's routes and state are built from.
//! The binary keeps what only a process does (arguments, logging, migrations, signals).

use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pinion_config::Settings;
use pinion_orm::{ConnectOptions, ConnectionManager, DbConfig};
use pinion_server::telemetry::{Telemetry, ThreadTelemetry};
use pinion_server::Router;

use crate::assets::Assets;
use crate::live::WorldFeed;
use crate::middleware::Limits;
use crate::state::WorldCache;
use crate::{router, AppState};

/// The database configuration for the workers, when a database is configured.
pub fn db_config(settings: &Settings) -> Option<DbConfig> {
    let primary = settings.database_url.as_ref()?;
    let mut cfg = DbConfig::new(
        primary.as_str(),
        settings
            .database_replica_urls
            .iter()
            .map(|u| u.as_str().to_string())
            .collect(),
    );
    cfg.pool_size_per_thread = settings.pool_size_per_thread();
    cfg.connect = connect_options(settings);
    cfg.query_timeout = settings.db_query_timeout;
    cfg.check_interval = settings.replica_check_interval;
    for named in &settings.databases {
        cfg = cfg.database(named.name.as_str(), named.url.as_str());
    }
    Some(cfg)
}

/// How the workers, the listener and the migrator dial PostgreSQL.
pub fn connect_options(settings: &Settings) -> ConnectOptions {
    ConnectOptions {
        connect_timeout: settings.db_connect_timeout,
        keepalive: settings.db_keepalive,
        user_timeout: settings.db_user_timeout,
    }
}

/// The events' settings (pinion-events) from `events_*`.
pub fn events_config(settings: &Settings) -> pinion_events::EventsConfig {
    pinion_events::EventsConfig {
        retention: settings.events_retention,
        retention_rows: settings.events_retention_rows,
        subscriber_queue: settings.events_subscriber_queue,
        ..pinion_events::EventsConfig::default()
    }
}

/// The `application_name` the listening connection carries, followed by `-{pid}`, so that
/// `pg_stat_activity` tells it from the workers' connections and one instance's from
/// another's (an operator, or a test, looking for it).
pub const LISTENER_APPLICATION_NAME: &str = "pinion-listener";

/// `url` with `application_name` [`LISTENER_APPLICATION_NAME`]`-{pid}`, unless it names an
/// application already.
pub fn listener_url(url: &str) -> String {
    if url.contains("application_name=") {
        return url.to_string();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!(
        "{url}{sep}application_name={LISTENER_APPLICATION_NAME}-{}",
        std::process::id()
    )
}

/// Runs `f` to completion on a monoio runtime of its own (start-up work, before the workers).
///
/// # Errors
/// When the runtime cannot be built.
pub fn on_runtime<F: std::future::Future>(f: F) -> Result<F::Output, String> {
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .map_err(|e| format!("cannot build a runtime: {e}"))?;
    Ok(rt.block_on(f))
}

/// What every worker's routes and state are built from, made once for the process.
pub struct Workers {
    /// The settings (the middleware chain reads them per worker).
    pub settings: Settings,
    /// How many workers there are (the endpoint list shows it).
    pub threads: usize,
    /// The databases, when one is configured (each worker dials its own connections).
    pub db_config: Option<DbConfig>,
    /// The process's metrics, when telemetry is on.
    pub telemetry: Option<Arc<Telemetry>>,
    /// The rate-limit policies and their in-process store.
    pub limits: Limits,
    /// How long reads stay on the primary after a write.
    pub sticky_window: Duration,
    /// The `/cached-queries` cache.
    pub worlds: Arc<WorldCache>,
    /// The feed of `world` writes for `/worlds/live`.
    pub feed: Arc<WorldFeed>,
    /// The process's published events (pinion-events), with a database.
    pub events: Option<Arc<pinion_events::Events>>,
    /// Whether the process's listening connection is up, for readiness (none without one).
    pub listener: Option<Arc<AtomicBool>>,
    /// The build, readiness and database gauges `/metrics` sets (None: telemetry off).
    pub monitoring: Option<Arc<crate::monitoring::Monitoring>>,
    /// The demo's sessions.
    pub sessions: pinion_web::session::Sessions,
    /// The demo's whole public pages.
    pub pages: pinion_web::response_cache::ResponseCache<pinion_cache::LocMemCache>,
    /// The static files.
    pub assets: Arc<Assets>,
    /// Told by each worker, once, whether its primary connection came up within
    /// `db_connect_timeout`, so that the binary sends systemd `READY=1` when queries can run
    /// rather than while the connections are still being dialed (see
    /// [`wait_for_primaries`]). `None` without a database.
    pub primary_connected: Option<mpsc::Sender<bool>>,
}

/// Waits until `threads` workers have told `connected` whether their primary connection is
/// up, for at most `bound` (`db_connect_timeout`: each worker gives up after as long).
///
/// # Return
///
/// How many workers are connected: `threads` when all are; fewer when the bound passed or a
/// worker's primary did not come up (the primary may be down; `/health/ready` says so).
pub fn wait_for_primaries(
    connected: &mpsc::Receiver<bool>,
    threads: usize,
    bound: Duration,
) -> usize {
    let deadline = Instant::now() + bound;
    let mut up = 0;
    for _ in 0..threads {
        let left = deadline.saturating_duration_since(Instant::now());
        match connected.recv_timeout(left) {
            Ok(true) => up += 1,
            Ok(false) => {}
            Err(_) => break,
        }
    }
    up
}

impl Workers {
    /// The routes and state of worker `worker`, built on its thread (its connections are its
    /// own).
    pub fn worker(&self, worker: usize) -> (Router<AppState>, AppState) {
        let db = self
            .db_config
            .as_ref()
            .and_then(|cfg| match ConnectionManager::start(cfg) {
                Ok(db) => Some(db),
                Err(e) => {
                    tracing::error!(worker, "database disabled: {e}");
                    None
                }
            });
        if let Some(connected) = &self.primary_connected {
            let connected = connected.clone();
            match &db {
                // Runs once the worker's runtime does, while its pinned connection is dialed.
                Some(db) => {
                    let db = Rc::clone(db);
                    monoio::spawn(async move {
                        let up = db.primary().wait_connected().await.is_ok();
                        let _ = connected.send(up);
                    });
                }
                None => {
                    let _ = connected.send(false);
                }
            }
        }
        let thread_telemetry = self.telemetry.as_ref().map(|t| {
            let local = Rc::new(ThreadTelemetry::new(Arc::clone(t)));
            if let Some(db) = &db {
                for d in db.databases() {
                    // Weak: the telemetry already holds the databases (pool gauges).
                    let t = Rc::downgrade(&local);
                    d.set_query_observer(Rc::new(move |name, elapsed| {
                        if let Some(t) = t.upgrade() {
                            t.observe_query(name, elapsed);
                        }
                    }));
                }
                let db = Rc::clone(db);
                local.add_local_source(move |sink| {
                    for d in db.databases() {
                        sink.pool(d.name(), d.pool_available(), d.pool_waiters());
                    }
                });
            }
            local
        });
        let live = match (&self.events, &db) {
            (Some(events), Some(db)) => {
                let live = events.join();
                crate::catalogue::events::channels(&live, db);
                if worker == 0 {
                    // One worker an instance prunes the table.
                    events.start_pruning(Rc::clone(db));
                }
                Some(Rc::new(live))
            }
            _ => None,
        };
        let demo = db.as_ref().map(|db| crate::Demo {
            sessions: pinion_web::session::SessionLayer::new(&self.sessions, Rc::clone(db)),
            pages: self.pages.clone(),
        });
        let routes = router(demo);
        let router = match crate::middleware::stack(
            &self.settings,
            worker,
            thread_telemetry,
            &self.limits,
            db.as_ref(),
        ) {
            Ok(stack) => routes.middleware(stack),
            Err(e) => {
                // `check` ran the same construction before start-up, so this is unreachable
                // in practice; serve without middleware rather than not at all.
                tracing::error!(worker, "middleware disabled: {e}");
                routes
            }
        };
        (
            router,
            AppState::new(
                self.threads,
                worker,
                db,
                self.sticky_window,
                Arc::clone(&self.worlds),
                Arc::clone(&self.feed),
                self.telemetry.clone(),
            )
            .with_assets(Arc::clone(&self.assets))
            .with_events(live, self.listener.clone())
            .with_monitoring(self.monitoring.clone()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_worker_connected_is_counted() {
        let (tx, rx) = mpsc::channel();
        for up in [true, false, true] {
            tx.send(up).expect("send");
        }
        assert_eq!(wait_for_primaries(&rx, 3, Duration::from_secs(10)), 2);
    }

    #[test]
    fn a_worker_that_never_answers_is_waited_for_no_longer_than_the_bound() {
        let (tx, rx) = mpsc::channel();
        tx.send(true).expect("send");
        let started = Instant::now();
        assert_eq!(wait_for_primaries(&rx, 2, Duration::from_millis(50)), 1);
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(50), "{waited:?}");
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        drop(tx);
    }
}
