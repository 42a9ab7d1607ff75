//! Signals against a real PostgreSQL: `pre_save` changing what is written, `post_save` told
//! whether it inserted, the delete signals around an instance's `delete`, and query-set writes
//! sending none.
//!
//! Signals are registered for the whole process, per model type: each test has models (and
//! tables, `sig_…`) of its own, which no other test uses.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use common::{run, Cluster};
use pinion_orm::{signals, Error, Model};

/// Takes what `events` recorded so far.
fn take(events: &Mutex<Vec<String>>) -> Vec<String> {
    std::mem::take(&mut *events.lock().expect("events"))
}

// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "sig_article")]
struct Article {
    #[model(primary_key, auto)]
    id: i32,
    title: String,
    slug: String,
    revision: i32,
}

static ARTICLE_EVENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[test]
fn pre_save_changes_what_is_written_and_post_save_says_whether_it_inserted() {
    let cluster = Cluster::shared();
    signals::pre_save::<Article>(|a| {
        ARTICLE_EVENTS
            .lock()
            .unwrap()
            .push(format!("pre_save id={} slug={:?}", a.id, a.slug));
        a.slug = a.title.to_lowercase().replace(' ', "-");
        a.revision += 1;
    });
    signals::post_save::<Article>(|a, created| {
        ARTICLE_EVENTS.lock().unwrap().push(format!(
            "post_save id={} slug={} revision={} created={created}",
            a.id, a.slug, a.revision
        ));
    });
    run(async {
        let db = common::primary_only(&cluster.primary);
        db.primary()
            .batch_execute(
                "DROP TABLE IF EXISTS sig_article;
                 CREATE TABLE sig_article (id serial PRIMARY KEY, title text NOT NULL,
                     slug text NOT NULL UNIQUE, revision int4 NOT NULL);",
            )
            .await
            .expect("schema");
        let stored = async |id: i32| {
            Article::objects()
                .filter(Article::ID.eq(id))
                .get(&*db)
                .await
                .expect("stored")
        };

        // Insert: pre_save's changes are written, post_save sees the key and created=true.
        let mut a = Article {
            id: 0,
            title: "Hello World".into(),
            slug: String::new(),
            revision: 0,
        };
        assert!(a.save(&*db).await.unwrap().created);
        assert!(a.id > 0);
        assert_eq!((a.slug.as_str(), a.revision), ("hello-world", 1));
        assert_eq!(stored(a.id).await, a, "the row holds what pre_save set");
        assert_eq!(
            take(&ARTICLE_EVENTS),
            [
                r#"pre_save id=0 slug="""#.to_string(),
                format!(
                    "post_save id={} slug=hello-world revision=1 created=true",
                    a.id
                ),
            ]
        );

        // Update: created=false.
        a.title = "Hello Again".into();
        assert!(!a.save(&*db).await.unwrap().created);
        let row = stored(a.id).await;
        assert_eq!((row.slug.as_str(), row.revision), ("hello-again", 2));
        assert_eq!(
            take(&ARTICLE_EVENTS),
            [
                format!("pre_save id={} slug=\"hello-world\"", a.id),
                format!(
                    "post_save id={} slug=hello-again revision=2 created=false",
                    a.id
                ),
            ]
        );

        // A save the database refuses (pre_save makes a duplicate slug): no post_save.
        let mut twin = Article {
            id: 0,
            title: "hello again".into(),
            slug: String::new(),
            revision: 0,
        };
        let err = twin.save(&*db).await.unwrap_err();
        assert!(err.is_unique_violation(), "{err}");
        assert_eq!(take(&ARTICLE_EVENTS), [r#"pre_save id=0 slug="""#]);

        // In a transaction the signals run inside it, before the commit.
        let mut b = Article {
            id: 0,
            title: "In A Transaction".into(),
            slug: String::new(),
            revision: 0,
        };
        let during = db
            .transaction(async |tx| {
                b.save(tx).await?;
                Ok::<_, Error>(take(&ARTICLE_EVENTS).len())
            })
            .await
            .expect("committed");
        assert_eq!(
            during, 2,
            "pre_save and post_save ran inside the transaction"
        );
        assert_eq!(stored(b.id).await.slug, "in-a-transaction");
        assert_eq!(Article::objects().count(&*db).await.unwrap(), 2);
    });
}

// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "sig_tag")]
struct Tag {
    #[model(primary_key)]
    name: String,
    uses: i32,
}

static TAG_EVENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[test]
fn delete_signals_run_around_an_instance_delete() {
    let cluster = Cluster::shared();
    signals::pre_delete::<Tag>(|t| {
        TAG_EVENTS
            .lock()
            .unwrap()
            .push(format!("pre_delete {}", t.name));
    });
    signals::post_delete::<Tag>(|t| {
        TAG_EVENTS
            .lock()
            .unwrap()
            .push(format!("post_delete {}", t.name));
    });
    run(async {
        let db = common::primary_only(&cluster.primary);
        db.primary()
            .batch_execute(
                "DROP TABLE IF EXISTS sig_tag;
                 CREATE TABLE sig_tag (name text PRIMARY KEY, uses int4 NOT NULL);
                 INSERT INTO sig_tag VALUES ('rust', 3), ('go', 1);",
            )
            .await
            .expect("schema");
        let rust = Tag {
            name: "rust".into(),
            uses: 3,
        };

        assert!(rust.delete(&*db).await.unwrap(), "a row was deleted");
        assert_eq!(take(&TAG_EVENTS), ["pre_delete rust", "post_delete rust"]);
        let left: Vec<String> = Tag::objects().values(Tag::NAME).all(&*db).await.unwrap();
        assert_eq!(left, ["go"]);

        // No row: pre_delete runs, post_delete does not.
        assert!(!rust.delete(&*db).await.unwrap(), "nothing left to delete");
        assert_eq!(take(&TAG_EVENTS), ["pre_delete rust"]);

        // Inside a transaction too.
        let go = Tag {
            name: "go".into(),
            uses: 1,
        };
        db.transaction(async |tx| {
            assert!(go.delete(tx).await?);
            Ok::<_, Error>(())
        })
        .await
        .expect("committed");
        assert_eq!(take(&TAG_EVENTS), ["pre_delete go", "post_delete go"]);
        assert_eq!(Tag::objects().count(&*db).await.unwrap(), 0);
    });
}

// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Model)]
#[model(table = "sig_bulk")]
struct Reading {
    #[model(primary_key, auto)]
    id: i64,
    sensor: String,
    value: i32,
}

static READING_SIGNALS: AtomicUsize = AtomicUsize::new(0);

fn reading(sensor: &str, value: i32) -> Reading {
    Reading {
        id: 0,
        sensor: sensor.into(),
        value,
    }
}

#[test]
fn query_set_writes_send_no_signals() {
    let cluster = Cluster::shared();
    let count = || READING_SIGNALS.fetch_add(1, Ordering::SeqCst);
    signals::pre_save::<Reading>(move |_| {
        count();
    });
    signals::post_save::<Reading>(move |_, _| {
        count();
    });
    signals::pre_delete::<Reading>(move |_| {
        count();
    });
    signals::post_delete::<Reading>(move |_| {
        count();
    });
    let sent = || READING_SIGNALS.load(Ordering::SeqCst);
    run(async {
        let db = common::primary_only(&cluster.primary);
        db.primary()
            .batch_execute(
                "DROP TABLE IF EXISTS sig_bulk;
                 CREATE TABLE sig_bulk (id bigserial PRIMARY KEY, sensor text NOT NULL, value int4 NOT NULL);",
            )
            .await
            .expect("schema");

        let mut rows = vec![reading("a", 1), reading("b", 2), reading("c", 3)];
        let n = Reading::objects()
            .bulk_create(&mut rows, &*db)
            .await
            .unwrap();
        assert_eq!(n, 3);
        rows[0].value = 10;
        let n = Reading::objects()
            .bulk_update(&rows, &[&Reading::VALUE], &*db)
            .await
            .unwrap();
        assert_eq!(n, 3);
        let n = Reading::objects()
            .filter(Reading::SENSOR.eq("b"))
            .update([Reading::VALUE.set(20)], &*db)
            .await
            .unwrap();
        assert_eq!(n, 1);
        let n = Reading::objects()
            .filter(Reading::SENSOR.eq("c"))
            .delete(&*db)
            .await
            .unwrap();
        assert_eq!(n, 1);
        assert_eq!(
            sent(),
            0,
            "no signal from bulk_create, bulk_update, update, delete"
        );
        let values: Vec<i32> = Reading::objects()
            .order_by(Reading::ID.asc())
            .values(Reading::VALUE)
            .all(&*db)
            .await
            .unwrap();
        assert_eq!(values, [10, 20], "the writes were made");

        // The hooks are there: an instance's save and delete send them.
        let mut one = reading("d", 4);
        one.save(&*db).await.unwrap();
        assert_eq!(sent(), 2);
        assert!(one.delete(&*db).await.unwrap());
        assert_eq!(sent(), 4);
    });
}
