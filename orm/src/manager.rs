//! The connection manager: the named databases of one worker thread and the routing between
//! them — writes and transactions to the primary, reads to a healthy replica (round robin) with
//! fallback to the primary, stickiness after writes, primary-only tables.

use std::cell::Cell;
use std::rc::{Rc, Weak};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::database::{Database, Role};
use crate::dial::ConnectOptions;
use crate::error::Error;
use crate::model::ModelMeta;
use crate::router::{PrimaryReplicaRouter, Route, Router};

/// Name of the primary database, as in `.using("default")`.
pub const PRIMARY: &str = "default";

/// Tables that live only on the primary: UNLOGGED tables are not replicated, so a standby
/// cannot read them (sessions, rate limits, the database cache).
pub const DEFAULT_PRIMARY_ONLY_TABLES: &[&str] =
    &["pinion_sessions", "pinion_rate_limits", "pinion_cache"];

/// Typed configuration of the databases, built by the binary from its settings.
#[derive(Clone)]
pub struct DbConfig {
    /// URL of the primary (`postgres://user:pass@host:port/db`).
    pub primary_url: String,
    /// URLs of the streaming replicas, named `replica1`, `replica2`, … in this order.
    pub replica_urls: Vec<String>,
    /// Other databases by name (`("analytics", url)`), for models bound to them with
    /// `#[model(database = "analytics")]` or a [`Router`]; each is a primary of its own.
    pub databases: Vec<(String, String)>,
    /// Where each model's reads and writes go ([`PrimaryReplicaRouter`] by default).
    pub router: Arc<dyn Router>,
    /// The process's query cache (none: query sets always run); one for every thread.
    pub query_cache: Option<Arc<crate::query_cache::QueryCache>>,
    /// Pooled connections per database on each thread (for transactions).
    pub pool_size_per_thread: usize,
    /// Dial and socket options.
    pub connect: ConnectOptions,
    /// Deadline of each query (and of waiting for a pooled connection).
    pub query_timeout: Duration,
    /// How often replicas are pinged to decide their health.
    pub check_interval: Duration,
    /// Tables whose reads always go to the primary.
    pub primary_only_tables: Vec<String>,
}

impl DbConfig {
    /// A configuration with the defaults for everything but the URLs.
    pub fn new(primary_url: impl Into<String>, replica_urls: Vec<String>) -> DbConfig {
        DbConfig {
            primary_url: primary_url.into(),
            replica_urls,
            databases: Vec::new(),
            router: Arc::new(PrimaryReplicaRouter),
            query_cache: None,
            pool_size_per_thread: 4,
            connect: ConnectOptions::default(),
            query_timeout: Duration::from_secs(30),
            check_interval: Duration::from_secs(1),
            primary_only_tables: DEFAULT_PRIMARY_ONLY_TABLES
                .iter()
                .map(|t| t.to_string())
                .collect(),
        }
    }

    /// Installs `router` in place of [`PrimaryReplicaRouter`].
    pub fn router(mut self, router: impl Router) -> DbConfig {
        self.router = Arc::new(router);
        self
    }

    /// Adds the database `name` at `url`, for models bound to it.
    pub fn database(mut self, name: impl Into<String>, url: impl Into<String>) -> DbConfig {
        self.databases.push((name.into(), url.into()));
        self
    }
}

impl std::fmt::Debug for DbConfig {
    /// The URLs are left out: they hold passwords.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbConfig")
            .field("replicas", &self.replica_urls.len())
            .field(
                "databases",
                &self.databases.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("pool_size_per_thread", &self.pool_size_per_thread)
            .field("query_timeout", &self.query_timeout)
            .field("check_interval", &self.check_interval)
            .field("primary_only_tables", &self.primary_only_tables)
            .finish_non_exhaustive()
    }
}

/// The databases of one worker thread: the primary and its replicas, with the routing between
/// them. Named as the connection-pool guides name it (`ConnectionManager`), so that what they
/// say about sizing and routing reads across.
pub struct ConnectionManager {
    primary: Database,
    replicas: Vec<Database>,
    /// The other named databases, each a primary of its own.
    others: Vec<Database>,
    next: Cell<usize>,
    /// A few names, compared in a loop: cheaper than hashing the name on every read.
    primary_only: Vec<Box<str>>,
    router: Arc<dyn Router>,
    query_cache: Option<Arc<crate::query_cache::QueryCache>>,
}

