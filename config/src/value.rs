//! The value syntaxes keys share: integers, sizes, durations, ratios, booleans, IP addresses,
//! lists and one-of-a-list words, read from either a TOML value or an environment string, and rendered back
//! as TOML.
//!
//! The size and duration parsers are hand-written (a few dozen lines) rather than taken from a
//! crate such as `bytesize` or `humantime`: we want exactly the units the README documents, the
//! same syntax in the file and the environment, and reasons worded for our error messages.

use std::net::IpAddr;
use std::time::Duration;

use crate::ratio::Ratio;

/// A value as written by the user, before it is given a type.
///
/// The file gives TOML values; the environment always gives strings. Both go through the same
/// parsers so that `max_body_size = "10MiB"` and `PINION_MAX_BODY_SIZE=10MiB` mean the same.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Raw<'a> {
    /// A TOML integer.
    Int(i64),
    /// A TOML float (only ratios take one).
    Float(f64),
    /// A TOML string or an environment value.
    Str(&'a str),
    /// A TOML boolean.
    Bool(bool),
    /// A TOML array, elements not yet checked.
    Array(&'a [toml::Value]),
    /// Any other TOML value (table, date): never valid for a key today.
    Other {
        /// The TOML type, for the reason ("found a table").
        kind: &'static str,
        /// The value as TOML text, for the message.
        text: String,
    },
}

impl<'a> Raw<'a> {
    /// Classifies a TOML value.
    pub(crate) fn from_toml(value: &'a toml::Value) -> Raw<'a> {
        match value {
            toml::Value::Integer(i) => Raw::Int(*i),
            toml::Value::Float(f) => Raw::Float(*f),
            toml::Value::String(s) => Raw::Str(s),
            toml::Value::Boolean(b) => Raw::Bool(*b),
            toml::Value::Array(items) => Raw::Array(items),
            other => Raw::Other {
                kind: toml_kind(other),
                text: other.to_string(),
            },
        }
    }

    /// The value as the user wrote it, for error messages: integers bare, strings quoted.
    pub(crate) fn display(&self) -> String {
        match self {
            Raw::Int(i) => i.to_string(),
            Raw::Float(f) => toml::Value::Float(*f).to_string(),
            Raw::Str(s) => format!("{s:?}"),
            Raw::Bool(b) => b.to_string(),
            Raw::Array(items) => toml::Value::Array(items.to_vec()).to_string(),
            Raw::Other { text, .. } => text.clone(),
        }
    }

    /// The reason for a value of the wrong TOML type.
    fn wrong_type(&self, expected: &str) -> String {
        match self {
            Raw::Other { kind, .. } => format!("must be {expected}, found {kind}"),
            Raw::Int(_) => format!("must be {expected}, found an integer"),
            Raw::Float(_) => format!("must be {expected}, found a float"),
            Raw::Str(_) => format!("must be {expected}, found a string"),
            Raw::Bool(_) => format!("must be {expected}, found a boolean"),
            Raw::Array(_) => format!("must be {expected}, found an array"),
        }
    }
}

/// "a float", "a table", ...: the TOML type of a value, with its article.
fn toml_kind(value: &toml::Value) -> &'static str {
    match value {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a date-time",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

/// An unsigned integer in `min..=max`, from a TOML integer or a string of digits.
pub(crate) fn integer(raw: &Raw<'_>, min: u64, max: u64) -> Result<u64, String> {
    let expected = if max == u64::MAX {
        format!("an integer of at least {min}")
    } else {
        format!("an integer in {min}..={max}")
    };
    let n: i128 = match raw {
        Raw::Int(i) => i128::from(*i),
        Raw::Str(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("must be {expected}"))?,
        _ => return Err(raw.wrong_type(&expected)),
    };
    if n < i128::from(min) || n > i128::from(max) {
        return Err(format!("must be {expected}"));
    }
    // In range of u64 by the check above.
    u64::try_from(n).map_err(|_| format!("must be {expected}"))
}

/// The size units and their multipliers; a unit is matched as a whole word.
const SIZE_UNITS: [(&str, u64); 7] = [
    ("B", 1),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
];

/// A size in bytes: a TOML integer, or a string `<digits>[ ]<unit>` where the unit is one of
/// B, KB, MB, GB (powers of 1000) or KiB, MiB, GiB (powers of 1024), matched case-insensitively;
/// a string of digits alone is bytes.
pub(crate) fn size(raw: &Raw<'_>) -> Result<u64, String> {
    match raw {
        Raw::Int(i) => u64::try_from(*i).map_err(|_| "must not be negative".to_string()),
        Raw::Str(s) => parse_size(s),
        _ => Err(raw.wrong_type("a size such as 65536 or \"64KiB\"")),
    }
}

/// Parses the string form of a size (see [`size`]).
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let (number, unit) = split_number(text, "a size such as 65536 or \"64KiB\"")?;
    let multiplier = SIZE_UNITS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(if unit.is_empty() { "B" } else { unit }))
        .map(|&(_, m)| m)
        .ok_or_else(|| format!("unknown size unit `{unit}`; use B, KB, MB, GB, KiB, MiB or GiB"))?;
    number
        .checked_mul(multiplier)
        .ok_or_else(|| "is too large (at most 2^64 - 1 bytes)".to_string())
}

/// The duration units (the README's list).
const DURATION_UNITS: [(&str, Duration); 5] = [
    ("us", Duration::from_micros(1)),
    ("ms", Duration::from_millis(1)),
    ("s", Duration::from_secs(1)),
    ("m", Duration::from_secs(60)),
    ("h", Duration::from_secs(3600)),
];

/// A duration: a TOML integer of seconds, or a string `<digits>[ ]<unit>` where the unit is
/// us, ms, s, m or h (case-insensitive); a string of digits alone is seconds.
pub(crate) fn duration(raw: &Raw<'_>) -> Result<Duration, String> {
    match raw {
        Raw::Int(i) => u64::try_from(*i)
            .map(Duration::from_secs)
            .map_err(|_| "must not be negative".to_string()),
        Raw::Str(s) => parse_duration(s),
        _ => Err(raw.wrong_type("a duration such as 30 or \"500ms\"")),
    }
}

/// Parses the string form of a duration (see [`duration`]).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = split_number(text, "a duration such as \"30s\" or \"500ms\"")?;
    let per_unit = DURATION_UNITS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(if unit.is_empty() { "s" } else { unit }))
        .map(|&(_, d)| d)
        .ok_or_else(|| format!("unknown duration unit `{unit}`; use us, ms, s, m or h"))?;
    u32::try_from(number)
        .ok()
        .and_then(|n| per_unit.checked_mul(n))
        .ok_or_else(|| "is too large".to_string())
}

