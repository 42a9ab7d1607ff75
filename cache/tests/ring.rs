//! The ketama ring against the published continuum and the named lookups of
//! `shared/testdata/README.md`.

use std::collections::HashMap;
use std::path::PathBuf;

use pinion_cache::{hashi, ConsistentHashRing};

#[derive(serde::Deserialize)]
struct Point {
    hash: u32,
    hostname: String,
}

#[test]
fn reproduces_the_640_published_points() {
    // A copy of the project's shared test vector (Couchbase SDK RFC 26), kept in the crate so
    // the test does not depend on anything outside the repository.
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/ketama-hashes.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("test data {} must exist: {e}", path.display()));
    let expected: Vec<Point> = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(expected.len(), 640);

    let mut ring = ConsistentHashRing::new();
    for i in 1..=4 {
        ring.add_node(format!("192.168.1.10{i}:11210"), 1);
    }
    let ours: Vec<(u32, &str)> = ring.points().collect();
    assert_eq!(ours.len(), 640);
    for (i, (ours, theirs)) in ours.iter().zip(&expected).enumerate() {
        assert_eq!(*ours, (theirs.hash, theirs.hostname.as_str()), "point {i}");
    }
}

#[test]
fn named_lookups() {
    assert_eq!(hashi("test"), 3446378249);
    let mut ring = ConsistentHashRing::new();
    for n in ["node1", "node2", "node3"] {
        ring.add_node(n, 1);
    }
    assert_eq!(ring.points().count(), 480);
    let md5_node1_0 = [1217271357, 155454371, 599444066, 673791165];
    for p in md5_node1_0 {
        assert!(ring.points().any(|(q, n)| q == p && n == "node1"), "{p}");
    }
    for (key, node) in [
        ("coconut", "node2"),
        ("user:42", "node1"),
        ("foo", "node3"),
        ("bar", "node1"),
    ] {
        assert_eq!(ring.get_node(key), Some(node), "{key}");
    }
}

fn assignment(ring: &ConsistentHashRing) -> HashMap<String, String> {
    (0..10_000)
        .map(|i| {
            let key = format!("key:{i}");
            let node = ring.get_node(&key).unwrap().to_owned();
            (key, node)
        })
        .collect()
}

#[test]
fn a_fourth_node_takes_about_a_quarter_of_the_keys() {
    let mut ring = ConsistentHashRing::new();
    for n in ["node1", "node2", "node3"] {
        ring.add_node(n, 1);
    }
    let before = assignment(&ring);
    ring.add_node("node4", 1);
    let after = assignment(&ring);
    let moved: Vec<&String> = before.keys().filter(|k| before[*k] != after[*k]).collect();
    let share = moved.len() as f64 / before.len() as f64;
    assert!((0.15..0.35).contains(&share), "moved {share}");
    assert!(
        moved.iter().all(|k| after[*k] == "node4"),
        "keys only move to the new node"
    );
}

#[test]
fn removing_a_node_moves_only_its_keys() {
    let mut ring = ConsistentHashRing::new();
    for n in ["node1", "node2", "node3", "node4"] {
        ring.add_node(n, 1);
    }
    let before = assignment(&ring);
    assert!(ring.remove_node("node2"));
    assert!(!ring.remove_node("node2"));
    let after = assignment(&ring);
    for (key, node) in &before {
        if node == "node2" {
            assert_ne!(after[key], "node2");
        } else {
            assert_eq!(&after[key], node, "{key} moved off a surviving node");
        }
    }
}
