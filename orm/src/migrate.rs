//! Schema migrations: the `migrations/NNNN_name.sql` files, applied once each, in order.
//!
//! Many instances of the server may start at the same moment, and each brings the schema up to
//! date before it reports ready (DESIGN.md §3, "Lifecycle"). So a run happens on **one dedicated
//! connection** (dialed for it: not a worker's pinned connection, not the pool) that holds the
//! session-level advisory lock [`LOCK_KEY`] from before it reads the schema until it is done.
//! The first instance applies what is missing; the others wait for the lock, then find
//! everything applied and apply nothing. A crashed migrator cannot leave the lock behind: a
//! session lock dies with its connection.
//!
//! Each migration runs in its own transaction: `BEGIN`, the whole file in one
//! `batch_execute`, the row recording it in [`TABLE`], `COMMIT`. A failing file is rolled back
//! and stops the run; the migrations before it stay applied. So a file must not contain
//! transaction control (`BEGIN`, `COMMIT`) or statements PostgreSQL refuses inside a
//! transaction (`CREATE INDEX CONCURRENTLY`, `VACUUM`).
//!
//! Applied migrations are immutable. The table keeps each file's SHA-256; before applying
//! anything new, a run checks that every applied migration's file is still there, byte for
//! byte, and refuses to go on otherwise, since the database would no longer match what the
//! files say it is. Fix a mistake with a new migration.
//!
//! The URL must reach PostgreSQL itself, or a pooler in session mode: under transaction
//! pooling a session lock is meaningless.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio_postgres::{Client, Config};

use crate::dial::{self, ConnectOptions, Dialed};
use crate::error::Error;

/// The table recording applied migrations, created (in the first schema of the search path,
/// normally `public`) when missing:
///
/// ```sql
/// CREATE TABLE pinion_migrations (
///     version    bigint PRIMARY KEY,
///     name       text NOT NULL,         -- the file name, e.g. 0001_techempower.sql
///     checksum   text NOT NULL,         -- SHA-256 of the file's bytes, lowercase hex
///     applied_at timestamptz NOT NULL DEFAULT now()
/// )
/// ```
pub const TABLE: &str = "pinion_migrations";

/// The `pg_advisory_lock` key a run holds: the first 8 bytes of SHA-256(`"pinion.migrations"`)
/// read as a big-endian `i64`.
///
/// Fixed (every instance, every version of pinion must agree on it) and derived from a name
/// rather than picked by hand, so it is unlikely to collide with another application's
/// advisory locks. Advisory locks are per database: runs against different databases on one
/// server do not wait for each other. To see who holds it:
/// `SELECT pid, application_name FROM pg_locks JOIN pg_stat_activity USING (pid)
///  WHERE locktype = 'advisory' AND classid = 3403801943 AND objid = 30827071`
/// (a bigint key shows as its high half in `classid`, low half in `objid`).
pub const LOCK_KEY: i64 = -3_827_526_046_432_468_417;

/// The `application_name` of the migration connection unless the URL sets one, so that
/// `pg_stat_activity` shows which session holds (or waits for) the lock.
const APPLICATION_NAME: &str = "pinion-migrate";

/// How long closing the migration connection may take before we stop waiting for it. The lock
/// is released explicitly before; this only bounds the wait for the socket to close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// One migration: a file `NNNN_name.sql` and what identifies its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// The number the file name starts with; migrations apply in increasing order.
    pub version: i64,
    /// The file name (`0001_techempower.sql`): what logs and errors name, stored in [`TABLE`].
    pub name: String,
    /// The whole file, sent as one `batch_execute`.
    pub sql: String,
    /// SHA-256 of the file's bytes, lowercase hex: how a changed file is noticed.
    pub checksum: String,
}

