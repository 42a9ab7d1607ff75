//! The `pinion` binary: `serve`, `worker`, `jobs`, `check`, `migrate`, `--version`.
//!
//! The only place that reads arguments, the environment and files: it turns them into a typed
//! `Settings` and hands that to the libraries.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use pinion_app::assets::Assets;
use pinion_app::budget::ConnectionBudget;
use pinion_config::{LogFormat, Overrides, Settings, Source};
use std::sync::Arc;

use pinion_cache::{CacheConfig, LocMemCache, LocMemConfig, StampedeProtection, XFetchConfig};
use pinion_orm::{ConnectionManager, QueryCache};

/// mimalloc instead of glibc malloc: per-thread free lists suit a thread-per-core server, and
/// glibc's `free` cost ~100 instructions per call on the request path (callgrind, plaintext).
#[global_allocator]
static ALLOCATOR: alloc::MiMalloc = alloc::MiMalloc;

mod alloc;
#[cfg(test)]
mod log_capture;
mod log_fields;
mod logging;
mod systemd;
mod trace_line;

/// pinion: a thread-per-core HTTP/1.1 application server.
#[derive(Parser, Debug)]
#[command(name = "pinion", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the application (the default when no command is given).
    Serve(ServeArgs),
    /// Validate the configuration and print the effective settings (secrets masked).
    Check(ConfigArg),
    /// Apply pending migrations (under an advisory lock, so instances may race), then exit.
    Migrate(MigrateArgs),
    /// Run background-job workers only, no HTTP listener (one thread per core unless -t);
    /// SIGTERM drains them.
    Worker(WorkerArgs),
    /// List, retry or cancel background jobs.
    Jobs(JobsArgs),
}

#[derive(Args, Debug, Default)]
struct WorkerArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Worker threads (overrides `threads` and WEB_CONCURRENCY).
    #[arg(long, short = 't', value_name = "N")]
    threads: Option<usize>,
    /// Serve the workers' `/metrics` and `/health` on `bind`:N (0 picks a free port).
    #[arg(long, value_name = "N")]
    metrics_port: Option<u16>,
}

#[derive(Args, Debug)]
struct JobsArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[command(subcommand)]
    action: JobsAction,
}

#[derive(Subcommand, Debug)]
enum JobsAction {
    /// List jobs, newest first.
    List {
        /// Only jobs in this state: available, running, failed, cancelled.
        #[arg(long)]
        state: Option<String>,
        /// Only jobs of this queue.
        #[arg(long)]
        queue: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Run a failed or cancelled job again, now, with its attempts reset.
    Retry {
        /// The job's id.
        id: i64,
    },
    /// Cancel a job that has not finished (a running one is told, and stays cancelled).
    Cancel {
        /// The job's id.
        id: i64,
    },
}

#[derive(Args, Debug, Default)]
struct MigrateArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Only list pending migrations; exit 1 when there are some.
    #[arg(long)]
    check: bool,
}

