//! Keeping secrets out of `pinion check` output and error messages.

use crate::database_url::DatabaseUrl;
use crate::value::Raw;

/// Keys whose values are secrets, masked by [`Settings::render_masked`] and in error messages.
///
/// The database URLs are shown through [`mask_url_password`]: everything but the password; the
/// secret keys are masked whole.
///
/// [`Settings::render_masked`]: crate::Settings::render_masked
pub const SECRET_KEYS: &[&str] = &[
    "database_url",
    "database_replica_urls",
    "databases",
    "secret_key",
    "secret_key_fallbacks",
];

/// What a masked password is replaced with.
pub(crate) const MASK: &str = "****";

/// Returns `url` with the password replaced by `****`, so that a connection string can be
/// printed or logged.
///
/// Both places a PostgreSQL URL can carry a password are masked: the userinfo
/// (`postgres://u:secret@h/db` → `postgres://u:****@h/db`) and a `password` query parameter
/// (`postgres://u@h/db?password=secret` → `postgres://u@h/db?password=****`). Everything else,
/// including a URL without a password, is returned unchanged. An empty password is left empty:
/// masking it would suggest there is one.
///
/// The userinfo is taken to end at the last `@` before the query, so a password containing an
/// unencoded `@`, `/` or `#` is still masked whole (libpq would refuse the last two, and the
/// error message that says so must not show the password). An unencoded `?` in a password cannot
/// be told from the start of the query.
pub fn mask_url_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let authority_start = scheme_end + 3;
    let query_start = url[authority_start..]
        .find('?')
        .map_or(url.len(), |i| authority_start + i);
    let mut out = String::with_capacity(url.len());
    let mut copied = 0;
    if let Some(at) = url[authority_start..query_start].rfind('@') {
        let at = authority_start + at;
        if let Some((user, password)) = url[authority_start..at].split_once(':') {
            if !password.is_empty() {
                out.push_str(&url[..authority_start]);
                out.push_str(user);
                out.push(':');
                out.push_str(MASK);
                copied = at;
            }
        }
    }
    out.push_str(&url[copied..query_start]);
    if query_start < url.len() {
        out.push('?');
        let query_and_fragment = &url[query_start + 1..];
        let (query, fragment) = match query_and_fragment.find('#') {
            Some(h) => query_and_fragment.split_at(h),
            None => (query_and_fragment, ""),
        };
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((name, value)) if is_password_param(name) && !value.is_empty() => {
                    format!("{name}={MASK}")
                }
                _ => param.to_string(),
            })
            .collect();
        out.push_str(&params.join("&"));
        out.push_str(fragment);
    }
    out
}

/// Whether a URL query parameter named `name` (as written, possibly percent-encoded) is the
/// password: tokio-postgres decodes names before it reads them, so `pass%77ord` is one too.
fn is_password_param(name: &str) -> bool {
    percent_encoding::percent_decode_str(name).eq(*b"password")
}

/// Whether `key` holds a secret (see [`SECRET_KEYS`]).
pub(crate) fn is_secret(key: &str) -> bool {
    SECRET_KEYS.contains(&key)
}

/// A value shown in place of a secret one: URLs keep all but their password; anything else is
/// masked whole, because we cannot tell which part of it is secret. A string holding several
/// URLs (an environment list) has each masked; the empty string stays empty.
pub(crate) fn mask_value(value: &str) -> String {
    let masked: Vec<String> = DatabaseUrl::split_list(value)
        .into_iter()
        .map(|item| {
            if item.contains("://") {
                mask_url_password(item)
            } else {
                MASK.to_string()
            }
        })
        .collect();
    masked.join(", ")
}

