//! Routing, stickiness, fallback and reconnection against a real primary and replica.

mod common;

use std::time::Duration;

use common::{eventually, run, Cluster};
use pinion_orm::{ConnectionManager, DbConfig, Role};

fn config(c: &Cluster) -> DbConfig {
    let mut cfg = DbConfig::new(c.primary.clone(), vec![c.replica.clone()]);
    cfg.check_interval = Duration::from_millis(200);
    cfg.connect.connect_timeout = Duration::from_secs(3);
    cfg
}

#[test]
fn reads_go_to_the_replica_and_writes_to_the_primary() {
    let cluster = Cluster::shared();
    run(async {
        let db = ConnectionManager::start(&config(&cluster)).expect("db");
        for d in db.databases() {
            d.wait_connected().await.expect("connected");
        }
        let reader = db.reader();
        assert_eq!(reader.role(), Role::Replica);
        assert!(
            reader.is_in_recovery().await.expect("query"),
            "read not served by a standby"
        );
        let routing = db.routing(false);
        let writer = routing.write();
        assert!(!writer.is_in_recovery().await.expect("query"));
        writer
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS orm_routing_probe (id int PRIMARY KEY, v int)",
            )
            .await
            .expect("ddl on the primary");
        writer
            .execute(
                "INSERT INTO orm_routing_probe VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET v = orm_routing_probe.v + 1",
                &[],
            )
            .await
            .expect("write on the primary");
        // The standby refuses writes: had one been routed there, it would have failed.
        let on_replica = db
            .using("replica1")
            .expect("replica1")
            .batch_execute("CREATE TABLE orm_never_created (id int)")
            .await;
        let err = on_replica.expect_err("a standby takes no writes");
        assert_eq!(
            err.as_db_error().map(|e| e.code().code()),
            Some("25006"),
            "{err}"
        );
    });
}

#[test]
fn a_request_that_wrote_reads_from_the_primary() {
    let cluster = Cluster::shared();
    run(async {
        let db = ConnectionManager::start(&config(&cluster)).expect("db");
        for d in db.databases() {
            d.wait_connected().await.expect("connected");
        }
        let routing = db.routing(false);
        assert_eq!(routing.read().role(), Role::Replica);
        routing.write();
        assert!(routing.wrote());
        assert_eq!(routing.read().role(), Role::Primary);
        assert!(!routing.read().is_in_recovery().await.expect("query"));
        // A client that wrote a moment ago (sticky cookie) reads from the primary too.
        assert_eq!(db.routing(true).read().role(), Role::Primary);
        // Primary-only (UNLOGGED) tables are always read from the primary.
        let fresh = db.routing(false);
        assert_eq!(
            fresh.read_tables(&["pinion_sessions"]).role(),
            Role::Primary
        );
        assert_eq!(fresh.read_tables(&["world"]).role(), Role::Replica);
        assert_eq!(db.using("default").map(|d| d.role()), Some(Role::Primary));
    });
}

#[test]
fn a_terminated_connection_fails_clearly_then_recovers() {
    let cluster = Cluster::shared();
    run(async {
        let db = ConnectionManager::start(&config(&cluster)).expect("db");
        let primary = db.primary();
        primary.wait_connected().await.expect("connected");
        let pid: i32 = primary
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .expect("pid")
            .get(0);
        // A query in flight on the pinned connection when its backend is terminated.
        let in_flight = primary.query("SELECT pg_sleep(5)", &[]);
        let killer = async {
            monoio::time::sleep(Duration::from_millis(200)).await;
            let other = primary.pooled().await.expect("pooled connection");
            other
                .client()
                .execute("SELECT pg_terminate_backend($1)", &[&pid])
                .await
                .expect("terminate");
        };
        let (result, ()) = futures_util::future::join(in_flight, killer).await;
        let err = result.expect_err("the in-flight query fails");
        assert!(
            err.is_connection_lost(),
            "not reported as a lost connection: {err}"
        );
        assert!(err.to_string().contains("connection lost"), "{err}");
        // The next queries succeed on a new connection.
        let recovered = eventually(Duration::from_secs(5), async || {
            primary
                .query_one("SELECT pg_backend_pid()", &[])
                .await
                .is_ok()
        })
        .await;
        assert!(recovered, "no reconnection");
        let new_pid: i32 = primary
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .expect("pid")
            .get(0);
        assert_ne!(new_pid, pid);
    });
}

