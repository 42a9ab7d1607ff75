//! LocMemCache against raw `quick_cache` and `moka` on the same typed values, at 1 and 2
//! threads.
//!
//! Values are a TechEmpower `World` (two `i32`s), as `/cached-queries` caches them; 10 000 keys,
//! all resident, read in a scattered order. Peers: `quick_cache::sync::Cache<String, World>`
//! looked up by `&str` (same key type as ours), `quick_cache::sync::Cache<i32, World>` (what
//! the axum peer does), and `moka::sync::Cache<String, World>`. LocMemCache goes through the
//! async `Cache` trait (polled once: it never pends) and does on every `get` what it does in
//! the server: looks up the real key `":1:world:N"` (prefix and version applied; hashed from
//! the cache's pre-hashed `":1:"` head and the caller's key rather than built, see
//! `src/store.rs`), reads the clock and checks the entry's TTL (`Ttl::Default`, 300 s),
//! counts the hit, and returns a typed clone of the `World`. `set` stores with that TTL.
//!
//! Two-thread figures are the time per operation on each thread while both run at once.
//!
//! Run: `CARGO_TARGET_DIR=/tmp/cache-target cargo bench -p pinion-cache --bench locmem --
//! --warm-up-time 1 --measurement-time 3`.

#![allow(
    missing_docs,
    reason = "criterion's macros generate undocumented items"
)]

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Barrier;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use pinion_cache::{Cache, LocMemCache, LocMemConfig, Ttl};
use serde::{Deserialize, Serialize};

const KEYS: usize = 10_000;
/// Prime stride: consecutive operations touch unrelated keys and shards.
const STRIDE: usize = 7919;

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct World {
    id: i32,
    random_number: i32,
}

fn world(i: usize) -> World {
    World {
        id: i as i32,
        random_number: (i * 31 % 10_000) as i32,
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

struct Subjects {
    keys: Vec<String>,
    locmem: LocMemCache,
    quick_str: quick_cache::sync::Cache<String, World>,
    quick_i32: quick_cache::sync::Cache<i32, World>,
    moka: moka::sync::Cache<String, World>,
}

fn subjects() -> Subjects {
    let keys: Vec<String> = (0..KEYS).map(|i| format!("world:{i}")).collect();
    let config = LocMemConfig {
        max_entries: 2 * KEYS,
        ..LocMemConfig::default()
    };
    let s = Subjects {
        locmem: LocMemCache::new(&config),
        quick_str: quick_cache::sync::Cache::new(2 * KEYS),
        quick_i32: quick_cache::sync::Cache::new(2 * KEYS),
        moka: moka::sync::Cache::new(2 * KEYS as u64),
        keys,
    };
    for (i, key) in s.keys.iter().enumerate() {
        ready(s.locmem.set(key, world(i), Ttl::Default)).unwrap();
        s.quick_str.insert(key.clone(), world(i));
        s.quick_i32.insert(i as i32, world(i));
        s.moka.insert(key.clone(), world(i));
    }
    s
}

/// Runs `op(i)` `iters` times on each of `threads` threads at once; the slowest thread's time.
fn run(threads: usize, iters: u64, op: &(dyn Fn(usize) + Sync)) -> Duration {
    let barrier = Barrier::new(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let barrier = &barrier;
                s.spawn(move || {
                    let mut i = t * 1234 % KEYS;
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..iters {
                        op(i);
                        i = (i + STRIDE) % KEYS;
                    }
                    start.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .max()
            .unwrap_or_default()
    })
}

fn get(c: &mut Criterion) {
    let s = subjects();
    for threads in [1, 2] {
        let mut group = c.benchmark_group(format!("get/{threads}t"));
        let ops: [(&str, &(dyn Fn(usize) + Sync)); 4] = [
            ("locmem", &|i| {
                black_box(ready(s.locmem.get::<World>(black_box(&s.keys[i]))).unwrap());
            }),
            ("quick_cache_str", &|i| {
                black_box(s.quick_str.get(black_box(s.keys[i].as_str())));
            }),
            ("quick_cache_i32", &|i| {
                black_box(s.quick_i32.get(black_box(&(i as i32))));
            }),
            ("moka", &|i| {
                black_box(s.moka.get(black_box(s.keys[i].as_str())));
            }),
        ];
        for (name, op) in ops {
            group.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter_custom(|iters| run(threads, iters, op))
            });
        }
        group.finish();
    }
}

fn set(c: &mut Criterion) {
    let s = subjects();
    for threads in [1, 2] {
        let mut group = c.benchmark_group(format!("set/{threads}t"));
        let ops: [(&str, &(dyn Fn(usize) + Sync)); 4] = [
            ("locmem", &|i| {
                ready(s.locmem.set(black_box(&s.keys[i]), world(i), Ttl::Default)).unwrap();
            }),
            ("quick_cache_str", &|i| {
                s.quick_str.insert(black_box(&s.keys[i]).clone(), world(i));
            }),
            ("quick_cache_i32", &|i| {
                s.quick_i32.insert(black_box(i as i32), world(i));
            }),
            ("moka", &|i| {
                s.moka.insert(black_box(&s.keys[i]).clone(), world(i));
            }),
        ];
        for (name, op) in ops {
            group.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter_custom(|iters| run(threads, iters, op))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, get, set);
criterion_main!(benches);
