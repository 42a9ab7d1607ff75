//! Sampled request traces written straight into the log, in the same text or JSON line that
//! tracing-subscriber would write for the `pinion::trace` event.
//!
//! Through `tracing`, a trace line cost about 11 000 instructions (the event's dispatch, the
//! formatter's `fmt::Write` plumbing, the timestamp through `fmt`): at the default 1 %
//! sampling, a hundred instructions on every request, an eighth of what the default
//! middleware chain costs a pipelined plaintext request (callgrind, `bench/ANALYSIS.md`). Here
//! the line is assembled in a reused buffer with `itoa` and goes to the same per-thread log
//! buffer as every other line.
//!
//! The line is the formatter's, byte for byte (the tests compare them), under three
//! conditions, outside which the trace goes through `tracing` as before:
//! - the output is not a terminal (the writer is only installed then: a terminal gets colours);
//! - the route and the request id need no escaping (visible ASCII without `"` or `\`: what
//!   route templates and generated ids are; a proxy's id could be anything);
//! - the log filter enables INFO for the `pinion::trace` target. A filter on field values
//!   (`pinion::trace[{status=500}]`) cannot be honoured here: set
//!   `telemetry_sample_ratio = 0` to turn traces off instead.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use pinion_config::LogFormat;
use pinion_server::telemetry::trace::{TraceRecord, TraceWriter};

use crate::logging;

/// The trace writer for `format`, writing into the worker's log buffer.
pub(crate) fn writer(format: LogFormat) -> TraceWriter {
    Arc::new(move |record: &TraceRecord<'_>| {
        if !tracing::enabled!(target: "pinion::trace", tracing::Level::INFO) {
            return;
        }
        thread_local! {
            static LINE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
        }
        let written = LINE.with(|cell| {
            let Ok(mut line) = cell.try_borrow_mut() else {
                return false;
            };
            line.clear();
            if !write_line(&mut line, format, SystemTime::now(), record) {
                return false;
            }
            logging::write_info(&line);
            true
        });
        if !written {
            record.log();
        }
    })
}

/// Whether `s` is written the same quoted or not, in `Debug` and in JSON.
fn plain(s: &str) -> bool {
    s.bytes()
        .all(|b| (b.is_ascii_graphic() && b != b'"' && b != b'\\') || b == b' ')
}

/// Appends the line for `r` logged at `now`; false (and nothing usable) when a field needs
/// escaping.
fn write_line(out: &mut Vec<u8>, format: LogFormat, now: SystemTime, r: &TraceRecord<'_>) -> bool {
    if !plain(r.route) || !plain(r.request_id) {
        return false;
    }
    let mut n = itoa::Buffer::new();
    let numbers = [
        ("status", u64::from(r.status)),
        ("total_us", r.total_us),
        ("read_us", r.read_us),
        ("handler_us", r.handler_us),
        ("database_us", r.database_us),
        ("render_us", r.render_us),
        ("write_us", r.write_us),
    ];
    // The fields follow the same order in both formats; only their punctuation differs.
    let json = format == LogFormat::Json;
    let (before, between): (&[u8], &[u8]) = if json { (b",\"", b"\":") } else { (b" ", b"=") };
    if json {
        out.extend_from_slice(b"{\"timestamp\":\"");
        timestamp(out, now);
        out.extend_from_slice(b"\",\"level\":\"INFO\",\"fields\":{\"message\":\"sampled request\"");
    } else {
        timestamp(out, now);
        out.extend_from_slice(b"  INFO pinion::trace: sampled request");
    }
    // The id is logged with `%` (as text): quoted only in JSON.
    let texts = [
        ("request_id", r.request_id, json),
        ("method", r.method, true),
        ("route", r.route, true),
    ];
    for (name, value, quoted) in texts {
        out.extend_from_slice(before);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(between);
        if quoted {
            out.push(b'"');
        }
        out.extend_from_slice(value.as_bytes());
        if quoted {
            out.push(b'"');
        }
    }
    for (name, value) in numbers {
        out.extend_from_slice(before);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(between);
        out.extend_from_slice(n.format(value).as_bytes());
    }
    if json {
        out.extend_from_slice(b"},\"target\":\"pinion::trace\"}");
    }
    out.push(b'\n');
    true
}

