//! [`DatabaseUrl`]: a checked PostgreSQL connection URL that never prints its password.

use std::fmt;

use crate::secret::mask_url_password;

/// The URL schemes libpq (and `tokio-postgres`) accept; matched case-sensitively, as libpq does.
const SCHEMES: [&str; 2] = ["postgresql://", "postgres://"];

/// A PostgreSQL connection URL, `postgres://user:password@host:port/dbname?param=value`.
///
/// Checked when loaded: the scheme is `postgres://` or `postgresql://`, and the URL names a
/// host (several, comma-separated, are allowed, as libpq allows) or a Unix-socket directory in a
/// `host=` query parameter (`postgres:///app?host=/run/postgresql`). libpq's `key=value`
/// connection strings are not accepted: one syntax is one thing to mask and to check.
///
/// The URL usually holds a password, so it is only shown masked: [`Debug`](fmt::Debug) and
/// [`Display`](fmt::Display) print [`masked`](Self::masked), and the full URL is reached only
/// through [`as_str`](Self::as_str), for the code that connects.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DatabaseUrl {
    url: String,
}

impl DatabaseUrl {
    /// Checks `text` (surrounding whitespace ignored) and wraps it.
    ///
    /// # Errors
    ///
    /// The reason the URL was refused, worded to follow "invalid value for `key` ...: value:".
    /// It never quotes any part of the URL, which may hold a password.
    pub(crate) fn parse(text: &str) -> Result<DatabaseUrl, String> {
        let url = text.trim();
        let Some(rest) = SCHEMES.iter().find_map(|s| url.strip_prefix(s)) else {
            return Err(if url.contains("://") {
                "must be a URL starting with postgres:// or postgresql://".to_string()
            } else {
                "must be a URL such as postgres://user:password@host/dbname \
                 (key=value connection strings are not accepted)"
                    .to_string()
            });
        };
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(
                "must not contain spaces or control characters; percent-encode them".into(),
            );
        }
        check_percent_escapes(url)?;
        let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
        let query = query.split_once('#').map_or(query, |(q, _)| q);
        // As libpq does: the authority ends at the first `/`, so a `/` in the password must be
        // percent-encoded; say so rather than report a baffling port.
        let (authority, path) = before_query.split_once('/').unwrap_or((before_query, ""));
        if path.contains('@') {
            return Err(
                "has an `@` after a `/`; percent-encode a `/` in the password as %2F".into(),
            );
        }
        let hosts = authority
            .rfind('@')
            .map_or(authority, |at| &authority[at + 1..]);
        let socket_dir = query
            .split('&')
            .any(|param| matches!(param.split_once('='), Some(("host", dir)) if !dir.is_empty()));
        for host in hosts.split(',') {
            check_host(host, socket_dir)?;
        }
        Ok(DatabaseUrl {
            url: url.to_string(),
        })
    }

    /// Splits an environment value into URLs: at each comma that is followed by a scheme
    /// (`postgres://`), so that a comma inside a URL (several hosts, a password) does not split
    /// it. Items are trimmed; empty ones are dropped, so `""` is no URLs.
    pub(crate) fn split_list(text: &str) -> Vec<&str> {
        split_where(text, starts_with_scheme)
    }

    /// The URL as configured, password included: for the code that connects, never for output.
    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// The URL with its password replaced by `****` (see [`mask_url_password`]), for logs and
    /// messages.
    pub fn masked(&self) -> String {
        mask_url_password(&self.url)
    }
}

impl fmt::Debug for DatabaseUrl {
    /// Shows the masked URL: `Settings` derives `Debug`, and it ends up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DatabaseUrl").field(&self.masked()).finish()
    }
}

