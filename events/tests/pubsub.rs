//! Publish/subscribe across two "instances" (two `Events`, each with its own listening
//! connection and connection manager, in one test process) on a database of the test's own
//! on the private cluster: an event published through A reaches B's subscriber, a rolled-back
//! one does not; a payload past `NOTIFY`'s 8000 bytes arrives intact; after B's listening
//! connection was killed, a client reconnecting with its last id gets every event it missed,
//! in order; a subscriber that never reads does not delay the others; the table replays what
//! the log no longer has; the retention prunes.
//!
//! Every wait is for the event itself, bounded by [`WAIT`].

#[path = "../../orm/tests/common/mod.rs"]
mod common;

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use common::{eventually, run, Cluster};
use futures_util::StreamExt;
use pinion_events::{publish, Events, EventsConfig, Subscription, RESYNC_EVENT};
use pinion_orm::listener::{listen_all, Listener};
use pinion_orm::{ConnectOptions, ConnectionManager, DbConfig};

/// How long any awaited event may take.
const WAIT: Duration = Duration::from_secs(20);

/// One instance: its events, its listening connection and its connection manager.
struct Instance {
    events: Arc<Events>,
    _listener: Listener,
    db: Rc<ConnectionManager>,
}

fn instance(url: &str, listen_url: &str, config: EventsConfig) -> Instance {
    let events = Events::new(config);
    let opts = ConnectOptions {
        connect_timeout: Duration::from_secs(3),
        ..ConnectOptions::default()
    };
    let listener = listen_all(listen_url, opts, vec![events.subscriber()]).expect("listener");
    let mut cfg = DbConfig::new(url.to_string(), vec![]);
    cfg.connect.connect_timeout = Duration::from_secs(3);
    Instance {
        events,
        _listener: listener,
        db: ConnectionManager::start(&cfg).expect("db"),
    }
}

/// A database of the test's own with the events table, dropped at the end.
struct Fresh {
    cluster: Cluster,
    url: String,
}

impl Drop for Fresh {
    fn drop(&mut self) {
        self.cluster.drop_database(&self.url);
    }
}

fn fresh(prefix: &str) -> Fresh {
    let cluster = Cluster::shared();
    let url = cluster.fresh_database(prefix);
    let migration = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/0005_events.sql"),
    )
    .expect("the events migration");
    run(async {
        common::primary_only(&url)
            .primary()
            .batch_execute(&migration)
            .await
            .expect("migration");
    });
    Fresh { cluster, url }
}

async fn wait_for(what: &str, check: impl AsyncFnMut() -> bool) {
    assert!(
        eventually(WAIT, check).await,
        "timed out waiting for {what}"
    );
}