/// Splits `" 10 MiB "` into `(10, "MiB")`: leading digits, then the rest trimmed.
fn split_number<'t>(text: &'t str, expected: &str) -> Result<(u64, &'t str), String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("is empty; expected {expected}"));
    }
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, rest) = text.split_at(digits_end);
    if digits.is_empty() {
        return Err(format!(
            "must start with a whole number; expected {expected}"
        ));
    }
    if rest.starts_with(['.', ',']) {
        return Err(format!("must be a whole number; expected {expected}"));
    }
    let number = digits
        .parse::<u64>()
        .map_err(|_| "is too large".to_string())?;
    Ok((number, rest.trim_start()))
}

/// A ratio in `0.0..=1.0`: a TOML float, the TOML integers `0` and `1`, or a string holding a
/// decimal number (`"0.25"`, the environment's form; `"1e-3"` too).
pub(crate) fn ratio(raw: &Raw<'_>) -> Result<Ratio, String> {
    const EXPECTED: &str = "a number in 0.0..=1.0 such as 0.25";
    let f = match raw {
        Raw::Float(f) => *f,
        // Exact: only 0 and 1 can be in range, and larger integers are refused below.
        Raw::Int(i) => *i as f64,
        Raw::Str(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("must be {EXPECTED}"))?,
        _ => return Err(raw.wrong_type(EXPECTED)),
    };
    if !f.is_finite() {
        return Err(format!("must be a finite number; expected {EXPECTED}"));
    }
    Ratio::new(f).ok_or_else(|| "must be in 0.0..=1.0".to_string())
}

