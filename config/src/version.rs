//! `require_version`: the pinion releases a configuration may run on, checked before anything
//! else in it.
//!
//! A configuration written for a newer pinion may use keys this one does not know, or rely on
//! a default that changed. Refusing it for its version, with both versions in the message,
//! says what is wrong; refusing it for an unknown key would send the operator looking for a
//! typo.

use std::collections::BTreeMap;

use semver::{Version, VersionReq};

use crate::error::{ConfigError, Origin};
use crate::key::Key;
use crate::source::Source;

/// The version of pinion this crate is part of: the workspace has one version, shared by
/// `pinion-config`, `pinion-server` and the `pinion` binary (`pinion --version`), so it is the
/// release `require_version` is matched against.
pub const PINION_VERSION: &str = env!("CARGO_PKG_VERSION");

/// [`PINION_VERSION`], parsed.
pub(crate) fn running() -> Version {
    // Cargo refuses a package version that is not semver, so this cannot fail.
    Version::parse(PINION_VERSION).expect("Cargo package versions are semver")
}

/// A `require_version` value: `""` (or spaces) for none, else a semver requirement as Cargo
/// writes them.
pub(crate) fn requirement(text: &str) -> Result<Option<VersionReq>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    VersionReq::parse(text).map(Some).map_err(|e| {
        format!(
            "must be a version requirement such as \">=0.2\", \"~0.1.4\" or \">=0.1, <0.3\", \
             or \"\" for none: {e}"
        )
    })
}

/// Checks `required` against `running`.
///
/// # Errors
///
/// The mismatch, naming both versions and where the requirement came from.
pub(crate) fn check(
    required: &VersionReq,
    running: &Version,
    origin: Origin,
) -> Result<(), ConfigError> {
    match required.matches(running) {
        true => Ok(()),
        false => Err(ConfigError::version_mismatch(
            required.to_string(),
            running.to_string(),
            origin,
        )),
    }
}

/// Checks the effective `require_version` of `source` (the environment's, else the file's)
/// against [`PINION_VERSION`], before the rest of the configuration is read.
///
/// A file that cannot be read or parsed, or a requirement that does not parse, passes here:
/// loading reports those as usual, with their line.
///
/// # Errors
///
/// The mismatch.
pub(crate) fn check_first(source: &Source) -> Result<(), ConfigError> {
    let Some((text, origin)) = effective(source) else {
        return Ok(());
    };
    match requirement(&text) {
        Ok(Some(required)) => check(&required, &running(), origin),
        Ok(None) | Err(_) => Ok(()),
    }
}

/// The `require_version` text loading would apply last, and where it comes from.
fn effective(source: &Source) -> Option<(String, Origin)> {
    let var = Key::RequireVersion.env_var();
    // The last value of a variable given twice, as loading takes it.
    let env: BTreeMap<&str, &str> = source.env_vars().collect();
    if let Some(value) = env.get(var) {
        return Some((value.to_string(), Origin::Env(var.to_string())));
    }
    let path = source.file()?;
    let text = std::fs::read_to_string(path).ok()?;
    let table: toml::Table = toml::from_str(&text).ok()?;
    let value = table.get(Key::RequireVersion.name())?.as_str()?;
    Some((
        value.to_string(),
        Origin::File {
            path: path.to_path_buf(),
            line: None,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(text: &str) -> Version {
        Version::parse(text).expect("a version")
    }

    fn req(text: &str) -> VersionReq {
        requirement(text).expect("parses").expect("a requirement")
    }

    #[test]
    fn the_running_version_is_the_packages() {
        assert_eq!(running().to_string(), env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn requirements_match_as_cargo_matches_them() {
        for (required, running, matches) in [
            (">=0.2", "0.1.0", false),
            (">=0.2", "0.2.0", true),
            (">=0.2", "1.4.0", true),
            ("~0.1.4", "0.1.9", true),
            ("~0.1.4", "0.2.0", false),
            ("0.1", "0.1.7", true),
            ("0.1", "0.2.0", false),
            ("=0.1.0", "0.1.0", true),
            ("=0.1.0", "0.1.1", false),
            (">=0.1, <0.3", "0.2.5", true),
            (">=0.1, <0.3", "0.3.0", false),
            ("*", "7.0.0", true),
            // A pre-release satisfies only a requirement that names one of its release.
            (">=0.2", "0.3.0-rc.1", false),
        ] {
            let result = check(&req(required), &version(running), Origin::CommandLine);
            assert_eq!(result.is_ok(), matches, "{required} against {running}");
        }
    }

    #[test]
    fn a_mismatch_names_the_key_and_both_versions() {
        let err = check(
            &req(">=0.2"),
            &version("0.1.0"),
            Origin::Env("PINION_REQUIRE_VERSION".into()),
        )
        .expect_err("mismatch");
        assert!(err.is_version_mismatch());
        assert_eq!(err.key(), Some("require_version"));
        assert_eq!(err.env_var(), Some("PINION_REQUIRE_VERSION"));
        assert_eq!(
            err.to_string(),
            "require_version (PINION_REQUIRE_VERSION): this is pinion 0.1.0, the configuration \
             requires >=0.2"
        );
    }

    #[test]
    fn requirements_parse_or_say_what_is_expected() {
        assert_eq!(requirement(""), Ok(None));
        assert_eq!(requirement("  "), Ok(None));
        assert_eq!(req(" >=0.2 ").to_string(), ">=0.2");
        assert_eq!(req("0.1").to_string(), "^0.1");
        for bad in ["latest", ">=0.2.x.y", "0.1 || 0.2", ">="] {
            let reason = requirement(bad).expect_err(bad);
            assert!(
                reason.starts_with("must be a version requirement such as \">=0.2\""),
                "{bad}: {reason}"
            );
        }
    }
}