/// The next chunk of `sub` as text, within [`WAIT`].
async fn next(sub: &mut Subscription) -> Option<String> {
    monoio::time::timeout(WAIT, sub.next())
        .await
        .expect("an event within the wait")
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn event(id: i64, name: &str, data: &str) -> String {
    let mut s = format!("event: {name}\nid: {id}\n");
    for line in data.split('\n') {
        s.push_str("data:");
        if !line.is_empty() {
            s.push(' ');
            s.push_str(line);
        }
        s.push('\n');
    }
    s.push('\n');
    s
}

#[test]
fn an_event_published_through_one_instance_reaches_the_other_and_a_rolled_back_one_does_not() {
    let fresh = fresh("ev_across");
    run(async {
        let a = instance(&fresh.url, &fresh.url, EventsConfig::default());
        let b = instance(&fresh.url, &fresh.url, EventsConfig::default());
        wait_for("both listening", async || {
            a.events.is_listening() && b.events.is_listening()
        })
        .await;
        let live = b.events.join();
        let mut sub = live
            .subscribe(&b.db, "orders-1", None)
            .await
            .expect("subscribe");
        let mut other = live
            .subscribe(&b.db, "orders-2", None)
            .await
            .expect("subscribe");

        // Rolled back: never delivered. Committed: delivered, in commit order.
        let rolled_back =
            a.db.transaction(async |tx| -> Result<(), pinion_orm::Error> {
                publish(tx, "orders-1", "order", "never").await?;
                Err(tx
                    .execute("SELECT 1/0", &[])
                    .await
                    .expect_err("division by zero"))
            })
            .await;
        assert!(rolled_back.is_err());
        let in_tx =
            a.db.transaction(async |tx| -> Result<i64, pinion_orm::Error> {
                publish(tx, "orders-1", "order", "<tr><td>#1</td></tr>").await
            })
            .await
            .expect("committed");
        let plain = publish(&a.db, "orders-1", "order", "two\nlines")
            .await
            .expect("publish");
        assert!(plain > in_tx);
        assert_eq!(
            next(&mut sub).await.as_deref(),
            Some(event(in_tx, "order", "<tr><td>#1</td></tr>").as_str())
        );
        assert_eq!(
            next(&mut sub).await.as_deref(),
            Some(event(plain, "order", "two\nlines").as_str())
        );
        // The other channel got nothing of it: its first event is its own.
        let own = publish(&a.db, "orders-2", "order", "mine")
            .await
            .expect("publish");
        assert_eq!(
            next(&mut other).await.as_deref(),
            Some(event(own, "order", "mine").as_str())
        );
        let stats = b.events.stats();
        assert_eq!(stats.received, 3, "{stats:?}");
        assert_eq!(stats.delivered, 3, "{stats:?}");
    });
}

#[test]
fn a_payload_larger_than_notify_allows_arrives_intact() {
    let fresh = fresh("ev_large");
    run(async {
        let a = instance(&fresh.url, &fresh.url, EventsConfig::default());
        let b = instance(&fresh.url, &fresh.url, EventsConfig::default());
        wait_for("both listening", async || {
            a.events.is_listening() && b.events.is_listening()
        })
        .await;
        let live = b.events.join();
        let mut sub = live.subscribe(&b.db, "big", None).await.expect("subscribe");
        // 100 000 bytes, multi-byte characters and line breaks included.
        let data: String = (0..10_000)
            .map(|i| {
                if i % 100 == 99 {
                    "é€\n".to_string()
                } else {
                    format!("{:07}", i)
                }
            })
            .collect::<String>()
            .chars()
            .take(70_000)
            .collect();
        assert!(data.len() > 8000);
        let id = publish(&a.db, "big", "page", &data).await.expect("publish");
        let small = publish(&a.db, "big", "page", "small")
            .await
            .expect("publish");
        let got = next(&mut sub).await.expect("the large event");
        // Not assert_eq: a failure would print 140 000 bytes twice.
        assert!(
            got == event(id, "page", &data),
            "{} bytes, not the event",
            got.len()
        );
        assert_eq!(next(&mut sub).await, Some(event(small, "page", "small")));
    });
}

/// `url` with the superuser instead of role `pinion` (trusted over loopback on the
/// `scripts/pg` clusters): roles, and terminating another role's backend, need it.
fn as_superuser(url: &str) -> String {
    let (_, host_and_db) = url.split_once('@').expect("user@host in the URL");
    format!("postgres://postgres@{host_and_db}")
}

#[test]
fn after_the_listening_connection_is_killed_a_reconnecting_client_gets_every_event_it_missed_in_order(
) {
    let fresh = fresh("ev_outage");
    if !fresh.url.contains("127.0.0.1") {
        // The developer's own DATABASE_URL: no trusted superuser to make roles with.
        return;
    }
    let db_name = fresh
        .url
        .rsplit_once('/')
        .expect("a database")
        .1
        .to_string();
    let admin_url = format!(
        "{}/postgres",
        as_superuser(&fresh.url).rsplit_once('/').expect("db").0
    );
    // B's listener logs in as a role of its own, refused logins during the outage: the
    // listener redials at once, so without that the outage would last a few milliseconds.
    let role = format!("ev_listener_{}", std::process::id());
    let (_, host_and_db) = fresh.url.split_once('@').expect("user@host");
    let listen_url = format!("postgres://{role}@{host_and_db}?application_name=ev_b_listener");
    run(async {
        let admin = common::primary_only(&admin_url);
        admin
            .primary()
            .batch_execute(&format!(
                "DO $$ BEGIN CREATE ROLE {role} LOGIN; \
                 EXCEPTION WHEN duplicate_object THEN NULL; END $$; ALTER ROLE {role} LOGIN;"
            ))
            .await
            .expect("role");
        let a = instance(&fresh.url, &fresh.url, EventsConfig::default());
        a.db.primary()
            .batch_execute(&format!("GRANT SELECT ON pinion_events TO {role}"))
            .await
            .expect("grant");
        let b = instance(&fresh.url, &listen_url, EventsConfig::default());
        wait_for("both listening", async || {
            a.events.is_listening() && b.events.is_listening()
        })
        .await;
        let live = b.events.join();
        let mut first = live
            .subscribe(&b.db, "job-7", None)
            .await
            .expect("subscribe");
        let e1 = publish(&a.db, "job-7", "progress", "1")
            .await
            .expect("publish");
        assert_eq!(next(&mut first).await, Some(event(e1, "progress", "1")));
        // A client that stays connected through the outage.
        let mut stays = live
            .subscribe(&b.db, "job-7", Some(e1))
            .await
            .expect("subscribe");

        admin
            .primary()
            .batch_execute(&format!("ALTER ROLE {role} NOLOGIN"))
            .await
            .expect("NOLOGIN");
        let killed = admin
            .primary()
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = 'ev_b_listener' AND datname = $1",
                &[&db_name],
            )
            .await
            .expect("pg_terminate_backend");
        assert_eq!(killed.len(), 1, "B's listening connection was found");
        wait_for("B to notice its listener is gone", async || {
            !b.events.is_listening()
        })
        .await;
        // The client leaves; meanwhile A publishes what B cannot hear.
        drop(first);
        let mut missed = Vec::new();
        for i in 2..=5 {
            let data = i.to_string();
            missed.push((
                publish(&a.db, "job-7", "progress", &data)
                    .await
                    .expect("publish"),
                data,
            ));
        }
        // A reconnection while B is still deaf: the log has nothing after e1 yet; what it
        // missed arrives once the listener caught up.
        let mut early = live
            .subscribe(&b.db, "job-7", Some(e1))
            .await
            .expect("subscribe");
        admin
            .primary()
            .batch_execute(&format!("ALTER ROLE {role} LOGIN"))
            .await
            .expect("LOGIN");
        wait_for("B's listener back", async || b.events.is_listening()).await;
        // A reconnection after: replayed from the log.
        let mut late = live
            .subscribe(&b.db, "job-7", Some(e1))
            .await
            .expect("subscribe");
        for sub in [&mut stays, &mut early, &mut late] {
            for (id, data) in &missed {
                assert_eq!(next(sub).await, Some(event(*id, "progress", data)));
            }
        }
        // And one that reconnects to another instance, whose log never had e1: from the table.
        let c = instance(&fresh.url, &fresh.url, EventsConfig::default());
        wait_for("C listening", async || c.events.is_listening()).await;
        let c_live = c.events.join();
        let mut elsewhere = c_live
            .subscribe(&c.db, "job-7", Some(e1))
            .await
            .expect("subscribe");
        for (id, data) in &missed {
            assert_eq!(
                next(&mut elsewhere).await,
                Some(event(*id, "progress", data))
            );
        }
        let after = publish(&a.db, "job-7", "progress", "6")
            .await
            .expect("publish");
        assert_eq!(
            next(&mut elsewhere).await,
            Some(event(after, "progress", "6"))
        );
        drop((a, b, c));
        let _ = admin
            .primary()
            .batch_execute(&format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'; \
                 DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"
            ))
            .await;
        let _ = admin
            .primary()
            .batch_execute(&format!("DROP ROLE IF EXISTS {role}"))
            .await;
    });
}

