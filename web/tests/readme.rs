//! The README's "Errors" and "Models and query sets" examples are the crate's doc tests, word
//! for word, so they compile.

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

fn lib() -> Vec<&'static str> {
    doc_lines(include_str!("../src/lib.rs"))
}

/// `source`'s lines with their `//! ` prefix removed.
fn doc_lines(source: &'static str) -> Vec<&'static str> {
    source
        .lines()
        .map(|l| {
            l.strip_prefix("//! ")
                .unwrap_or(l.trim_start_matches("//!"))
        })
        .collect()
}

#[test]
fn the_readme_example_is_the_doc_test() {
    let readme: Vec<&str> = include_str!("../../README.md").lines().collect();
    let doc = first_block(&lib(), "# Errors in one place");
    let shown = first_block(&readme, "### Errors");
    assert!(doc.len() > 10, "{doc:?}");
    assert_eq!(shown, doc);
}

#[test]
fn the_readme_models_example_is_the_doc_test() {
    let readme: Vec<&str> = include_str!("../../README.md").lines().collect();
    let doc = first_block(&lib(), "# Models in handlers");
    let shown = first_block(&readme, "### Models and query sets");
    assert!(doc.len() > 40, "{doc:?}");
    assert_eq!(shown, doc);
}

fn session_doc() -> Vec<&'static str> {
    doc_lines(include_str!("../src/session/mod.rs"))
}

#[test]
fn the_readme_sessions_example_is_the_doc_test() {
    let readme: Vec<&str> = include_str!("../../README.md").lines().collect();
    let doc = first_block(&session_doc(), "HTTP sessions");
    let shown = first_block(&readme, "### Sessions, CSRF and logins");
    assert!(doc.len() > 30, "{doc:?}");
    assert_eq!(shown, doc);
}
