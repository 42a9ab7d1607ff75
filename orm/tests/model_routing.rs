//! Query sets routed by operation, against a real primary and its streaming replica: which
//! server answers each read and takes each write, primary-only models and tables, `.using`,
//! models bound to another database (by attribute and by a router of our own), a replica
//! stopped under load, and every connection of the manager terminated under load.
//!
//! Which server answered a read is read from the server itself: the `*_where` views expose
//! `pg_is_in_recovery()`, true only on a standby.

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use common::{eventually, run, Cluster};
use pinion_orm::{
    raw, ConnectionManager, Database, DbConfig, Executor, Model, ModelMeta, PrimaryReplicaRouter,
    QuerySet, Route, Router,
};

/// Concurrent readers in the load tests, all on one thread.
const READERS: usize = 200;

fn config(primary: &str, replica: &str) -> DbConfig {
    let mut cfg = DbConfig::new(primary.to_string(), vec![replica.to_string()]);
    cfg.check_interval = Duration::from_millis(200);
    cfg.connect.connect_timeout = Duration::from_secs(3);
    cfg
}

/// A manager whose primary and replica are both connected.
async fn start(cfg: &DbConfig) -> Rc<ConnectionManager> {
    let db = ConnectionManager::start(cfg).expect("db");
    for d in db.databases() {
        d.wait_connected().await.expect("connected");
    }
    db
}

/// Waits until the replica has replayed everything the primary has written so far (the DDL
/// just run), so that what was created there can be read on the replica.
async fn replicated(db: &ConnectionManager) {
    let lsn: String = db
        .primary()
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .expect("primary LSN")
        .get(0);
    let replica = db.using("replica1").expect("replica1");
    let caught_up = eventually(Duration::from_secs(15), async || {
        replica
            .query_one(
                "SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn",
                &[&lsn],
            )
            .await
            .is_ok_and(|row| row.get::<_, Option<bool>>(0) == Some(true))
    })
    .await;
    assert!(
        caught_up,
        "the replica did not replay the primary's WAL up to {lsn}"
    );
}

/// A model that says whether the server that read it is a standby.
trait Answered: Model {
    fn standby(&self) -> bool;
}

/// Declares a model of a `CREATE VIEW <table> AS SELECT 1 AS id, pg_is_in_recovery() AS
/// standby` (each test its own).
macro_rules! where_model {
    ($name:ident, $table:literal $(, $setting:ident)?) => {
        #[derive(Debug, Model)]
        #[model(table = $table $(, $setting)?)]
        struct $name {
            #[model(primary_key)]
            id: i32,
            standby: bool,
        }

        impl Answered for $name {
            fn standby(&self) -> bool {
                assert_eq!(self.id, 1);
                self.standby
            }
        }
    };
}

/// The view behind a [`where_model!`] model.
fn where_view(table: &str) -> String {
    format!(
        "DROP VIEW IF EXISTS {table}; \
         CREATE VIEW {table} AS SELECT 1 AS id, pg_is_in_recovery() AS standby;"
    )
}

/// Like [`where_view`], but each read of it on a standby takes `secs` seconds (on the
/// primary none): a read that is surely in flight on the replica's server when the replica
/// goes away, and that answers at once where it is retried.
fn slow_on_standby_view(table: &str, secs: u32) -> String {
    format!(
        "DROP VIEW IF EXISTS {table}; \
         CREATE VIEW {table} AS SELECT 1 AS id, pg_is_in_recovery() AS standby \
         FROM pg_sleep(CASE WHEN pg_is_in_recovery() THEN {secs} ELSE 0 END);"
    )
}

/// Whether `server` is running a statement on `table` for a client other than the caller.
async fn reading(server: &Database, table: &str) -> bool {
    server
        .query_opt(
            "SELECT 1 FROM pg_stat_activity WHERE state = 'active' \
             AND pid <> pg_backend_pid() AND query LIKE 'SELECT%' || $1 || '%' LIMIT 1",
            &[&table],
        )
        .await
        .expect("pg_stat_activity")
        .is_some()
}

/// Whether the read of `qs` through `db` was answered by a standby.
async fn answered_by_standby<M: Answered>(qs: &QuerySet<M>, db: &impl Executor) -> bool {
    qs.get(db).await.expect("a query-set read").standby()
}

