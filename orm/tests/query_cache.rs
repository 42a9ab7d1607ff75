//! The query cache against a real PostgreSQL: a cached read is served without the database,
//! every write path invalidates what it changed (joins included), a rolled-back write
//! invalidates nothing, a write committed during a read leaves no stale entry, TTLs expire,
//! `.cache(false)` bypasses, and the counters say so.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{cache, run, Abort, Cluster};
use pinion_cache::{CacheConfig, CacheOptions, Clock, LocMemCache};
use pinion_orm::query::{batch, raw};
use pinion_orm::{ConnectionManager, DbConfig, Error, Model, QueryCache};

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "qc_product")]
struct Product {
    #[model(primary_key)]
    id: i32,
    name: String,
    price: i32,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "qc_order")]
struct Order {
    #[model(primary_key)]
    id: i32,
    #[model(foreign_key = Product)]
    product_id: i32,
    quantity: i32,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "qc_short", cache_ttl = "300ms")]
struct Short {
    #[model(primary_key)]
    id: i32,
    v: i32,
}

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "qc_batch")]
struct Batched {
    #[model(primary_key)]
    id: i32,
    v: i32,
}

fn manager(url: &str, cache: &Arc<QueryCache>) -> std::rc::Rc<ConnectionManager> {
    let mut cfg = DbConfig::new(url.to_string(), vec![]);
    cfg.connect.connect_timeout = Duration::from_secs(3);
    cfg.query_cache = Some(Arc::clone(cache));
    ConnectionManager::start(&cfg).expect("db")
}

/// Changes a row behind the ORM's back, through a raw connection without the cache, so a
/// later read shows whether it came from the cache.
async fn behind_the_back(url: &str, sql: &str) {
    let plain = common::primary_only(url);
    plain.primary().batch_execute(sql).await.expect("raw write");
}

