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

/// The lines of `source`'s `//!` doc comment, as rustdoc reads them.
fn doc_lines(source: &str) -> Vec<&str> {
    source
        .lines()
        .filter(|l| l.starts_with("//!"))
        .map(|l| {
            l.strip_prefix("//! ")
                .unwrap_or(l.trim_start_matches("//!"))
        })
        .collect()
}

/// Asserts that the README's first block after `heading` is `source`'s first doc example.
fn readme_block_is_doc_test(heading: &str, source: &str, min_lines: usize) {
    let readme: Vec<&str> = include_str!("../../README.md").lines().collect();
    let shown = first_block(&readme, heading);
    let tested = first_block(&doc_lines(source), "");
    assert!(tested.len() > min_lines, "{tested:?}");
    assert_eq!(shown, tested, "README differs from the doc test");
}

#[test]
fn the_templates_example_is_the_layout_doc_test() {
    readme_block_is_doc_test(
        "### Templates and static files",
        include_str!("../src/layout.rs"),
        20,
    );
}

#[test]
fn the_background_jobs_example_is_the_jobs_doc_test() {
    readme_block_is_doc_test(
        "### Background jobs",
        include_str!("../src/jobs/mod.rs"),
        40,
    );
}