/// Whether `table` exists in the database `name` of `db`.
async fn has_table(db: &ConnectionManager, name: &str, table: &str) -> bool {
    db.using(name)
        .unwrap_or_else(|| panic!("database {name}"))
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await
        .expect("to_regclass")
        .get(0)
}

/// The ORM's "read retried on another connection" events on the thread it is installed on,
/// as `(failed, retry_on)` database names: what the ORM itself says it retried.
#[derive(Clone, Default)]
struct Retries(Arc<Mutex<Vec<(String, String)>>>);

impl Retries {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        tracing::subscriber::set_default(self.clone())
    }

    /// Reads that failed on `failed` and were retried on `retry_on`.
    fn count(&self, failed: &str, retry_on: &str) -> usize {
        self.0
            .lock()
            .expect("retries")
            .iter()
            .filter(|(f, r)| f == failed && r == retry_on)
            .count()
    }

    fn all(&self) -> Vec<(String, String)> {
        self.0.lock().expect("retries").clone()
    }
}

/// The fields of one event that [`Retries`] looks at.
#[derive(Default)]
struct RetryFields {
    message: String,
    failed: String,
    retry_on: String,
}

impl tracing::field::Visit for RetryFields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "failed" => self.failed = value.to_string(),
            "retry_on" => self.retry_on = value.to_string(),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        }
    }
}

impl tracing::Subscriber for Retries {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        metadata.is_event()
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = RetryFields::default();
        event.record(&mut fields);
        if fields.message == "read retried on another connection" {
            self.0
                .lock()
                .expect("retries")
                .push((fields.failed, fields.retry_on));
        }
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

// 1. Reads to the replica, writes to the primary, then the primary for the rest of the scope.

where_model!(RwWhere, "mr_rw_where");

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "mr_rw_item")]
struct RwItem {
    #[model(primary_key, auto)]
    id: i32,
    name: String,
}

#[test]
fn query_sets_read_from_the_replica_write_to_the_primary_and_then_read_from_it() {
    let cluster = Cluster::shared();
    run(async {
        let db = start(&config(&cluster.primary, &cluster.replica)).await;
        db.primary()
            .batch_execute(&format!(
                "{} DROP TABLE IF EXISTS mr_rw_item; \
                 CREATE TABLE mr_rw_item (id serial PRIMARY KEY, name text NOT NULL);",
                where_view("mr_rw_where")
            ))
            .await
            .expect("schema");
        replicated(&db).await;

        // Without a request scope, and in a fresh one, reads go to the replica.
        assert!(
            answered_by_standby(&RwWhere::objects(), &*db).await,
            "a manager read was not served by the replica"
        );
        let routing = db.routing(false);
        assert!(
            answered_by_standby(&RwWhere::objects(), &routing).await,
            "a query-set read was not served by the replica"
        );
        assert!(!routing.wrote());

        // A standby refuses writes (25006): had save() gone to the replica, it would fail.
        let on_replica = RwItem::objects()
            .using("replica1")
            .update([RwItem::NAME.set("never")], &db.routing(false))
            .await
            .expect_err("a standby takes no writes");
        assert_eq!(on_replica.code(), Some("25006"), "{on_replica}");

        let mut item = RwItem {
            id: 0,
            name: "written".into(),
        };
        let saved = item
            .save(&routing)
            .await
            .expect("save() goes to the primary");
        assert!(saved.created && item.id > 0, "{item:?}");
        assert!(routing.wrote());

        // The rest of the scope reads from the primary, and so reads its own write at once.
        assert!(
            !answered_by_standby(&RwWhere::objects(), &routing).await,
            "a read after the write was not served by the primary"
        );
        let read_back = RwItem::objects()
            .filter(RwItem::ID.eq(item.id))
            .get(&routing)
            .await
            .expect("the scope reads its own write");
        assert_eq!(read_back, item);

        // A fresh scope reads from the replica again; a sticky one from the primary.
        let fresh = db.routing(false);
        assert!(
            answered_by_standby(&RwWhere::objects(), &fresh).await,
            "a fresh scope did not read from the replica"
        );
        assert!(!fresh.wrote());
        let sticky = db.routing(true);
        assert!(
            !answered_by_standby(&RwWhere::objects(), &sticky).await,
            "a sticky scope did not read from the primary"
        );
        assert!(!sticky.wrote(), "stickiness is not a write");
    });
}