#[test]
fn a_subscriber_that_never_reads_does_not_delay_the_others() {
    let fresh = fresh("ev_slow");
    run(async {
        // Queues of 4, a log of 8: a subscriber whose queue is full catches up from the log,
        // and one that falls further behind than the log reaches is cut off.
        let config = EventsConfig {
            subscriber_queue: 4,
            log_capacity: 8,
            ..EventsConfig::default()
        };
        let a = instance(&fresh.url, &fresh.url, config.clone());
        let b = instance(&fresh.url, &fresh.url, config);
        wait_for("both listening", async || {
            a.events.is_listening() && b.events.is_listening()
        })
        .await;
        let live = b.events.join();
        let mut slow = live
            .subscribe(&b.db, "ticker", None)
            .await
            .expect("subscribe");
        let mut readers = Vec::new();
        for _ in 0..3 {
            readers.push(
                live.subscribe(&b.db, "ticker", None)
                    .await
                    .expect("subscribe"),
            );
        }
        let mut ids = Vec::new();
        for i in 0..20 {
            let id = publish(&a.db, "ticker", "tick", &i.to_string())
                .await
                .expect("publish");
            ids.push(id);
            // The readers keep up: each gets every event as it comes.
            for r in &mut readers {
                assert_eq!(next(r).await, Some(event(id, "tick", &i.to_string())));
            }
        }
        let stats = b.events.stats();
        assert_eq!(stats.cut_off, 1, "{stats:?}");
        // The slow one reads at last: what its queue held, a resync, the end.
        for (i, id) in ids.iter().take(4).enumerate() {
            assert_eq!(
                next(&mut slow).await,
                Some(event(*id, "tick", &i.to_string()))
            );
        }
        assert_eq!(
            next(&mut slow).await,
            Some(format!("event: {RESYNC_EVENT}\ndata:\n\n"))
        );
        assert_eq!(next(&mut slow).await, None);
        // Its reconnection from the last id it got replays the rest.
        let mut again = live
            .subscribe(&b.db, "ticker", Some(ids[3]))
            .await
            .expect("subscribe");
        for (i, id) in ids.iter().enumerate().skip(4) {
            assert_eq!(
                next(&mut again).await,
                Some(event(*id, "tick", &i.to_string()))
            );
        }
    });
}