#[test]
fn reads_fall_back_to_the_primary_while_the_replica_is_down() {
    let cluster = Cluster::private("fallback");
    run(async {
        let db = ConnectionManager::start(&config(&cluster)).expect("db");
        for d in db.databases() {
            d.wait_connected().await.expect("connected");
        }
        assert_eq!(db.reader().role(), Role::Replica);
        cluster.pg(&["stop-replica", "immediate"]);
        let fell_back = eventually(Duration::from_secs(5), async || {
            db.reader().role() == Role::Primary
        })
        .await;
        assert!(fell_back, "reads still routed to the stopped replica");
        for _ in 0..20 {
            let r = db.reader();
            assert!(!r
                .is_in_recovery()
                .await
                .expect("reads keep succeeding on the primary"));
        }
        cluster.pg(&["start-replica"]);
        let back = eventually(Duration::from_secs(15), async || {
            db.reader().role() == Role::Replica
        })
        .await;
        assert!(back, "reads did not return to the replica");
        assert!(db
            .reader()
            .is_in_recovery()
            .await
            .expect("query on the replica"));
    });
}

#[test]
fn the_pool_queues_waiters_beyond_its_size() {
    let cluster = Cluster::shared();
    run(async {
        let mut cfg = config(&cluster);
        cfg.pool_size_per_thread = 1;
        let db = ConnectionManager::start(&cfg).expect("db");
        let primary = db.primary();
        assert_eq!(
            (
                primary.pool_size(),
                primary.pool_available(),
                primary.pool_waiters()
            ),
            (1, 1, 0)
        );
        let first = primary.pooled().await.expect("first connection");
        assert_eq!(primary.pool_available(), 0);
        // A second borrower waits for the first to give its connection back.
        let second = async {
            let c = primary.pooled().await.expect("second connection");
            c.client()
                .query_one("SELECT 1", &[])
                .await
                .expect("query")
                .get::<_, i32>(0)
        };
        let release = async move {
            let mut first = first;
            let tx = first.client_mut().transaction().await.expect("begin");
            tx.batch_execute("CREATE TEMP TABLE pool_probe (v int)")
                .await
                .expect("ddl");
            monoio::time::sleep(Duration::from_millis(200)).await;
            assert_eq!(
                primary.pool_waiters(),
                1,
                "the second borrower is not queued"
            );
            tx.commit().await.expect("commit");
            drop(first);
        };
        let (got, ()) = futures_util::future::join(second, release).await;
        assert_eq!(got, 1);
        assert_eq!((primary.pool_available(), primary.pool_waiters()), (1, 0));
    });
}

#[test]
fn connects_over_a_unix_socket() {
    let mut cluster = Cluster::shared();
    if cluster.primary_socket.is_none() {
        cluster = Cluster::private("unix");
    }
    let (dir, port) = cluster
        .primary_socket
        .clone()
        .expect("a private cluster has a socket");
    let url = format!(
        "postgresql:///pinion?host={}&port={port}&user=pinion",
        dir.display()
    );
    run(async {
        let db = ConnectionManager::start(&DbConfig::new(url, vec![])).expect("db");
        let one: i32 = db
            .primary()
            .query_one("SELECT 1", &[])
            .await
            .expect("a query over the socket")
            .get(0);
        assert_eq!(one, 1);
        // The server sees a Unix-socket client: no client address.
        let addr: Option<String> = db
            .primary()
            .query_one("SELECT inet_client_addr()::text", &[])
            .await
            .expect("query")
            .get(0);
        assert_eq!(addr, None);
    });
}

#[test]
fn a_statement_past_query_timeout_fails_with_a_timeout_and_the_next_one_runs() {
    let cluster = Cluster::shared();
    run(async {
        let mut cfg = config(&cluster);
        cfg.query_timeout = Duration::from_millis(300);
        let db = ConnectionManager::start(&cfg).expect("db");
        let primary = db.using("default").expect("default");
        primary.wait_connected().await.expect("connected");
        let began = std::time::Instant::now();
        let err = primary
            .batch_execute("SELECT pg_sleep(2)")
            .await
            .expect_err("two seconds is past the 300 ms deadline");
        let took = began.elapsed();
        assert!(err.is_timeout(), "{err}");
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_millis(1500),
            "failed after {took:?}"
        );
        // Quick statements keep working (once the abandoned one has finished on the server,
        // since the pinned connection runs them in order).
        monoio::time::sleep(Duration::from_secs(2)).await;
        let row = primary
            .query_one("SELECT 1::int4", &[])
            .await
            .expect("query");
        assert_eq!(row.get::<_, i32>(0), 1);
    });
}