// 2. Primary-only models and tables.

/// An UNLOGGED table: a standby cannot read it at all.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "mr_po_session", primary_only)]
struct PoSession {
    #[model(primary_key)]
    id: i32,
    data: String,
}

where_model!(PoWhere, "mr_po_where", primary_only);
where_model!(ListedWhere, "mr_listed_where");
where_model!(UnlistedWhere, "mr_unlisted_where");

#[test]
fn primary_only_models_and_tables_always_read_from_the_primary() {
    let cluster = Cluster::shared();
    run(async {
        let mut cfg = config(&cluster.primary, &cluster.replica);
        cfg.primary_only_tables.push("mr_listed_where".into());
        let db = start(&cfg).await;
        db.primary()
            .batch_execute(&format!(
                "DROP TABLE IF EXISTS mr_po_session; \
                 CREATE UNLOGGED TABLE mr_po_session (id int4 PRIMARY KEY, data text NOT NULL); \
                 {} {} {}",
                where_view("mr_po_where"),
                where_view("mr_listed_where"),
                where_view("mr_unlisted_where"),
            ))
            .await
            .expect("schema");
        replicated(&db).await;

        // The replica is in rotation: an ordinary model reads there.
        assert!(answered_by_standby(&UnlistedWhere::objects(), &db.routing(false)).await);

        // An UNLOGGED table is not readable on the standby (0A000)...
        let refused = PoSession::objects()
            .using("replica1")
            .count(&*db)
            .await
            .expect_err("a standby cannot read an UNLOGGED table");
        assert_eq!(refused.code(), Some("0A000"), "{refused}");
        // ... and the primary-only model reads it in a scope that did not write.
        let mut session = PoSession {
            id: 1,
            data: "on the primary".into(),
        };
        session.save(&*db).await.expect("save");
        for _ in 0..5 {
            let routing = db.routing(false);
            let got = PoSession::objects()
                .filter(PoSession::ID.eq(1))
                .get(&routing)
                .await
                .expect("a primary-only model reads from the primary");
            assert_eq!(got, session);
            assert!(!routing.wrote());
            assert!(
                !answered_by_standby(&PoWhere::objects(), &routing).await,
                "a primary_only model was read from the replica"
            );
        }
        assert_eq!(PoSession::objects().count(&*db).await.expect("count"), 1);

        // A table listed in `primary_only_tables`, by query set and by raw SQL.
        for _ in 0..5 {
            let routing = db.routing(false);
            assert!(
                !answered_by_standby(&ListedWhere::objects(), &routing).await,
                "a listed primary-only table was read from the replica"
            );
            let raw_listed: Option<(bool,)> = raw("SELECT pg_is_in_recovery()")
                .reads("mr_unlisted_where")
                .reads("mr_listed_where")
                .first(&routing)
                .await
                .expect("raw read");
            assert_eq!(raw_listed, Some((false,)), "raw SQL reading a listed table");
            let raw_unlisted: Option<(bool,)> = raw("SELECT pg_is_in_recovery()")
                .reads("mr_unlisted_where")
                .first(&routing)
                .await
                .expect("raw read");
            assert_eq!(raw_unlisted, Some((true,)), "raw SQL reading another table");
        }
    });
}

// 3. `.using(name)`.

where_model!(UsingWhere, "mr_using_where");

