//! The README's example for live updates is this crate's doc test, word for word, so that
//! what a user pastes compiles.

/// The first fenced block after the first line that contains `start`.
fn first_block(lines: &[&str], start: &str) -> Vec<String> {
    lines
        .iter()
        .skip_while(|l| !l.contains(start))
        .skip_while(|l| !l.starts_with("```"))
        .skip(1)
        .take_while(|l| !l.starts_with("```"))
        .map(|l| l.to_string())
        .collect()
}

#[test]
fn the_live_updates_example_is_the_crate_doc_test() {
    let readme: Vec<&str> = include_str!("../../README.md").lines().collect();
    let doc: Vec<&str> = include_str!("../src/lib.rs")
        .lines()
        .filter(|l| l.starts_with("//!"))
        .map(|l| {
            l.strip_prefix("//! ")
                .unwrap_or(l.trim_start_matches("//!"))
        })
        .collect();
    let shown = first_block(&readme, "### Live updates");
    let tested = first_block(&doc, "");
    assert!(tested.len() > 30, "{tested:?}");
    assert_eq!(shown, tested, "README differs from the doc test");
}
