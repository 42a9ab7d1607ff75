//! The README's example for templates is `pinion_app::layout`'s doc test, word for word, so
//! that what a user pastes compiles (as `server/tests/readme.rs` checks the handler API's).

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
fn the_templates_example_is_the_layout_doc_test() {
    let readme: Vec<&str> = include_str!("../../README.md").lines().collect();
    let doc: Vec<&str> = include_str!("../src/layout.rs")
        .lines()
        .filter(|l| l.starts_with("//!"))
        .map(|l| {
            l.strip_prefix("//! ")
                .unwrap_or(l.trim_start_matches("//!"))
        })
        .collect();
    let shown = first_block(&readme, "### Templates and static files");
    let tested = first_block(&doc, "");
    assert!(tested.len() > 20, "{tested:?}");
    assert_eq!(shown, tested, "README differs from the doc test");
}

#[test]
fn the_background_jobs_example_is_the_jobs_doc_test() {
    let readme: Vec<&str> = include_str!("../../README.md").lines().collect();
    let doc: Vec<&str> = include_str!("../src/jobs/mod.rs")
        .lines()
        .filter(|l| l.starts_with("//!"))
        .map(|l| {
            l.strip_prefix("//! ")
                .unwrap_or(l.trim_start_matches("//!"))
        })
        .collect();
    let shown = first_block(&readme, "### Background jobs");
    let tested = first_block(&doc, "");
    assert!(tested.len() > 40, "{tested:?}");
    assert_eq!(shown, tested, "README differs from the doc test");
}
