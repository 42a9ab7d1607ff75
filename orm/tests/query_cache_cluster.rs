//! The query cache across processes and against a real primary and replica: another
//! instance's committed writes (plain and in transactions) reach this one's cache through its
//! listening connection, a rolled-back transaction bumps nothing; while the listening
//! connection is down the cache is bypassed (and a bypassed read whose connection is lost is
//! retried), and when it is back nothing cached before is served again; a replica that has
//! not replayed a bump never fills the cache, nor, for an instance that starts while it lags,
//! a write committed before that instance listened.
//!
//! Every wait is for an event (a counter, `is_in_sync()`, a WAL position, a health check of
//! the replica), bounded by [`WAIT`]. Tests 1 and 2 run in a database of their own on the
//! shared cluster, so that no other test's notifications reach their listeners and every
//! invalidation they count is their own.

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use common::{cache, eventually, run, Abort, Cluster};
use pinion_orm::query::raw;
use pinion_orm::query_cache::{listen, Listener};
use pinion_orm::tokio_postgres::types::PgLsn;
use pinion_orm::{ConnectOptions, ConnectionManager, Database, DbConfig, Error, Model, QueryCache};

/// How long any awaited event may take.
const WAIT: Duration = Duration::from_secs(20);

/// Read by instance B, written by instance A.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "qcc_item")]
struct Item {
    #[model(primary_key)]
    id: i32,
    v: i32,
}

/// Written by a transaction that rolls back.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "qcc_tx_x")]
struct TxX {
    #[model(primary_key)]
    id: i32,
    v: i32,
}

/// Written by a transaction that commits, after the one that rolled back.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "qcc_tx_y")]
struct TxY {
    #[model(primary_key)]
    id: i32,
    v: i32,
}

/// Cached by B before its listener goes down, and read by B during the outage.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "qcc_outage_p")]
struct OutageP {
    #[model(primary_key)]
    id: i32,
    v: i32,
}

/// Cached by B before its listener goes down, changed by A during the outage, and not read by
/// B until the listener is back.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "qcc_outage_q")]
struct OutageQ {
    #[model(primary_key)]
    id: i32,
    v: i32,
}

/// The row whose write the paused replica has not replayed.
#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "qcc_lag")]
struct Lag {
    #[model(primary_key)]
    id: i32,
    v: i32,
}

/// One instance's connection manager, with its own query cache.
fn manager(url: &str, replicas: Vec<String>, cache: &Arc<QueryCache>) -> Rc<ConnectionManager> {
    let mut cfg = DbConfig::new(url.to_string(), replicas);
    cfg.connect.connect_timeout = Duration::from_secs(3);
    cfg.check_interval = Duration::from_millis(100);
    cfg.query_cache = Some(Arc::clone(cache));
    ConnectionManager::start(&cfg).expect("db")
}

/// One instance's listening connection.
fn listener(cache: &Arc<QueryCache>, url: &str) -> Listener {
    let opts = ConnectOptions {
        connect_timeout: Duration::from_secs(3),
        ..ConnectOptions::default()
    };
    listen(Arc::clone(cache), url, opts).expect("listener")
}

/// `url` with the superuser instead of role `pinion` (trusted over loopback on the
/// `scripts/pg` clusters): pausing replay and terminating another role's backend need it.
fn as_superuser(url: &str) -> String {
    let (_, host_and_db) = url.split_once('@').expect("user@host in the URL");
    format!("postgres://postgres@{host_and_db}")
}

/// `url` with role `role` (no password: trusted over loopback).
fn as_role(url: &str, role: &str) -> String {
    let (_, host_and_db) = url.split_once('@').expect("user@host in the URL");
    format!("postgres://{role}@{host_and_db}")
}

/// Waits for `check`, or fails the test naming `what`.
async fn wait_for(what: &str, check: impl AsyncFnMut() -> bool) {
    assert!(
        eventually(WAIT, check).await,
        "timed out waiting for {what}"
    );
}

