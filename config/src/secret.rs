//! Keeping secrets out of `pinion check` output and error messages.

/// Keys whose values are secrets, masked by [`Settings::render_masked`] and in error messages.
///
/// Empty today: no key holds a secret yet. Keys that will (database URLs with passwords) are
/// added here when they are added, and their values are shown through [`mask_url_password`].
///
/// [`Settings::render_masked`]: crate::Settings::render_masked
pub const SECRET_KEYS: &[&str] = &[];

/// What a masked password is replaced with.
const MASK: &str = "****";

/// Returns `url` with the password replaced by `****`, so that a connection string can be
/// printed or logged.
///
/// Both places a PostgreSQL URL can carry a password are masked: the userinfo
/// (`postgres://u:secret@h/db` → `postgres://u:****@h/db`) and a `password` query parameter
/// (`postgres://u@h/db?password=secret` → `postgres://u@h/db?password=****`). Everything else,
/// including a URL without a password, is returned unchanged. An empty password is left empty:
/// masking it would suggest there is one.
///
/// The userinfo is taken to end at the last `@` before the path, so a password containing an
/// unencoded `@` is still masked whole.
pub fn mask_url_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let authority_start = scheme_end + 3;
    let authority_end = url[authority_start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| authority_start + i);
    let mut out = String::with_capacity(url.len());
    let authority = &url[authority_start..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            match userinfo.split_once(':') {
                Some((user, password)) if !password.is_empty() => {
                    out.push_str(&url[..authority_start]);
                    out.push_str(user);
                    out.push(':');
                    out.push_str(MASK);
                    out.push_str(&authority[at..]);
                }
                _ => out.push_str(&url[..authority_end]),
            }
        }
        None => out.push_str(&url[..authority_end]),
    }
    let rest = &url[authority_end..];
    match rest.find('?') {
        Some(q) => {
            out.push_str(&rest[..=q]);
            let query_and_fragment = &rest[q + 1..];
            let (query, fragment) = match query_and_fragment.find('#') {
                Some(h) => query_and_fragment.split_at(h),
                None => (query_and_fragment, ""),
            };
            let params: Vec<String> = query
                .split('&')
                .map(|param| match param.split_once('=') {
                    Some((name, value)) if name == "password" && !value.is_empty() => {
                        format!("{name}={MASK}")
                    }
                    _ => param.to_string(),
                })
                .collect();
            out.push_str(&params.join("&"));
            out.push_str(fragment);
        }
        None => out.push_str(rest),
    }
    out
}

/// Whether `key` holds a secret (see [`SECRET_KEYS`]).
pub(crate) fn is_secret(key: &str) -> bool {
    SECRET_KEYS.contains(&key)
}

/// A value shown in place of a secret one: URLs keep all but their password; anything else is
/// masked whole, because we cannot tell which part of it is secret.
pub(crate) fn mask_value(value: &str) -> String {
    if value.contains("://") {
        mask_url_password(value)
    } else {
        MASK.to_string()
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
        assert!(!is_secret("port"));
    }
}
