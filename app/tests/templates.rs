//! The layout, partials and form macros of `templates/`, rendered through small templates of
//! the tests' own, as a handler's would be.

use askama::Template;
use pinion_app::assets::Assets;
use pinion_app::layout::{Flash, FlashKind, Layout};

/// A page on the layout, as a handler author writes one.
#[derive(Template)]
#[template(
    source = r#"{% extends "base.html" %}
{% block title %}Sign up{% endblock %}
{% block content %}<p id="content">{{ text }}</p>{% endblock %}"#,
    ext = "html"
)]
struct Page<'a> {
    layout: Layout<'a>,
    text: &'a str,
}

/// A form with every kind of field the macro draws, as it comes back after a failed post.
#[derive(Template)]
#[template(
    source = r#"{% import "macros/forms.html" as forms %}
<form method="post">
{% call forms::csrf_field(csrf_token) %}{% endcall %}
{% call forms::field("name", "Name", value = user_name, error = name_error, required = true) %}{% endcall %}
{% call forms::field("age", "Age", value = age, kind = "number", hint = "In years") %}{% endcall %}
{% call forms::field("password", "Password", value = "hunter2", error = "Too short", kind = "password") %}{% endcall %}
{% call forms::field("bio", "About you", value = bio, kind = "textarea") %}{% endcall %}
</form>"#,
    ext = "html"
)]
struct SignUp<'a> {
    csrf_token: &'a str,
    user_name: &'a str,
    name_error: &'a str,
    age: i64,
    bio: &'a str,
}

/// The flash partial on its own, as an htmx answer sends it (out of band).
#[derive(Template)]
#[template(path = "partials/flashes.html")]
struct FlashesFragment<'a> {
    flashes: &'a [Flash],
    hx_swap_oob: bool,
}

/// The whole `<div class="field">` of field `name` in `html`.
fn field<'a>(html: &'a str, name: &str) -> &'a str {
    let start = html
        .find(&format!("<label for=\"field-{name}\""))
        .unwrap_or_else(|| panic!("no field {name}: {html}"));
    let end = html[start..]
        .find("</div>")
        .map_or(html.len(), |e| start + e);
    &html[start..end]
}

#[test]
fn a_field_shows_its_error_next_to_it_and_keeps_its_value() {
    let html = SignUp {
        csrf_token: "tok-123",
        user_name: "<Ada>",
        name_error: "Already taken",
        age: 36,
        bio: "line one\n\"two\"",
    }
    .render()
    .expect("renders");
    assert!(
        html.contains(r#"<input type="hidden" name="csrf_token" value="tok-123">"#),
        "{html}"
    );

    let name = field(&html, "name");
    assert!(
        name.contains(r#"<input type="text" id="field-name" name="name" value="&#60;Ada&#62;" required aria-invalid="true" aria-describedby="field-name-error">"#),
        "{name}"
    );
    assert!(
        name.contains(r#"<p id="field-name-error" class="field-error">Already taken</p>"#),
        "{name}"
    );
    assert!(
        html.contains(
            r#"<div class="field field-invalid">
<label for="field-name">Name</label>"#
        ),
        "{html}"
    );

    let age = field(&html, "age");
    assert!(
        age.contains(r#"<input type="number" id="field-age" name="age" value="36" aria-describedby="field-age-hint">"#),
        "{age}"
    );
    assert!(!age.contains("aria-invalid"), "{age}");
    assert!(!age.contains("field-error"), "{age}");

    let password = field(&html, "password");
    assert!(
        !password.contains("hunter2"),
        "a password is never sent back: {password}"
    );
    assert!(password.contains(r#"aria-invalid="true""#), "{password}");
    assert!(password.contains("Too short"), "{password}");

    let bio = field(&html, "bio");
    assert!(
        bio.contains(
            r#"<textarea id="field-bio" name="bio">line one
&#34;two&#34;</textarea>"#
        ),
        "{bio}"
    );
}

#[test]
fn the_layout_renders_blocks_token_flashes_and_asset_urls() {
    let assets = Assets::empty();
    let flashes = [
        Flash::new(FlashKind::Success, "Saved."),
        Flash::new(FlashKind::Error, "<b>Not</b> saved."),
    ];
    let html = Page {
        layout: Layout::new(&assets).csrf_token("tok-456").flashes(&flashes),
        text: "hello",
    }
    .render()
    .expect("renders");
    assert!(html.starts_with("<!DOCTYPE html>\n"), "{html}");
    assert!(html.contains("<title>Sign up</title>"), "{html}");
    assert!(html.contains(r#"<p id="content">hello</p>"#), "{html}");
    assert!(
        html.contains(r#"<div id="page" hx-headers='{"X-CSRF-Token": "tok-456"}'>"#),
        "{html}"
    );
    assert!(
        html.contains(r#"<p class="flash flash-success" role="status">Saved.</p>"#),
        "{html}"
    );
    assert!(
        html.contains(
            r#"<p class="flash flash-error" role="alert">&#60;b&#62;Not&#60;/b&#62; saved.</p>"#
        ),
        "{html}"
    );
    // Without the folder loaded, the URLs are the unhashed ones (which answer 404).
    assert!(
        html.contains(r#"<link rel="stylesheet" href="/static/app.css">"#),
        "{html}"
    );
    assert!(
        html.contains(r#"<script src="/static/htmx.min.js" defer></script>"#),
        "{html}"
    );
}

#[test]
fn the_layout_escapes_a_token_that_would_end_its_attribute() {
    let assets = Assets::empty();
    let html = Page {
        layout: Layout::new(&assets).csrf_token("'><script>"),
        text: "",
    }
    .render()
    .expect("renders");
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("&#39;&#62;&#60;script&#62;"), "{html}");
}

#[test]
fn the_flash_partial_renders_alone_for_htmx() {
    let flashes = [Flash::new(FlashKind::Info, "Queued.")];
    let html = FlashesFragment {
        flashes: &flashes,
        hx_swap_oob: true,
    }
    .render()
    .expect("renders");
    assert_eq!(
        html,
        "<div id=\"flashes\" class=\"flashes\" hx-swap-oob=\"true\">\n\
         <p class=\"flash flash-info\" role=\"status\">Queued.</p>\n</div>"
    );
}