/// Splits an environment list on commas, trimming items and dropping empty ones, so that
/// `""` is the empty list and a trailing comma is harmless. For lists whose items cannot hold
/// a comma (origins, networks, rate policies).
pub(crate) fn split_commas(text: &str) -> Vec<&str> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .collect()
}

/// An IP address (v4 or v6, without brackets or port).
pub(crate) fn ip_addr(raw: &Raw<'_>) -> Result<IpAddr, String> {
    const EXPECTED: &str = "an IP address such as 0.0.0.0, 127.0.0.1 or ::";
    match raw {
        Raw::Str(s) => s.trim().parse().map_err(|_| format!("must be {EXPECTED}")),
        _ => Err(raw.wrong_type(EXPECTED)),
    }
}

/// A string, as given (no trimming: a key that cares checks its own characters).
pub(crate) fn string<'a>(raw: &Raw<'a>) -> Result<&'a str, String> {
    match raw {
        Raw::Str(s) => Ok(s),
        _ => Err(raw.wrong_type("a string")),
    }
}

/// The spellings of a boolean in a string (case-insensitive): an environment variable cannot
/// hold a TOML boolean, and these are the forms people and platforms write.
const BOOL_WORDS: [(&str, bool); 8] = [
    ("true", true),
    ("false", false),
    ("1", true),
    ("0", false),
    ("yes", true),
    ("no", false),
    ("on", true),
    ("off", false),
];

/// A boolean: a TOML `true` / `false`, or a string `true`/`false`, `1`/`0`, `yes`/`no`,
/// `on`/`off` (case-insensitive, surrounding spaces ignored).
pub(crate) fn boolean(raw: &Raw<'_>) -> Result<bool, String> {
    const EXPECTED: &str = "true or false (or 1/0, yes/no, on/off)";
    match raw {
        Raw::Bool(b) => Ok(*b),
        Raw::Str(s) => BOOL_WORDS
            .iter()
            .find(|(word, _)| word.eq_ignore_ascii_case(s.trim()))
            .map(|&(_, b)| b)
            .ok_or_else(|| format!("must be {EXPECTED}")),
        _ => Err(raw.wrong_type(EXPECTED)),
    }
}

/// A list of strings: a TOML array of strings, or one string of comma-separated items (the
/// environment's form, accepted in the file too) cut by `split`, which the key supplies because
/// it knows where its items may themselves hold commas.
pub(crate) fn string_list<'a>(
    raw: &Raw<'a>,
    split: impl FnOnce(&'a str) -> Vec<&'a str>,
) -> Result<Vec<&'a str>, String> {
    const EXPECTED: &str = "an array of strings";
    match raw {
        Raw::Str(text) => Ok(split(text)),
        Raw::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                toml::Value::String(s) => Ok(s.as_str()),
                other => Err(format!(
                    "must be {EXPECTED}; item {} is {}",
                    i + 1,
                    toml_kind(other)
                )),
            })
            .collect(),
        _ => Err(raw.wrong_type("an array of strings, or a comma-separated string")),
    }
}

