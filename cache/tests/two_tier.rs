//! TwoTierCache over a LocMemCache L1 and a remote-like L2 written against the public trait.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, UNIX_EPOCH};

use common::{block_on, RemoteCache};
use pinion_cache::{
    Cache, CacheConfig, CacheOptions, Clock, LocMemCache, ManualClock, Ttl, TwoTierCache,
    TwoTierConfig,
};

type Tiers = TwoTierCache<LocMemCache, RemoteCache>;

fn tiers(fail_silently: bool) -> (Tiers, ManualClock) {
    let (clock, hand) = Clock::manual(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    let options = CacheOptions::new(&CacheConfig::default()).with_clock(clock);
    let l1 = LocMemCache::with_options(1000, options.clone());
    let l2 = RemoteCache::new(options.clone());
    let config = TwoTierConfig {
        l1_ttl: Duration::from_secs(10),
        fail_silently,
        ..TwoTierConfig::default()
    };
    (TwoTierCache::with_options(l1, l2, &config, options), hand)
}

#[test]
fn writes_go_to_both_tiers() {
    block_on(async {
        let (c, _) = tiers(true);
        c.set("k", vec![1u32, 2], Ttl::Default).await.unwrap();
        assert!(c.l1().has("k").await.unwrap());
        assert_eq!(c.l2().raw(":1:k").as_deref(), Some(&b"[1,2]"[..]));
        assert_eq!(c.get::<Vec<u32>>("k").await.unwrap(), Some(vec![1, 2]));
        assert_eq!(c.stats().l1_hits, 1);
        assert!(c.delete("k").await.unwrap());
        assert!(!c.l1().has("k").await.unwrap() && c.l2().raw(":1:k").is_none());
    });
}

#[test]
fn l2_hits_are_promoted_for_l1_ttl_only() {
    block_on(async {
        let (c, hand) = tiers(true);
        // Written by another instance: only in L2.
        c.l2()
            .set("k", 7u32, Duration::from_secs(300))
            .await
            .unwrap();
        assert_eq!(c.get::<u32>("k").await.unwrap(), Some(7));
        let stats = c.stats();
        assert_eq!((stats.l1_hits, stats.l2_hits, stats.misses), (0, 1, 0));
        // Promoted: L1 keeps it for l1_ttl but remembers the real expiry (for XFetch).
        let promoted = c.l1().get_entry(":1:k").await.unwrap().unwrap();
        let now = c.options().clock().now();
        assert_eq!(promoted.keep_until(), Some(now + Duration::from_secs(10)));
        assert_eq!(promoted.expires_at(), Some(now + Duration::from_secs(300)));
        assert_eq!(c.get::<u32>("k").await.unwrap(), Some(7));
        assert_eq!(c.stats().l1_hits, 1);
        // Past l1_ttl, L1 lets go and L2 answers again.
        hand.advance(Duration::from_secs(10));
        assert_eq!(c.get::<u32>("k").await.unwrap(), Some(7));
        assert_eq!(c.stats().l2_hits, 2);
        assert_eq!(c.get::<u32>("missing").await.unwrap(), None);
        assert_eq!(c.stats().misses, 1);
    });
}

#[test]
fn promoted_values_decode_once() {
    block_on(async {
        let (c, _) = tiers(true);
        c.l2()
            .set("k", vec![String::from("a")], Ttl::Default)
            .await
            .unwrap();
        let first = c.get_shared::<Vec<String>>("k").await.unwrap().unwrap();
        let second = c.get_shared::<Vec<String>>("k").await.unwrap().unwrap();
        assert!(
            std::sync::Arc::ptr_eq(&first, &second),
            "the L1 hit reuses the decoding"
        );
    });
}

#[test]
fn failing_l2_is_logged_counted_and_l1_keeps_serving() {
    block_on(async {
        let (c, _) = tiers(true);
        c.set("k", 1u32, Ttl::Default).await.unwrap();
        c.l2().failing.store(true, Ordering::Relaxed);
        assert_eq!(c.get::<u32>("k").await.unwrap(), Some(1), "served from L1");
        c.set("new", 2u32, Ttl::Default).await.unwrap();
        assert_eq!(
            c.get::<u32>("new").await.unwrap(),
            Some(2),
            "written to L1 alone"
        );
        assert_eq!(
            c.get::<u32>("absent").await.unwrap(),
            None,
            "an L2 failure reads as a miss"
        );
        assert!(c.add("added", 3u32, Ttl::Default).await.unwrap());
        assert_eq!(c.incr("k", 1).await.unwrap(), 2, "incr falls back to L1");
        let stats = c.stats();
        assert_eq!(stats.l2_errors, 4, "{stats:?}");
        assert_eq!(stats.misses, 1, "{stats:?}");
    });
}

#[test]
fn failing_l2_is_returned_when_not_silent() {
    block_on(async {
        let (c, _) = tiers(false);
        c.l2().failing.store(true, Ordering::Relaxed);
        assert!(c
            .set("k", 1u32, Ttl::Default)
            .await
            .unwrap_err()
            .is_backend());
        assert!(c.get::<u32>("absent").await.unwrap_err().is_backend());
        assert_eq!(c.stats().l2_errors, 2);
    });
}

#[test]
fn incr_and_add_are_decided_by_l2() {
    block_on(async {
        let (c, _) = tiers(true);
        assert!(c.incr("n", 1).await.unwrap_err().is_missing_key());
        assert_eq!(
            c.stats().l2_errors,
            0,
            "a missing key is an answer, not a failure"
        );
        c.set("n", 5i64, Ttl::Default).await.unwrap();
        assert_eq!(c.incr("n", 2).await.unwrap(), 7);
        assert_eq!(c.l2().raw(":1:n").as_deref(), Some(&b"7"[..]));
        assert_eq!(
            c.get::<i64>("n").await.unwrap(),
            Some(7),
            "L1's stale copy was dropped"
        );
        assert_eq!(c.decr("n", 10).await.unwrap(), -3);
        c.l2().set("other", 1u32, Ttl::Default).await.unwrap();
        assert!(
            !c.add("other", 2u32, Ttl::Default).await.unwrap(),
            "present in L2"
        );
        assert!(c.add("fresh", 2u32, Ttl::Default).await.unwrap());
        assert!(c.l1().has("fresh").await.unwrap());
    });
}

#[test]
fn many_operations_batch_over_tiers() {
    block_on(async {
        let (c, _) = tiers(true);
        c.set("a", 1u32, Ttl::Default).await.unwrap();
        c.l2().set("b", 2u32, Ttl::Default).await.unwrap();
        let got = c.get_many::<u32>(&["a", "b", "c"]).await.unwrap();
        assert_eq!((got.len(), got["a"], got["b"]), (2, 1, 2));
        let stats = c.stats();
        assert_eq!((stats.l1_hits, stats.l2_hits, stats.misses), (1, 1, 1));
        assert!(c.l1().has("b").await.unwrap(), "promoted");
        c.delete_many(&["a", "b"]).await.unwrap();
        assert!(c.get_many::<u32>(&["a", "b"]).await.unwrap().is_empty());
    });
}

#[test]
fn xfetch_metadata_survives_the_remote_tier() {
    block_on(async {
        let (c, _) = tiers(true);
        let key = c.options().keys().make_key("k");
        let expires = c.options().expires_at(Ttl::Default);
        let entry = pinion_cache::Entry::new(pinion_cache::Value::new(1u8), expires)
            .with_delta(Duration::from_millis(250));
        c.set_entry(&key, entry).await.unwrap();
        let from_l2 = c.l2().get_entry(&key).await.unwrap().unwrap();
        assert_eq!(
            (from_l2.delta(), from_l2.expires_at()),
            (Duration::from_millis(250), expires)
        );
        let from_l1 = c.l1().get_entry(&key).await.unwrap().unwrap();
        assert_eq!(
            (from_l1.delta(), from_l1.expires_at()),
            (Duration::from_millis(250), expires)
        );
    });
}