impl Migration {
    /// A migration from its parts, computing the checksum of `sql`. For migrations that do not
    /// come from a directory (embedded with `include_str!`, or built by tests);
    /// [`load_dir`] is the usual way.
    pub fn new(version: i64, name: impl Into<String>, sql: impl Into<String>) -> Migration {
        let sql = sql.into();
        Migration {
            version,
            name: name.into(),
            checksum: checksum(sql.as_bytes()),
            sql,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Names of the migrations this run applied, in the order applied. Empty when another
    /// instance got there first.
    pub applied: Vec<String>,
    /// How many of the given migrations were already applied when this run took the lock.
    pub already: usize,
}

/// Reads every `NNNN_name.sql` file of `dir`, sorted by version.
///
/// `NNNN` is one or more ASCII digits (leading zeros are just for sorting in a listing);
/// `name` is letters, digits, `_` and `-`. Hidden files (`.gitkeep`, editor swap files) are
/// skipped; anything else that does not match is an error rather than silently ignored, since
/// a misnamed migration that never runs is worse than a refusal to start.
///
/// # Errors
/// A migration error naming the file for: a name that does not match, a version that does not
/// fit an `i64`, two files with the same version, a file that is not UTF-8; or one naming the
/// directory when it cannot be read.
pub fn load_dir(dir: &Path) -> Result<Vec<Migration>, Error> {
    let unreadable =
        |e: std::io::Error| Error::migration(format!("cannot read {}: {e}", dir.display()));
    let mut migrations = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let path = entry.map_err(unreadable)?.path();
        let Some(file) = path.file_name() else {
            continue;
        };
        let Some(file) = file.to_str() else {
            return Err(Error::migration(format!(
                "{}: the file name is not UTF-8; expected NNNN_name.sql",
                path.display()
            )));
        };
        if file.starts_with('.') {
            continue;
        }
        let version = parse_file_name(file)
            .map_err(|why| Error::migration(format!("{}: {why}", path.display())))?;
        let bytes = std::fs::read(&path)
            .map_err(|e| Error::migration(format!("cannot read {}: {e}", path.display())))?;
        let checksum = checksum(&bytes);
        let sql = String::from_utf8(bytes)
            .map_err(|_| Error::migration(format!("{}: not UTF-8", path.display())))?;
        migrations.push(Migration {
            version,
            name: file.to_string(),
            sql,
            checksum,
        });
    }
    migrations.sort_by(|a, b| a.version.cmp(&b.version).then_with(|| a.name.cmp(&b.name)));
    if let Some(pair) = migrations.windows(2).find(|w| w[0].version == w[1].version) {
        return Err(Error::migration(format!(
            "{} and {} in {} have the same version {}; give one a new number",
            pair[0].name,
            pair[1].name,
            dir.display(),
            pair[0].version
        )));
    }
    Ok(migrations)
}

/// The version of a migration file name, or why the name is not one.
fn parse_file_name(file: &str) -> Result<i64, String> {
    let expected = "expected NNNN_name.sql (digits, `_`, letters/digits/`_`/`-`, `.sql`)";
    let stem = file
        .strip_suffix(".sql")
        .ok_or_else(|| format!("not a migration file name; {expected}"))?;
    let (digits, name) = stem
        .split_once('_')
        .ok_or_else(|| format!("not a migration file name; {expected}"))?;
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || !name_ok {
        return Err(format!("not a migration file name; {expected}"));
    }
    digits
        .parse::<i64>()
        .map_err(|_| format!("version {digits} is too large"))
}

/// Lowercase hex SHA-256 of `bytes`.
fn checksum(bytes: &[u8]) -> String {
    use std::fmt::Write;
    Sha256::digest(bytes)
        .iter()
        .fold(String::with_capacity(64), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

/// Applies the migrations of `dir` that the database at `url` lacks: [`load_dir`], then
/// [`run_migrations`]. Runs on a monoio runtime with timers enabled.
///
/// # Errors
/// As [`load_dir`] and [`run_migrations`].
pub async fn run(url: &str, dir: &Path, opts: &ConnectOptions) -> Result<Report, Error> {
    let migrations = load_dir(dir)?;
    run_migrations(url, &migrations, opts).await
}

/// Applies, in version order, each of `migrations` that the database at `url` lacks, under
/// [`LOCK_KEY`], on a connection of its own that is closed before returning. Waits as long as
/// another instance holds the lock: that instance is migrating, and starting before it is done
/// would serve an old schema. Each applied migration is logged at `info`.
///
/// Runs on a monoio runtime with timers enabled.
///
/// # Errors
/// - a configuration error for a URL that does not parse;
/// - a connect error or timeout when PostgreSQL cannot be reached, a connection-lost error if
///   it goes away meanwhile;
/// - a migration error, before anything is applied, when an applied migration's file changed
///   or is missing (see the module docs);
/// - a migration error naming the file that failed; it was rolled back, those before it stay
///   applied, those after it were not tried.
pub async fn run_migrations(
    url: &str,
    migrations: &[Migration],
    opts: &ConnectOptions,
) -> Result<Report, Error> {
    let session = open(url, opts).await?;
    let result = migrate(&session.client, migrations).await;
    close(session).await;
    result
}

/// The names of the migrations among `migrations` that the database at `url` lacks, in the
/// order they would be applied; empty when the schema is up to date. For `pinion migrate
/// --check` and readiness checks.
///
/// Takes no lock: it must not wait behind a running migration, so while one runs the answer
/// may already be stale (it errs towards "pending", which is the safe side for readiness).
///
/// # Errors
/// As [`run_migrations`] for the URL and the connection; a migration error when an applied
/// migration's file changed or is missing.
pub async fn pending(
    url: &str,
    migrations: &[Migration],
    opts: &ConnectOptions,
) -> Result<Vec<String>, Error> {
    let session = connect(url, opts).await?;
    let result = async {
        let exists: Option<String> = session
            .client
            .query_one("SELECT to_regclass($1)::text", &[&TABLE])
            .await
            .map_err(Error::from_pg)?
            .get(0);
        let applied = match exists {
            Some(_) => applied(&session.client).await?,
            None => HashMap::new(),
        };
        verify(migrations, &applied)?;
        Ok(migrations
            .iter()
            .filter(|m| !applied.contains_key(&m.version))
            .map(|m| m.name.clone())
            .collect())
    }
    .await;
    drop_session(session).await;
    result
}

/// A recorded migration: its file name and checksum then.
struct Applied {
    name: String,
    checksum: String,
}

/// Dials the migration connection and takes [`LOCK_KEY`], waiting for it if need be.
async fn open(url: &str, opts: &ConnectOptions) -> Result<Dialed, Error> {
    let session = connect(url, opts).await?;
    match lock(&session.client).await {
        Ok(()) => Ok(session),
        Err(e) => {
            drop_session(session).await;
            Err(e)
        }
    }
}

async fn connect(url: &str, opts: &ConnectOptions) -> Result<Dialed, Error> {
    // The URL is not echoed: it may carry a password.
    let mut config =
        Config::from_str(url).map_err(|e| Error::config(format!("invalid database URL: {e}")))?;
    if config.get_application_name().is_none() {
        config.application_name(APPLICATION_NAME);
    }
    dial::connect(&config, opts).await
}

async fn lock(client: &Client) -> Result<(), Error> {
    let got: bool = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(Error::from_pg)?
        .get(0);
    if !got {
        tracing::info!(
            lock = LOCK_KEY,
            "another instance is migrating; waiting for the migration lock"
        );
        let started = Instant::now();
        client
            .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
            .await
            .map_err(Error::from_pg)?;
        tracing::info!(
            waited_ms = started.elapsed().as_millis() as u64,
            "took the migration lock"
        );
    }
    Ok(())
}

/// Releases the lock (best effort: closing the connection releases it too) and closes the
/// connection.
async fn close(session: Dialed) {
    if let Err(e) = session
        .client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await
    {
        tracing::warn!(error = %e, "releasing the migration lock failed; closing the connection releases it");
    }
    drop_session(session).await;
}

/// Drops the client, which ends the connection task, and waits (boundedly) until it has, so
/// the server has seen the session end when we return.
async fn drop_session(session: Dialed) {
    let Dialed { client, closed, .. } = session;
    drop(client);
    let _ = monoio::time::timeout(CLOSE_TIMEOUT, closed.wait()).await;
}

/// With the lock held: creates the table, checks the applied migrations, applies the rest.
async fn migrate(client: &Client, migrations: &[Migration]) -> Result<Report, Error> {
    client
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {TABLE} (
                version bigint PRIMARY KEY,
                name text NOT NULL,
                checksum text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )"
        ))
        .await
        .map_err(Error::from_pg)?;
    let applied = applied(client).await?;
    verify(migrations, &applied)?;
    let newest = applied.keys().max().copied();

    let mut report = Report::default();
    for m in migrations {
        if applied.contains_key(&m.version) {
            report.already += 1;
            continue;
        }
        if let Some(newest) = newest.filter(|&n| n > m.version) {
            tracing::warn!(
                migration = %m.name,
                newest_applied = newest,
                "applying a migration older than the newest applied one (merged late?)"
            );
        }
        let started = Instant::now();
        apply(client, m).await?;
        tracing::info!(
            migration = %m.name,
            version = m.version,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "applied migration"
        );
        report.applied.push(m.name.clone());
    }
    Ok(report)
}

async fn applied(client: &Client) -> Result<HashMap<i64, Applied>, Error> {
    let rows = client
        .query(&format!("SELECT version, name, checksum FROM {TABLE}"), &[])
        .await
        .map_err(Error::from_pg)?;
    Ok(rows
        .iter()
        .map(|r| {
            let applied = Applied {
                name: r.get(1),
                checksum: r.get(2),
            };
            (r.get(0), applied)
        })
        .collect())
}

/// Refuses when an applied migration's file changed or is gone, naming every such file.
fn verify(migrations: &[Migration], applied: &HashMap<i64, Applied>) -> Result<(), Error> {
    let by_version: HashMap<i64, &Migration> = migrations.iter().map(|m| (m.version, m)).collect();
    let mut versions: Vec<&i64> = applied.keys().collect();
    versions.sort();
    let mut problems = Vec::new();
    for version in versions {
        let was = &applied[version];
        match by_version.get(version) {
            None => problems.push(format!(
                "migration {} (version {version}) was applied but its file is missing; \
                 restore it (applied migrations are never removed)",
                was.name
            )),
            Some(m) if m.checksum != was.checksum => problems.push(format!(
                "migration {} was changed after it was applied (checksum {}… ≠ {}…); \
                 add a new migration instead",
                m.name,
                short(&was.checksum),
                short(&m.checksum),
            )),
            Some(_) => {}
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::migration(problems.join("; ")))
    }
}

/// The first 12 characters of a checksum: enough to tell two apart in a message.
fn short(checksum: &str) -> &str {
    checksum
        .char_indices()
        .nth(12)
        .map_or(checksum, |(i, _)| &checksum[..i])
}

/// The current transaction's id (assigning one if need be).
const XACT_ID: &str = "SELECT txid_current()";

/// Applies one migration and records it, in one transaction; rolled back on failure.
async fn apply(client: &Client, m: &Migration) -> Result<(), Error> {
    let failed = |e: tokio_postgres::Error| {
        let e = Error::from_pg(e);
        if e.is_connection_lost() {
            return e;
        }
        let why = match e.as_db_error() {
            Some(db) => {
                let mut why = format!("{} ({})", db.message(), db.code().code());
                if let Some(detail) = db.detail() {
                    why.push_str(&format!("; {detail}"));
                }
                why
            }
            None => e.to_string(),
        };
        Error::migration(format!("{} failed and was rolled back: {why}", m.name))
    };
    // BEGIN by hand rather than `Client::transaction`, whose `Transaction` needs the client
    // mutably; the effect is the same, and ROLLBACK is explicit below.
    client
        .batch_execute("BEGIN")
        .await
        .map_err(Error::from_pg)?;
    let result = async {
        // The transaction id before and after the file tells whether the file ended our
        // transaction (a COMMIT or ROLLBACK of its own), which would leave it half applied
        // and unrecorded if it then failed. Costs one transaction id per migration.
        let before: i64 = client.query_one(XACT_ID, &[]).await?.get(0);
        client.batch_execute(&m.sql).await?;
        let after: i64 = client.query_one(XACT_ID, &[]).await?.get(0);
        if after != before {
            return Ok(Err(Error::migration(format!(
                "{} ended the transaction it runs in (a COMMIT or ROLLBACK in the file?), so \
                 it was not recorded and its statements before that may be applied; remove \
                 transaction control from the file and check the schema by hand",
                m.name
            ))));
        }
        client
            .execute(
                &format!("INSERT INTO {TABLE} (version, name, checksum) VALUES ($1, $2, $3)"),
                &[&m.version, &m.name, &m.checksum],
            )
            .await?;
        client.batch_execute("COMMIT").await.map(Ok)
    }
    .await;
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            let _ = client.batch_execute("ROLLBACK").await;
            Err(e)
        }
        Err(e) => {
            // The transaction is aborted; end it so the connection can release the lock.
            let _ = client.batch_execute("ROLLBACK").await;
            Err(failed(e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_key_is_derived_from_its_name() {
        let digest = Sha256::digest(b"pinion.migrations");
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        assert_eq!(LOCK_KEY, i64::from_be_bytes(first));
        // The halves `pg_locks` shows (see LOCK_KEY's doc).
        assert_eq!(
            (LOCK_KEY as u64 >> 32, LOCK_KEY as u64 & 0xffff_ffff),
            (3_403_801_943, 30_827_071)
        );
    }

    #[test]
    fn file_names() {
        assert_eq!(parse_file_name("0001_techempower.sql"), Ok(1));
        assert_eq!(parse_file_name("20240101_add-index_2.sql"), Ok(20240101));
        for bad in [
            "0001.sql",
            "_x.sql",
            "0001_.sql",
            "01a_x.sql",
            "0001_x.SQL",
            "0001_x",
            "0001_a b.sql",
            "README.md",
        ] {
            assert!(parse_file_name(bad).is_err(), "{bad}");
        }
        assert!(parse_file_name("99999999999999999999_x.sql")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn checksum_is_sha256_hex() {
        assert_eq!(
            checksum(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
