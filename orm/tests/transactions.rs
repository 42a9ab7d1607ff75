//! Transactions against a real PostgreSQL: commit and when other connections see it, rollback
//! on an error and when the future is dropped, savepoints and `on_commit` hooks, serialization
//! failures run again, and an error swallowed by the closure refusing the commit.
//!
//! Each test has tables of its own (`tx_…`): the tests run in parallel threads on one database.

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use common::{run, Cluster};
use futures_util::future::{self, Either};
use pinion_orm::{ConnectionManager, DbConfig, Error, Model, TxOptions};

/// A manager for the primary alone, with `pool` pooled connections per thread.
fn manager(url: &str, pool: usize) -> Rc<ConnectionManager> {
    let mut cfg = DbConfig::new(url.to_string(), vec![]);
    cfg.connect.connect_timeout = Duration::from_secs(3);
    cfg.pool_size_per_thread = pool;
    ConnectionManager::start(&cfg).expect("db")
}

/// An application error a closure returns, next to the ORM's.
#[derive(Debug)]
enum ShopError {
    Db(Error),
    OutOfStock { wanted: i32, left: i32 },
    Refused(&'static str),
}

impl From<Error> for ShopError {
    fn from(e: Error) -> Self {
        ShopError::Db(e)
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Commit

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "tx_commit")]
struct CommitItem {
    #[model(primary_key, auto)]
    id: i32,
    name: String,
    qty: i32,
}

fn commit_item(name: &str, qty: i32) -> CommitItem {
    CommitItem {
        id: 0,
        name: name.to_string(),
        qty,
    }
}

#[test]
fn commit_makes_the_writes_visible_to_other_connections_only_once_committed() {
    let cluster = Cluster::shared();
    run(async {
        let db = manager(&cluster.primary, 4);
        db.primary()
            .batch_execute(
                "DROP TABLE IF EXISTS tx_commit;
                 CREATE TABLE tx_commit (id serial PRIMARY KEY, name text NOT NULL, qty int4 NOT NULL);",
            )
            .await
            .expect("schema");
        // Query sets on the manager run outside the transaction, on another connection.
        let outside = &*db;

        let (first_id, seen_inside, seen_outside) = db
            .transaction(async |tx| {
                let mut a = commit_item("apple", 1);
                assert!(a.save(tx).await?.created);
                let mut more = vec![commit_item("pear", 2), commit_item("plum", 3)];
                CommitItem::objects().bulk_create(&mut more, tx).await?;
                CommitItem::objects()
                    .filter(CommitItem::NAME.eq("pear"))
                    .update([CommitItem::QTY.set(20)], tx)
                    .await?;
                tx.execute(
                    "INSERT INTO tx_commit (name, qty) VALUES ($1, $2)",
                    &[&"quince", &4i32],
                )
                .await?;
                let inside = CommitItem::objects().count(tx).await?;
                let outside_now = CommitItem::objects().count(outside).await?;
                Ok::<_, Error>((a.id, inside, outside_now))
            })
            .await
            .expect("committed");
        assert_eq!(seen_inside, 4, "the transaction reads its own writes");
        assert_eq!(
            seen_outside, 0,
            "another connection sees nothing before the commit"
        );

        let stored: Vec<(String, i32)> = CommitItem::objects()
            .order_by(CommitItem::ID.asc())
            .values((CommitItem::NAME, CommitItem::QTY))
            .all(outside)
            .await
            .expect("read after commit");
        assert_eq!(
            stored,
            [
                ("apple".to_string(), 1),
                ("pear".to_string(), 20),
                ("plum".to_string(), 3),
                ("quince".to_string(), 4)
            ]
        );
        let apple = CommitItem::objects()
            .filter(CommitItem::ID.eq(first_id))
            .get(outside)
            .await
            .expect("the key the transaction returned");
        assert_eq!(apple.name, "apple");
    });
}

// ---------------------------------------------------------------------------------------------
// 2. Rollback on error

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "tx_rollback")]
struct Stock {
    #[model(primary_key)]
    sku: String,
    qty: i32,
}