/// Appends `now` as tracing-subscriber's default timer writes it: RFC 3339 in UTC with
/// microseconds, `2026-11-24T01:20:15.121195Z`.
fn timestamp(out: &mut Vec<u8>, now: SystemTime) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days(secs / 86_400);
    let of_day = secs % 86_400;
    let two = |out: &mut Vec<u8>, v: u64| {
        out.extend_from_slice(&[b'0' + (v / 10) as u8, b'0' + (v % 10) as u8])
    };
    let mut y = itoa::Buffer::new();
    out.extend_from_slice(y.format(year).as_bytes());
    out.push(b'-');
    two(out, month);
    out.push(b'-');
    two(out, day);
    out.push(b'T');
    two(out, of_day / 3600);
    out.push(b':');
    two(out, of_day / 60 % 60);
    out.push(b':');
    two(out, of_day % 60);
    out.push(b'.');
    let micros = u64::from(since.subsec_micros());
    let mut digits = [b'0'; 6];
    let mut v = micros;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.extend_from_slice(&digits);
    out.push(b'Z');
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for days after the epoch; hand-written because it is ten lines and a
/// date crate would be a dependency for one function).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tracing_subscriber::fmt::format::Writer;
    use tracing_subscriber::fmt::time::FormatTime;

    use crate::log_capture::Capture;

    /// A moment with every date and time field distinct, leap day included.
    fn moment() -> SystemTime {
        // 2024-02-29T13:07:05.004021Z
        UNIX_EPOCH + Duration::new(1_709_212_025, 4_021_000)
    }

    /// The test subscriber's timer: writes [`moment`] the way this module does, so that the
    /// comparison below is of everything else in the line.
    struct Fixed;

    impl FormatTime for Fixed {
        fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
            let mut out = Vec::new();
            timestamp(&mut out, moment());
            w.write_str(std::str::from_utf8(&out).map_err(|_| std::fmt::Error)?)
        }
    }

    /// What tracing-subscriber writes for the trace event, in `format`.
    fn formatter_line(format: LogFormat, r: &TraceRecord<'_>) -> String {
        let out = Capture::default();
        let builder = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_timer(Fixed)
            .with_writer(out.clone());
        match format {
            LogFormat::Text => tracing::subscriber::with_default(
                builder.fmt_fields(crate::log_fields::TextFields).finish(),
                || r.log(),
            ),
            LogFormat::Json => {
                tracing::subscriber::with_default(builder.json().finish(), || r.log())
            }
        }
        out.text()
    }

    fn record<'a>(request_id: &'a str, route: &'a str) -> TraceRecord<'a> {
        TraceRecord {
            request_id,
            method: "GET",
            route,
            status: 200,
            total_us: 1_234_567,
            read_us: 0,
            handler_us: 18_446_744_073_709_551_615,
            database_us: 250,
            render_us: 20,
            write_us: 8,
        }
    }

    #[test]
    fn lines_are_the_formatters_byte_for_byte() {
        for format in [LogFormat::Text, LogFormat::Json] {
            for r in [
                record("0a179c8571ebf46d0000000000000001", "/queries"),
                record("-", "unmatched"),
                record("from-a-proxy:7", "/users/{id}/posts {draft}"),
            ] {
                let mut ours = Vec::new();
                assert!(write_line(&mut ours, format, moment(), &r));
                let ours = String::from_utf8(ours).expect("utf-8");
                assert_eq!(ours, formatter_line(format, &r), "{format:?}");
            }
        }
    }

    #[test]
    fn the_text_line_reads_as_documented() {
        let mut ours = Vec::new();
        assert!(write_line(
            &mut ours,
            LogFormat::Text,
            moment(),
            &record("abc", "/db")
        ));
        assert_eq!(
            String::from_utf8(ours).expect("utf-8"),
            "2024-02-29T13:07:05.004021Z  INFO pinion::trace: sampled request request_id=abc \
             method=\"GET\" route=\"/db\" status=200 total_us=1234567 read_us=0 \
             handler_us=18446744073709551615 database_us=250 render_us=20 write_us=8\n"
        );
    }

    #[test]
    fn fields_that_need_escaping_are_left_to_the_formatter() {
        let mut out = Vec::new();
        for (id, route) in [
            ("a\"b", "/"),
            ("a\\b", "/"),
            ("id", "/\u{1b}[31m"),
            ("id", "/caf\u{e9}"),
        ] {
            assert!(!write_line(
                &mut out,
                LogFormat::Json,
                moment(),
                &record(id, route)
            ));
            assert!(!write_line(
                &mut out,
                LogFormat::Text,
                moment(),
                &record(id, route)
            ));
        }
    }

    #[test]
    fn timestamps_match_known_dates() {
        let at = |secs: u64, nanos: u32| {
            let mut out = Vec::new();
            timestamp(&mut out, UNIX_EPOCH + Duration::new(secs, nanos));
            String::from_utf8(out).expect("utf-8")
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_782_399, 999_999_999), "2000-02-28T23:59:59.999999Z");
        assert_eq!(at(951_782_400, 1_000), "2000-02-29T00:00:00.000001Z");
        assert_eq!(at(1_709_212_025, 4_021_000), "2024-02-29T13:07:05.004021Z");
        assert_eq!(at(4_102_444_800, 0), "2100-01-01T00:00:00.000000Z");
        assert_eq!(at(4_107_542_400, 0), "2100-03-01T00:00:00.000000Z");
    }

    #[test]
    fn timestamps_match_the_formatters_default_timer() {
        // The default timer reads the clock itself: compare with ours taken just before and
        // just after, to the second (the microseconds moved on in between).
        let out = Capture::default();
        let sub = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(out.clone())
            .finish();
        let mut before = Vec::new();
        timestamp(&mut before, SystemTime::now());
        tracing::subscriber::with_default(sub, || tracing::info!("x"));
        let mut after = Vec::new();
        timestamp(&mut after, SystemTime::now());
        let theirs = out.text().into_bytes();
        let seconds = |s: &[u8]| s[..19].to_vec();
        assert!(
            seconds(&theirs) == seconds(&before) || seconds(&theirs) == seconds(&after),
            "{}",
            String::from_utf8_lossy(&theirs)
        );
        assert_eq!(&theirs[19..20], b".");
        assert_eq!(&theirs[26..27], b"Z", "six fractional digits");
    }
}