#[test]
fn using_forces_a_database_and_an_unknown_name_is_an_error_naming_it() {
    let cluster = Cluster::shared();
    run(async {
        let db = start(&config(&cluster.primary, &cluster.replica)).await;
        db.primary()
            .batch_execute(&where_view("mr_using_where"))
            .await
            .expect("schema");
        replicated(&db).await;

        let routing = db.routing(false);
        assert!(answered_by_standby(&UsingWhere::objects(), &routing).await);
        assert!(
            !answered_by_standby(&UsingWhere::objects().using("default"), &routing).await,
            "using(\"default\") did not read from the primary"
        );
        assert!(
            answered_by_standby(&UsingWhere::objects().using("replica1"), &routing).await,
            "using(\"replica1\") did not read from the replica"
        );
        // `using` wins over stickiness, and over the manager's own routing.
        assert!(
            answered_by_standby(&UsingWhere::objects().using("replica1"), &db.routing(true)).await
        );
        assert!(!answered_by_standby(&UsingWhere::objects().using("default"), &*db).await);
        let raw_replica: Option<(bool,)> = raw("SELECT pg_is_in_recovery()")
            .reads("mr_using_where")
            .using("replica1")
            .first(&db.routing(true))
            .await
            .expect("raw read");
        assert_eq!(raw_replica, Some((true,)));

        // An unknown name fails, reads and writes alike, and the error names it.
        let read = UsingWhere::objects()
            .using("nope")
            .get(&routing)
            .await
            .expect_err("no database is named nope");
        assert!(read.to_string().contains("`nope`"), "{read}");
        let counted = UsingWhere::objects()
            .using("nope")
            .count(&*db)
            .await
            .expect_err("no database is named nope");
        assert!(counted.to_string().contains("`nope`"), "{counted}");
        let raw_read = raw("SELECT 1")
            .reads("mr_using_where")
            .using("nope")
            .first::<(i32,)>(&routing)
            .await
            .expect_err("no database is named nope");
        assert!(raw_read.to_string().contains("`nope`"), "{raw_read}");
        let write = UsingWhere::objects()
            .using("nope")
            .delete(&routing)
            .await
            .expect_err("no database is named nope");
        assert!(write.to_string().contains("`nope`"), "{write}");
        // A write that went nowhere did not write: the scope keeps reading from the replica.
        assert!(!routing.wrote(), "a refused write made the scope sticky");
        assert!(answered_by_standby(&UsingWhere::objects(), &routing).await);
    });
}

// 4. Models bound to another database.

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "mr_other_note", database = "other")]
struct OtherNote {
    #[model(primary_key, auto)]
    id: i32,
    body: String,
}

/// Bound to `other` by [`NotesToOther`], not by an attribute.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "mr_routed_note")]
struct RoutedNote {
    #[model(primary_key, auto)]
    id: i32,
    body: String,
}

/// Sends the `mr_routed_*` tables to the database `other`, the rest where the default router
/// sends them.
struct NotesToOther;

impl Router for NotesToOther {
    fn db_for_read(&self, model: &ModelMeta) -> Route {
        if model.table.starts_with("mr_routed_") {
            Route::Named("other")
        } else {
            PrimaryReplicaRouter.db_for_read(model)
        }
    }

    fn db_for_write(&self, model: &ModelMeta) -> Route {
        if model.table.starts_with("mr_routed_") {
            Route::Named("other")
        } else {
            PrimaryReplicaRouter.db_for_write(model)
        }
    }
}

/// The URL of the database `mr_other` on the cluster's primary server, created when absent
/// (by the tests' role, which has CREATEDB; one simple-protocol statement, as `CREATE
/// DATABASE` cannot run in a transaction).
fn other_database(cluster: &Cluster) -> String {
    run(async {
        let admin = common::primary_only(&cluster.primary);
        let exists = admin
            .primary()
            .query_opt("SELECT 1 FROM pg_database WHERE datname = 'mr_other'", &[])
            .await
            .expect("pg_database")
            .is_some();
        if !exists {
            if let Err(e) = admin
                .primary()
                .batch_execute("CREATE DATABASE mr_other")
                .await
            {
                // 42P04: created meanwhile by another run.
                assert_eq!(e.code(), Some("42P04"), "CREATE DATABASE mr_other: {e}");
            }
        }
    });
    let base = cluster
        .primary
        .rsplit_once('/')
        .expect("a URL with a database")
        .0;
    format!("{base}/mr_other")
}

