//! Batches with one `Sync` (`Database::query_pipelined`) against a real PostgreSQL: answers in
//! order, errors kept to their batch, types checked, a lost connection reported and
//! re-established, and each password method the client speaks.

mod common;

use std::time::Duration;

use common::{eventually, run, Cluster};
use pinion_orm::tokio_postgres::types::{ToSql, Type};
use pinion_orm::{ConnectionManager, DbConfig, PipelineStatement};

fn db(url: &str) -> std::rc::Rc<ConnectionManager> {
    common::primary_only(url)
}

#[test]
fn a_batch_answers_each_parameter_set_in_order() {
    let cluster = Cluster::shared();
    run(async {
        let db = db(&cluster.primary);
        let primary = db.primary();
        let calc = PipelineStatement::new(
            "SELECT $1 * 2, $2 || '!', NULL::int4",
            &[Type::INT4, Type::TEXT],
        );
        let inputs: Vec<(i32, String)> = (0..50).map(|i| (i, format!("n{i}"))).collect();
        let results = primary
            .query_pipelined(
                &calc,
                inputs
                    .iter()
                    .map(|(n, s)| [n as &(dyn ToSql + Sync), s as &(dyn ToSql + Sync)]),
            )
            .await
            .expect("batch");
        assert_eq!(results.len(), 50);
        for ((n, s), rows) in inputs.iter().zip(&results) {
            assert_eq!(rows.len(), 1);
            assert_eq!(rows[0].len(), 3);
            assert_eq!(rows[0].get::<i32>(0).expect("int"), n * 2);
            assert_eq!(rows[0].get::<&str>(1).expect("text"), format!("{s}!"));
            assert_eq!(rows[0].get::<Option<i32>>(2).expect("null"), None);
        }
        // Result sets of any size, the empty one included.
        let series =
            PipelineStatement::new("SELECT g FROM generate_series(1, $1) g", &[Type::INT4]);
        // 20 000 rows span many reads: messages split across them are put back together.
        let counts = [0, 1, 3, 20_000];
        let results = primary
            .query_pipelined(&series, counts.iter().map(|n| [n as &(dyn ToSql + Sync)]))
            .await
            .expect("batch");
        let sizes: Vec<usize> = results.iter().map(Vec::len).collect();
        assert_eq!(sizes, [0, 1, 3, 20_000]);
        let last: Vec<i32> = results[3].iter().map(|r| r.get(0).expect("int")).collect();
        assert_eq!(last, (1..=20_000).collect::<Vec<i32>>());
        // Column access is checked, not trusted.
        let row = &results[1][0];
        let err = row.get::<i64>(0).expect_err("INT4 is not an i64");
        assert!(err.is_query(), "{err}");
        assert!(err.to_string().contains("int4"), "{err}");
        let err = row.get::<i32>(1).expect_err("one column only");
        assert!(err.to_string().contains("no column 1"), "{err}");
    });
}

#[test]
fn a_null_is_not_read_into_a_plain_integer() {
    let cluster = Cluster::shared();
    run(async {
        let db = db(&cluster.primary);
        let null = PipelineStatement::new("SELECT NULL::int4", &[]);
        let rows = db
            .primary()
            .query_pipelined(&null, [[] as [&(dyn ToSql + Sync); 0]])
            .await
            .expect("batch");
        let err = rows[0][0].get::<i32>(0).expect_err("NULL into i32");
        assert!(err.is_query(), "{err}");
        assert_eq!(rows[0][0].get::<Option<i32>>(0).expect("option"), None);
    });
}

#[test]
fn an_error_fails_its_own_batch_only() {
    let cluster = Cluster::shared();
    run(async {
        let db = db(&cluster.primary);
        let primary = db.primary();
        let divide = PipelineStatement::new("SELECT 100 / $1", &[Type::INT4]);
        let good: Vec<i32> = (1..=20).collect();
        let bad = [5, 0, 4];
        // Three callers on one thread: their batches share the connection and one write.
        let (a, b, c) = futures_util::future::join3(
            primary.query_pipelined(&divide, good.iter().map(|n| [n as &(dyn ToSql + Sync)])),
            primary.query_pipelined(&divide, bad.iter().map(|n| [n as &(dyn ToSql + Sync)])),
            primary.query_pipelined(
                &divide,
                good.iter().rev().map(|n| [n as &(dyn ToSql + Sync)]),
            ),
        )
        .await;
        let a = a.expect("the batch before succeeds");
        let c = c.expect("the batch after succeeds");
        let quotients = |rows: &Vec<Vec<pinion_orm::PipelineRow>>| -> Vec<i32> {
            rows.iter().map(|r| r[0].get(0).expect("int")).collect()
        };
        assert_eq!(
            quotients(&a),
            good.iter().map(|n| 100 / n).collect::<Vec<_>>()
        );
        assert_eq!(
            quotients(&c),
            good.iter().rev().map(|n| 100 / n).collect::<Vec<_>>()
        );
        let err = b.expect_err("division by zero");
        assert!(err.is_query(), "{err}");
        assert_eq!(err.code(), Some("22012"), "{err}");
        assert!(err.to_string().contains("division by zero"), "{err}");
        assert!(!err.is_connection_lost());
        // The connection is still good.
        let again = primary
            .query_pipelined(&divide, [[&4i32 as &(dyn ToSql + Sync)]])
            .await
            .expect("after the error");
        assert_eq!(again[0][0].get::<i32>(0).expect("int"), 25);
        // A statement PostgreSQL cannot prepare fails clearly, and is not remembered.
        let broken = PipelineStatement::new("SELEC 1", &[]);
        let err = primary
            .query_pipelined(&broken, [[] as [&(dyn ToSql + Sync); 0]])
            .await
            .expect_err("a syntax error");
        assert_eq!(err.code(), Some("42601"), "{err}");
    });
}