impl ConnectionManager {
    /// Parses the URLs and starts connecting (in the background: a database that is down is
    /// retried, not fatal). Must run on the worker thread's monoio runtime.
    ///
    /// # Errors
    /// A configuration error for a URL that does not parse.
    pub fn start(cfg: &DbConfig) -> Result<Rc<ConnectionManager>, Error> {
        let parse = |url: &str| {
            tokio_postgres::Config::from_str(url)
                .map_err(|e| Error::config(format!("invalid database URL: {e}")))
        };
        let primary = Database::start(
            PRIMARY,
            Role::Primary,
            parse(&cfg.primary_url)?,
            cfg.connect,
            cfg.pool_size_per_thread,
            cfg.query_timeout,
        );
        let mut replicas = Vec::with_capacity(cfg.replica_urls.len());
        for (i, url) in cfg.replica_urls.iter().enumerate() {
            replicas.push(Database::start(
                &format!("replica{}", i + 1),
                Role::Replica,
                parse(url)?,
                cfg.connect,
                cfg.pool_size_per_thread,
                cfg.query_timeout,
            ));
        }
        let mut others = Vec::with_capacity(cfg.databases.len());
        for (name, url) in &cfg.databases {
            if name == PRIMARY || name.starts_with("replica") {
                return Err(Error::config(format!(
                    "database name `{name}` is reserved for the primary and its replicas"
                )));
            }
            others.push(Database::start(
                name,
                Role::Other,
                parse(url)?,
                cfg.connect,
                cfg.pool_size_per_thread,
                cfg.query_timeout,
            ));
        }
        let db = Rc::new(ConnectionManager {
            primary,
            replicas,
            others,
            router: Arc::clone(&cfg.router),
            query_cache: cfg.query_cache.clone(),
            next: Cell::new(0),
            primary_only: cfg
                .primary_only_tables
                .iter()
                .map(|t| t.as_str().into())
                .collect(),
        });
        for d in db.databases() {
            d.set_query_cache(db.query_cache.clone());
        }
        if !db.replicas.is_empty() {
            monoio::spawn(check_replicas(Rc::downgrade(&db), cfg.check_interval));
        }
        Ok(db)
    }

    /// The primary (`default`): writes, transactions, primary-only tables.
    pub fn primary(&self) -> &Database {
        &self.primary
    }

    /// The next healthy replica, round robin; `None` while none is healthy.
    pub fn replica(&self) -> Option<&Database> {
        let n = self.replicas.len();
        for _ in 0..n {
            let i = self.next.get() % n;
            self.next.set(i + 1);
            let r = &self.replicas[i];
            if r.is_healthy() {
                return Some(r);
            }
        }
        None
    }

    /// Where a read goes: a healthy replica, else the primary.
    pub fn reader(&self) -> &Database {
        self.replica().unwrap_or(&self.primary)
    }

    /// The database named `name` (`default`, `replica1`, …, or another configured name),
    /// whatever its health.
    pub fn using(&self, name: &str) -> Option<&Database> {
        if name == PRIMARY {
            return Some(&self.primary);
        }
        self.replicas
            .iter()
            .chain(&self.others)
            .find(|d| d.name() == name)
    }

    /// Every database, primary first, then the replicas, then the other named ones.
    pub fn databases(&self) -> impl Iterator<Item = &Database> {
        std::iter::once(&self.primary)
            .chain(self.replicas.iter())
            .chain(self.others.iter())
    }

    /// The router in use.
    pub fn router(&self) -> &dyn Router {
        &*self.router
    }

    /// The query cache, when one is configured.
    pub fn query_cache(&self) -> Option<&crate::query_cache::QueryCache> {
        self.query_cache.as_deref()
    }

    /// Where a read that fills the query cache goes: as [`read_target`](Self::read_target),
    /// but a replica that has not replayed `lsn` (the position after the last bump of the
    /// tables read) is passed over for the primary, so that it cannot cache rows a commit
    /// already replaced.
    pub(crate) fn fill_target<'a>(&'a self, read: &'a Database, lsn: u64) -> &'a Database {
        if read.role() == Role::Replica && read.replayed_lsn() < lsn {
            &self.primary
        } else {
            read
        }
    }

    /// The database named `name`, or an error that names it.
    pub(crate) fn named(&self, name: &str) -> Result<&Database, Error> {
        self.using(name)
            .ok_or_else(|| Error::invalid(format!("no database is configured as `{name}`")))
    }

    /// Where a read of `model` goes: `using` when given; else the router's answer, with
    /// primary-only tables on the primary, and replica reads on the primary when
    /// `on_primary` (the request wrote, or its sticky cookie says it did).
    pub(crate) fn read_target(
        &self,
        model: &ModelMeta,
        using: Option<&str>,
        on_primary: bool,
    ) -> Result<&Database, Error> {
        if let Some(name) = using {
            return self.named(name);
        }
        match self.router.db_for_read(model) {
            Route::Primary => Ok(&self.primary),
            Route::Replica => {
                if on_primary || model.primary_only || self.is_primary_only(model.table) {
                    Ok(&self.primary)
                } else {
                    Ok(self.reader())
                }
            }
            Route::Named(name) => self.named(name),
        }
    }