#[test]
fn the_retention_keeps_the_latest_rows_and_a_long_replay_comes_in_pages() {
    let fresh = fresh("ev_retention");
    run(async {
        let config = EventsConfig {
            retention_rows: 5,
            replay_limit: 3,
            ..EventsConfig::default()
        };
        let a = instance(&fresh.url, &fresh.url, config.clone());
        let mut ids = Vec::new();
        for i in 0..8 {
            ids.push(
                publish(&a.db, "c", "e", &i.to_string())
                    .await
                    .expect("publish"),
            );
        }
        assert_eq!(
            pinion_events::prune(&a.db, &config).await.expect("prune"),
            3
        );
        // A fresh instance's log is empty: the replay comes from the table, three at a time,
        // each page ending with a resync.
        let c = instance(&fresh.url, &fresh.url, config);
        wait_for("C listening", async || c.events.is_listening()).await;
        let live = c.events.join();
        let mut page = live
            .subscribe(&c.db, "c", Some(ids[2]))
            .await
            .expect("subscribe");
        for (i, id) in ids.iter().enumerate().skip(3).take(3) {
            assert_eq!(next(&mut page).await, Some(event(*id, "e", &i.to_string())));
        }
        assert_eq!(
            next(&mut page).await,
            Some(format!("event: {RESYNC_EVENT}\ndata:\n\n"))
        );
        assert_eq!(next(&mut page).await, None);
        let mut rest = live
            .subscribe(&c.db, "c", Some(ids[5]))
            .await
            .expect("subscribe");
        for (i, id) in ids.iter().enumerate().skip(6) {
            assert_eq!(next(&mut rest).await, Some(event(*id, "e", &i.to_string())));
        }
    });
}

#[test]
fn a_burst_larger_than_the_queues_cuts_nobody_off() {
    let fresh = fresh("ev_burst");
    run(async {
        let config = EventsConfig {
            subscriber_queue: 4,
            ..EventsConfig::default()
        };
        let a = instance(&fresh.url, &fresh.url, config.clone());
        let b = instance(&fresh.url, &fresh.url, config);
        wait_for("both listening", async || {
            a.events.is_listening() && b.events.is_listening()
        })
        .await;
        let live = b.events.join();
        let mut readers = Vec::new();
        for _ in 0..3 {
            readers.push(
                live.subscribe(&b.db, "burst", None)
                    .await
                    .expect("subscribe"),
            );
        }
        // Twenty events in one transaction: one commit, notified together, handed to the
        // worker in one batch before any reader could take one.
        let ids =
            a.db.transaction(async |tx| -> Result<Vec<i64>, pinion_orm::Error> {
                let mut ids = Vec::new();
                for i in 0..20 {
                    ids.push(publish(tx, "burst", "tick", &i.to_string()).await?);
                }
                Ok(ids)
            })
            .await
            .expect("committed");
        for r in &mut readers {
            for (i, id) in ids.iter().enumerate() {
                assert_eq!(next(r).await, Some(event(*id, "tick", &i.to_string())));
            }
        }
        let stats = b.events.stats();
        assert_eq!(stats.cut_off, 0, "{stats:?}");
        assert_eq!(stats.delivered, 60, "{stats:?}");
    });
}