#[derive(Args, Debug, Default)]
struct ConfigArg {
    /// Configuration file (pinion.toml).
    #[arg(long, short = 'c', env = "PINION_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Args, Debug, Default)]
struct ServeArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Address to listen on (overrides `bind`).
    #[arg(long, value_name = "ADDR")]
    bind: Option<IpAddr>,
    /// Port to listen on (overrides `port`; 0 picks a free one).
    #[arg(long, short = 'p', value_name = "N")]
    port: Option<u16>,
    /// Worker threads (overrides `threads` and WEB_CONCURRENCY).
    #[arg(long, short = 't', value_name = "N")]
    threads: Option<usize>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Check(args) => match load(&args, Overrides::default()) {
            Ok(settings) => {
                print!("{}", settings.render_masked());
                check_connections(&settings);
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Migrate(args) => match load(&args.config, Overrides::default()) {
            Ok(settings) => {
                init_logging(&settings);
                migrate_command(&settings, args.check)
            }
            Err(code) => code,
        },
        Command::Worker(args) => {
            let overrides = Overrides {
                threads: args.threads,
                ..Overrides::default()
            };
            match load(&args.config, overrides) {
                Ok(settings) => worker(&settings, args.metrics_port),
                Err(code) => code,
            }
        }
        Command::Jobs(args) => match load(&args.config, Overrides::default()) {
            Ok(settings) => jobs_command(&settings, args.action),
            Err(code) => code,
        },
        Command::Serve(args) => {
            let overrides = Overrides {
                bind: args.bind,
                port: args.port,
                threads: args.threads,
            };
            match load(&args.config, overrides) {
                Ok(settings) => serve(&settings),
                Err(code) => code,
            }
        }
    }
}

/// Loads the settings, or reports why not (naming the key) and gives the exit code.
fn load(args: &ConfigArg, overrides: Overrides) -> Result<Settings, ExitCode> {
    let mut source = Source::from_process_env().with_overrides(overrides);
    if let Some(path) = &args.config {
        source = source.with_file(path);
    }
    Settings::load(&source).map_err(|e| {
        eprintln!("pinion: configuration error: {e}");
        ExitCode::from(2)
    })
}

/// `pinion check`'s look at the primary, when one is configured: the `max_connections`
/// warning, or a note that it could not be reached, on stderr. Advice only: the exit code is
/// the configuration's, since `check` also runs where the database is not reachable (a build
/// host, a CI job).
fn check_connections(settings: &Settings) {
    match pinion_app::budget::read_limits(settings) {
        None => {}
        Some(Ok(limits)) => {
            if let Some(warning) = ConnectionBudget::from_settings(settings).check(&limits) {
                eprintln!("pinion: warning: {warning}");
            }
        }
        Some(Err(e)) => eprintln!(
            "pinion: note: max_connections not checked, the primary was not reached ({e}); \
             the configuration itself is valid"
        ),
    }
}

/// At start-up, after the migrations: warns when the deployment may open more connections
/// than the primary's `max_connections` allows (see `pinion_app::budget`).
fn log_connection_budget(settings: &Settings) {
    match pinion_app::budget::read_limits(settings) {
        None => {}
        Some(Ok(limits)) => {
            let budget = ConnectionBudget::from_settings(settings);
            if let Some(warning) = budget.check(&limits) {
                tracing::warn!(
                    instances = budget.instances,
                    per_instance = budget.per_instance(),
                    max_connections = limits.max_connections,
                    reserved = limits.reserved(),
                    "{warning}"
                );
            }
        }
        // The primary being down is reported where it matters (migrations, the workers).
        Some(Err(e)) => tracing::info!("max_connections not checked: {e}"),
    }
}

/// Waits, at most `bound` (`db_connect_timeout`), until every worker's primary connection is
/// up, so that systemd hears `READY=1` once queries can run rather than while the workers
/// still dial; past the bound it warns and goes ready anyway: the primary may be down, and
/// `/health/ready` answers 503 until it is up.
fn wait_for_primaries(
    primaries: &std::sync::mpsc::Receiver<bool>,
    threads: usize,
    bound: std::time::Duration,
) {
    let up = pinion_app::startup::wait_for_primaries(primaries, threads, bound);
    if up == threads {
        tracing::info!(threads, "every worker is connected to the primary");
    } else {
        tracing::warn!(
            connected = up,
            threads,
            "only {up} of {threads} workers connected to the primary within db_connect_timeout \
             ({bound:?}); ready anyway, /health/ready answers 503 until the primary is up"
        );
    }
}

fn serve(settings: &Settings) -> ExitCode {
    init_logging(settings);
    let threads = settings.effective_threads();
    // Before anything slow (migrations, the database): a missing folder is a configuration
    // error, and the pages cannot link their stylesheet without it.
    let assets = match Assets::load(&settings.static_dir) {
        Ok(assets) => {
            tracing::info!(
                dir = %settings.static_dir.display(),
                files = assets.len(),
                bytes = assets.total_bytes(),
                "static files loaded"
            );
            Arc::new(assets)
        }
        Err(e) => {
            tracing::error!("static_dir: {e}");
            // `e` names the path that failed: the folder, or a file in it.
            eprintln!("pinion: configuration error: static_dir (PINION_STATIC_DIR): {e}");
            return ExitCode::from(2);
        }
    };
    if settings.migrate_on_start && settings.database_url.is_some() {
        // The migrations module logs each migration it applies.
        // Another instance may hold the migration lock: systemd is asked to wait longer.
        let _extending = systemd::extending_start("applying migrations");
        if let Err(e) = migrate(settings, false) {
            tracing::error!("migrations failed, not starting: {e}");
            eprintln!("pinion: migrations failed, not starting: {e}");
            return ExitCode::FAILURE;
        }
    }
    log_connection_budget(settings);
    let mut db_config = pinion_app::startup::db_config(settings);
    // ---- The process's one listening connection to the primary (orm::listener), kept until
    // the process ends. Each part that waits for NOTIFY pushes its subscriber here: the query
    // cache's invalidations, the published events (pinion-events).
    let events = db_config
        .as_ref()
        .map(|_| pinion_events::Events::new(pinion_app::startup::events_config(settings)));
    let mut _listener = None;
    let mut listener_state = None;
    let job_wakeups = pinion_jobs::Wakeups::new();
    if let Some(cfg) = &mut db_config {
        let mut subscribers: Vec<Arc<dyn pinion_orm::listener::Subscriber>> = Vec::new();
        let query_cache = settings.query_cache.then(|| orm_query_cache(settings));
        if let Some(cache) = &query_cache {
            subscribers.push(pinion_orm::query_cache::subscriber(Arc::clone(cache)));
        }
        if let Some(events) = &events {
            subscribers.push(events.subscriber());
        }
        if settings.jobs_threads > 0 {
            subscribers.push(job_wakeups.subscriber());
        }
        let url = pinion_app::startup::listener_url(&cfg.primary_url);
        match pinion_orm::listener::listen_all(&url, cfg.connect, subscribers) {
            Ok(listener) => {
                listener_state = Some(listener.state());
                _listener = Some(listener);
                cfg.query_cache = query_cache;
            }
            Err(e) => {
                tracing::error!("no listening connection (query cache and events disabled): {e}");
            }
        }
    }
    // ---- end of the listening connection.
    let sticky_window = settings.sticky_window;
    let worlds = Arc::new(StampedeProtection::new(
        LocMemCache::new(&LocMemConfig {
            cache: CacheConfig {
                cache_ttl: settings.cache_ttl,
                ..CacheConfig::default()
            },
            max_entries: settings.cache_max_entries,
        }),
        &XFetchConfig::default(),
    ));
    if let Some(cfg) = &db_config {
        let started = std::time::Instant::now();
        match pinion_app::startup::on_runtime(async {
            let db = ConnectionManager::start(cfg).map_err(|e| e.to_string())?;
            pinion_app::techempower::world::prime(&db, &worlds).await
        }) {
            Ok(Ok(n)) => tracing::info!(
                rows = n,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "world cache primed"
            ),
            Ok(Err(e)) | Err(e) => {
                tracing::warn!("world cache not primed (reads will fill it): {e}")
            }
        }
    }
    if let Err(e) = pinion_app::middleware::check(settings) {
        eprintln!("pinion: configuration error: {e}");
        return ExitCode::from(2);
    }
    let limits = match pinion_app::middleware::Limits::new(settings) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("pinion: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    if !limits.policies.is_empty() && limits.local.is_none() {
        // The shared store's table is created once, before the workers start.
        if let Some(cfg) = &db_config {
            let created = pinion_app::startup::on_runtime(async {
                let db = ConnectionManager::start(cfg).map_err(|e| e.to_string())?;
                pinion_orm::PgRateStore::new(db)
                    .ensure_table()
                    .await
                    .map_err(|e| e.to_string())
            });
            if let Err(e) | Ok(Err(e)) = created {
                eprintln!("pinion: cannot create the rate-limit table: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    // Without a terminal (colours), sampled traces skip `tracing`'s formatter.
    let traces = (!std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .then(|| trace_line::writer(settings.log_format));
    let telemetry = pinion_app::middleware::telemetry(settings, traces);
    if let Some(t) = &telemetry {
        let cache = Arc::clone(&worlds);
        t.add_source(move |sink| {
            let stats = cache.inner().stats();
            sink.cache("worlds", stats.hits, stats.misses);
        });
        if let Some(events) = &events {
            let collector =
                pinion_events::EventsCollector::new(Arc::clone(events), listener_state.clone());
            if let Err(e) = t.registry().register(Box::new(collector)) {
                tracing::warn!("events metrics not registered: {e}");
            }
        }
        if let Some(qc) = db_config.as_ref().and_then(|c| c.query_cache.clone()) {
            t.add_source(move |sink| {
                let s = qc.stats();
                sink.query_cache(
                    s.hits,
                    s.misses,
                    s.bypasses,
                    s.invalidations,
                    qc.is_in_sync(),
                );
            });
        }
    }
    // Each worker says whether its primary connection came up: ready waits for them.
    let (primary_connected, primaries) = match &db_config {
        Some(_) => {
            let (tx, rx) = std::sync::mpsc::channel();
            (Some(tx), Some(rx))
        }
        None => (None, None),
    };
    // One for the process: the timeouts, the L1 in front of the rows, the CSRF rules.
    let sessions = pinion_web::session::Sessions::from_settings(settings);
    if let Some(t) = &telemetry {
        let sessions = sessions.clone();
        t.add_source(move |sink| {
            let stats = sessions.l1_stats();
            sink.cache("sessions", stats.hits, stats.misses);
        });
    }
    // Background jobs beside the HTTP workers (`jobs_threads`): the same database settings and
    // query cache, their metrics in the same /metrics.
    let jobs_db = db_config.clone().filter(|_| settings.jobs_threads > 0);
    let monitoring = telemetry.as_deref().and_then(|t| {
        pinion_app::monitoring::Monitoring::register(t.registry())
            .map_err(|e| tracing::warn!("monitoring metrics not registered: {e}"))
            .ok()
            .map(Arc::new)
    });
    let jobs_telemetry = telemetry.clone();
    let workers = pinion_app::startup::Workers {
        settings: settings.clone(),
        threads,
        db_config,
        telemetry,
        limits,
        sticky_window,
        worlds,
        feed: pinion_app::live::WorldFeed::new(),
        events,
        listener: listener_state,
        monitoring,
        sessions: sessions.clone(),
        // Whole public pages of the demo, shared by the workers.
        pages: pinion_web::response_cache::ResponseCache::new(Arc::new(LocMemCache::new(
            &LocMemConfig {
                cache: CacheConfig::default(),
                max_entries: 10_000,
            },
        ))),
        assets,
        primary_connected,
    };
    let factory = move |worker| {
        // Runs on the worker thread, inside its runtime: the connections are this thread's own.
        logging::buffer_this_thread();
        monoio::spawn(logging::flusher());
        workers.worker(worker)
    };
    // Caught from before the listeners open: a stop that comes while the server starts is a
    // graceful one.
    let signals = match pinion_server::watch_signals() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("pinion: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut handle = match pinion_server::start(settings, factory) {
        Ok(handle) => handle,
        Err(e) => {
            tracing::error!("cannot start: {e}");
            eprintln!("pinion: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(primaries) = &primaries {
        wait_for_primaries(primaries, threads, settings.db_connect_timeout);
    }
    // They drain when the server does (SIGTERM, a hand-over): the same trigger.
    let jobs = match &jobs_db {
        Some(cfg) => match pinion_app::jobs::start(
            settings,
            cfg,
            settings.jobs_threads,
            jobs_telemetry.as_deref().map(|t| t.registry()),
            Arc::clone(&job_wakeups),
            handle.trigger(),
        ) {
            Ok(runner) => Some(runner),
            Err(e) => {
                tracing::error!("cannot start the background-job workers: {e}");
                eprintln!("pinion: cannot start the background-job workers: {e}");
                handle.shutdown();
                let _ = handle.join();
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    // Listeners bound, migrations applied, every worker's state built and its primary
    // connected (or the connect timeout passed).
    // A successor taking over starts this process's drain, as SIGTERM does.
    handle.on_hand_over(systemd::stopping);
    // A predecessor that handed its listeners over drains from here on.
    if let Err(e) = handle.ready() {
        tracing::warn!("{e}; the next start cannot take this process's listeners");
    }
    tracing::info!("ready for traffic");
    systemd::ready(&format!("listening on {}", handle.local_addr()));
    systemd::start_watchdog();
    let signals = signals.on_shutdown(systemd::stopping);
    if let Err(e) = signals.install(handle.trigger(), settings.drain_timeout) {
        eprintln!("pinion: {e}");
        handle.shutdown();
    }
    let joined = handle.join();
    if let Some(jobs) = jobs {
        jobs.join();
    }
    match joined {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pinion: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `pinion worker`: background-job workers without an HTTP listener, with the same
/// database, migrations, query cache (so that their writes invalidate every instance's) and
/// listening connection (for wake-ups) as `serve`; SIGTERM drains them.
fn worker(settings: &Settings, metrics_port: Option<u16>) -> ExitCode {
    init_logging(settings);
    let Some(mut cfg) = pinion_app::startup::db_config(settings) else {
        eprintln!(
            "pinion: configuration error: database_url (DATABASE_URL): `pinion worker` needs a database"
        );
        return ExitCode::from(2);
    };
    if settings.migrate_on_start {
        let _extending = systemd::extending_start("applying migrations");
        if let Err(e) = migrate(settings, false) {
            tracing::error!("migrations failed, not starting: {e}");
            eprintln!("pinion: migrations failed, not starting: {e}");
            return ExitCode::FAILURE;
        }
    }
    let wakeups = pinion_jobs::Wakeups::new();
    let mut subscribers = vec![wakeups.subscriber()];
    let query_cache = settings.query_cache.then(|| orm_query_cache(settings));
    if let Some(cache) = &query_cache {
        subscribers.push(pinion_orm::query_cache::subscriber(Arc::clone(cache)));
    }
    let url = pinion_app::startup::listener_url(&cfg.primary_url);
    let _listener = match pinion_orm::listener::listen_all(&url, cfg.connect, subscribers) {
        Ok(listener) => {
            cfg.query_cache = query_cache;
            Some(listener)
        }
        Err(e) => {
            tracing::error!("no listening connection (workers poll, query cache off): {e}");
            None
        }
    };
    let signals = match pinion_server::watch_signals() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("pinion: {e}");
            return ExitCode::FAILURE;
        }
    };
    // With a metrics port, the workers drain on the ops server's trigger, so that both stop
    // on the same signal.
    let telemetry = metrics_port.and_then(|_| pinion_app::middleware::telemetry(settings, None));
    if let Some(t) = &telemetry {
        if let Err(e) = pinion_app::monitoring::register_build_info(t.registry()) {
            tracing::warn!("build info not registered: {e}");
        }
    }
    let ops = match (metrics_port, &telemetry) {
        (Some(port), Some(t)) => {
            match pinion_app::jobs::ops::serve(settings, port, Arc::clone(t)) {
                Ok(handle) => {
                    tracing::info!("metrics on http://{}/metrics", handle.local_addr());
                    Some(handle)
                }
                Err(e) => {
                    eprintln!("pinion: cannot serve the workers' metrics: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        (Some(_), None) => {
            tracing::warn!(
                "--metrics-port without telemetry (telemetry_enabled = false): no metrics"
            );
            None
        }
        _ => None,
    };
    let trigger = ops
        .as_ref()
        .map_or_else(pinion_server::ShutdownTrigger::detached, |h| h.trigger());
    let threads = settings.effective_threads();
    let registry = telemetry.as_deref().map(|t| t.registry());
    let runner = match pinion_app::jobs::start(
        settings,
        &cfg,
        threads,
        registry,
        wakeups,
        trigger.clone(),
    ) {
        Ok(runner) => runner,
        Err(e) => {
            eprintln!("pinion: cannot start the workers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let signals = signals.on_shutdown(systemd::stopping);
    if let Err(e) = signals.install(trigger.clone(), settings.drain_timeout) {
        eprintln!("pinion: {e}");
        trigger.shutdown();
    }
    tracing::info!(threads, "ready: running background jobs");
    systemd::ready("running background jobs");
    runner.join();
    if let Some(ops) = ops {
        let _ = ops.join();
    }
    tracing::info!("stopped");
    ExitCode::SUCCESS
}

/// The ORM's query cache: an in-process LocMemCache of `cache_max_entries`.
fn orm_query_cache(settings: &Settings) -> Arc<QueryCache> {
    QueryCache::new(LocMemCache::new(&LocMemConfig {
        cache: CacheConfig {
            cache_ttl: settings.cache_ttl,
            key_prefix: "orm".to_string(),
            ..CacheConfig::default()
        },
        max_entries: settings.cache_max_entries,
    }))
}

/// `pinion jobs …`: prints the listing or what was done; exit 1 when the job was not found.
fn jobs_command(settings: &Settings, action: JobsAction) -> ExitCode {
    let Some(cfg) = pinion_app::startup::db_config(settings) else {
        eprintln!(
            "pinion: configuration error: database_url (DATABASE_URL): no database configured"
        );
        return ExitCode::from(2);
    };
    let action = match action {
        JobsAction::List {
            state,
            queue,
            limit,
        } => pinion_app::jobs::cli::Action::List(pinion_jobs::admin::Filter {
            state,
            queue,
            limit: Some(limit),
        }),
        JobsAction::Retry { id } => pinion_app::jobs::cli::Action::Retry(id),
        JobsAction::Cancel { id } => pinion_app::jobs::cli::Action::Cancel(id),
    };
    let done = pinion_app::startup::on_runtime(async {
        let db = ConnectionManager::start(&cfg).map_err(|e| e.to_string())?;
        pinion_app::jobs::cli::run(&db, &action).await
    });
    match done {
        Ok(Ok(out)) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Ok(Err(e)) | Err(e) => {
            eprintln!("pinion: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Applies (or, with `check_only`, lists) pending migrations on a runtime of its own, before
/// any worker starts.
fn migrate(settings: &Settings, check_only: bool) -> Result<Vec<String>, String> {
    let url = settings
        .database_url
        .as_ref()
        .ok_or("no database configured (database_url / DATABASE_URL)")?
        .as_str()
        .to_string();
    let dir = settings.migrations_dir.clone();
    let opts = pinion_app::startup::connect_options(settings);
    let migrations = pinion_orm::migrate::load_dir(&dir).map_err(|e| e.to_string())?;
    pinion_app::startup::on_runtime(async move {
        if check_only {
            pinion_orm::migrate::pending(&url, &migrations, &opts).await
        } else {
            pinion_orm::migrate::run_migrations(&url, &migrations, &opts)
                .await
                .map(|report| report.applied)
        }
    })?
    .map_err(|e| e.to_string())
}

fn migrate_command(settings: &Settings, check_only: bool) -> ExitCode {
    match migrate(settings, check_only) {
        Ok(names) if check_only && !names.is_empty() => {
            for n in &names {
                println!("pending: {n}");
            }
            ExitCode::from(1)
        }
        Ok(names) if check_only => {
            debug_assert!(names.is_empty());
            println!("no pending migrations");
            ExitCode::SUCCESS
        }
        Ok(names) => {
            for n in &names {
                println!("applied: {n}");
            }
            if names.is_empty() {
                println!("nothing to apply");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pinion: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr (journald keeps it under systemd), as text or JSON lines, buffered on the
/// worker threads (see `logging`); `RUST_LOG`, when set, overrides `log_level` for finer
/// filters.
fn init_logging(settings: &Settings) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(settings.log_level.as_str()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(logging::Stderr);
    let result = match settings.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.fmt_fields(log_fields::TextFields).try_init(),
    };
    if let Err(e) = result {
        eprintln!("pinion: logging not initialised: {e}");
    }
}