#[test]
fn an_error_from_the_closure_rolls_back_and_comes_back_unchanged() {
    let cluster = Cluster::shared();
    run(async {
        let db = manager(&cluster.primary, 4);
        db.primary()
            .batch_execute(
                "DROP TABLE IF EXISTS tx_rollback;
                 CREATE TABLE tx_rollback (sku text PRIMARY KEY, qty int4 NOT NULL);
                 INSERT INTO tx_rollback VALUES ('tea', 2);",
            )
            .await
            .expect("schema");

        // The application's own error.
        let err = db
            .transaction(async |tx| {
                let mut tea = Stock::objects()
                    .filter(Stock::SKU.eq("tea"))
                    .get(tx)
                    .await?;
                tea.qty -= 5;
                tea.save(tx).await?;
                let mut new = Stock {
                    sku: "coffee".into(),
                    qty: 9,
                };
                new.save(tx).await?;
                Err::<(), _>(ShopError::OutOfStock {
                    wanted: 5,
                    left: tea.qty + 5,
                })
            })
            .await
            .unwrap_err();
        assert!(
            matches!(err, ShopError::OutOfStock { wanted: 5, left: 2 }),
            "{err:?}"
        );

        // An ORM error passed on with `?`: a duplicate key after a good write.
        let err = db
            .transaction(async |tx| {
                tx.execute("UPDATE tx_rollback SET qty = 0", &[]).await?;
                let mut dup = Stock {
                    sku: "tea".into(),
                    qty: 1,
                };
                Stock::objects()
                    .bulk_create(std::slice::from_mut(&mut dup), tx)
                    .await?;
                Ok::<_, ShopError>(())
            })
            .await
            .unwrap_err();
        match err {
            ShopError::Db(e) => assert!(e.is_unique_violation(), "{e}"),
            other => panic!("expected the database's error, got {other:?}"),
        }

        let stored = Stock::objects()
            .order_by(Stock::SKU.asc())
            .all(&*db)
            .await
            .unwrap();
        assert_eq!(
            stored,
            [Stock {
                sku: "tea".into(),
                qty: 2
            }],
            "nothing of either transaction was stored"
        );
    });
}

// ---------------------------------------------------------------------------------------------
// 3. Rollback when the future is dropped

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "tx_drop")]
struct DropItem {
    #[model(primary_key, auto)]
    id: i32,
    name: String,
}

#[test]
fn a_transaction_dropped_unfinished_rolls_back_and_its_connection_is_reused() {
    let cluster = Cluster::shared();
    run(async {
        // One pooled connection: the next transaction must wait for the dropped one's.
        let db = manager(&cluster.primary, 1);
        db.primary()
            .batch_execute(
                "DROP TABLE IF EXISTS tx_drop;
                 CREATE TABLE tx_drop (id serial PRIMARY KEY, name text NOT NULL);",
            )
            .await
            .expect("schema");

        let hook_ran = Rc::new(Cell::new(false));
        let (written, wrote) = tokio::sync::oneshot::channel::<i32>();
        let hook = Rc::clone(&hook_ran);
        let unfinished = Box::pin(db.transaction(async move |tx| {
            DropItem {
                id: 0,
                name: "abandoned".into(),
            }
            .save(tx)
            .await?;
            tx.on_commit(move || hook.set(true));
            let pid: i32 = tx.query("SELECT pg_backend_pid()", &[]).await?[0].get(0);
            written.send(pid).expect("the test listens");
            // Never finishes: only dropping the future ends the transaction.
            future::pending::<()>().await;
            Ok::<_, Error>(())
        }));
        let pid = match future::select(unfinished, wrote).await {
            Either::Right((pid, unfinished)) => {
                drop(unfinished);
                pid.expect("sent after the write")
            }
            Either::Left(_) => unreachable!("the transaction never finishes"),
        };
        assert_eq!(
            db.primary().pool_available(),
            1,
            "the connection went back to the pool, to be rolled back before its next use"
        );

        // Gets the only pooled connection, which the pool rolls back first.
        let (pid_again, seen) = db
            .transaction(async |tx| {
                let pid: i32 = tx.query("SELECT pg_backend_pid()", &[]).await?[0].get(0);
                let seen = DropItem::objects().count(tx).await?;
                Ok::<_, Error>((pid, seen))
            })
            .await
            .expect("the next transaction runs");
        assert_eq!(
            pid_again, pid,
            "the same connection came back to the pool, not a new one"
        );
        assert_eq!(
            seen, 0,
            "the reused connection is not inside the old transaction"
        );
        assert_eq!(DropItem::objects().count(&*db).await.unwrap(), 0);
        assert!(
            !hook_ran.get(),
            "no on_commit hook of a dropped transaction"
        );
        assert_eq!(db.primary().pool_available(), 1);

        // And it still commits.
        db.transaction(async |tx| {
            DropItem {
                id: 0,
                name: "kept".into(),
            }
            .save(tx)
            .await?;
            Ok::<_, Error>(())
        })
        .await
        .expect("commit on the reused connection");
        let names: Vec<String> = DropItem::objects()
            .values(DropItem::NAME)
            .all(&*db)
            .await
            .unwrap();
        assert_eq!(names, ["kept"]);
    });
}

