//! The README's "Errors" example is the crate's doc test, word for word, so it compiles.

/// The first fenced block after the line that contains `start`.
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
fn the_readme_example_is_the_doc_test() {
    let readme: Vec<&str> = include_str!("../../README.md").lines().collect();
    let lib: Vec<&str> = include_str!("../src/lib.rs")
        .lines()
        .map(|l| {
            l.strip_prefix("//! ")
                .unwrap_or(l.trim_start_matches("//!"))
        })
        .collect();
    let doc = first_block(&lib, "# Errors in one place");
    let shown = first_block(&readme, "### Errors");
    assert!(doc.len() > 10, "{doc:?}");
    assert_eq!(shown, doc);
}