impl fmt::Display for DatabaseUrl {
    /// Shows the masked URL; use [`DatabaseUrl::as_str`] to connect.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// Whether `text` starts with a URL scheme and `://` (`postgres://`, `mysql://`, ...).
/// Splits `text` at each comma whose following text (leading spaces skipped) `starts_item`
/// accepts; items trimmed of spaces and commas, empty ones dropped.
pub(crate) fn split_where(text: &str, starts_item: impl Fn(&str) -> bool) -> Vec<&str> {
    let mut items = Vec::new();
    let mut start = 0;
    for (comma, _) in text.match_indices(',') {
        if starts_item(text[comma + 1..].trim_start()) {
            items.push(&text[start..comma]);
            start = comma + 1;
        }
    }
    items.push(&text[start..]);
    items
        .into_iter()
        .map(|item| item.trim_matches(|c: char| c == ',' || c.is_whitespace()))
        .filter(|item| !item.is_empty())
        .collect()
}

pub(crate) fn starts_with_scheme(text: &str) -> bool {
    let Some((scheme, _)) = text.split_once("://") else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// Every `%` starts a two-digit hex escape.
fn check_percent_escapes(url: &str) -> Result<(), String> {
    let bytes = url.as_bytes();
    for (i, _) in url.match_indices('%') {
        let escape = bytes.get(i + 1..i + 3);
        if !escape.is_some_and(|e| e.iter().all(u8::is_ascii_hexdigit)) {
            return Err(
                "has a `%` not followed by two hex digits; write a literal % as %25".into(),
            );
        }
    }
    Ok(())
}

/// One `host[:port]` of the authority (`[::1]:5432` for IPv6). An empty host is allowed only
/// when a `host=` query parameter names a socket directory.
fn check_host(host: &str, socket_dir: bool) -> Result<(), String> {
    let (name, port) = match host.strip_prefix('[') {
        Some(bracketed) => {
            let (address, after) = bracketed
                .split_once(']')
                .ok_or("has an IPv6 host without its closing `]`")?;
            if address.is_empty() {
                return Err("has an empty IPv6 host `[]`".to_string());
            }
            match after {
                "" => (address, None),
                _ => (
                    address,
                    Some(
                        after
                            .strip_prefix(':')
                            .ok_or("has text after an IPv6 host's `]`")?,
                    ),
                ),
            }
        }
        None => match host.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        },
    };
    if let Some(port) = port {
        if !matches!(port.parse::<u16>(), Ok(1..)) || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err("has a port that is not an integer in 1..=65535".to_string());
        }
    }
    if name.is_empty() && !socket_dir {
        return Err(
            "must name a host (postgres://host/dbname) or a socket directory \
                    (postgres:///dbname?host=/run/postgresql)"
                .to_string(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted() {
        for url in [
            "postgres://h",
            "postgres://u:pw@h/db",
            "postgresql://u:pw@h:5432/db?sslmode=require",
            "postgres://u:pw@h1:5432,h2:5433/db?target_session_attrs=read-write",
            "postgres://u:p@ss@h/db",
            "postgres://u:p%2Fw@[::1]:5432/db",
            "postgres://[2001:db8::1]/db",
            "postgres:///db?host=/run/postgresql",
            "postgres://%2Frun%2Fpostgresql/db",
            "  postgres://h/db\n",
        ] {
            let parsed = DatabaseUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(parsed.as_str(), url.trim());
        }
    }

    #[test]
    fn refused_without_quoting_the_url() {
        let cases = [
            ("mysql://u:hunter2@h/db", "starting with postgres://"),
            ("POSTGRES://u:hunter2@h/db", "starting with postgres://"),
            ("host=h password=hunter2", "key=value connection strings"),
            ("hunter2", "must be a URL"),
            ("", "must be a URL"),
            ("postgres://u:hunter2@/db", "must name a host"),
            ("postgres:///db", "must name a host"),
            ("postgres:///db?host=", "must name a host"),
            ("postgres://u:hunter2@h:0/db", "port"),
            ("postgres://u:hunter2@h:99999/db", "port"),
            ("postgres://u:hunter2@h:+5/db", "port"),
            ("postgres://u:hunter2@h:x/db", "port"),
            ("postgres://u:hun/ter2@h/db", "percent-encode a `/`"),
            ("postgres://u:hunter2%@h/db", "a `%` not followed"),
            ("postgres://u:hunter 2@h/db", "must not contain spaces"),
            ("postgres://[::1/db", "closing `]`"),
            ("postgres://[::1]x/db", "after an IPv6 host"),
        ];
        for (url, reason) in cases {
            let err = DatabaseUrl::parse(url).expect_err(url);
            assert!(err.contains(reason), "{url}: {err}");
            assert!(!err.contains("hunter") && !err.contains("ter2"), "{err}");
        }
    }

    #[test]
    fn debug_and_display_mask_the_password() {
        let url = DatabaseUrl::parse("postgres://u:hunter2@h/db").expect("valid");
        assert_eq!(
            format!("{url:?}"),
            "DatabaseUrl(\"postgres://u:****@h/db\")"
        );
        assert_eq!(url.to_string(), "postgres://u:****@h/db");
        assert_eq!(url.masked(), "postgres://u:****@h/db");
        assert_eq!(url.as_str(), "postgres://u:hunter2@h/db");
    }

    #[test]
    fn lists_split_between_urls_only() {
        assert_eq!(DatabaseUrl::split_list(""), Vec::<&str>::new());
        assert_eq!(DatabaseUrl::split_list(" , "), Vec::<&str>::new());
        assert_eq!(
            DatabaseUrl::split_list("postgres://a/db, postgres://b/db ,postgresql://c/db,"),
            ["postgres://a/db", "postgres://b/db", "postgresql://c/db"]
        );
        assert_eq!(
            DatabaseUrl::split_list("postgres://u:p,w@h1,h2:5433/db,postgres://h3/db"),
            ["postgres://u:p,w@h1,h2:5433/db", "postgres://h3/db"]
        );
        assert_eq!(
            DatabaseUrl::split_list("postgres://a/db,,mysql://b/db"),
            ["postgres://a/db", "mysql://b/db"]
        );
        assert_eq!(DatabaseUrl::split_list("junk, more"), ["junk, more"]);
    }
}
