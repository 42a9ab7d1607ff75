//! DatabaseCache against the real primary: every operation, TTL rules, atomic `incr` under
//! concurrency, and a TwoTierCache that keeps serving from L1 when its PostgreSQL tier fails.

mod common;

use std::rc::Rc;
use std::time::{Duration, SystemTime};

use common::{run, Cluster};
use pinion_cache::{
    Cache, CacheConfig, CacheOptions, Clock, LocMemCache, LocMemConfig, Ttl, TwoTierCache,
    TwoTierConfig,
};
use pinion_orm::{ConnectionManager, DatabaseCache, DbConfig};

fn options() -> CacheOptions {
    CacheOptions::new(&CacheConfig::default())
}

async fn cache_on(url: &str, options: CacheOptions) -> DatabaseCache {
    let db = ConnectionManager::start(&DbConfig::new(url.to_string(), vec![])).expect("db");
    let cache = DatabaseCache::new(db, options);
    cache.ensure_table().await.expect("table");
    cache
}

#[test]
fn every_operation_against_postgresql() {
    let cluster = Cluster::shared();
    let url = cluster.fresh_database("cache_ops");
    run(async {
        let cache = cache_on(&url, options()).await;
        assert_eq!(cache.get::<String>("missing").await.expect("get"), None);
        cache
            .set("a", "alpha".to_string(), Ttl::Default)
            .await
            .expect("set");
        assert_eq!(
            cache.get::<String>("a").await.expect("get").as_deref(),
            Some("alpha")
        );
        assert!(cache.has("a").await.expect("has"));
        // add: only if absent.
        assert!(!cache
            .add("a", "other".to_string(), Ttl::Default)
            .await
            .expect("add"));
        assert!(cache.add("b", 2_i64, Ttl::Forever).await.expect("add"));
        // get_many: in one query, missing keys left out.
        let many = cache
            .get_many::<serde_json::Value>(&["a", "b", "zzz"])
            .await
            .expect("get_many");
        assert_eq!(many.len(), 2, "{many:?}");
        // incr / decr on an integer; errors on a missing key or a non-integer.
        assert_eq!(cache.incr("b", 5).await.expect("incr"), 7);
        assert_eq!(cache.decr("b", 10).await.expect("decr"), -3);
        assert!(cache
            .incr("nope", 1)
            .await
            .expect_err("missing")
            .is_missing_key());
        assert!(cache.incr("a", 1).await.expect_err("text").is_not_integer());
        cache.set("max", i64::MAX, Ttl::Default).await.expect("set");
        assert!(cache
            .incr("max", 1)
            .await
            .expect_err("overflow")
            .is_overflow());
        // touch, delete, delete_many, clear.
        assert!(cache
            .touch("a", Ttl::After(Duration::from_secs(60)))
            .await
            .expect("touch"));
        assert!(!cache.touch("nope", Ttl::Default).await.expect("touch"));
        assert!(cache.delete("a").await.expect("delete"));
        assert!(!cache.delete("a").await.expect("delete"));
        cache
            .set_many(vec![("x", 1_i32), ("y", 2_i32)], Ttl::Default)
            .await
            .expect("set_many");
        cache.delete_many(&["x"]).await.expect("delete_many");
        assert_eq!(cache.get::<i32>("x").await.expect("get"), None);
        assert_eq!(cache.get::<i32>("y").await.expect("get"), Some(2));
        cache.clear().await.expect("clear");
        assert_eq!(cache.get::<i32>("y").await.expect("get"), None);
        // Django's key layout: prefix and version isolate.
        let v2 = cache_on(
            &url,
            CacheOptions::new(&CacheConfig {
                version: 2,
                ..CacheConfig::default()
            }),
        )
        .await;
        cache.set("k", 1_i32, Ttl::Default).await.expect("set");
        assert_eq!(v2.get::<i32>("k").await.expect("get"), None);
    });
    cluster.drop_database(&url);
}