// ---------------------------------------------------------------------------------------------
// 4. Savepoints and on_commit hooks

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "tx_savepoint")]
struct Step {
    #[model(primary_key, auto)]
    id: i32,
    name: String,
}

/// Saves a `Step` named `name` in `tx` and registers a hook that logs `name` after commit.
async fn step(
    tx: &pinion_orm::Transaction<'_>,
    log: &Rc<RefCell<Vec<&'static str>>>,
    name: &'static str,
) -> Result<(), Error> {
    Step {
        id: 0,
        name: name.into(),
    }
    .save(tx)
    .await?;
    let log = Rc::clone(log);
    tx.on_commit(move || log.borrow_mut().push(name));
    Ok(())
}

async fn stored_steps(db: &ConnectionManager) -> Vec<String> {
    Step::objects()
        .order_by(Step::ID.asc())
        .values(Step::NAME)
        .all(db)
        .await
        .expect("steps")
}

#[test]
fn savepoints_keep_or_undo_their_writes_and_hooks() {
    let cluster = Cluster::shared();
    run(async {
        let db = manager(&cluster.primary, 4);
        db.primary()
            .batch_execute(
                "DROP TABLE IF EXISTS tx_savepoint;
                 CREATE TABLE tx_savepoint (id serial PRIMARY KEY, name text NOT NULL);",
            )
            .await
            .expect("schema");
        let log = Rc::new(RefCell::new(Vec::new()));

        let hooks_before_commit = db
            .transaction(async |tx| {
                step(tx, &log, "outer first").await?;

                // Released, with a rolled-back savepoint of its own inside.
                let kept = tx
                    .transaction(async |sp| {
                        step(sp, &log, "released").await?;
                        let nested = sp
                            .transaction(async |inner| {
                                step(inner, &log, "nested rolled back").await?;
                                Err::<(), _>(ShopError::Refused("nested"))
                            })
                            .await;
                        assert!(matches!(nested, Err(ShopError::Refused("nested"))));
                        Ok::<_, ShopError>(7)
                    })
                    .await?;
                assert_eq!(kept, 7, "a released savepoint returns its value");

                // Rolled back, with a released savepoint of its own inside.
                let refused = tx
                    .transaction(async |sp| {
                        step(sp, &log, "rolled back").await?;
                        sp.transaction(async |inner| {
                            step(inner, &log, "released inside rolled back").await?;
                            Ok::<_, ShopError>(())
                        })
                        .await?;
                        Err::<(), _>(ShopError::Refused("sibling"))
                    })
                    .await;
                assert!(
                    matches!(refused, Err(ShopError::Refused("sibling"))),
                    "{refused:?}"
                );

                // The transaction carries on after a savepoint was rolled back to.
                step(tx, &log, "outer last").await?;
                let inside: Vec<String> = Step::objects()
                    .order_by(Step::ID.asc())
                    .values(Step::NAME)
                    .all(tx)
                    .await?;
                assert_eq!(inside, ["outer first", "released", "outer last"]);
                Ok::<_, ShopError>(log.borrow().len())
            })
            .await
            .expect("the outer transaction commits");
        assert_eq!(hooks_before_commit, 0, "no hook runs before the commit");
        assert_eq!(
            stored_steps(&db).await,
            ["outer first", "released", "outer last"]
        );
        assert_eq!(
            *log.borrow(),
            ["outer first", "released", "outer last"],
            "each hook of what was committed ran once, in order; none of a rolled-back savepoint"
        );

        // An outer rollback: none of its hooks, not even those of released savepoints.
        log.borrow_mut().clear();
        let err = db
            .transaction(async |tx| {
                step(tx, &log, "outer rolled back").await?;
                tx.transaction(async |sp| {
                    step(sp, &log, "released then rolled back").await?;
                    Ok::<_, ShopError>(())
                })
                .await?;
                Err::<(), _>(ShopError::Refused("outer"))
            })
            .await
            .unwrap_err();
        assert!(matches!(err, ShopError::Refused("outer")), "{err:?}");
        assert!(log.borrow().is_empty(), "{:?}", log.borrow());
        assert_eq!(stored_steps(&db).await.len(), 3);
    });
}

