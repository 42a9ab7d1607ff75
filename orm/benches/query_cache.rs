//! A cached query-set read against a raw `LocMemCache::get` of the same row, in one run.
//!
//! Both read a `World` (two `i32`s) of 10 000 resident rows in a scattered order. The raw
//! read is what `/cached-queries` does: `get::<World>("world:N")` on a LocMemCache. The ORM
//! read is `World::objects().filter(World::ID.eq(n)).get(&db)` through a connection manager
//! whose query cache is a LocMemCache of the same configuration: per read it finds the
//! statement by the query set's shape, reads the table's version, builds the key from the SQL,
//! the parameter and the version, looks it up, and decodes the row from the cached bytes. The
//! database is touched only by the first pass, which fills the cache (hit and miss counts are
//! checked before the figures are printed).
//!
//! Run: `cargo bench -p pinion-orm --bench query_cache` (PostgreSQL: the `DATABASE_URL` set,
//! else the private cluster, started by `scripts/pg`). Prints the median of 7 rounds.

#![allow(
    missing_docs,
    clippy::print_stdout,
    reason = "a benchmark's main prints its figures"
)]

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use pinion_cache::{Cache, CacheConfig, LocMemCache, LocMemConfig, Ttl};
use pinion_orm::{ConnectionManager, DbConfig, Model, QueryCache};
use serde::{Deserialize, Serialize};

const KEYS: i32 = 10_000;
/// Prime stride: consecutive reads touch unrelated keys and shards.
const STRIDE: i32 = 7919;

/// Reads per round and rounds: `cargo bench` measures; `cargo test --all-targets` (which runs
/// this once, without `--bench`) only checks that it works.
#[derive(Clone, Copy)]
struct Plan {
    reads: u32,
    rounds: usize,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, Model)]
#[model(table = "bench_qc_world")]
struct World {
    #[model(primary_key)]
    id: i32,
    #[model(column = "randomnumber")]
    random_number: i32,
}

fn config() -> LocMemConfig {
    LocMemConfig {
        cache: CacheConfig::default(),
        max_entries: 4 * KEYS as usize,
    }
}

/// Polls a future that never pends (LocMemCache's) to completion.
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("LocMemCache never pends"),
    }
}

fn ns_per_read(elapsed: Duration, plan: Plan) -> f64 {
    elapsed.as_nanos() as f64 / f64::from(plan.reads)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn raw_rounds(plan: Plan) -> Vec<f64> {
    let cache = LocMemCache::new(&config());
    let keys: Vec<String> = (0..KEYS).map(|i| format!("world:{i}")).collect();
    for (i, key) in keys.iter().enumerate() {
        let w = World {
            id: i as i32,
            random_number: i as i32,
        };
        ready(cache.set(key, w, Ttl::Default)).expect("set");
    }
    (0..plan.rounds)
        .map(|_| {
            let mut k = 0;
            let start = Instant::now();
            for _ in 0..plan.reads {
                let w = ready(cache.get::<World>(black_box(&keys[k as usize])));
                black_box(w.expect("get").expect("resident"));
                k = (k + STRIDE) % KEYS;
            }
            ns_per_read(start.elapsed(), plan)
        })
        .collect()
}

async fn orm_rounds(url: &str, plan: Plan) -> Vec<f64> {
    let qc = QueryCache::new(LocMemCache::new(&config()));
    let mut cfg = DbConfig::new(url.to_string(), vec![]);
    cfg.query_cache = Some(Arc::clone(&qc));
    let db = ConnectionManager::start(&cfg).expect("connection manager");
    db.primary()
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS bench_qc_world;
             CREATE TABLE bench_qc_world (id int PRIMARY KEY, randomnumber int NOT NULL);
             INSERT INTO bench_qc_world SELECT i, i FROM generate_series(0, {}) AS i;",
            KEYS - 1
        ))
        .await
        .expect("table");
    let read = async |id: i32| World::objects().filter(World::ID.eq(id)).get(&*db).await;
    for id in 0..KEYS {
        read(id).await.expect("fill");
    }
    let filled = qc.stats();
    assert_eq!(filled.misses, KEYS as u64, "the first pass fills every row");
    let mut rounds = Vec::with_capacity(plan.rounds);
    for _ in 0..plan.rounds {
        let mut k = 0;
        let start = Instant::now();
        for _ in 0..plan.reads {
            black_box(read(black_box(k)).await.expect("cached read"));
            k = (k + STRIDE) % KEYS;
        }
        rounds.push(ns_per_read(start.elapsed(), plan));
    }
    let after = qc.stats();
    assert_eq!(
        after.misses, filled.misses,
        "every measured read was a hit: no database in the figures"
    );
    assert_eq!(
        after.hits - filled.hits,
        u64::from(plan.reads) * plan.rounds as u64
    );
    db.primary()
        .batch_execute("DROP TABLE bench_qc_world")
        .await
        .expect("drop");
    rounds
}

/// The developer's `DATABASE_URL`, else the private cluster's (`scripts/pg start`).
fn database_url() -> String {
    if let Ok(url) = std::env::var("DATABASE_URL") {
        return url;
    }
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = std::process::Command::new(format!("{root}/scripts/pg"))
        .arg("start")
        .output()
        .expect("scripts/pg runs");
    assert!(out.status.success(), "scripts/pg start failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("export DATABASE_URL="))
        .map(|v| v.trim_matches('\'').to_string())
        .expect("scripts/pg start prints DATABASE_URL")
}

fn main() {
    let plan = if std::env::args().any(|a| a == "--bench") {
        Plan {
            reads: 200_000,
            rounds: 7,
        }
    } else {
        Plan {
            reads: 2_000,
            rounds: 1,
        }
    };
    let url = database_url();
    let raw = median(raw_rounds(plan));
    let orm = median(
        monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime")
            .block_on(orm_rounds(&url, plan)),
    );
    println!(
        "| read (10 000 resident rows, scattered) | ns per read (median of {} × {}) |",
        plan.rounds, plan.reads
    );
    println!("| --- | ---: |");
    println!("| raw `LocMemCache::get::<World>` | {raw:.0} |");
    println!("| cached `World::objects().filter(World::ID.eq(n)).get(&db)` | {orm:.0} |");
    println!("| ORM / raw | {:.2}× |", orm / raw);
}
