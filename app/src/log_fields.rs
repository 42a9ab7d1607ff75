//! Field formatting for the text log format: the same `name=value` text as
//! tracing-subscriber's default, with integers and booleans written directly.
//!
//! The default formatter renders every field through `fmt::Debug`, an escaping writer and the
//! (empty, without a terminal) ANSI styling: about 1 100 instructions per field. A sampled
//! request trace has ten fields, so at the default 1 % sample ratio that was ~160 instructions
//! on every plaintext request (callgrind, `bench/ANALYSIS.md`). Integers and booleans cannot
//! hold anything to escape, so they are written here with `itoa`; every other field (strings,
//! `Debug` and `Display` values, errors) still goes through tracing-subscriber's own visitor,
//! escaping included, and so does everything when the output is a terminal (its field names
//! are styled).

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};
use tracing_subscriber::fmt::FormatFields;

/// The text format's field formatter (see the module documentation).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct TextFields;

impl<'writer> FormatFields<'writer> for TextFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = TextVisitor {
            writer,
            empty: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

/// Writes one event's or span's fields, separated by spaces.
struct TextVisitor<'writer> {
    writer: Writer<'writer>,
    /// Nothing written yet (no leading space).
    empty: bool,
    result: fmt::Result,
}

impl TextVisitor<'_> {
    /// Hands the field to tracing-subscriber's visitor, which formats (and escapes) it exactly
    /// as the default formatter does.
    fn delegate(&mut self, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        if self.result.is_err() {
            return;
        }
        let mut inner = DefaultVisitor::new(self.writer.by_ref(), self.empty);
        record(&mut inner);
        self.result = inner.finish();
        // The default visitor writes nothing for `log.*` fields; a later separator is still
        // harmless, as it would be there.
        self.empty = false;
    }

    /// `name=` followed by `value`, for values that need no escaping.
    fn plain(&mut self, field: &Field, value: &str) {
        if self.writer.has_ansi_escapes() {
            // A terminal gets the default's styled names.
            return self.delegate(|v| v.record_debug(field, &format_args!("{value}")));
        }
        let name = field.name();
        // Like the default: fields a `log` record carries are not repeated, and raw
        // identifiers lose their `r#`.
        if self.result.is_err() || name.starts_with("log.") {
            return;
        }
        let name = name.strip_prefix("r#").unwrap_or(name);
        // Pieces written as they are: `write!` would run the formatting machinery for each.
        let w = &mut self.writer;
        let sep = if self.empty { "" } else { " " };
        self.empty = false;
        self.result = if name == "message" {
            w.write_str(sep).and_then(|()| w.write_str(value))
        } else {
            w.write_str(sep)
                .and_then(|()| w.write_str(name))
                .and_then(|()| w.write_str("="))
                .and_then(|()| w.write_str(value))
        };
    }
}

impl Visit for TextVisitor<'_> {
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.plain(field, itoa::Buffer::new().format(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.plain(field, itoa::Buffer::new().format(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.plain(field, if value { "true" } else { "false" });
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.delegate(|v| v.record_str(field, value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.delegate(|v| v.record_error(field, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.delegate(|v| v.record_debug(field, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log_capture::Capture;

    /// The event's line after the timestamp, formatted with `fields` or with the default.
    fn line(fast: bool, event: impl FnOnce()) -> String {
        let out = Capture::default();
        let builder = tracing_subscriber::fmt()
            .with_ansi(false)
            .without_time()
            .with_writer(out.clone());
        if fast {
            tracing::subscriber::with_default(builder.fmt_fields(TextFields).finish(), event);
        } else {
            tracing::subscriber::with_default(builder.finish(), event);
        }
        out.text()
    }

    #[test]
    fn lines_are_the_same_as_the_default_formatters() {
        let id = "abc";
        let event = || {
            tracing::info!(
                target: "pinion::trace",
                request_id = %id,
                method = "GET",
                route = "/a \"quoted\"\nroute",
                status = 200u16,
                total_us = 12u64,
                delta = -3i64,
                flag = true,
                r#type = 7u64,
                error = ?Some("x\u{1b}[31m"),
                "sampled request"
            );
            tracing::warn!(count = 0u64, "{} then {}", 1, "two");
            tracing::info!(only = 5u64);
        };
        let fast = line(true, event);
        assert_eq!(fast, line(false, event));
        assert!(
            fast.contains("sampled request request_id=abc method=\"GET\""),
            "{fast}"
        );
        assert!(fast.contains("status=200 total_us=12 delta=-3 flag=true type=7"));
        assert!(
            !fast.contains('\u{1b}'),
            "control characters stay escaped: {fast}"
        );
    }
}
