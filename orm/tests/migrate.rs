//! Migrations against a real PostgreSQL: order, bookkeeping, concurrent migrators, changed
//! and failing files, and the app's own `migrations/`.
//!
//! Every test gets a database of its own (`mig_…`, owned by the ordinary role `pinion`) in a
//! private cluster that the tests of this binary share; the last one to finish stops it.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{eventually, run, Cluster};
use pinion_orm::migrate::{self, Migration, Report};
use pinion_orm::{ConnectOptions, ConnectionManager, DbConfig};

/// The shared private cluster and how many tests are using it.
static CLUSTER: Mutex<(usize, Option<Cluster>)> = Mutex::new((0, None));

/// A fresh database in the shared cluster, dropped (and the cluster released) on drop.
struct TestDb {
    name: String,
    url: String,
}

impl TestDb {
    fn new() -> TestDb {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "mig_{}_{}_{nanos}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let mut guard = CLUSTER.lock().unwrap_or_else(|p| p.into_inner());
        guard.0 += 1;
        let cluster = guard.1.get_or_insert_with(|| Cluster::private("migrate"));
        cluster.pg(&[
            "psql",
            "-X",
            "-q",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-c",
            &format!("CREATE DATABASE {name} OWNER pinion"),
        ]);
        // postgres://pinion:pinion@127.0.0.1:PORT/pinion → …/mig_…
        let (base, _) = cluster
            .primary
            .rsplit_once('/')
            .expect("a URL with a database");
        let url = format!("{base}/{name}");
        TestDb { name, url }
    }

    /// Runs `sql` on this database (as `pinion`) and returns the first column of each row as
    /// text.
    fn query(&self, sql: &str) -> Vec<Option<String>> {
        let url = self.url.clone();
        let sql = format!("SELECT ({sql})::text");
        run(async move {
            let db = ConnectionManager::start(&DbConfig::new(url, vec![])).expect("db");
            db.primary().wait_connected().await.expect("connected");
            db.primary()
                .query(&sql, &[])
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .iter()
                .map(|r| r.get::<_, Option<String>>(0))
                .collect()
        })
    }

    fn value(&self, sql: &str) -> String {
        self.query(sql)
            .into_iter()
            .next()
            .flatten()
            .unwrap_or_else(|| panic!("{sql}: no value"))
    }