#[test]
fn expired_rows_are_never_returned_and_are_purged() {
    let cluster = Cluster::shared();
    let url = cluster.fresh_database("cache_ttl");
    run(async {
        // A clock an hour behind writes entries that are already expired for PostgreSQL.
        let (clock, _hand) = Clock::manual(SystemTime::now() - Duration::from_secs(3600));
        let stale = cache_on(&url, options().with_clock(clock)).await;
        let cache = cache_on(&url, options()).await;
        stale
            .set("old", 1_i32, Ttl::After(Duration::from_secs(60)))
            .await
            .expect("set");
        cache
            .set("new", 1_i32, Ttl::After(Duration::from_secs(60)))
            .await
            .expect("set");
        cache
            .set("forever", 1_i32, Ttl::Forever)
            .await
            .expect("set");
        assert_eq!(cache.get::<i32>("old").await.expect("get"), None);
        assert!(!cache.has("old").await.expect("has"));
        assert_eq!(cache.get::<i32>("new").await.expect("get"), Some(1));
        assert!(cache
            .incr("old", 1)
            .await
            .expect_err("expired")
            .is_missing_key());
        // add over an expired row stores.
        assert!(cache.add("old", 5_i32, Ttl::Default).await.expect("add"));
        stale
            .set("old2", 1_i32, Ttl::After(Duration::from_secs(60)))
            .await
            .expect("set");
        assert_eq!(cache.purge_expired().await.expect("purge"), 1);
        assert_eq!(cache.get::<i32>("forever").await.expect("get"), Some(1));
    });
    cluster.drop_database(&url);
}

#[test]
fn concurrent_increments_give_the_exact_total() {
    let cluster = Cluster::shared();
    let url = cluster.fresh_database("cache_incr");
    run(async {
        cache_on(&url, options())
            .await
            .set("hits", 0_i64, Ttl::Forever)
            .await
            .expect("set");
    });
    // Two threads (two runtimes, two connections, as two workers or two instances would),
    // each with 100 concurrent tasks incrementing once.
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                run(async {
                    let cache = Rc::new(cache_on(&url, options()).await);
                    let incs = (0..100).map(|_| {
                        let cache = Rc::clone(&cache);
                        async move { cache.incr("hits", 1).await.expect("incr") }
                    });
                    futures_util::future::join_all(incs).await
                })
            })
        })
        .collect();
    for t in threads {
        let results = t.join().expect("thread");
        assert_eq!(results.len(), 100);
    }
    run(async {
        let total = cache_on(&url, options())
            .await
            .get::<i64>("hits")
            .await
            .expect("get");
        assert_eq!(total, Some(200));
    });
    cluster.drop_database(&url);
}

#[test]
fn two_tier_keeps_serving_from_l1_when_the_database_tier_fails() {
    let cluster = Cluster::shared();
    let url = cluster.fresh_database("cache_l2");
    run(async {
        let l1 = LocMemCache::new(&LocMemConfig::default());
        let l2 = cache_on(&url, options()).await;
        let config = TwoTierConfig {
            l1_ttl: Duration::from_secs(60),
            fail_silently: true,
            ..TwoTierConfig::default()
        };
        let cache = TwoTierCache::new(l1, l2, &config);
        cache
            .set("greeting", "hello".to_string(), Ttl::Default)
            .await
            .expect("set");
        // Written through to PostgreSQL.
        assert_eq!(
            cache
                .l2()
                .get::<String>("greeting")
                .await
                .expect("l2 get")
                .as_deref(),
            Some("hello")
        );
        // Break the L2 tier: drop its table.
        let admin = ConnectionManager::start(&DbConfig::new(url.clone(), vec![])).expect("db");
        admin
            .primary()
            .batch_execute("DROP TABLE pinion_cache")
            .await
            .expect("drop table");
        assert_eq!(
            cache
                .get::<String>("greeting")
                .await
                .expect("served")
                .as_deref(),
            Some("hello")
        );
        // A miss in L1 asks L2, which fails: counted, answered as a miss, not an error.
        assert_eq!(cache.get::<String>("absent").await.expect("degraded"), None);
        cache
            .set("later", 1_i32, Ttl::Default)
            .await
            .expect("set with L2 down");
        assert_eq!(cache.get::<i32>("later").await.expect("get"), Some(1));
        let stats = cache.stats();
        assert!(stats.l2_errors >= 2, "{stats:?}");
        assert!(stats.l1_hits >= 2, "{stats:?}");
    });
    cluster.drop_database(&url);
}