#[test]
fn models_bound_to_another_database_read_and_write_there() {
    let cluster = Cluster::shared();
    let other_url = other_database(&cluster);
    run(async {
        // The tables exist in mr_other only.
        let other = common::primary_only(&other_url);
        other
            .primary()
            .batch_execute(
                "DROP TABLE IF EXISTS mr_other_note, mr_routed_note; \
                 CREATE TABLE mr_other_note (id serial PRIMARY KEY, body text NOT NULL); \
                 CREATE TABLE mr_routed_note (id serial PRIMARY KEY, body text NOT NULL);",
            )
            .await
            .expect("schema in mr_other");
        let db =
            start(&config(&cluster.primary, &cluster.replica).database("other", &other_url)).await;
        db.primary()
            .batch_execute("DROP TABLE IF EXISTS mr_other_note, mr_routed_note")
            .await
            .expect("none in the default database");
        replicated(&db).await;
        for table in ["mr_other_note", "mr_routed_note"] {
            assert!(has_table(&db, "other", table).await);
            assert!(!has_table(&db, "default", table).await);
            assert!(!has_table(&db, "replica1", table).await);
        }

        // `#[model(database = "other")]`: writes and reads go there, in any scope.
        let routing = db.routing(false);
        let mut note = OtherNote {
            id: 0,
            body: "in mr_other".into(),
        };
        assert!(note.save(&routing).await.expect("save in other").created);
        // The primary's replicas are as current as before: the request is not made sticky.
        assert!(
            !routing.wrote(),
            "a write to another database is no primary write"
        );
        assert_eq!(routing.read().name(), "replica1");
        for scope in [db.routing(false), db.routing(true)] {
            let got = OtherNote::objects()
                .filter(OtherNote::ID.eq(note.id))
                .get(&scope)
                .await
                .expect("read from other");
            assert_eq!(got, note);
        }
        assert_eq!(OtherNote::objects().count(&*db).await.expect("count"), 1);
        let changed = OtherNote::objects()
            .filter(OtherNote::ID.eq(note.id))
            .update(
                [OtherNote::BODY.set("updated in mr_other")],
                &db.routing(false),
            )
            .await
            .expect("update in other");
        assert_eq!(changed, 1);
        let checked: (String, i64) = other
            .primary()
            .query_one("SELECT body, count(*) OVER () FROM mr_other_note", &[])
            .await
            .map(|r| (r.get(0), r.get(1)))
            .expect("the row is in mr_other");
        assert_eq!(checked, ("updated in mr_other".to_string(), 1));
        let named: Option<(String,)> = raw("SELECT current_database()::text")
            .reads("mr_other_note")
            .using("other")
            .first(&*db)
            .await
            .expect("raw read");
        assert_eq!(named, Some(("mr_other".to_string(),)));

        // The default router sends RoutedNote to the primary and replica, which lack it.
        let missing = RoutedNote::objects()
            .count(&db.routing(false))
            .await
            .expect_err("mr_routed_note is not in the default database");
        assert_eq!(missing.code(), Some("42P01"), "{missing}");

        // A router of our own sends it to `other`, reads and writes.
        let routed = start(
            &config(&cluster.primary, &cluster.replica)
                .database("other", &other_url)
                .router(NotesToOther),
        )
        .await;
        let scope = routed.routing(false);
        let mut routed_note = RoutedNote {
            id: 0,
            body: "routed".into(),
        };
        assert!(routed_note.save(&scope).await.expect("routed save").created);
        let got = RoutedNote::objects()
            .filter(RoutedNote::ID.eq(routed_note.id))
            .get(&routed.routing(false))
            .await
            .expect("routed read");
        assert_eq!(got, routed_note);
        let in_other: i64 = other
            .primary()
            .query_one("SELECT count(*) FROM mr_routed_note", &[])
            .await
            .expect("the row is in mr_other")
            .get(0);
        assert_eq!(in_other, 1);
        let where_raw: Option<(String,)> = raw("SELECT current_database()::text")
            .reads("mr_routed_note")
            .first(&routed.routing(false))
            .await
            .expect("raw read routed by table");
        assert_eq!(where_raw, Some(("mr_other".to_string(),)));
        // Everything else still follows the default router: reads from the replica.
        let elsewhere: Option<(bool,)> = raw("SELECT pg_is_in_recovery()")
            .reads("mr_plain")
            .first(&routed.routing(false))
            .await
            .expect("raw read");
        assert_eq!(elsewhere, Some((true,)));
        for table in ["mr_other_note", "mr_routed_note"] {
            assert!(!has_table(&db, "default", table).await);
        }

        // With a query cache, reads of another database bypass it: its commits cannot
        // announce their bumps on the primary's channel, so other instances would go on
        // serving what they cached.
        let qc = pinion_orm::QueryCache::new(pinion_cache::LocMemCache::new(
            &pinion_cache::LocMemConfig::default(),
        ));
        let mut cfg = config(&cluster.primary, &cluster.replica).database("other", &other_url);
        cfg.query_cache = Some(std::sync::Arc::clone(&qc));
        let cached = start(&cfg).await;
        let read = || OtherNote::objects().filter(OtherNote::ID.eq(note.id));
        for _ in 0..2 {
            read().get(&*cached).await.expect("read from other");
        }
        let batched = pinion_orm::query::batch([read(), read()])
            .get(&*cached)
            .await
            .expect("batch from other");
        assert_eq!(batched.len(), 2);
        let stats = qc.stats();
        assert_eq!((stats.hits, stats.misses, stats.bypasses), (0, 0, 4));
    });
}