    /// Where a write of `model` goes: `using` when given, else the router's answer (a
    /// replica answer means the primary).
    pub(crate) fn write_target(
        &self,
        model: &ModelMeta,
        using: Option<&str>,
    ) -> Result<&Database, Error> {
        if let Some(name) = using {
            return self.named(name);
        }
        match self.router.db_for_write(model) {
            Route::Primary | Route::Replica => Ok(&self.primary),
            Route::Named(name) => self.named(name),
        }
    }

    /// Whether reads of `table` must go to the primary.
    pub fn is_primary_only(&self, table: &str) -> bool {
        self.primary_only.iter().any(|t| **t == *table)
    }

    /// A routing scope for one request. `sticky` (from the client's cookie) keeps its reads on
    /// the primary because it wrote a moment ago.
    pub fn routing(&self, sticky: bool) -> Routing<'_> {
        Routing {
            db: self,
            wrote: Cell::new(false),
            sticky,
        }
    }
}

/// Routing for one request: once it writes, its later reads go to the primary, so it reads
/// its own writes despite replication lag. (Not "session": HTTP sessions are another thing.)
pub struct Routing<'a> {
    db: &'a ConnectionManager,
    wrote: Cell<bool>,
    sticky: bool,
}

impl<'a> Routing<'a> {
    /// Where a read goes now.
    pub fn read(&self) -> &'a Database {
        if self.wrote.get() || self.sticky {
            self.db.primary()
        } else {
            self.db.reader()
        }
    }

    /// Where a read of `tables` goes: the primary when any of them is primary-only.
    pub fn read_tables(&self, tables: &[&str]) -> &'a Database {
        if tables.iter().any(|t| self.db.is_primary_only(t)) {
            self.db.primary()
        } else {
            self.read()
        }
    }

    /// The primary, for a write; the rest of this request reads from it too.
    pub fn write(&self) -> &'a Database {
        self.wrote.set(true);
        self.db.primary()
    }

    /// Sends this request's later reads to the primary without writing: for a
    /// read-modify-write that must read what it is about to change.
    pub fn read_from_primary(&self) {
        self.wrote.set(true);
    }

    /// Whether this request wrote (the app then sets the sticky cookie).
    pub fn wrote(&self) -> bool {
        self.wrote.get()
    }

    /// The manager behind this routing scope, e.g. for `.using("default")`.
    pub fn db(&self) -> &'a ConnectionManager {
        self.db
    }

    /// Where a read of `model` goes for this request (see
    /// [`ConnectionManager::read_target`]).
    pub(crate) fn read_target(
        &self,
        model: &ModelMeta,
        using: Option<&str>,
    ) -> Result<&'a Database, Error> {
        self.db
            .read_target(model, using, self.wrote.get() || self.sticky)
    }

    /// Where a write of `model` goes; after a write to the primary, the rest of this request
    /// reads from it.
    ///
    /// Marked as written only once the target is found, and only for the primary: a write
    /// refused before it reached any database (`.using("nope")`) wrote nothing, and a write
    /// to another database (`database = "analytics"`) leaves the primary's replicas as
    /// current as they were; neither must send this request's later reads to the primary nor
    /// make [`wrote`](Self::wrote) ask for the sticky cookie.
    pub(crate) fn write_target(
        &self,
        model: &ModelMeta,
        using: Option<&str>,
    ) -> Result<&'a Database, Error> {
        let target = self.db.write_target(model, using)?;
        if target.role() == Role::Primary {
            self.wrote.set(true);
        }
        Ok(target)
    }
}

/// Pings every replica each `interval`: a failed ping takes it out of the read rotation, a
/// good one puts it back. Ends when the `ConnectionManager` is dropped.
async fn check_replicas(db: Weak<ConnectionManager>, interval: Duration) {
    // What was last logged for each replica: a read that lost the connection marks the
    // replica unhealthy before the next check, so the check compares with what the operator
    // was told, not with the flag. `None` until the first check.
    let mut reported: Vec<Option<bool>> = Vec::new();
    let mut first = true;
    loop {
        // The first check runs at once: until a replica's replay position is known, the
        // query cache fills from the primary.
        if !first {
            monoio::time::sleep(interval).await;
        }
        first = false;
        let Some(db) = db.upgrade() else { return };
        reported.resize(db.replicas.len(), None);
        for (r, told) in db.replicas.iter().zip(reported.iter_mut()) {
            let now = r.check_replay().await.is_ok() && r.is_connected();
            match (*told, now) {
                (Some(false), true) => {
                    tracing::info!(
                        database = r.name(),
                        "replica healthy again, back in rotation"
                    );
                }
                (Some(true) | None, false) => {
                    tracing::warn!(database = r.name(), "replica unhealthy, reads fall back");
                }
                _ => {}
            }
            *told = Some(now);
        }
    }
}
