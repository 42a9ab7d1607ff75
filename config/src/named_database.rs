//! [`NamedDatabase`]: an extra database a model can be bound to (`#[model(database = "…")]`),
//! configured as `name=url`.

use std::fmt;

use crate::database_url::{split_where, starts_with_scheme, DatabaseUrl};

/// Names the primary and its replicas already have: `default`, `replica1`, `replica2`, ….
fn is_reserved(name: &str) -> bool {
    name == "default"
        || name
            .strip_prefix("replica")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// A database besides the primary and its replicas, under the name models and `.using()`
/// call it by. The URL is a secret, shown masked like [`DatabaseUrl`].
#[derive(Clone, PartialEq, Eq)]
pub struct NamedDatabase {
    /// The name (`analytics`): lower-case letters, digits and `_`, starting with a letter.
    pub name: String,
    /// Where it is.
    pub url: DatabaseUrl,
}

impl NamedDatabase {
    /// Checks one `name=url` item.
    ///
    /// # Errors
    /// The reason, worded to follow "invalid value for `databases`: …"; never quotes the URL.
    pub(crate) fn parse(item: &str) -> Result<NamedDatabase, String> {
        let Some((name, url)) = item.trim().split_once('=') else {
            return Err("each item must be name=postgres://…".to_string());
        };
        let name = name.trim();
        let valid = name.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return Err(format!(
                "the name `{name}` must be lower-case letters, digits and _, starting with a letter"
            ));
        }
        if is_reserved(name) {
            return Err(format!(
                "the name `{name}` is taken by the primary (`default`) or a replica (`replicaN`)"
            ));
        }
        let url = DatabaseUrl::parse(url).map_err(|reason| format!("`{name}`: {reason}"))?;
        Ok(NamedDatabase {
            name: name.to_string(),
            url,
        })
    }

    /// Splits an environment value into items: at each comma followed by `name=` and a
    /// scheme, so that commas inside a URL (several hosts, a password) do not split it.
    pub(crate) fn split_list(text: &str) -> Vec<&str> {
        split_where(text, |next| {
            next.split_once('=').is_some_and(|(name, url)| {
                let name = name.trim();
                !name.is_empty()
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    && starts_with_scheme(url.trim_start())
            })
        })
    }

    /// `name=url` with the password masked.
    pub fn masked(&self) -> String {
        format!("{}={}", self.name, self.url.masked())
    }
}

impl fmt::Debug for NamedDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_checked_and_named() {
        let db = NamedDatabase::parse(" analytics = postgres://u:secret@h/db ").unwrap();
        assert_eq!(db.name, "analytics");
        assert_eq!(db.masked(), "analytics=postgres://u:****@h/db");
        assert_eq!(format!("{db:?}"), "analytics=postgres://u:****@h/db");
        for (item, says) in [
            ("postgres://h/db", "name=postgres://"),
            ("Analytics=postgres://h/db", "lower-case"),
            ("1st=postgres://h/db", "starting with a letter"),
            ("default=postgres://h/db", "taken"),
            ("replica2=postgres://h/db", "taken"),
            ("reports=mysql://u:secret@h/db", "`reports`: must be a URL"),
        ] {
            let e = NamedDatabase::parse(item).unwrap_err();
            assert!(e.contains(says), "{item}: {e}");
            assert!(!e.contains("secret"), "{e}");
        }
        assert!(NamedDatabase::parse("replicas=postgres://h/db").is_ok());
    }

    #[test]
    fn an_environment_value_splits_between_items_only() {
        assert_eq!(NamedDatabase::split_list(""), Vec::<&str>::new());
        assert_eq!(
            NamedDatabase::split_list("a=postgres://u:p,w@h1,h2:5433/db, b_2=postgresql://h3/db,"),
            ["a=postgres://u:p,w@h1,h2:5433/db", "b_2=postgresql://h3/db"]
        );
    }
}