// 5. The replica stops under load.

where_model!(StopWhere, "mr_stop_where");
where_model!(StopSlow, "mr_stop_slow");

/// What one reader saw.
#[derive(Default)]
struct Seen {
    ok: usize,
    on_replica: usize,
    failures: Vec<String>,
    /// The answer to the read started after the replica had stopped: was it a standby?
    after_stop: Option<bool>,
}

#[test]
fn reads_survive_the_replica_stopping_under_load_then_return_to_it() {
    let cluster = Cluster::private("model_routing");
    let retries = Retries::default();
    let _retries = retries.install();
    let (go, go_rx) = mpsc::channel::<()>();
    let stopped = AtomicBool::new(false);
    std::thread::scope(|s| {
        // Stops the replica when told (or once the test gave up).
        let (cluster, stopped) = (&cluster, &stopped);
        s.spawn(move || {
            if go_rx.recv().is_ok() {
                cluster.pg(&["stop-replica", "immediate"]);
            }
            stopped.store(true, Ordering::SeqCst);
        });
        let go = Cell::new(Some(go));
        run(async {
            let db = start(&config(&cluster.primary, &cluster.replica)).await;
            db.primary()
                .batch_execute(&format!(
                    "{} {}",
                    where_view("mr_stop_where"),
                    slow_on_standby_view("mr_stop_slow", 10)
                ))
                .await
                .expect("schema");
            replicated(&db).await;

            let started = Cell::new(0);
            let (started, stopped, db) = (&started, &stopped, &db);
            let readers = (0..READERS).map(|_| async move {
                let mut seen = Seen::default();
                loop {
                    let last = stopped.load(Ordering::SeqCst);
                    match StopWhere::objects().get(&db.routing(false)).await {
                        Ok(w) => {
                            if seen.ok == 0 {
                                started.set(started.get() + 1);
                            }
                            seen.ok += 1;
                            seen.on_replica += usize::from(w.standby());
                            if last {
                                seen.after_stop = Some(w.standby());
                            }
                        }
                        Err(e) => seen.failures.push(e.to_string()),
                    }
                    if last {
                        return seen;
                    }
                }
            });
            // Once every reader is under way, a read that sleeps on the standby: when it is
            // running there, the replica is stopped. It and the readers' reads queued behind
            // it on the replica's connection are in flight when the server goes.
            let control = async {
                let under_way =
                    eventually(Duration::from_secs(10), async || started.get() == READERS).await;
                assert!(under_way, "the readers did not get going");
                let (slow_scope, slow_read) = (db.routing(false), StopSlow::objects());
                let slow = slow_read.get(&slow_scope);
                let stop = async {
                    let replica = db.using("replica1").expect("replica1");
                    let running = eventually(Duration::from_secs(10), async || {
                        reading(replica, "mr_stop_slow").await
                    })
                    .await;
                    assert!(running, "the slow read did not run on the replica");
                    if let Some(go) = go.take() {
                        go.send(()).expect("the stopper waits");
                    }
                };
                futures_util::future::join(slow, stop).await.0
            };
            let (seen, slow) =
                futures_util::future::join(futures_util::future::join_all(readers), control).await;
            let slow = slow.expect("the read in flight when the replica stopped succeeded");
            assert!(
                !slow.standby(),
                "the read in flight on the replica was not answered by the primary"
            );

            let reads: usize = seen.iter().map(|s| s.ok).sum();
            let failures: Vec<&String> = seen.iter().flat_map(|s| &s.failures).collect();
            assert!(
                failures.is_empty(),
                "{} reads failed ({reads} succeeded), first: {}",
                failures.len(),
                failures[0]
            );
            assert!(
                seen.iter().all(|s| s.on_replica > 0),
                "not every reader was served by the replica before it stopped"
            );
            assert!(
                seen.iter().all(|s| s.after_stop == Some(false)),
                "a read after the stop was not served by the primary"
            );
            // Reads in flight on the replica when it stopped failed there and were retried
            // (once) on the primary: the ORM says so.
            let moved = retries.count("replica1", "default");
            assert!(
                moved > 0,
                "no read was retried from the replica on the primary: {:?}",
                retries.all()
            );
            eprintln!("{reads} reads, none failed; {moved} retried from replica1 on default");

            // Back: once the replica streams again, reads return to it (and keep succeeding
            // meanwhile).
            cluster.pg(&["start-replica"]);
            let back = eventually(Duration::from_secs(30), async || {
                StopWhere::objects()
                    .get(&db.routing(false))
                    .await
                    .expect("reads keep succeeding while the replica comes back")
                    .standby()
            })
            .await;
            assert!(back, "reads did not return to the replica");
        });
    });
}