#[test]
fn hooks_do_not_run_when_the_commit_itself_fails() {
    let cluster = Cluster::shared();
    run(async {
        let db = manager(&cluster.primary, 4);
        db.primary()
            .batch_execute(
                "DROP TABLE IF EXISTS tx_deferred;
                 CREATE TABLE tx_deferred (
                     name text,
                     CONSTRAINT tx_deferred_name UNIQUE (name) DEFERRABLE INITIALLY DEFERRED
                 );",
            )
            .await
            .expect("schema");
        let ran = Rc::new(Cell::new(0));
        let hook = Rc::clone(&ran);
        // Both inserts succeed; the unique check waits for COMMIT, which fails.
        let err = db
            .transaction(async |tx| {
                tx.execute("INSERT INTO tx_deferred VALUES ('x'), ('x')", &[])
                    .await?;
                tx.on_commit(move || hook.set(hook.get() + 1));
                Ok::<_, Error>(())
            })
            .await
            .unwrap_err();
        assert!(err.is_unique_violation(), "{err}");
        assert_eq!(ran.get(), 0, "nothing was committed, no hook ran");
        let n: i64 = db
            .primary()
            .query("SELECT count(*) FROM tx_deferred", &[])
            .await
            .expect("count")[0]
            .get(0);
        assert_eq!(n, 0);
    });
}

// ---------------------------------------------------------------------------------------------
// 5. Serialization failures

/// Two SERIALIZABLE transactions that each read the sum of `table` and insert it as a new
/// row (write skew), run at once on this thread; a barrier makes both read before either
/// writes, on their first attempt. Their results and how many times each closure ran.
async fn write_skew(
    db: &ConnectionManager,
    table: &str,
    retries: u32,
) -> ([Result<i64, Error>; 2], [u32; 2]) {
    db.primary()
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {table};
             CREATE TABLE {table} (v int8 NOT NULL);
             INSERT INTO {table} VALUES (1);"
        ))
        .await
        .expect("schema");
    let read_sql = format!("SELECT sum(v)::int8 FROM {table}");
    let insert_sql = format!("INSERT INTO {table} (v) VALUES ($1)");
    let barrier = tokio::sync::Barrier::new(2);
    let attempts = [Cell::new(0u32), Cell::new(0u32)];
    let side = |i: usize| {
        let (attempts, barrier) = (&attempts[i], &barrier);
        let (read_sql, insert_sql) = (&read_sql, &insert_sql);
        db.transaction_with(
            TxOptions::serializable().retries(retries),
            async move |tx| {
                attempts.set(attempts.get() + 1);
                let sum: i64 = tx.query(read_sql, &[]).await?[0].get(0);
                if attempts.get() == 1 {
                    barrier.wait().await;
                }
                tx.execute(insert_sql, &[&sum]).await?;
                Ok::<_, Error>(sum)
            },
        )
    };
    let (a, b) = future::join(side(0), side(1)).await;
    ([a, b], [attempts[0].get(), attempts[1].get()])
}

async fn values(db: &ConnectionManager, table: &str) -> Vec<i64> {
    db.primary()
        .query(&format!("SELECT v FROM {table} ORDER BY v"), &[])
        .await
        .expect("values")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn a_serialization_failure_is_run_again_until_both_commit() {
    let cluster = Cluster::shared();
    run(async {
        let db = manager(&cluster.primary, 4);
        let (results, attempts) = write_skew(&db, "tx_ser_retry", 3).await;
        let mut sums: Vec<i64> = results
            .into_iter()
            .map(|r| r.expect("both commit in the end"))
            .collect();
        sums.sort_unstable();
        assert_eq!(
            sums,
            [1, 2],
            "the one run again read the other's committed row"
        );
        let mut attempts = attempts.to_vec();
        attempts.sort_unstable();
        assert_eq!(attempts, [1, 2], "one closure ran once, the other twice");
        assert_eq!(
            values(&db, "tx_ser_retry").await,
            [1, 1, 2],
            "as if one ran after the other"
        );
    });
}

#[test]
fn without_retries_one_of_two_conflicting_transactions_fails() {
    let cluster = Cluster::shared();
    run(async {
        let db = manager(&cluster.primary, 4);
        let (results, attempts) = write_skew(&db, "tx_ser_noretry", 0).await;
        assert_eq!(attempts, [1, 1], "no closure ran twice");
        let (ok, failed): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
        assert_eq!((ok.len(), failed.len()), (1, 1), "{ok:?} {failed:?}");
        let err = failed.into_iter().next().unwrap().unwrap_err();
        assert!(err.is_serialization_failure(), "{err}");
        assert_eq!(err.code(), Some("40001"));
        assert_eq!(ok.into_iter().next().unwrap().unwrap(), 1);
        assert_eq!(values(&db, "tx_ser_noretry").await, [1, 1]);
    });
}

// ---------------------------------------------------------------------------------------------
// 6. An error the closure swallowed

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "tx_swallow")]
struct Entry {
    #[model(primary_key)]
    id: i32,
    note: String,
}

