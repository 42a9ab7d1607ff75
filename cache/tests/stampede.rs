//! StampedeProtection: single-flight across threads and XFetch with an injected random source.

mod common;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use common::{block_on, yield_now};
use futures_util::future::join_all;
use pinion_cache::{
    Cache, CacheConfig, CacheOptions, Clock, Entry, LocMemCache, ManualClock, StampedeProtection,
    Ttl, Value, XFetchConfig,
};

fn protected(beta: f64, random: f64) -> (StampedeProtection<LocMemCache>, ManualClock) {
    let (clock, hand) = Clock::manual(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    let options = CacheOptions::new(&CacheConfig::default()).with_clock(clock);
    let cache = LocMemCache::with_options(1000, options);
    let protected =
        StampedeProtection::new(cache, &XFetchConfig { beta }).with_random(move || random);
    (protected, hand)
}

#[test]
fn hundred_concurrent_misses_compute_once() {
    const THREADS: usize = 4;
    const TASKS: usize = 25;
    let (cache, _) = protected(1.0, 0.5);
    let cache = Arc::new(cache);
    let entered = Arc::new(AtomicUsize::new(0));
    let computations = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (cache, entered, computations) =
                (cache.clone(), entered.clone(), computations.clone());
            std::thread::spawn(move || {
                block_on(join_all((0..TASKS).map(|_| {
                    let (cache, entered, computations) = (&cache, &entered, &computations);
                    async move {
                        entered.fetch_add(1, Ordering::SeqCst);
                        cache
                            .get_or_compute("hot", Ttl::Default, || async {
                                computations.fetch_add(1, Ordering::SeqCst);
                                // Stay in flight until every call has started (bounded).
                                let deadline = Instant::now() + Duration::from_secs(10);
                                while entered.load(Ordering::SeqCst) < THREADS * TASKS
                                    && Instant::now() < deadline
                                {
                                    yield_now().await;
                                }
                                Ok::<_, Infallible>(42u64)
                            })
                            .await
                    }
                })))
            })
        })
        .collect();
    for t in threads {
        let results = t.join().unwrap();
        assert!(results.into_iter().all(|r| r == Ok(42)));
    }
    assert_eq!(computations.load(Ordering::SeqCst), 1);
    let stats = cache.stats();
    assert_eq!(stats.computations, 1, "{stats:?}");
    assert!(stats.coalesced > 0, "{stats:?}");
    assert_eq!(block_on(cache.get::<u64>("hot")).unwrap(), Some(42));
}

#[test]
fn a_failed_leader_hands_over_to_a_waiter() {
    let (cache, _) = protected(1.0, 0.5);
    let attempts = AtomicUsize::new(0);
    let attempt = || async {
        let n = attempts.fetch_add(1, Ordering::SeqCst);
        for _ in 0..5 {
            yield_now().await;
        }
        if n == 0 {
            Err("database down")
        } else {
            Ok(7u32)
        }
    };
    let results = block_on(join_all(
        (0..3).map(|_| cache.get_or_compute("k", Ttl::Default, attempt)),
    ));
    assert_eq!(results, vec![Err("database down"), Ok(7), Ok(7)]);
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
}

/// Stores `value` under `key` as computed with Δ = 1 s, expiring in 300 s.
fn seed(cache: &StampedeProtection<LocMemCache>, key: &str, value: u32) -> std::time::SystemTime {
    let real = cache.options().keys().make_key(key);
    let expires = cache.options().expires_at(Ttl::Default).unwrap();
    let entry = Entry::new(Value::new(value), Some(expires)).with_delta(Duration::from_secs(1));
    block_on(cache.set_entry(&real, entry)).unwrap();
    expires
}

fn recompute(cache: &StampedeProtection<LocMemCache>) -> u32 {
    block_on(cache.get_or_compute("k", Ttl::Default, || async { Ok::<_, Infallible>(2u32) }))
        .unwrap()
}

#[test]
fn xfetch_does_not_refresh_far_from_expiry() {
    // r = 0.5: the early window is Δ·β·ln 2 ≈ 0.69 s before expiry.
    let (cache, hand) = protected(1.0, 0.5);
    seed(&cache, "k", 1);
    hand.advance(Duration::from_secs(299)); // 1 s left
    assert_eq!(recompute(&cache), 1);
    assert_eq!(cache.stats().computations, 0);
}

#[test]
fn xfetch_refreshes_near_expiry() {
    let (cache, hand) = protected(1.0, 0.5);
    let expires = seed(&cache, "k", 1);
    hand.advance(Duration::from_millis(299_500)); // 0.5 s left < 0.69 s
    assert_eq!(recompute(&cache), 2);
    let stats = cache.stats();
    assert_eq!((stats.computations, stats.early_refreshes), (1, 1));
    // Stored with a fresh expiry and a measured Δ.
    let real = cache.options().keys().make_key("k");
    let entry = block_on(cache.get_entry(&real)).unwrap().unwrap();
    assert!(entry.expires_at().unwrap() > expires);
    assert_eq!(
        recompute(&cache),
        2,
        "the fresh value is far from its expiry"
    );
}

#[test]
fn xfetch_beta_scales_the_window() {
    // β = 2 doubles the window to ≈ 1.39 s: 1 s before expiry now refreshes.
    let (cache, hand) = protected(2.0, 0.5);
    seed(&cache, "k", 1);
    hand.advance(Duration::from_secs(299));
    assert_eq!(recompute(&cache), 2);
    // β = 0 turns it off, even at the last moment.
    let (cache, hand) = protected(0.0, 0.5);
    seed(&cache, "k", 1);
    hand.advance(Duration::from_millis(299_999));
    assert_eq!(recompute(&cache), 1);
}

#[test]
fn one_early_refresh_at_a_time_others_keep_the_current_value() {
    let (cache, hand) = protected(1.0, 0.5);
    seed(&cache, "k", 1);
    hand.advance(Duration::from_millis(299_500));
    let computations = AtomicUsize::new(0);
    let slow = || async {
        computations.fetch_add(1, Ordering::SeqCst);
        for _ in 0..5 {
            yield_now().await;
        }
        Ok::<_, Infallible>(2u32)
    };
    let results = block_on(join_all(
        (0..3).map(|_| cache.get_or_compute("k", Ttl::Default, slow)),
    ));
    assert_eq!(results, vec![Ok(2), Ok(1), Ok(1)]);
    assert_eq!(computations.load(Ordering::SeqCst), 1);
}

#[test]
fn compute_errors_are_returned_and_nothing_is_cached() {
    let (cache, _) = protected(1.0, 0.5);
    let r = block_on(cache.get_or_compute("k", Ttl::Default, || async { Err::<u32, _>("boom") }));
    assert_eq!(r, Err("boom"));
    assert!(!block_on(cache.has("k")).unwrap());
    assert_eq!(recompute(&cache), 2, "a later call computes afresh");
}