// 6. Every connection of the manager terminated under load.

where_model!(TermWhere, "mr_term_where");
where_model!(TermSlow, "mr_term_slow");

/// Terminates every backend of `server` whose `application_name` is `app`, waiting until
/// each is gone; their pids.
async fn terminate(server: &Database, app: &str) -> Vec<i32> {
    server
        .query(
            "WITH victims AS MATERIALIZED \
               (SELECT pid FROM pg_stat_activity WHERE application_name = $1) \
             SELECT pid, pg_terminate_backend(pid, 5000) FROM victims",
            &[&app],
        )
        .await
        .expect("pg_terminate_backend")
        .iter()
        .filter(|row| row.get::<_, bool>(1))
        .map(|row| row.get(0))
        .collect()
}

#[test]
fn reads_in_flight_when_every_connection_is_terminated_succeed_and_writes_are_not_retried() {
    let cluster = Cluster::shared();
    let retries = Retries::default();
    let _retries = retries.install();
    // The manager's connections carry a name of their own, so that only they are terminated.
    let app = format!("mr_term_{}", std::process::id());
    let named = |url: &str| {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}application_name={app}")
    };
    run(async {
        let db = start(&config(&named(&cluster.primary), &named(&cluster.replica))).await;
        let on_primary = common::primary_only(&cluster.primary);
        let on_replica = common::primary_only(&cluster.replica);
        db.primary()
            .batch_execute(&format!(
                "{} {} DROP TABLE IF EXISTS mr_term_log; \
                 CREATE TABLE mr_term_log (id serial PRIMARY KEY, note text NOT NULL);",
                where_view("mr_term_where"),
                slow_on_standby_view("mr_term_slow", 10)
            ))
            .await
            .expect("schema");
        replicated(&db).await;

        // Half the readers read from the replica, half (sticky) from the primary, each in a
        // loop until the end.
        let done = Cell::new(false);
        let started = Cell::new(0);
        let from_primary = Cell::new(0);
        let from_replica = Cell::new(0);
        let reads = Cell::new(0);
        let failures = RefCell::new(Vec::new());
        let readers = (0..READERS).map(|i| {
            let (done, started, from_primary, from_replica, reads, failures) = (
                &done,
                &started,
                &from_primary,
                &from_replica,
                &reads,
                &failures,
            );
            let sticky = i % 2 == 1;
            let db = &db;
            async move {
                let mut first = true;
                while !done.get() {
                    match TermWhere::objects().get(&db.routing(sticky)).await {
                        Ok(w) => {
                            reads.set(reads.get() + 1);
                            if first {
                                first = false;
                                started.set(started.get() + 1);
                            }
                            let counter = if w.standby() {
                                from_replica
                            } else {
                                from_primary
                            };
                            counter.set(counter.get() + 1);
                        }
                        Err(e) => failures.borrow_mut().push(e.to_string()),
                    }
                }
            }
        });
        let control = async {
            let under_way =
                eventually(Duration::from_secs(10), async || started.get() == READERS).await;
            assert!(under_way, "the readers did not get going");
            // A slow write on the primary, in flight when its connection is terminated.
            let write_scope = db.routing(false);
            let insert = raw(
                "INSERT INTO mr_term_log (note) SELECT 'in flight' FROM pg_sleep(5) \
                 RETURNING pg_backend_pid()",
            )
            .writes("mr_term_log");
            let write = insert.first::<(i32,)>(&write_scope);
            let terminations = async {
                let mut write_pid = None;
                let active = eventually(Duration::from_secs(5), async || {
                    write_pid = on_primary
                        .primary()
                        .query_opt(
                            "SELECT pid FROM pg_stat_activity WHERE application_name = $1 \
                             AND state = 'active' AND query LIKE 'INSERT INTO mr_term_log%'",
                            &[&app],
                        )
                        .await
                        .expect("pg_stat_activity")
                        .map(|row| row.get::<_, i32>(0));
                    write_pid.is_some()
                })
                .await;
                assert!(active, "the write never ran");

                // Every backend of the manager on the primary: its pipeline connection (the
                // write, and the sticky reads queued behind it) and its pinned one.
                let killed = terminate(on_primary.primary(), &app).await;
                assert!(
                    killed.len() >= 2 && killed.contains(&write_pid.expect("pid")),
                    "{killed:?}"
                );
                let at = from_primary.get();
                let resumed =
                    eventually(Duration::from_secs(10), async || from_primary.get() > at).await;
                assert!(resumed, "reads from the primary did not resume");

                // Then every backend of the manager on the replica, while a read that sleeps
                // there (and the reads queued behind it) is in flight. Without it the test
                // proved nothing one run in three: the server answers the readers' reads
                // faster than this one thread sends them, so the connection may be idle at
                // the instant it goes, and reads sent after that wait for the new one.
                let (slow_scope, slow_read) = (db.routing(false), TermSlow::objects());
                let slow = slow_read.get(&slow_scope);
                let on_replica_too = async {
                    let running = eventually(Duration::from_secs(10), async || {
                        reading(on_replica.primary(), "mr_term_slow").await
                    })
                    .await;
                    assert!(running, "the slow read did not run on the replica");
                    let killed = terminate(on_replica.primary(), &app).await;
                    assert!(killed.len() >= 2, "{killed:?}");
                    let at = from_replica.get();
                    let resumed =
                        eventually(Duration::from_secs(10), async || from_replica.get() > at).await;
                    assert!(resumed, "reads from the replica did not resume");
                };
                let (slow, ()) = futures_util::future::join(slow, on_replica_too).await;
                (write_pid, slow)
            };
            let out = futures_util::future::join(write, terminations).await;
            done.set(true);
            out
        };
        let (_, (written, (write_pid, slow))) =
            futures_util::future::join(futures_util::future::join_all(readers), control).await;
        let slow = slow.expect("the read in flight when the replica's connection went succeeded");
        assert!(
            !slow.standby(),
            "the read in flight on the replica was not retried on the primary"
        );

        let failures = failures.into_inner();
        assert!(
            failures.is_empty(),
            "{} reads failed ({} succeeded), first: {}",
            failures.len(),
            reads.get(),
            failures[0]
        );
        // Reads in flight were retried once: on the primary after its connection was
        // terminated, and from the replica on the primary after the replica's was.
        let (primary, replica) = (
            retries.count("default", "default"),
            retries.count("replica1", "default"),
        );
        assert!(
            primary > 0,
            "no read was retried on the primary: {:?}",
            retries.all()
        );
        assert!(
            replica > 0,
            "no read was retried from the replica: {:?}",
            retries.all()
        );

        // The write is not retried: failed, it left no row; succeeded, it ran once, on the
        // connection it was in flight on.
        let rows: i64 = db
            .primary()
            .query_one("SELECT count(*) FROM mr_term_log", &[])
            .await
            .expect("count")
            .get(0);
        match &written {
            Err(e) => {
                assert_eq!(rows, 0, "the failed write was retried");
                assert!(e.is_connection_lost(), "{e}");
            }
            Ok(row) => {
                assert_eq!(rows, 1, "the write ran more than once");
                assert_eq!(row.map(|(pid,)| pid), write_pid);
            }
        }
        eprintln!(
            "{} reads, none failed; retried on default: {primary}, from replica1 on default: \
             {replica}; the write in flight: {}",
            reads.get(),
            match &written {
                Ok(_) => "succeeded".to_string(),
                Err(e) => format!("failed ({e}), {rows} rows"),
            }
        );
    });
}