fn entry(id: i32, note: &str) -> Entry {
    Entry {
        id,
        note: note.into(),
    }
}

#[test]
fn a_swallowed_statement_error_refuses_the_commit() {
    let cluster = Cluster::shared();
    run(async {
        let db = manager(&cluster.primary, 4);
        db.primary()
            .batch_execute(
                "DROP TABLE IF EXISTS tx_swallow;
                 CREATE TABLE tx_swallow (id int4 PRIMARY KEY, note text NOT NULL CHECK (note <> ''));",
            )
            .await
            .expect("schema");
        let ran = Rc::new(Cell::new(false));

        // A failed statement, its error dropped, and Ok returned.
        let hook = Rc::clone(&ran);
        let err = db
            .transaction(async |tx| {
                entry(1, "first").save(tx).await?;
                let bad = entry(2, "").save(tx).await;
                assert!(bad.is_err(), "the CHECK constraint refuses it");
                tx.on_commit(move || hook.set(true));
                Ok::<_, Error>("all good, supposedly")
            })
            .await
            .unwrap_err();
        assert!(
            !err.is_serialization_failure() && err.to_string().contains("not returned"),
            "{err}"
        );
        assert!(!ran.get(), "no hook of a transaction that did not commit");
        assert_eq!(Entry::objects().count(&*db).await.unwrap(), 0);

        // Swallowed inside a savepoint that returns Ok: its release fails, and the outer
        // transaction, which drops that error too, still cannot commit.
        let err = db
            .transaction(async |tx| {
                entry(3, "outer").save(tx).await?;
                let inner = tx
                    .transaction(async |sp| {
                        let _ = entry(4, "").save(sp).await;
                        Ok::<_, Error>(())
                    })
                    .await;
                assert!(inner.is_err(), "the savepoint cannot be released");
                Ok::<_, Error>(())
            })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not returned"), "{err}");
        assert_eq!(Entry::objects().count(&*db).await.unwrap(), 0);

        // The way to carry on after a failed statement: a savepoint that returns the error.
        db.transaction(async |tx| {
            entry(5, "kept").save(tx).await?;
            let inner = tx.transaction(async |sp| entry(6, "").save(sp).await).await;
            assert!(inner.is_err());
            entry(7, "kept too").save(tx).await?;
            Ok::<_, Error>(())
        })
        .await
        .expect("commits: the failure was rolled back to its savepoint");
        let ids: Vec<i32> = Entry::objects()
            .order_by(Entry::ID.asc())
            .values(Entry::ID)
            .all(&*db)
            .await
            .unwrap();
        assert_eq!(ids, [5, 7]);

        // A savepoint whose release failed is undone with the savepoint around it, hooks
        // included, and the transaction commits the rest.
        let hook = Rc::clone(&ran);
        db.transaction(async |tx| {
            entry(8, "kept").save(tx).await?;
            let around = tx
                .transaction(async |sp| {
                    entry(9, "undone").save(sp).await?;
                    sp.transaction(async |inner| {
                        inner.on_commit(move || hook.set(true));
                        let _ = entry(10, "").save(inner).await;
                        Ok::<_, Error>(())
                    })
                    .await?;
                    Ok::<_, Error>(())
                })
                .await;
            assert!(around.is_err(), "the inner release failed");
            Ok::<_, Error>(())
        })
        .await
        .expect("commits: the failure was rolled back to the savepoint around it");
        let ids: Vec<i32> = Entry::objects()
            .order_by(Entry::ID.asc())
            .values(Entry::ID)
            .all(&*db)
            .await
            .unwrap();
        assert_eq!(ids, [5, 7, 8]);
        assert!(!ran.get(), "the hook of the undone savepoint did not run");
    });
}
