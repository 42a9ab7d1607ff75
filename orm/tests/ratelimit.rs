//! PgRateStore against the real primary: two independent stores (two `ConnectionManager`s on two threads,
//! as two server processes would have) enforce one limit under concurrency, GCRA in SQL
//! decides exactly, and idle rows are purged.

mod common;

use std::rc::Rc;
use std::sync::{Arc, Barrier};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{eventually, run, Cluster};
use futures_util::future::join_all;
use pinion_orm::{ConnectionManager, DbConfig, GcraState, PgRateStore, RATE_LIMIT_TABLE};

const SEC: u64 = 1_000_000_000;

async fn store_on(url: &str) -> (Rc<ConnectionManager>, PgRateStore) {
    let db = ConnectionManager::start(&DbConfig::new(url.to_string(), vec![])).expect("db");
    let store = PgRateStore::new(Rc::clone(&db));
    store.ensure_table().await.expect("table");
    (db, store)
}

/// GCRA parameters of `quota` per `window` seconds with a burst of `burst`: (T, τ).
fn params(quota: u64, window: u64, burst: u64) -> (Duration, Duration) {
    let t = window * SEC / quota;
    (
        Duration::from_nanos(t),
        Duration::from_nanos(t * (burst - 1)),
    )
}

#[test]
fn two_instances_share_one_limit() {
    let cluster = Cluster::shared();
    let url = cluster.fresh_database("ratelimit_shared");
    run(async {
        store_on(&url).await;
    });
    // Quota 10 per hour: nothing refills while the test runs.
    let (t, tau) = params(10, 3600, 10);
    let barrier = Arc::new(Barrier::new(2));
    let instances: Vec<_> = (0..2)
        .map(|_| {
            let (url, barrier) = (url.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                run(async move {
                    let (db, store) = store_on(&url).await;
                    db.primary().wait_connected().await.expect("connected");
                    barrier.wait();
                    // 20 at once, pipelined on this instance's connection.
                    let states =
                        join_all((0..20).map(|_| store.decide("\"api\" ip:198.51.100.1", t, tau)))
                            .await;
                    states
                        .into_iter()
                        .map(|s| s.expect("decide"))
                        .collect::<Vec<GcraState>>()
                })
            })
        })
        .collect();
    let states: Vec<GcraState> = instances
        .into_iter()
        .flat_map(|h| h.join().expect("instance thread"))
        .collect();
    assert_eq!(states.len(), 40);
    assert_eq!(states.iter().filter(|s| s.allowed).count(), 10);

    let t = t.as_nanos() as u64;
    let tau = tau.as_nanos() as u64;
    // The allowed decisions moved the TAT by exactly T each: ten distinct TATs, T apart.
    let mut tats: Vec<u64> = states.iter().filter(|s| s.allowed).map(|s| s.tat).collect();
    tats.sort_unstable();
    for pair in tats.windows(2) {
        assert_eq!(pair[1] - pair[0], t);
    }
    for s in &states {
        let ahead = s.tat - s.now;
        if s.allowed {
            assert!(ahead <= tau + t, "{s:?}");
        } else {
            // Denied: the stored TAT was already more than τ ahead, and stays where it was.
            assert!(ahead > tau, "{s:?}");
            assert_eq!(s.tat, tats[9]);
        }
    }
    cluster.drop_database(&url);
}

#[test]
fn gcra_in_sql_decides_exactly() {
    let cluster = Cluster::shared();
    let url = cluster.fresh_database("ratelimit_exact");
    run(async {
        let (db, store) = store_on(&url).await;
        // 1 per minute, burst 3: T = 60 s, τ = 120 s.
        let (t, tau) = params(1, 60, 3);
        let key = "\"slow\" app:7";
        let first = store.decide(key, t, tau).await.expect("decide");
        assert!(first.allowed);
        assert_eq!(first.tat, first.now + 60 * SEC);
        // The database's clock, in nanoseconds since 1970: this machine's clock, give or take.
        let local = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_nanos() as u64;
        assert!(first.now.abs_diff(local) < 60 * SEC, "{first:?} vs {local}");

        assert!(store.decide(key, t, tau).await.expect("decide").allowed);
        let third = store.decide(key, t, tau).await.expect("decide");
        assert!(third.allowed);
        assert_eq!(third.tat, first.tat + 120 * SEC);
        let denied = store.decide(key, t, tau).await.expect("decide");
        assert!(!denied.allowed);
        assert_eq!(denied.tat, third.tat, "a denial leaves the TAT alone");

        // Let one interval pass, by moving the stored TAT back rather than by waiting.
        let moved = db
            .primary()
            .execute(
                "UPDATE pinion_rate_limits SET tat = tat - $2 WHERE key = $1",
                &[&key, &(60 * SEC as i64)],
            )
            .await
            .expect("update");
        assert_eq!(moved, 1);
        assert!(store.decide(key, t, tau).await.expect("decide").allowed);
        assert!(!store.decide(key, t, tau).await.expect("decide").allowed);

        // Keys are independent.
        assert!(
            store
                .decide("\"slow\" app:8", t, tau)
                .await
                .expect("decide")
                .allowed
        );
    });
    cluster.drop_database(&url);
}

#[test]
fn idle_rows_are_purged() {
    let cluster = Cluster::shared();
    let url = cluster.fresh_database("ratelimit_purge");
    run(async {
        let (db, store) = store_on(&url).await;
        let (t, tau) = params(1, 60, 1);
        for key in ["a", "b", "c"] {
            assert!(store.decide(key, t, tau).await.expect("decide").allowed);
        }
        let count = async || -> i64 {
            db.primary()
                .query_one(&format!("SELECT count(*) FROM {RATE_LIMIT_TABLE}"), &[])
                .await
                .expect("count")
                .get(0)
        };
        // Nothing is idle yet.
        assert_eq!(store.purge_expired().await.expect("purge"), 0);
        assert_eq!(count().await, 3);

        // "a" and "b" fall idle (their TATs pass); "c" still limits.
        db.primary()
            .execute(
                "UPDATE pinion_rate_limits SET tat = tat - $1 WHERE key IN ('a', 'b')",
                &[&(61 * SEC as i64)],
            )
            .await
            .expect("age rows");
        assert_eq!(store.purge_expired().await.expect("purge"), 2);
        assert_eq!(count().await, 1);
        assert!(!store.decide("c", t, tau).await.expect("decide").allowed);
        // A purged key starts afresh.
        assert!(store.decide("a", t, tau).await.expect("decide").allowed);

        // The background purger does the same on its own.
        let store = Rc::new(store);
        store.spawn_purger(Duration::from_millis(20));
        db.primary()
            .execute("UPDATE pinion_rate_limits SET tat = 0", &[])
            .await
            .expect("age rows");
        let emptied = eventually(Duration::from_secs(10), async || count().await == 0).await;
        assert!(emptied, "the purger deleted the idle rows");
    });
    cluster.drop_database(&url);
}

#[test]
fn the_table_is_unlogged() {
    let cluster = Cluster::shared();
    let url = cluster.fresh_database("ratelimit_unlogged");
    run(async {
        let (db, _store) = store_on(&url).await;
        let persistence: i8 = db
            .primary()
            .query_one(
                "SELECT relpersistence FROM pg_class WHERE relname = $1",
                &[&RATE_LIMIT_TABLE],
            )
            .await
            .expect("pg_class")
            .get(0);
        assert_eq!(persistence as u8, b'u');
        // ensure_table is idempotent.
        PgRateStore::new(Rc::clone(&db))
            .ensure_table()
            .await
            .expect("again");
    });
    cluster.drop_database(&url);
}