    /// `(version, name, checksum)` of every recorded migration, by version.
    fn recorded(&self) -> Vec<(i64, String, String)> {
        self.query("SELECT string_agg(version || ' ' || name || ' ' || checksum, ',' ORDER BY version) FROM pinion_migrations")
            .into_iter()
            .flatten()
            .flat_map(|all| {
                all.split(',')
                    .map(|row| {
                        let mut f = row.split(' ');
                        let v = f.next().unwrap().parse().unwrap();
                        (v, f.next().unwrap().to_string(), f.next().unwrap().to_string())
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn migrate(&self, migrations: &[Migration]) -> Result<Report, pinion_orm::Error> {
        run(migrate::run_migrations(
            &self.url,
            migrations,
            &ConnectOptions::default(),
        ))
    }

    fn migrate_dir(&self, dir: &Path) -> Result<Report, pinion_orm::Error> {
        run(migrate::run(&self.url, dir, &ConnectOptions::default()))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let mut guard = CLUSTER.lock().unwrap_or_else(|p| p.into_inner());
        // A failed test keeps its database (for a look with `scripts/pg psql`); a panic here
        // while unwinding would abort the whole test binary.
        if !std::thread::panicking() {
            if let Some(cluster) = &guard.1 {
                cluster.pg(&[
                    "psql",
                    "-X",
                    "-q",
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                    "-c",
                    &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
                ]);
            }
        }
        guard.0 -= 1;
        if guard.0 == 0 {
            guard.1 = None; // stops the cluster
        }
    }
}

/// A scratch directory of migration files, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(files: &[(&str, &str)]) -> Dir {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "migrations-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("scratch dir");
        let dir = Dir(path);
        for (name, sql) in files {
            dir.write(name, sql);
        }
        dir
    }

    fn write(&self, name: &str, sql: &str) {
        std::fs::write(self.0.join(name), sql).expect("write migration");
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn names(migrations: &[Migration]) -> Vec<String> {
    migrations.iter().map(|m| m.name.clone()).collect()
}

const A: &str = "CREATE TABLE a (id int PRIMARY KEY);";
const B: &str = "INSERT INTO a VALUES (1), (2);";
const C: &str = "CREATE TABLE c (id int REFERENCES a (id));";

#[test]
fn applies_in_order_then_nothing() {
    let db = TestDb::new();
    // Written out of order, and numbered so that string order would differ from numeric order.
    let dir = Dir::new(&[("10_c.sql", C), ("0001_a.sql", A), ("2_b.sql", B)]);
    let migrations = migrate::load_dir(&dir.0).expect("load");
    assert_eq!(names(&migrations), ["0001_a.sql", "2_b.sql", "10_c.sql"]);
    assert_eq!(
        run(migrate::pending(
            &db.url,
            &migrations,
            &ConnectOptions::default()
        ))
        .unwrap(),
        names(&migrations)
    );

    let report = db.migrate_dir(&dir.0).expect("first run");
    assert_eq!(
        report,
        Report {
            applied: names(&migrations),
            already: 0
        }
    );
    let recorded = db.recorded();
    let expected: Vec<_> = migrations
        .iter()
        .map(|m| (m.version, m.name.clone(), m.checksum.clone()))
        .collect();
    assert_eq!(recorded, expected);
    // sha256("CREATE TABLE a (id int PRIMARY KEY);"), computed independently by PostgreSQL.
    assert_eq!(
        recorded[0].2,
        db.value(&format!("encode(sha256('{A}'::bytea), 'hex')"))
    );
    assert_eq!(db.value("SELECT count(*) FROM a"), "2");

    let again = db.migrate_dir(&dir.0).expect("second run");
    assert_eq!(
        again,
        Report {
            applied: vec![],
            already: 3
        }
    );
    assert!(run(migrate::pending(
        &db.url,
        &migrations,
        &ConnectOptions::default()
    ))
    .unwrap()
    .is_empty());

    // A new file is applied alone.
    dir.write("0011_d.sql", "ALTER TABLE a ADD COLUMN d text;");
    let third = db.migrate_dir(&dir.0).expect("third run");
    assert_eq!(
        third,
        Report {
            applied: vec!["0011_d.sql".into()],
            already: 3
        }
    );
    // The lock is released: nothing of ours holds it once run returns.
    assert_eq!(
        db.value(&format!(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = {} \
             AND objid = {} AND database = (SELECT oid FROM pg_database \
             WHERE datname = current_database())",
            (migrate::LOCK_KEY as u64) >> 32,
            (migrate::LOCK_KEY as u64) & 0xffff_ffff
        )),
        "0"
    );
}

#[test]
fn concurrent_migrators_apply_each_migration_once() {
    let db = TestDb::new();
    let migrations = vec![
        Migration::new(1, "0001_a.sql", A),
        // Holds the lock long enough that the other migrator must wait for it.
        Migration::new(
            2,
            "0002_slow.sql",
            "SELECT pg_sleep(0.5); CREATE TABLE slow (id int);",
        ),
        Migration::new(3, "0003_b.sql", B),
    ];
    let start = Arc::new(Barrier::new(2));
    let migrators: Vec<_> = (0..2)
        .map(|_| {
            let (url, migrations, start) = (db.url.clone(), migrations.clone(), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                run(migrate::run_migrations(
                    &url,
                    &migrations,
                    &ConnectOptions::default(),
                ))
            })
        })
        .collect();
    let mut reports: Vec<Report> = migrators
        .into_iter()
        .map(|t| t.join().expect("migrator thread").expect("migration run"))
        .collect();
    reports.sort_by_key(|r| r.applied.len());
    assert_eq!(
        reports,
        [
            Report {
                applied: vec![],
                already: 3
            },
            Report {
                applied: names(&migrations),
                already: 0
            },
        ]
    );
    assert_eq!(
        db.recorded().iter().map(|r| r.0).collect::<Vec<_>>(),
        [1, 2, 3],
        "each version recorded once"
    );
    assert_eq!(
        db.value("SELECT count(*) FROM a"),
        "2",
        "the insert ran once"
    );
}

#[test]
fn a_migrator_waits_while_another_session_holds_the_lock() {
    let db = TestDb::new();
    let url = db.url.clone();
    run(async move {
        // Stands in for another instance mid-migration: a session holding the lock.
        let holder = ConnectionManager::start(&DbConfig::new(url.clone(), vec![])).expect("db");
        let holder = holder.primary();
        holder.wait_connected().await.expect("connected");
        holder
            .execute("SELECT pg_advisory_lock($1)", &[&migrate::LOCK_KEY])
            .await
            .expect("lock");

        let migrations = vec![Migration::new(1, "0001_a.sql", A)];
        let migrator = std::thread::spawn(move || {
            run(migrate::run_migrations(
                &url,
                &migrations,
                &ConnectOptions::default(),
            ))
        });
        let waiting = eventually(Duration::from_secs(10), async || {
            holder
                .query_one(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
                     AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                    &[],
                )
                .await
                .is_ok_and(|r| r.get::<_, i64>(0) == 1)
        })
        .await;
        assert!(waiting, "the migrator never queued for the lock");
        assert!(!migrator.is_finished(), "the migrator ran without the lock");
        let none: Option<String> = holder
            .query_one("SELECT to_regclass('pinion_migrations')::text", &[])
            .await
            .expect("query")
            .get(0);
        assert_eq!(
            none, None,
            "the migrator touched the schema without the lock"
        );

        holder
            .execute("SELECT pg_advisory_unlock($1)", &[&migrate::LOCK_KEY])
            .await
            .expect("unlock");
        let report = migrator.join().expect("migrator thread").expect("run");
        assert_eq!(
            report,
            Report {
                applied: vec!["0001_a.sql".into()],
                already: 0
            }
        );
    });
}

#[test]
fn a_changed_or_missing_applied_migration_is_refused() {
    let db = TestDb::new();
    let dir = Dir::new(&[("0001_a.sql", A), ("0002_b.sql", B)]);
    db.migrate_dir(&dir.0).expect("first run");

    dir.write("0001_a.sql", "CREATE TABLE a (id bigint PRIMARY KEY);");
    dir.write("0003_c.sql", C);
    let err = db
        .migrate_dir(&dir.0)
        .expect_err("a changed file is refused");
    let msg = err.to_string();
    assert!(err.is_migration(), "{msg}");
    assert!(
        msg.contains("0001_a.sql was changed after it was applied"),
        "{msg}"
    );
    assert!(msg.contains("add a new migration instead"), "{msg}");
    let err = run(migrate::pending(
        &db.url,
        &migrate::load_dir(&dir.0).unwrap(),
        &ConnectOptions::default(),
    ))
    .expect_err("pending refuses too");
    assert!(err.to_string().contains("0001_a.sql was changed"), "{err}");

    dir.write("0001_a.sql", A);
    std::fs::remove_file(dir.0.join("0002_b.sql")).unwrap();
    let err = db
        .migrate_dir(&dir.0)
        .expect_err("a missing file is refused");
    assert!(
        err.to_string()
            .contains("0002_b.sql (version 2) was applied but its file is missing"),
        "{err}"
    );

    assert_eq!(db.recorded().len(), 2, "nothing new applied");
    assert!(
        db.query("to_regclass('c')")
            .into_iter()
            .next()
            .flatten()
            .is_none(),
        "0003 did not run"
    );
}

#[test]
fn load_dir_refuses_bad_names_and_duplicate_versions() {
    let dir = Dir::new(&[("0001_a.sql", A), ("notes.txt", "")]);
    let err = migrate::load_dir(&dir.0).expect_err("bad name");
    assert!(err.is_migration());
    assert!(
        err.to_string()
            .contains("notes.txt: not a migration file name"),
        "{err}"
    );

    let dir = Dir::new(&[("0001_a.sql", A), ("1_b.sql", B), (".gitkeep", "")]);
    let err = migrate::load_dir(&dir.0).expect_err("duplicate version");
    let msg = err.to_string();
    assert!(
        msg.contains("0001_a.sql and 1_b.sql") && msg.contains("same version 1"),
        "{msg}"
    );

    let dir = Dir::new(&[("0001_a.sql", A), (".gitkeep", "")]);
    assert_eq!(
        names(&migrate::load_dir(&dir.0).expect("hidden files skipped")),
        ["0001_a.sql"]
    );

    let err = migrate::load_dir(&dir.0.join("absent")).expect_err("no such dir");
    assert!(err.to_string().contains("cannot read"), "{err}");
}

#[test]
fn a_failing_migration_rolls_back() {
    let db = TestDb::new();
    let dir = Dir::new(&[
        ("0001_a.sql", A),
        ("0002_bad.sql", "CREATE TABLE half (id int);\nSELEC oops;"),
        ("0003_c.sql", C),
    ]);
    let err = db.migrate_dir(&dir.0).expect_err("bad SQL fails");
    let msg = err.to_string();
    assert!(err.is_migration(), "{msg}");
    assert!(
        msg.contains("0002_bad.sql failed and was rolled back"),
        "{msg}"
    );
    assert!(msg.contains("syntax error"), "{msg}");

    let recorded = db.recorded();
    assert_eq!(
        recorded.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(),
        ["0001_a.sql"]
    );
    assert!(
        db.query("to_regclass('half')")
            .into_iter()
            .next()
            .flatten()
            .is_none(),
        "rolled back"
    );
    assert!(
        db.query("to_regclass('c')")
            .into_iter()
            .next()
            .flatten()
            .is_none(),
        "not tried"
    );
    assert!(
        db.query("to_regclass('a')")
            .into_iter()
            .next()
            .flatten()
            .is_some(),
        "kept"
    );

    // Once fixed, the run resumes where it stopped.
    dir.write("0002_bad.sql", "CREATE TABLE half (id int);");
    let report = db.migrate_dir(&dir.0).expect("fixed");
    assert_eq!(
        report,
        Report {
            applied: vec!["0002_bad.sql".into(), "0003_c.sql".into()],
            already: 1
        }
    );
}

#[test]
fn a_migration_that_commits_on_its_own_is_refused() {
    let db = TestDb::new();
    let migrations = [Migration::new(
        1,
        "0001_commit.sql",
        "CREATE TABLE early (id int); COMMIT;",
    )];
    let err = db
        .migrate(&migrations)
        .expect_err("transaction control refused");
    assert!(
        err.to_string()
            .contains("0001_commit.sql ended the transaction"),
        "{err}"
    );
    assert!(db.recorded().is_empty());
}

#[test]
fn the_techempower_migration() {
    let db = TestDb::new();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    let report = db.migrate_dir(&dir).expect("migrations/ applies");
    assert!(
        report.applied.contains(&"0001_techempower.sql".to_string()),
        "{report:?}"
    );

    assert_eq!(db.value("SELECT count(*) FROM world"), "10000");
    assert_eq!(
        db.value("SELECT count(DISTINCT id) FROM world WHERE id BETWEEN 1 AND 10000"),
        "10000"
    );
    assert_eq!(
        db.value("SELECT count(*) FROM world WHERE randomnumber NOT BETWEEN 1 AND 10000"),
        "0"
    );
    // Random, not constant: 10 000 draws from 1..10000 give thousands of distinct values.
    assert!(
        db.value("SELECT count(DISTINCT randomnumber) FROM world")
            .parse::<u32>()
            .unwrap()
            > 5000
    );

    assert_eq!(db.value("SELECT count(*) FROM fortune"), "12");
    assert_eq!(
        db.value("SELECT string_agg(id::text, ',' ORDER BY id) FROM fortune"),
        "1,2,3,4,5,6,7,8,9,10,11,12"
    );
    assert_eq!(
        db.value("SELECT message FROM fortune WHERE id = 1"),
        "fortune: No such file or directory"
    );
    assert_eq!(
        db.value("SELECT message FROM fortune WHERE id = 2"),
        "A computer scientist is someone who fixes things that aren't broken."
    );
    assert_eq!(
        db.value("SELECT message FROM fortune WHERE id = 6"),
        "Emacs is a nice operating system, but I prefer UNIX. \u{2014} Tom Christaensen"
    );
    assert_eq!(
        db.value("SELECT message FROM fortune WHERE id = 11"),
        "<script>alert(\"This should not be displayed in a browser alert box.\");</script>"
    );
    assert_eq!(
        db.value("SELECT message FROM fortune WHERE id = 12"),
        "フレームワークのベンチマーク"
    );
    assert_eq!(
        db.value("SELECT pg_typeof(message)::text FROM fortune LIMIT 1"),
        "character varying"
    );
    assert_eq!(
        db.value("SELECT character_maximum_length FROM information_schema.columns WHERE table_name = 'fortune' AND column_name = 'message'"),
        "2048"
    );
}
