//! The README's examples for the handler API are the crate's doc tests, word for word, so
//! that what a user pastes compiles.

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

/// A module's doc comment as plain lines.
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

fn check(section: &str, source: &str) {
    let readme: Vec<&str> = include_str!("../../README.md").lines().collect();
    let shown = first_block(&readme, section);
    let doc = first_block(&doc_lines(source), "");
    assert!(doc.len() > 5, "{section}: {doc:?}");
    assert_eq!(shown, doc, "README {section} differs from the doc test");
}

#[test]
fn each_readme_example_is_its_module_s_doc_test() {
    check("## Writing handlers", include_str!("../src/extract/mod.rs"));
    check("### Cookies", include_str!("../src/cookie/mod.rs"));
    check("### Streaming", include_str!("../src/stream/mod.rs"));
    check("### Server-Sent Events", include_str!("../src/sse/mod.rs"));
    check(
        "### Testing handlers without a socket",
        include_str!("../src/testing/mod.rs"),
    );
}