/// One of a fixed list of words (case-insensitive), for the enum-valued keys.
pub(crate) fn one_of<T: Copy>(raw: &Raw<'_>, choices: &[(&str, T)]) -> Result<T, String> {
    let list = choices
        .iter()
        .map(|(name, _)| format!("\"{name}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let expected = format!("one of {list}");
    let text = match raw {
        Raw::Str(s) => s.trim(),
        _ => return Err(raw.wrong_type(&expected)),
    };
    choices
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(text))
        .map(|&(_, value)| value)
        .ok_or_else(|| format!("must be {expected}"))
}

/// A size as TOML text: the largest unit that divides it exactly, binary units first
/// (`"64KiB"`, `"10MiB"`, `"1500B"`), so the rendered file reads like a hand-written one.
pub(crate) fn render_size(bytes: u64) -> String {
    let unit = ["GiB", "MiB", "KiB", "GB", "MB", "KB"]
        .iter()
        .filter_map(|name| SIZE_UNITS.iter().find(|(n, _)| n == name))
        .find(|&&(_, m)| bytes != 0 && divides(m, bytes));
    match unit {
        Some(&(name, m)) => format!("\"{}{name}\"", bytes / m),
        None => format!("\"{bytes}B\""),
    }
}

/// A duration as TOML text: whole hours, minutes or seconds when exact, else milliseconds.
///
/// Precision below a millisecond is not representable in the file syntax and is truncated.
pub(crate) fn render_duration(d: Duration) -> String {
    format!("\"{}\"", render_duration_unquoted(d))
}

/// A duration as [`render_duration`] writes it, without the quotes (`75s`), for values that
/// hold a duration inside a larger string (`api=100/1m`).
pub(crate) fn render_duration_unquoted(d: Duration) -> String {
    let secs = d.as_secs();
    if d.subsec_nanos() == 0 && secs != 0 {
        if divides(3600, secs) {
            return format!("{}h", secs / 3600);
        }
        if divides(60, secs) {
            return format!("{}m", secs / 60);
        }
        return format!("{secs}s");
    }
    if !divides(1_000_000, u64::from(d.subsec_nanos())) {
        return format!("{}us", d.as_micros());
    }
    format!("{}ms", d.as_millis())
}

/// Whether `m` divides `n`. Not `u64::is_multiple_of`, which is newer than our
/// `rust-version` (1.85).
fn divides(m: u64, n: u64) -> bool {
    n.checked_rem(m) == Some(0)
}

/// Strings as a TOML array (`["a", "b"]`, `[]`).
pub(crate) fn render_string_array(items: impl IntoIterator<Item = String>) -> String {
    toml::Value::Array(items.into_iter().map(toml::Value::String).collect()).to_string()
}

/// A string as TOML text, quoted and escaped by the `toml` crate.
pub(crate) fn render_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    const GIB: u64 = 1024 * 1024 * 1024;

    #[test]
    fn sizes_in_every_accepted_form() {
        let cases: &[(&str, u64)] = &[
            ("0", 0),
            ("65536", 65536),
            ("100B", 100),
            ("100 B", 100),
            ("32KiB", 32 * KIB),
            ("10 MiB", 10 * MIB),
            ("2GiB", 2 * GIB),
            ("  4 kib ", 4 * KIB),
            ("64KB", 64_000),
            ("10MB", 10_000_000),
            ("1GB", 1_000_000_000),
            ("3mb", 3_000_000),
            ("17179869183GiB", 17_179_869_183 * GIB),
        ];
        for &(text, bytes) in cases {
            assert_eq!(parse_size(text), Ok(bytes), "{text:?}");
            assert_eq!(size(&Raw::Str(text)), Ok(bytes), "{text:?}");
        }
        assert_eq!(size(&Raw::Int(4096)), Ok(4096));
    }

    #[test]
    fn sizes_rejected() {
        let cases: &[(&str, &str)] = &[
            ("10 parsecs", "unknown size unit `parsecs`"),
            ("10k", "unknown size unit `k`"),
            ("-1", "must start with a whole number"),
            ("", "is empty"),
            ("   ", "is empty"),
            ("MiB", "must start with a whole number"),
            ("1.5MiB", "must be a whole number"),
            ("99999999999GiB", "is too large"),
            ("99999999999999999999", "is too large"),
            ("18446744073709551616", "is too large"),
        ];
        for &(text, reason) in cases {
            let err = parse_size(text).expect_err(text);
            assert!(err.contains(reason), "{text:?}: {err}");
        }
        assert_eq!(size(&Raw::Int(-1)), Err("must not be negative".to_string()));
        let float = toml::Value::Float(1.5);
        assert!(size(&Raw::from_toml(&float))
            .unwrap_err()
            .contains("found a float"));
    }

    #[test]
    fn durations_in_every_accepted_form() {
        let cases: &[(&str, Duration)] = &[
            ("75s", Duration::from_secs(75)),
            ("75", Duration::from_secs(75)),
            ("500ms", Duration::from_millis(500)),
            ("500 ms", Duration::from_millis(500)),
            ("2m", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
            (" 10 S ", Duration::from_secs(10)),
            ("0s", Duration::ZERO),
        ];
        for &(text, expected) in cases {
            assert_eq!(parse_duration(text), Ok(expected), "{text:?}");
        }
        assert_eq!(duration(&Raw::Int(30)), Ok(Duration::from_secs(30)));
    }

    #[test]
    fn durations_rejected() {
        let cases: &[(&str, &str)] = &[
            ("10 parsecs", "unknown duration unit `parsecs`"),
            ("10d", "unknown duration unit `d`"),
            ("-1", "must start with a whole number"),
            ("-1s", "must start with a whole number"),
            ("", "is empty"),
            ("1.5s", "must be a whole number"),
            ("1h30m", "unknown duration unit `h30m`"),
            ("99999999999h", "is too large"),
            ("99999999999999999999s", "is too large"),
        ];
        for &(text, reason) in cases {
            let err = parse_duration(text).expect_err(text);
            assert!(err.contains(reason), "{text:?}: {err}");
        }
        assert_eq!(
            duration(&Raw::Int(-5)),
            Err("must not be negative".to_string())
        );
    }

    #[test]
    fn integers() {
        assert_eq!(integer(&Raw::Int(5), 1, 10), Ok(5));
        assert_eq!(integer(&Raw::Str(" 7 "), 1, 10), Ok(7));
        assert_eq!(
            integer(&Raw::Int(0), 1, 10),
            Err("must be an integer in 1..=10".to_string())
        );
        assert_eq!(
            integer(&Raw::Str("ten"), 1, u64::MAX),
            Err("must be an integer of at least 1".to_string())
        );
        let boolean = toml::Value::Boolean(true);
        assert_eq!(
            integer(&Raw::from_toml(&boolean), 1, 10),
            Err("must be an integer in 1..=10, found a boolean".to_string())
        );
    }

    #[test]
    fn booleans() {
        for (text, expected) in [
            ("true", true),
            ("FALSE", false),
            (" 1 ", true),
            ("0", false),
            ("yes", true),
            ("No", false),
            ("on", true),
            ("OFF", false),
        ] {
            assert_eq!(boolean(&Raw::Str(text)), Ok(expected), "{text:?}");
        }
        assert_eq!(boolean(&Raw::Bool(true)), Ok(true));
        assert_eq!(boolean(&Raw::Bool(false)), Ok(false));
        for text in ["", "2", "y", "enabled", "truee"] {
            let err = boolean(&Raw::Str(text)).expect_err(text);
            assert!(err.starts_with("must be true or false"), "{err}");
        }
        assert_eq!(
            boolean(&Raw::Int(1)),
            Err("must be true or false (or 1/0, yes/no, on/off), found an integer".to_string())
        );
    }

    #[test]
    fn ratios() {
        let cases: &[(Raw<'_>, f64)] = &[
            (Raw::Float(0.25), 0.25),
            (Raw::Float(0.0), 0.0),
            (Raw::Float(-0.0), 0.0),
            (Raw::Float(1.0), 1.0),
            (Raw::Int(0), 0.0),
            (Raw::Int(1), 1.0),
            (Raw::Str("0.25"), 0.25),
            (Raw::Str(" 1 "), 1.0),
            (Raw::Str("1e-3"), 0.001),
            (Raw::Str(".5"), 0.5),
        ];
        for (raw, expected) in cases {
            assert_eq!(ratio(raw).map(Ratio::get), Ok(*expected), "{raw:?}");
        }
        let rejected: &[(Raw<'_>, &str)] = &[
            (Raw::Float(1.5), "must be in 0.0..=1.0"),
            (Raw::Float(-0.1), "must be in 0.0..=1.0"),
            (Raw::Float(f64::NAN), "must be a finite number"),
            (Raw::Float(f64::INFINITY), "must be a finite number"),
            (Raw::Int(2), "must be in 0.0..=1.0"),
            (Raw::Int(-1), "must be in 0.0..=1.0"),
            (Raw::Str("NaN"), "must be a finite number"),
            (Raw::Str("inf"), "must be a finite number"),
            (Raw::Str("25%"), "must be a number in 0.0..=1.0"),
            (Raw::Str(""), "must be a number in 0.0..=1.0"),
            (Raw::Str("1,5"), "must be a number in 0.0..=1.0"),
            (Raw::Bool(true), "found a boolean"),
        ];
        for (raw, reason) in rejected {
            let err = ratio(raw).expect_err(&format!("{raw:?}"));
            assert!(err.contains(reason), "{raw:?}: {err}");
        }
        // Rendered through `Display`, the value reads back exactly.
        for f in [0.0, 0.01, 1.0 / 3.0, 1e-9, 0.1 + 0.2, 1.0] {
            let text = Ratio::new(f).expect("in range").to_string();
            let table: toml::Table = toml::from_str(&format!("x = {text}")).expect("valid TOML");
            let back = ratio(&Raw::from_toml(&table["x"])).expect("in range");
            assert_eq!(back.get().to_bits(), f.to_bits(), "{text}");
            assert_eq!(ratio(&Raw::Str(&text)).map(Ratio::get), Ok(f), "{text}");
        }
    }

    #[test]
    fn comma_lists() {
        assert_eq!(split_commas(""), Vec::<&str>::new());
        assert_eq!(split_commas(" , ,"), Vec::<&str>::new());
        assert_eq!(split_commas("a, b ,c,"), ["a", "b", "c"]);
    }

    #[test]
    fn string_lists() {
        fn split(s: &str) -> Vec<&str> {
            s.split(',').collect()
        }
        let items: Vec<toml::Value> = vec!["a".into(), "b".into()];
        assert_eq!(string_list(&Raw::Array(&items), split), Ok(vec!["a", "b"]));
        assert_eq!(string_list(&Raw::Array(&[]), split), Ok(vec![]));
        assert_eq!(string_list(&Raw::Str("a,b"), split), Ok(vec!["a", "b"]));
        let mixed: Vec<toml::Value> = vec!["a".into(), 7.into()];
        assert_eq!(
            string_list(&Raw::Array(&mixed), split),
            Err("must be an array of strings; item 2 is an integer".to_string())
        );
        assert_eq!(
            string_list(&Raw::Int(1), split),
            Err(
                "must be an array of strings, or a comma-separated string, found an integer"
                    .to_string()
            )
        );
        assert_eq!(render_string_array(Vec::new()), "[]");
        let text = render_string_array(vec!["a".to_string(), "b\"".to_string()]);
        let table: toml::Table = toml::from_str(&format!("x = {text}")).expect("valid TOML");
        assert_eq!(
            table["x"],
            toml::Value::Array(vec!["a".into(), "b\"".into()])
        );
    }

    #[test]
    fn rendering_round_trips() {
        for bytes in [0, 1, 1000, 1500, KIB, 64 * KIB, 10 * MIB, 3 * GIB, u64::MAX] {
            let text = render_size(bytes);
            let inner = text.trim_matches('"');
            assert_eq!(parse_size(inner), Ok(bytes), "{text}");
        }
        assert_eq!(render_size(64 * KIB), "\"64KiB\"");
        assert_eq!(render_size(64_000), "\"64KB\"");
        for d in [
            Duration::from_millis(1),
            Duration::from_millis(1500),
            Duration::from_secs(75),
            Duration::from_secs(120),
            Duration::from_secs(7200),
        ] {
            let text = render_duration(d);
            assert_eq!(parse_duration(text.trim_matches('"')), Ok(d), "{text}");
        }
        assert_eq!(render_duration(Duration::from_secs(75)), "\"75s\"");
        for s in ["pinion", "a\"b", "it's", "back\\slash", "both ' and \""] {
            let table: toml::Table = toml::from_str(&format!("x = {}", render_string(s)))
                .unwrap_or_else(|e| panic!("{s:?}: {e}"));
            assert_eq!(table["x"].as_str(), Some(s));
        }
    }
}