#[test]
fn parameters_that_do_not_fit_are_refused_before_sending() {
    let cluster = Cluster::shared();
    run(async {
        let db = db(&cluster.primary);
        let primary = db.primary();
        let echo = PipelineStatement::new("SELECT $1", &[Type::INT4]);
        let err = primary
            .query_pipelined(&echo, [[&7i64 as &(dyn ToSql + Sync)]])
            .await
            .expect_err("an i64 for an INT4");
        assert!(err.is_query(), "{err}");
        let err = primary
            .query_pipelined(
                &echo,
                [[&1i32 as &(dyn ToSql + Sync), &2i32 as &(dyn ToSql + Sync)]],
            )
            .await
            .expect_err("two parameters for one");
        assert!(
            err.to_string().contains("takes 1 parameters, 2 given"),
            "{err}"
        );
        // Nothing half-encoded was left behind: the next batch is answered correctly.
        let rows = primary
            .query_pipelined(&echo, [[&7i32 as &(dyn ToSql + Sync)]])
            .await
            .expect("a good batch");
        assert_eq!(rows[0][0].get::<i32>(0).expect("int"), 7);
    });
}

#[test]
fn a_terminated_pipeline_connection_fails_clearly_then_recovers() {
    let cluster = Cluster::shared();
    run(async {
        let db = db(&cluster.primary);
        let primary = db.primary();
        let pid_of = PipelineStatement::new("SELECT pg_backend_pid()", &[]);
        let none = || [[] as [&(dyn ToSql + Sync); 0]];
        let pid: i32 = primary.query_pipelined(&pid_of, none()).await.expect("pid")[0][0]
            .get(0)
            .expect("int");
        let sleep = PipelineStatement::new("SELECT pg_sleep($1)", &[Type::FLOAT8]);
        let in_flight = primary.query_pipelined(&sleep, [[&5.0f64 as &(dyn ToSql + Sync)]]);
        let killer = async {
            monoio::time::sleep(Duration::from_millis(200)).await;
            primary
                .execute("SELECT pg_terminate_backend($1)", &[&pid])
                .await
                .expect("terminate");
        };
        let (result, ()) = futures_util::future::join(in_flight, killer).await;
        let err = result.expect_err("the in-flight batch fails");
        assert!(err.is_connection_lost(), "not a lost connection: {err}");
        let recovered = eventually(Duration::from_secs(5), async || {
            primary.query_pipelined(&pid_of, none()).await.is_ok()
        })
        .await;
        assert!(recovered, "no reconnection");
        let new_pid: i32 = primary.query_pipelined(&pid_of, none()).await.expect("pid")[0][0]
            .get(0)
            .expect("int");
        assert_ne!(new_pid, pid);
    });
}

#[test]
fn speaks_scram_md5_and_cleartext_passwords_and_names_a_refusal() {
    let cluster = Cluster::shared();
    if !cluster.primary.contains("127.0.0.1") {
        // The developer's own DATABASE_URL: its pg_hba.conf is not scripts/pg's.
        return;
    }
    let host = cluster
        .primary
        .split_once('@')
        .expect("user@host")
        .1
        .to_string();
    run(async {
        // Roles are made by the superuser (trusted over loopback on this cluster).
        let admin = db(&format!("postgresql://postgres@{host}"));
        let roles = [
            ("pinion_scram", "scram-sha-256"),
            ("pinion_md5", "md5"),
            ("pinion_clear", "scram-sha-256"),
        ];
        for (role, encryption) in roles {
            admin
                .primary()
                .batch_execute(&format!(
                    "SET password_encryption = '{encryption}';
                     DO $$ BEGIN
                       CREATE ROLE {role} LOGIN;
                     EXCEPTION WHEN duplicate_object THEN NULL;
                     END $$;
                     ALTER ROLE {role} PASSWORD 'secret-{role}';"
                ))
                .await
                .expect("role");
        }
        let one = PipelineStatement::new("SELECT current_user::text", &[]);
        for (role, _) in roles {
            let url = format!("postgresql://{role}:secret-{role}@{host}");
            let db = db(&url);
            let rows = db
                .primary()
                .query_pipelined(&one, [[] as [&(dyn ToSql + Sync); 0]])
                .await
                .unwrap_or_else(|e| panic!("{role}: {e}"));
            assert_eq!(rows[0][0].get::<&str>(0).expect("text"), role);
        }
        // A wrong password is refused (so the server did ask for it), and the error says
        // what the server said.
        for (role, _) in roles {
            let mut cfg = DbConfig::new(format!("postgresql://{role}:wrong@{host}"), vec![]);
            cfg.connect.connect_timeout = Duration::from_secs(1);
            let db = ConnectionManager::start(&cfg).expect("db");
            let err = db
                .primary()
                .query_pipelined(&one, [[] as [&(dyn ToSql + Sync); 0]])
                .await
                .expect_err("a wrong password");
            assert!(err.is_unavailable(), "{role}: {err}");
            assert!(
                err.to_string().contains("password authentication failed"),
                "{role}: {err}"
            );
        }
    });
}