#[test]
fn cached_reads_are_invalidated_by_every_write_path() {
    let cluster = Cluster::shared();
    run(async {
        let qc = cache();
        let db = manager(&cluster.primary, &qc);
        db.primary()
            .batch_execute(
                "DROP TABLE IF EXISTS qc_order, qc_product;
                 CREATE TABLE qc_product (id int PRIMARY KEY, name text NOT NULL, price int NOT NULL);
                 CREATE TABLE qc_order (id int PRIMARY KEY, product_id int NOT NULL REFERENCES qc_product (id), quantity int NOT NULL);
                 INSERT INTO qc_product VALUES (1, 'tea', 4), (2, 'coffee', 5);
                 INSERT INTO qc_order VALUES (10, 1, 3);",
            )
            .await
            .expect("schema");
        let tea = || Product::objects().filter(Product::ID.eq(1));

        // A miss fills, a hit is served without the database.
        assert_eq!(tea().get(&*db).await.unwrap().price, 4);
        let after_fill = qc.stats();
        assert_eq!((after_fill.misses, after_fill.hits), (1, 0));
        behind_the_back(
            &cluster.primary,
            "UPDATE qc_product SET price = 40 WHERE id = 1",
        )
        .await;
        assert_eq!(
            tea().get(&*db).await.unwrap().price,
            4,
            "served from the cache"
        );
        assert_eq!(qc.stats().hits, 1);
        // .cache(false) reads the database.
        assert_eq!(tea().cache(false).get(&*db).await.unwrap().price, 40);

        // save() bumps: the next read sees the write.
        let mut p = tea().cache(false).get(&*db).await.unwrap();
        p.price = 41;
        p.save(&*db).await.unwrap();
        assert_eq!(tea().get(&*db).await.unwrap().price, 41);
        assert!(qc.stats().invalidations >= 1);

        // A cached join is invalidated by a write to the joined table.
        let joined = || Order::objects().select_related::<Product>();
        assert_eq!(joined().get(&*db).await.unwrap().1.price, 41);
        let hits = qc.stats().hits;
        assert_eq!(joined().get(&*db).await.unwrap().1.price, 41);
        assert_eq!(qc.stats().hits, hits + 1, "the join is cached");
        Product::objects()
            .filter(Product::ID.eq(1))
            .update([Product::PRICE.set(42)], &*db)
            .await
            .unwrap();
        assert_eq!(
            joined().get(&*db).await.unwrap().1.price,
            42,
            "a write to products invalidates the join of orders to products"
        );

        // Query-set delete, bulk_create, bulk_update, instance delete and raw writes bump.
        let all = || Product::objects().order_by(Product::ID.asc());
        assert_eq!(all().all(&*db).await.unwrap().len(), 2);
        let mut more = vec![Product {
            id: 3,
            name: "mate".into(),
            price: 6,
        }];
        Product::objects()
            .bulk_create(&mut more, &*db)
            .await
            .unwrap();
        assert_eq!(all().all(&*db).await.unwrap().len(), 3);
        more[0].price = 7;
        Product::objects()
            .bulk_update(&more, &[&Product::PRICE], &*db)
            .await
            .unwrap();
        assert_eq!(all().all(&*db).await.unwrap()[2].price, 7);
        more[0].delete(&*db).await.unwrap();
        assert_eq!(all().all(&*db).await.unwrap().len(), 2);
        raw("UPDATE qc_product SET name = 'green tea' WHERE id = 1")
            .writes("qc_product")
            .execute(&*db)
            .await
            .unwrap();
        assert_eq!(all().all(&*db).await.unwrap()[0].name, "green tea");
        Product::objects()
            .filter(Product::ID.eq(2))
            .delete(&*db)
            .await
            .unwrap();
        assert_eq!(all().count(&*db).await.unwrap(), 1);

        // A committed transaction bumps after commit; a rolled-back one bumps nothing.
        db.transaction(async |tx| {
            Product::objects()
                .filter(Product::ID.eq(1))
                .update([Product::PRICE.set(50)], tx)
                .await?;
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
        assert_eq!(tea().get(&*db).await.unwrap().price, 50);
        let before = qc.stats();
        let rolled_back: Result<(), Abort> = db
            .transaction(async |tx| {
                Product::objects()
                    .filter(Product::ID.eq(1))
                    .update([Product::PRICE.set(99)], tx)
                    .await?;
                // Read inside the transaction that wrote: bypassed, so nothing it wrote is
                // cached.
                assert_eq!(tea().get(tx).await?.price, 99);
                Err(Abort::Changed)
            })
            .await;
        assert!(
            matches!(rolled_back, Err(Abort::Changed)),
            "{rolled_back:?}"
        );
        let after = qc.stats();
        assert_eq!(
            after.invalidations, before.invalidations,
            "a rollback bumps nothing"
        );
        assert!(
            after.bypasses > before.bypasses,
            "the read in the transaction bypassed"
        );
        assert_eq!(
            tea().get(&*db).await.unwrap().price,
            50,
            "the cached entry is still valid"
        );
        assert_eq!(qc.stats().hits, after.hits + 1);
    });
}

#[test]
fn entries_expire_after_the_model_ttl() {
    let cluster = Cluster::shared();
    run(async {
        let (clock, hands) = Clock::manual(std::time::SystemTime::now());
        let qc = QueryCache::new(LocMemCache::with_options(
            1_000,
            CacheOptions::new(&CacheConfig::default()).with_clock(clock),
        ));
        let db = manager(&cluster.primary, &qc);
        db.primary()
            .batch_execute(
                "DROP TABLE IF EXISTS qc_short;
                 CREATE TABLE qc_short (id int PRIMARY KEY, v int NOT NULL);
                 INSERT INTO qc_short VALUES (1, 1);",
            )
            .await
            .expect("schema");
        let one = || Short::objects().filter(Short::ID.eq(1));
        assert_eq!(one().get(&*db).await.unwrap().v, 1);
        behind_the_back(&cluster.primary, "UPDATE qc_short SET v = 2").await;
        assert_eq!(one().get(&*db).await.unwrap().v, 1, "cached");
        hands.advance(Duration::from_millis(200));
        assert_eq!(
            one().get(&*db).await.unwrap().v,
            1,
            "still cached within its 300 ms"
        );
        hands.advance(Duration::from_millis(150));
        assert_eq!(
            one().get(&*db).await.unwrap().v,
            2,
            "expired after the model's TTL"
        );
    });
}

#[test]
fn a_write_committed_during_a_read_leaves_no_stale_entry() {
    let cluster = Cluster::shared();
    run(async {
        let qc = cache();
        let db = manager(&cluster.primary, &qc);
        db.primary()
            .batch_execute(
                "DROP TABLE IF EXISTS qc_race;
                 CREATE TABLE qc_race (id int PRIMARY KEY, v int NOT NULL);
                 INSERT INTO qc_race VALUES (1, 1);",
            )
            .await
            .expect("schema");
        // A read that takes a while, declared as reading qc_race.
        let slow = || {
            raw("SELECT v FROM qc_race, pg_sleep(0.5) WHERE id = $1 AND $2::text IS NOT NULL")
                .bind(1)
                .bind("qc_race_probe")
                .reads("qc_race")
        };
        let watcher = common::primary_only(&cluster.primary);
        let in_flight = async {
            let v: Option<(i32,)> = slow().first(&*db).await.expect("slow read");
            v
        };
        let write_meanwhile = async {
            // Wait until the slow read is running on the server, then commit a write.
            let running = common::eventually(Duration::from_secs(10), async || {
                let rows = watcher
                    .primary()
                    .query(
                        "SELECT 1 FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%pg_sleep(0.5)%' AND pid <> pg_backend_pid()",
                        &[],
                    )
                    .await
                    .expect("pg_stat_activity");
                !rows.is_empty()
            })
            .await;
            assert!(running, "the slow read never showed in pg_stat_activity");
            raw("UPDATE qc_race SET v = 2 WHERE id = 1")
                .writes("qc_race")
                .execute(&*db)
                .await
                .expect("write");
        };
        let (seen, ()) = futures_util::future::join(in_flight, write_meanwhile).await;
        assert_eq!(
            seen,
            Some((1,)),
            "the read began before the write committed"
        );
        let misses = qc.stats().misses;
        let now: Option<(i32,)> = slow().first(&*db).await.unwrap();
        assert_eq!(
            now,
            Some((2,)),
            "what the in-flight read saw was not served again"
        );
        assert_eq!(qc.stats().misses, misses + 1);
        let again: Option<(i32,)> = slow().first(&*db).await.unwrap();
        assert_eq!(again, Some((2,)));
    });
}

#[test]
fn a_batch_answers_its_hits_from_the_cache_and_sends_only_its_misses() {
    let cluster = Cluster::shared();
    run(async {
        let qc = cache();
        let db = manager(&cluster.primary, &qc);
        db.primary()
            .batch_execute(
                "DROP TABLE IF EXISTS qc_batch;
                 CREATE TABLE qc_batch (id int PRIMARY KEY, v int NOT NULL);
                 INSERT INTO qc_batch SELECT i, i FROM generate_series(1, 4) AS i;",
            )
            .await
            .expect("schema");
        let one = |id: i32| Batched::objects().filter(Batched::ID.eq(id));
        // Row 1 is cached by a single read first.
        assert_eq!(one(1).get(&*db).await.unwrap().v, 1);
        let before = qc.stats();
        behind_the_back(&cluster.primary, "UPDATE qc_batch SET v = v * 10").await;

        let rows = batch([1, 2, 3].map(one)).get(&*db).await.unwrap();
        let values: Vec<i32> = rows.iter().map(|r| r.v).collect();
        assert_eq!(
            values,
            [1, 20, 30],
            "row 1 from the cache, 2 and 3 from the table"
        );
        let after = qc.stats();
        assert_eq!(after.hits - before.hits, 1);
        assert_eq!(after.misses - before.misses, 2);

        // The misses were stored: the same batch again is all hits.
        behind_the_back(&cluster.primary, "UPDATE qc_batch SET v = 0").await;
        let again = batch([1, 2, 3].map(one)).get(&*db).await.unwrap();
        assert_eq!(again.iter().map(|r| r.v).collect::<Vec<_>>(), [1, 20, 30]);
        assert_eq!(qc.stats().hits - after.hits, 3);

        // A write through the ORM invalidates every entry of the table; `cache(false)` sets
        // read the table and leave the cache alone.
        Batched::objects()
            .filter(Batched::ID.eq(4))
            .update([Batched::V.set(4)], &*db)
            .await
            .unwrap();
        let fresh = batch([1, 2].map(one)).get(&*db).await.unwrap();
        assert_eq!(fresh.iter().map(|r| r.v).collect::<Vec<_>>(), [0, 0]);
        behind_the_back(&cluster.primary, "UPDATE qc_batch SET v = 7").await;
        let stats = qc.stats();
        let uncached = batch([1, 2].map(|id| one(id).cache(false)))
            .get(&*db)
            .await
            .unwrap();
        assert_eq!(uncached.iter().map(|r| r.v).collect::<Vec<_>>(), [7, 7]);
        let cached = batch([1, 2].map(one)).get(&*db).await.unwrap();
        assert_eq!(cached.iter().map(|r| r.v).collect::<Vec<_>>(), [0, 0]);
        let now = qc.stats();
        assert_eq!((now.hits - stats.hits, now.misses - stats.misses), (2, 0));
    });
}