/// Runs its statements (errors ignored) on `url` when dropped, so that a failing test leaves
/// no database or role behind either.
struct CleanUp {
    url: String,
    sql: Vec<String>,
}

impl Drop for CleanUp {
    fn drop(&mut self) {
        run(async {
            let admin = common::primary_only(&self.url);
            for sql in &self.sql {
                if let Err(e) = admin.primary().batch_execute(sql).await {
                    eprintln!("clean-up `{sql}` failed: {e}");
                }
            }
        });
    }
}

/// A WAL position read on `db` with `sql` (one `pg_lsn` column; NULL counts as 0).
async fn lsn(db: &Database, sql: &str) -> u64 {
    let row = db.query_one(sql, &[]).await.expect(sql);
    let lsn: Option<PgLsn> = row.try_get(0).expect("pg_lsn");
    lsn.map_or(0, u64::from)
}

#[test]
fn another_instances_committed_writes_reach_the_cache_and_rollbacks_do_not() {
    let cluster = Cluster::shared();
    let url = cluster.fresh_database("qcc_across");
    let db_name = url.rsplit_once('/').expect("a database").1;
    let _clean_up = CleanUp {
        url: cluster.primary.clone(),
        sql: vec![format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")],
    };
    run(async {
        let (qa, qb) = (cache(), cache());
        let a = manager(&url, vec![], &qa);
        let b = manager(&url, vec![], &qb);
        let _la = listener(&qa, &url);
        let _lb = listener(&qb, &url);
        a.primary()
            .batch_execute(
                "CREATE TABLE qcc_item (id int PRIMARY KEY, v int NOT NULL);
                 CREATE TABLE qcc_tx_x (id int PRIMARY KEY, v int NOT NULL);
                 CREATE TABLE qcc_tx_y (id int PRIMARY KEY, v int NOT NULL);
                 INSERT INTO qcc_item VALUES (1, 1);
                 INSERT INTO qcc_tx_x VALUES (1, 10);
                 INSERT INTO qcc_tx_y VALUES (1, 20);",
            )
            .await
            .expect("schema");
        wait_for("both listeners up", async || {
            qa.is_in_sync() && qb.is_in_sync()
        })
        .await;
        let item = || Item::objects().filter(Item::ID.eq(1));

        // B caches the row: a miss, then a hit.
        let start = qb.stats();
        assert_eq!(item().get(&*b).await.unwrap().v, 1);
        assert_eq!(qb.stats().misses, start.misses + 1, "the first read fills");
        assert_eq!(item().get(&*b).await.unwrap().v, 1);
        assert_eq!(qb.stats().hits, start.hits + 1, "the second read is a hit");

        // A writes it through a query set: B hears of it and reads the new value.
        let before = qb.stats();
        let n = Item::objects()
            .filter(Item::ID.eq(1))
            .update([Item::V.set(2)], &*a)
            .await
            .unwrap();
        assert_eq!(n, 1);
        wait_for("A's update to bump B's cache", async || {
            qb.stats().invalidations > before.invalidations
        })
        .await;
        assert_eq!(
            qb.stats().invalidations,
            before.invalidations + 1,
            "one table written, one bump"
        );
        let bumped = qb.stats();
        assert_eq!(item().get(&*b).await.unwrap().v, 2, "B sees A's update");
        assert_eq!(
            qb.stats().misses,
            bumped.misses + 1,
            "the old entry was not served"
        );
        assert_eq!(item().get(&*b).await.unwrap().v, 2);
        assert_eq!(qb.stats().hits, bumped.hits + 1, "B caches the new value");

        // A writes it in a committed transaction: the same.
        let before = qb.stats();
        a.transaction(async |tx| {
            Item::objects()
                .filter(Item::ID.eq(1))
                .update([Item::V.set(3)], tx)
                .await?;
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
        wait_for("A's transaction to bump B's cache", async || {
            qb.stats().invalidations > before.invalidations
        })
        .await;
        assert_eq!(qb.stats().invalidations, before.invalidations + 1);
        let bumped = qb.stats();
        assert_eq!(
            item().get(&*b).await.unwrap().v,
            3,
            "B sees A's transaction"
        );
        assert_eq!(qb.stats().misses, bumped.misses + 1);
        assert_eq!(item().get(&*b).await.unwrap().v, 3);
        assert_eq!(qb.stats().hits, bumped.hits + 1);

        // B caches X and Y.
        let x = || TxX::objects().filter(TxX::ID.eq(1));
        let y = || TxY::objects().filter(TxY::ID.eq(1));
        assert_eq!(x().get(&*b).await.unwrap().v, 10);
        assert_eq!(y().get(&*b).await.unwrap().v, 20);
        let cached = qb.stats();
        assert_eq!(x().get(&*b).await.unwrap().v, 10);
        assert_eq!(y().get(&*b).await.unwrap().v, 20);
        assert_eq!(qb.stats().hits, cached.hits + 2, "both are cached");

        // A's transaction writes X and rolls back: no notification is sent.
        let before = qb.stats();
        let rolled_back: Result<(), Abort> = a
            .transaction(async |tx| {
                TxX::objects()
                    .filter(TxX::ID.eq(1))
                    .update([TxX::V.set(11)], tx)
                    .await?;
                Err(Abort::Changed)
            })
            .await;
        assert!(
            matches!(rolled_back, Err(Abort::Changed)),
            "{rolled_back:?}"
        );
        assert_eq!(qb.stats().invalidations, before.invalidations);
        // Then A commits a write of Y. Notifications arrive in commit order, so once B has
        // Y's, it would have had one of X before it.
        a.transaction(async |tx| {
            TxY::objects()
                .filter(TxY::ID.eq(1))
                .update([TxY::V.set(21)], tx)
                .await?;
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
        wait_for("A's write of Y to bump B's cache", async || {
            qb.stats().invalidations > before.invalidations
        })
        .await;
        assert_eq!(
            qb.stats().invalidations,
            before.invalidations + 1,
            "Y was bumped, X (rolled back) was not"
        );
        let after = qb.stats();
        assert_eq!(x().get(&*b).await.unwrap().v, 10, "X was never changed");
        assert_eq!(
            qb.stats().hits,
            after.hits + 1,
            "B's entry for X is still valid: the rollback bumped nothing"
        );
        assert_eq!(
            x().cache(false).get(&*b).await.unwrap().v,
            10,
            "the database agrees"
        );
        let after = qb.stats();
        assert_eq!(y().get(&*b).await.unwrap().v, 21, "B sees the committed Y");
        assert_eq!(qb.stats().misses, after.misses + 1);
    });
}

#[test]
fn while_the_listener_is_down_reads_bypass_and_when_it_is_back_nothing_stale_is_served() {
    let cluster = Cluster::shared();
    if !cluster.primary.contains("127.0.0.1") {
        // The developer's own DATABASE_URL: no trusted superuser to make roles with.
        return;
    }
    let url = cluster.fresh_database("qcc_outage");
    let db_name = url
        .rsplit_once('/')
        .expect("a database in the URL")
        .1
        .to_string();
    // The superuser works from database `postgres`: a session of its own in the test's
    // database would stop `DROP DATABASE … WITH (FORCE)` at the end (role `pinion` may not
    // terminate a superuser's backend).
    let admin_url = format!(
        "{}/postgres",
        as_superuser(&url).rsplit_once('/').expect("a database").0
    );
    // B's listener logs in as a role of its own, which the test can refuse logins to: the
    // listener redials at once, so without that the outage would last a few milliseconds.
    // Notifications are per database, not per role: it hears what role `pinion` sends.
    let role = format!("qcc_listener_{}", std::process::id());
    // As the superuser: the backend of B's listener (its own role, which `pinion` may not
    // terminate) may still be on its way out. Two statements: `DROP DATABASE` refuses to run
    // in the implicit transaction of a multi-statement query.
    let _clean_up = CleanUp {
        url: admin_url.clone(),
        sql: vec![
            format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"),
            format!("DROP ROLE IF EXISTS {role}"),
        ],
    };
    run(async {
        let admin = common::primary_only(&admin_url);
        admin
            .primary()
            .batch_execute(&format!(
                "DO $$ BEGIN
                   CREATE ROLE {role} LOGIN;
                 EXCEPTION WHEN duplicate_object THEN NULL;
                 END $$;
                 ALTER ROLE {role} LOGIN;"
            ))
            .await
            .expect("role");
        let (qa, qb) = (cache(), cache());
        let a = manager(&url, vec![], &qa);
        // B's own connections carry a name, to find them in pg_stat_activity.
        let b = manager(&format!("{url}?application_name=qcc_b"), vec![], &qb);
        let _la = listener(&qa, &url);
        let _lb = listener(&qb, &as_role(&url, &role));
        a.primary()
            .batch_execute(
                "CREATE TABLE qcc_outage_p (id int PRIMARY KEY, v int NOT NULL);
                 CREATE TABLE qcc_outage_q (id int PRIMARY KEY, v int NOT NULL);
                 INSERT INTO qcc_outage_p VALUES (1, 1);
                 INSERT INTO qcc_outage_q VALUES (1, 1);",
            )
            .await
            .expect("schema");
        wait_for("both listeners up", async || {
            qa.is_in_sync() && qb.is_in_sync()
        })
        .await;
        let p = || OutageP::objects().filter(OutageP::ID.eq(1));
        let q = || OutageQ::objects().filter(OutageQ::ID.eq(1));

        // B caches both rows.
        assert_eq!(p().get(&*b).await.unwrap().v, 1);
        assert_eq!(q().get(&*b).await.unwrap().v, 1);
        let cached = qb.stats();
        assert_eq!(p().get(&*b).await.unwrap().v, 1);
        assert_eq!(q().get(&*b).await.unwrap().v, 1);
        assert_eq!(qb.stats().hits, cached.hits + 2, "both are cached");

        // B's listening connection: the one backend of its role.
        let backends = "SELECT pid FROM pg_stat_activity \
             WHERE usename = $1 AND datname = $2 AND backend_type = 'client backend'";
        let rows = admin
            .primary()
            .query(backends, &[&role, &db_name])
            .await
            .expect("pg_stat_activity");
        assert_eq!(rows.len(), 1, "B's listener has one connection");
        let old_pid: i32 = rows[0].get(0);
        admin
            .primary()
            .batch_execute(&format!("ALTER ROLE {role} NOLOGIN"))
            .await
            .expect("NOLOGIN");
        let killed: bool = admin
            .primary()
            .query_one("SELECT pg_terminate_backend($1)", &[&old_pid])
            .await
            .expect("pg_terminate_backend")
            .get(0);
        assert!(killed, "the listener's backend was there to terminate");

        // Down: B's cache is bypassed, and what A writes meanwhile B reads at once.
        wait_for("B to notice its listener is gone", async || {
            !qb.is_in_sync()
        })
        .await;
        let down = qb.stats();
        assert_eq!(
            p().get(&*b).await.unwrap().v,
            1,
            "bypassed, from the database"
        );
        let wrote_p = OutageP::objects()
            .filter(OutageP::ID.eq(1))
            .update([OutageP::V.set(2)], &*a)
            .await
            .unwrap();
        let wrote_q = OutageQ::objects()
            .filter(OutageQ::ID.eq(1))
            .update([OutageQ::V.set(3)], &*a)
            .await
            .unwrap();
        assert_eq!((wrote_p, wrote_q), (1, 1));
        assert_eq!(
            p().get(&*b).await.unwrap().v,
            2,
            "A's write during the outage is visible to B at once"
        );
        assert_eq!(p().get(&*b).await.unwrap().v, 2);
        let during = qb.stats();
        assert!(!qb.is_in_sync(), "the listener is still down");
        assert_eq!(
            during.bypasses,
            down.bypasses + 3,
            "every read bypassed the cache"
        );
        assert_eq!(
            (during.hits, during.misses),
            (down.hits, down.misses),
            "no read used or filled the cache"
        );
        assert_eq!(
            during.invalidations, down.invalidations,
            "A's notifications did not reach B"
        );
        // A bypassed read whose connection is lost in flight is retried, as any read is.
        let slow = || {
            raw("SELECT v FROM qcc_outage_p, pg_sleep(0.3) WHERE id = $1")
                .bind(1)
                .reads("qcc_outage_p")
        };
        let in_flight = async { slow().first::<(i32,)>(&*b).await };
        let kill = async {
            let mut victims = 0;
            wait_for("the slow read on the server", async || {
                let killed = admin
                    .primary()
                    .query(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                         WHERE application_name = 'qcc_b' AND datname = $1 \
                         AND state = 'active' AND query LIKE '%pg_sleep(0.3)%'",
                        &[&db_name],
                    )
                    .await
                    .expect("terminate the slow read");
                victims = killed.len();
                victims > 0
            })
            .await;
            victims
        };
        let (read, victims) = futures_util::future::join(in_flight, kill).await;
        assert_eq!(victims, 1, "the slow read's connection was terminated");
        assert_eq!(
            read.expect("the bypassed read is retried on a new connection"),
            Some((2,))
        );
        assert!(!qb.is_in_sync(), "the listener is still down");
        assert_eq!(
            qb.stats().bypasses,
            during.bypasses + 1,
            "one read, bypassed"
        );

        // Back: everything cached before is invalidated, the cache is used again.
        admin
            .primary()
            .batch_execute(&format!("ALTER ROLE {role} LOGIN"))
            .await
            .expect("LOGIN");
        wait_for("B's listener to come back", async || qb.is_in_sync()).await;
        let back = qb.stats();
        assert!(
            back.invalidations > during.invalidations,
            "every version was bumped on reconnection"
        );
        let rows = admin
            .primary()
            .query(backends, &[&role, &db_name])
            .await
            .expect("pg_stat_activity");
        assert_eq!(rows.len(), 1, "B's listener has one connection again");
        let new_pid: i32 = rows[0].get(0);
        assert_ne!(new_pid, old_pid, "a new connection");
        assert_eq!(
            q().get(&*b).await.unwrap().v,
            3,
            "Q, cached as 1 before the outage and not read since, is not served stale"
        );
        assert_eq!(
            p().get(&*b).await.unwrap().v,
            2,
            "nor is P, cached as 1 before the outage"
        );
        assert_eq!(qb.stats().misses, back.misses + 2, "both were filled again");
        assert_eq!(p().get(&*b).await.unwrap().v, 2);
        assert_eq!(q().get(&*b).await.unwrap().v, 3);
        assert_eq!(qb.stats().hits, back.hits + 2, "B caches again");

        // And A's writes reach B again.
        let before = qb.stats();
        OutageP::objects()
            .filter(OutageP::ID.eq(1))
            .update([OutageP::V.set(4)], &*a)
            .await
            .unwrap();
        wait_for("A's update to bump B's cache", async || {
            qb.stats().invalidations > before.invalidations
        })
        .await;
        assert_eq!(qb.stats().invalidations, before.invalidations + 1);
        assert_eq!(p().get(&*b).await.unwrap().v, 4);
    });
}

#[test]
fn a_replica_that_has_not_replayed_a_bump_never_fills_the_cache() {
    let cluster = Cluster::private("query_cache_lag");
    run(async {
        let qc = cache();
        let db = manager(&cluster.primary, vec![cluster.replica.clone()], &qc);
        let _listener = listener(&qc, &cluster.primary);
        // Role `pinion` may not pause replay (permission denied for pg_wal_replay_pause).
        let replica_admin = common::primary_only(&as_superuser(&cluster.replica));
        let standby = replica_admin.primary();
        // A run that failed mid-way left nothing paused (a restart resumes too), but be sure.
        standby
            .batch_execute("SELECT pg_wal_replay_resume()")
            .await
            .expect("resume");
        db.primary()
            .batch_execute(
                "DROP TABLE IF EXISTS qcc_lag;
                 CREATE TABLE qcc_lag (id int PRIMARY KEY, v int NOT NULL);
                 INSERT INTO qcc_lag VALUES (1, 1);",
            )
            .await
            .expect("schema");
        wait_for("the listener up", async || qc.is_in_sync()).await;
        let replica = db.using("replica1").expect("replica1");
        let row = || Lag::objects().filter(Lag::ID.eq(1));
        let on_replica = async || {
            row()
                .cache(false)
                .using("replica1")
                .first(&*db)
                .await
                .expect("replica read")
                .map(|r| r.v)
        };
        let schema = lsn(db.primary(), "SELECT pg_current_wal_lsn()").await;
        wait_for(
            "the manager to see the replica replay the schema",
            async || replica.replayed_lsn() >= schema,
        )
        .await;
        assert_eq!(on_replica().await, Some(1), "the replica has the row");
        // The same read as `row()` with where it ran: `pg_is_in_recovery()` is true on the
        // replica. Cached like any read of qcc_lag, so a hit says where the fill ran.
        let probe = || {
            raw("SELECT v, pg_is_in_recovery() FROM qcc_lag WHERE id = $1")
                .bind(1)
                .reads("qcc_lag")
        };
        let read = async || -> (i32, bool) {
            let model = row().get(&*db).await.expect("cached read").v;
            let (v, standby): (i32, bool) =
                probe().first(&*db).await.expect("probe").expect("a row");
            assert_eq!(model, v, "the model read and the probe agree");
            (v, standby)
        };

        // Cached from the replica.
        let start = qc.stats();
        assert_eq!(read().await, (1, true), "filled from the replica");
        assert_eq!(read().await, (1, true));
        let s = qc.stats();
        assert_eq!(
            (s.misses, s.hits),
            (start.misses + 2, start.hits + 2),
            "filled once, then hits"
        );

        // The replica stops replaying; the row is written on the primary through the ORM.
        standby
            .batch_execute("SELECT pg_wal_replay_pause()")
            .await
            .expect("pause");
        let before = qc.stats();
        let n = row().update([Lag::V.set(2)], &*db).await.expect("write");
        assert_eq!(n, 1);
        // This process bumped at the commit; its listener skips its own NOTIFY. A marker
        // notified after it (notifications arrive in commit order) is the proof: once the
        // marker is bumped, the write's notification was heard and bumped nothing.
        assert_eq!(qc.stats().invalidations, before.invalidations + 1);
        db.primary()
            .batch_execute("NOTIFY pinion_query_cache, 'qcc_lag_marker'")
            .await
            .expect("marker");
        wait_for("the marker's bump", async || {
            qc.stats().invalidations >= before.invalidations + 2
        })
        .await;
        assert_eq!(
            qc.stats().invalidations,
            before.invalidations + 2,
            "the write's own notification bumped nothing"
        );
        let written = lsn(db.primary(), "SELECT pg_current_wal_lsn()").await;
        // The replica has the WAL of the write, but has not applied it.
        wait_for("the replica to receive the write", async || {
            lsn(standby, "SELECT pg_last_wal_receive_lsn()").await >= written
        })
        .await;
        assert!(
            lsn(standby, "SELECT pg_last_wal_replay_lsn()").await < written,
            "replay is paused before the write"
        );
        assert_eq!(
            on_replica().await,
            Some(1),
            "the replica still has the old row"
        );
        assert_eq!(
            row().cache(false).get(&*db).await.expect("uncached read").v,
            1,
            "an uncached read goes to the replica and sees the lag"
        );

        // Every cached read says 2, from the primary, while the manager's health checks of
        // the replica (counted by its query observer) keep seeing it behind.
        let checks = Rc::new(Cell::new(0u32));
        let counter = Rc::clone(&checks);
        replica.set_query_observer(Rc::new(move |_, _| counter.set(counter.get() + 1)));
        let paused = qc.stats();
        let mut reads = 0;
        wait_for("three health checks of the replica", async || {
            assert_eq!(read().await, (2, false), "never the stale row");
            reads += 1;
            checks.get() >= 3
        })
        .await;
        assert!(
            replica.replayed_lsn() < written,
            "the manager saw the replica behind the bump"
        );
        let s = qc.stats();
        assert_eq!(
            s.misses,
            paused.misses + 2,
            "each query filled once (from the primary)"
        );
        assert_eq!(s.hits, paused.hits + 2 * reads - 2, "then hits");
        assert_eq!(on_replica().await, Some(1), "the replica is still behind");

        // Replay resumes; once the manager has seen the replica past the write, reads go back
        // to it.
        standby
            .batch_execute("SELECT pg_wal_replay_resume()")
            .await
            .expect("resume");
        wait_for(
            "the manager to see the replica replay the write",
            async || replica.replayed_lsn() >= written,
        )
        .await;
        let (v, on_standby): (i32, bool) = probe()
            .cache(false)
            .first(&*db)
            .await
            .expect("uncached probe")
            .expect("a row");
        assert_eq!((v, on_standby), (2, true), "uncached reads use the replica");
        assert_eq!(
            read().await,
            (2, false),
            "still the entry filled from the primary"
        );

        let before = qc.stats();
        row().update([Lag::V.set(3)], &*db).await.expect("write");
        assert_eq!(
            qc.stats().invalidations,
            before.invalidations + 1,
            "bumped at the commit"
        );
        let written = lsn(db.primary(), "SELECT pg_current_wal_lsn()").await;
        wait_for(
            "the manager to see the replica replay the write",
            async || replica.replayed_lsn() >= written,
        )
        .await;
        let bumped = qc.stats();
        assert_eq!(read().await, (3, true), "filled from the replica again");
        assert_eq!(read().await, (3, true));
        let s = qc.stats();
        assert_eq!(
            (s.misses, s.hits),
            (bumped.misses + 2, bumped.hits + 2),
            "filled once, then hits"
        );

        // Another instance, C, starts while the replica lags behind a write committed before
        // C listened: C was never notified of it, so C must not fill from the replica what
        // that write replaced, or the stale row would stay cached (no bump is coming).
        standby
            .batch_execute("SELECT pg_wal_replay_pause()")
            .await
            .expect("pause");
        row().update([Lag::V.set(4)], &*db).await.expect("write");
        let written = lsn(db.primary(), "SELECT pg_current_wal_lsn()").await;
        wait_for("the replica to receive the write", async || {
            lsn(standby, "SELECT pg_last_wal_receive_lsn()").await >= written
        })
        .await;
        assert_eq!(on_replica().await, Some(3), "the replica is behind");
        let qc_c = cache();
        let c = manager(&cluster.primary, vec![cluster.replica.clone()], &qc_c);
        let _listener_c = listener(&qc_c, &cluster.primary);
        wait_for("C's listener up", async || qc_c.is_in_sync()).await;
        let replica_c = c.using("replica1").expect("replica1");
        wait_for("C's first health check of the replica", async || {
            replica_c.replayed_lsn() > 0
        })
        .await;
        assert!(
            replica_c.replayed_lsn() < written,
            "C sees the replica behind"
        );
        let c_row = || Lag::objects().filter(Lag::ID.eq(1));
        let (v, on_standby): (i32, bool) = probe().first(&*c).await.expect("probe").expect("a row");
        assert_eq!(
            (v, on_standby),
            (4, false),
            "C's first fill comes from the primary, not the lagging replica"
        );
        assert_eq!(c_row().get(&*c).await.expect("read").v, 4);
        assert_eq!(c_row().get(&*c).await.expect("read").v, 4, "and is cached");
        assert_eq!(qc_c.stats().hits, 1);
        standby
            .batch_execute("SELECT pg_wal_replay_resume()")
            .await
            .expect("resume");
        wait_for("C to see the replica replay the write", async || {
            replica_c.replayed_lsn() >= written
        })
        .await;
        assert_eq!(c_row().get(&*c).await.expect("read").v, 4);
        assert_eq!(qc_c.stats().hits, 2, "C's entry stays valid");
    });
}