/// A secret key's value as written, for an error message: strings (and strings in an array)
/// through [`mask_value`], plain numbers and booleans as they are, anything else masked whole.
pub(crate) fn mask_raw(raw: &Raw<'_>) -> String {
    match raw {
        Raw::Str(s) => format!("{:?}", mask_value(s)),
        Raw::Int(_) | Raw::Float(_) | Raw::Bool(_) => raw.display(),
        Raw::Array(items) => {
            let masked = items.iter().map(|item| match item {
                toml::Value::String(s) => toml::Value::String(mask_value(s)),
                toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_) => {
                    item.clone()
                }
                _ => toml::Value::String(MASK.to_string()),
            });
            toml::Value::Array(masked.collect()).to_string()
        }
        Raw::Other { .. } => MASK.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_passwords_and_nothing_else() {
        let cases = [
            ("postgres://u:secret@h/db", "postgres://u:****@h/db"),
            (
                "postgresql://u:secret@h:5432/db",
                "postgresql://u:****@h:5432/db",
            ),
            ("postgres://u:secret@h", "postgres://u:****@h"),
            ("postgres://u:p@ss@h/db", "postgres://u:****@h/db"),
            (
                "postgres://u:secret@h1:5432,h2:5432/db",
                "postgres://u:****@h1:5432,h2:5432/db",
            ),
            ("postgres://u@h/db", "postgres://u@h/db"),
            ("postgres://u:@h/db", "postgres://u:@h/db"),
            ("postgres://h/db", "postgres://h/db"),
            (
                "postgres:///db?host=/run/postgresql",
                "postgres:///db?host=/run/postgresql",
            ),
            (
                "postgres://u@h/db?sslmode=require&password=secret",
                "postgres://u@h/db?sslmode=require&password=****",
            ),
            (
                "postgres://u:a@h/db?password=b#frag",
                "postgres://u:****@h/db?password=****#frag",
            ),
            ("postgres://h/db?x=@y:z", "postgres://h/db?x=@y:z"),
            (
                "postgres://app@h/db?pass%77ord=hunter2",
                "postgres://app@h/db?pass%77ord=****",
            ),
            (
                "postgres://app@h/db?%70%61%73%73%77%6F%72%64=hunter2&x=1",
                "postgres://app@h/db?%70%61%73%73%77%6F%72%64=****&x=1",
            ),
            (
                "postgres://h/db?pass%77ordx=1",
                "postgres://h/db?pass%77ordx=1",
            ),
            ("postgres://u:pa/ss@h/db", "postgres://u:****@h/db"),
            ("postgres://u:pa#ss@h/db", "postgres://u:****@h/db"),
            ("postgres://u:pa,ss@h/db", "postgres://u:****@h/db"),
            ("postgres://h/d@b", "postgres://h/d@b"),
            ("not a url", "not a url"),
            ("", ""),
        ];
        for (input, expected) in cases {
            assert_eq!(mask_url_password(input), expected, "{input}");
        }
    }

    #[test]
    fn secret_values_never_shown() {
        assert_eq!(mask_value("postgres://u:pw@h/db"), "postgres://u:****@h/db");
        assert_eq!(mask_value("hunter2"), "****");
        assert_eq!(mask_value(""), "");
        assert_eq!(
            mask_value("postgres://u:a@h1/db,postgres://u:b@h2/db"),
            "postgres://u:****@h1/db, postgres://u:****@h2/db"
        );
        assert_eq!(mask_value("junk, more"), "****");
        assert!(!is_secret("port"));
        assert!(is_secret("database_url"));
        assert!(is_secret("database_replica_urls"));
    }

    #[test]
    fn raw_values_masked() {
        assert_eq!(
            mask_raw(&Raw::Str("mysql://u:pw@h/db")),
            "\"mysql://u:****@h/db\""
        );
        let items: Vec<toml::Value> = vec!["postgres://u:pw@h/db".into(), 7.into(), true.into()];
        assert_eq!(
            mask_raw(&Raw::Array(&items)),
            r#"["postgres://u:****@h/db", 7, true]"#
        );
        assert_eq!(mask_raw(&Raw::Int(3)), "3");
    }
}
