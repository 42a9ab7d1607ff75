//! Unit tests: folding from several threads, label collapsing, sources, process metrics.

use std::collections::HashMap;
use std::sync::{Arc, Barrier};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::Method;

use super::*;

/// Renders `t` and returns its samples: `name{labels}` → value.
fn samples(t: &Telemetry) -> HashMap<String, f64> {
    let (ct, body) = render(t);
    assert_eq!(ct, CONTENT_TYPE);
    let text = String::from_utf8(body).expect("utf-8");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("a sample line");
            (series.to_owned(), value.parse().expect("a number"))
        })
        .collect()
}

fn series_of<'a>(s: &'a HashMap<String, f64>, name: &str) -> Vec<&'a str> {
    let prefix = format!("{name}{{");
    let mut v: Vec<&str> = s
        .keys()
        .filter(|k| k.starts_with(&prefix) || k.as_str() == name)
        .map(String::as_str)
        .collect();
    v.sort_unstable();
    v
}

fn telemetry() -> Arc<Telemetry> {
    Arc::new(Telemetry::new(TelemetryConfig::default()))
}

/// Runs `f` on a fresh thread with its own `ThreadTelemetry`, dropped (and so folded) at the end.
fn on_thread(t: &Arc<Telemetry>, f: impl FnOnce(&ThreadTelemetry) + Send + 'static) {
    let t = Arc::clone(t);
    std::thread::spawn(move || f(&ThreadTelemetry::new(t)))
        .join()
        .expect("thread");
}

#[test]
fn requests_recorded_on_two_threads_fold_exactly() {
    let t = telemetry();
    let route = "/users/{id}";
    let a = {
        let t = Arc::clone(&t);
        std::thread::spawn(move || {
            let tt = ThreadTelemetry::new(t);
            for _ in 0..300 {
                tt.record_request(&Method::GET, Some(route), 200, Duration::from_millis(2));
            }
            tt.fold();
            // A second fold must not count anything twice.
            tt.fold();
        })
    };
    let b = {
        let t = Arc::clone(&t);
        std::thread::spawn(move || {
            let tt = ThreadTelemetry::new(t);
            for _ in 0..200 {
                tt.record_request(&Method::GET, Some(route), 200, Duration::from_millis(30));
            }
            for _ in 0..50 {
                tt.record_request(
                    &Method::POST,
                    Some("/users"),
                    201,
                    Duration::from_micros(50),
                );
            }
            for _ in 0..7 {
                tt.record_request(&Method::GET, Some(route), 503, Duration::from_secs(20));
            }
            tt.fold();
        })
    };
    a.join().expect("thread a");
    b.join().expect("thread b");

    let s = samples(&t);
    let get = r#"method="GET",route="/users/{id}""#;
    assert_eq!(
        s[&format!("pinion_http_requests_total{{{get},status=\"200\"}}")],
        500.0
    );
    assert_eq!(
        s[&format!("pinion_http_requests_total{{{get},status=\"503\"}}")],
        7.0
    );
    assert_eq!(
        s[r#"pinion_http_requests_total{method="POST",route="/users",status="201"}"#],
        50.0
    );
    assert_eq!(series_of(&s, "pinion_http_requests_total").len(), 3);

    let h = "pinion_http_request_duration_seconds";
    let ok = format!("{get},status_class=\"2xx\"");
    assert_eq!(s[&format!("{h}_count{{{ok}}}")], 500.0);
    assert_eq!(s[&format!("{h}_bucket{{{ok},le=\"0.001\"}}")], 0.0);
    assert_eq!(s[&format!("{h}_bucket{{{ok},le=\"0.0025\"}}")], 300.0);
    assert_eq!(s[&format!("{h}_bucket{{{ok},le=\"0.025\"}}")], 300.0);
    assert_eq!(s[&format!("{h}_bucket{{{ok},le=\"0.05\"}}")], 500.0);
    assert_eq!(s[&format!("{h}_bucket{{{ok},le=\"+Inf\"}}")], 500.0);
    let sum = s[&format!("{h}_sum{{{ok}}}")];
    assert!(
        (sum - (300.0 * 0.002 + 200.0 * 0.030)).abs() < 1e-9,
        "{sum}"
    );
    // 20 s is past the last bound: only `+Inf` holds it.
    let err = format!("{get},status_class=\"5xx\"");
    assert_eq!(s[&format!("{h}_bucket{{{err},le=\"10\"}}")], 0.0);
    assert_eq!(s[&format!("{h}_bucket{{{err},le=\"+Inf\"}}")], 7.0);
    let post = r#"method="POST",route="/users",status_class="2xx""#;
    assert_eq!(s[&format!("{h}_bucket{{{post},le=\"0.0001\"}}")], 50.0);
}

#[test]
fn counts_reach_the_registry_only_when_folded() {
    let t = telemetry();
    let tt = ThreadTelemetry::new(Arc::clone(&t));
    tt.record_request(&Method::GET, Some("/"), 200, Duration::from_millis(1));
    assert!(series_of(&samples(&t), "pinion_http_requests_total").is_empty());
    tt.fold();
    let s = samples(&t);
    assert_eq!(
        s[r#"pinion_http_requests_total{method="GET",route="/",status="200"}"#],
        1.0
    );
    // Dropping folds what is left.
    tt.record_request(&Method::GET, Some("/"), 200, Duration::from_millis(1));
    drop(tt);
    let s = samples(&t);
    assert_eq!(
        s[r#"pinion_http_requests_total{method="GET",route="/",status="200"}"#],
        2.0
    );
}

#[test]
fn unmatched_paths_share_one_series() {
    let t = telemetry();
    on_thread(&t, |tt| {
        // A scanner's 1 000 different paths (`/wp-admin/{i}.php`): the router matches none,
        // so each is recorded with no route.
        for _ in 0..1000 {
            tt.record_request(&Method::GET, None, 404, Duration::from_micros(80));
        }
    });
    let s = samples(&t);
    assert_eq!(
        series_of(&s, "pinion_http_requests_total"),
        [r#"pinion_http_requests_total{method="GET",route="unmatched",status="404"}"#]
    );
    assert_eq!(
        s[r#"pinion_http_requests_total{method="GET",route="unmatched",status="404"}"#],
        1000.0
    );
}

#[test]
fn extension_methods_share_other() {
    let t = telemetry();
    on_thread(&t, |tt| {
        for m in ["PROPFIND", "BREW", "X-SCAN"] {
            let m = Method::from_bytes(m.as_bytes()).expect("token");
            tt.record_request(&m, Some("/"), 405, Duration::ZERO);
        }
    });
    let s = samples(&t);
    assert_eq!(
        s[r#"pinion_http_requests_total{method="OTHER",route="/",status="405"}"#],
        3.0
    );
}

#[test]
fn raw_paths_passed_as_routes_are_capped() {
    let t = telemetry();
    on_thread(&t, |tt| {
        for i in 0..3000 {
            tt.record_request(&Method::GET, Some(&format!("/p/{i}")), 200, Duration::ZERO);
        }
    });
    let s = samples(&t);
    let series = series_of(&s, "pinion_http_requests_total");
    assert_eq!(series.len(), 1024 + 1, "1024 routes plus unmatched");
    assert_eq!(
        s[r#"pinion_http_requests_total{method="GET",route="unmatched",status="200"}"#],
        (3000 - 1024) as f64
    );
}

#[test]
fn sources_from_two_threads_are_summed() {
    let t = telemetry();
    // A process-wide cache, reported once.
    t.add_source(|s| s.cache("pages", 10, 4));
    let folded = Arc::new(Barrier::new(3));
    let checked = Arc::new(Barrier::new(3));
    let threads: Vec<_> = (0..2)
        .map(|i| {
            let (t, folded, checked) = (Arc::clone(&t), Arc::clone(&folded), Arc::clone(&checked));
            std::thread::spawn(move || {
                let tt = ThreadTelemetry::new(t);
                // This thread's pools, and a per-thread cache.
                tt.add_local_source(move |s| {
                    s.pool("primary", 3, 1);
                    s.pool("replica", 5 + i, 0);
                    s.cache("local", 100, 1);
                });
                // Folding again replaces this thread's values, never adds to them.
                tt.fold();
                tt.fold();
                folded.wait();
                checked.wait();
            })
        })
        .collect();
    folded.wait();
    let s = samples(&t);
    assert_eq!(s[r#"pinion_pool_available{database="primary"}"#], 6.0);
    assert_eq!(s[r#"pinion_pool_waiters{database="primary"}"#], 2.0);
    assert_eq!(s[r#"pinion_pool_available{database="replica"}"#], 11.0);
    assert_eq!(s[r#"pinion_cache_hits_total{cache="local"}"#], 200.0);
    assert_eq!(s[r#"pinion_cache_misses_total{cache="local"}"#], 2.0);
    assert_eq!(s[r#"pinion_cache_hits_total{cache="pages"}"#], 10.0);
    assert_eq!(s[r#"pinion_cache_misses_total{cache="pages"}"#], 4.0);
    checked.wait();
    for th in threads {
        th.join().expect("thread");
    }
    // The threads are gone: their pools with them, their counters stay.
    let s = samples(&t);
    assert!(series_of(&s, "pinion_pool_available").is_empty(), "{s:?}");
    assert_eq!(s[r#"pinion_cache_hits_total{cache="local"}"#], 200.0);
}

#[test]
fn connections_rate_limits_and_queries() {
    let t = telemetry();
    let tt = ThreadTelemetry::new(Arc::clone(&t));
    for _ in 0..3 {
        tt.connection_opened();
    }
    tt.connection_closed();
    tt.rate_limited("login");
    tt.rate_limited("login");
    tt.rate_limited("api");
    tt.observe_query("primary", Duration::from_micros(400));
    tt.observe_query("primary", Duration::from_millis(40));
    tt.fold();
    let s = samples(&t);
    assert_eq!(s["pinion_http_connections_open"], 2.0);
    assert_eq!(s[r#"pinion_rate_limit_hits_total{policy="login"}"#], 2.0);
    assert_eq!(s[r#"pinion_rate_limit_hits_total{policy="api"}"#], 1.0);
    let q = r#"database="primary""#;
    assert_eq!(
        s[&format!("pinion_db_query_duration_seconds_count{{{q}}}")],
        2.0
    );
    assert_eq!(
        s[&format!("pinion_db_query_duration_seconds_bucket{{{q},le=\"0.0005\"}}")],
        1.0
    );
    tt.connection_closed();
    tt.connection_closed();
    tt.fold();
    assert_eq!(samples(&t)["pinion_http_connections_open"], 0.0);
}

#[test]
fn disabled_records_nothing() {
    let t = Arc::new(Telemetry::new(TelemetryConfig {
        enabled: false,
        ..TelemetryConfig::default()
    }));
    on_thread(&t, |tt| {
        tt.record_request(&Method::GET, Some("/"), 200, Duration::ZERO);
        tt.rate_limited("x");
        tt.connection_opened();
    });
    let s = samples(&t);
    assert!(series_of(&s, "pinion_http_requests_total").is_empty());
    assert!(series_of(&s, "pinion_rate_limit_hits_total").is_empty());
    assert_eq!(s["pinion_http_connections_open"], 0.0);
}

#[test]
fn process_metrics_are_present_and_plausible() {
    let s = samples(&telemetry());
    if !std::path::Path::new("/proc/self/stat").exists() {
        return; // not Linux: the process metrics are documented as absent
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64();
    let start = s["process_start_time_seconds"];
    assert!(
        start <= now + 1.0 && start > now - 7.0 * 86400.0,
        "{start} vs {now}"
    );
    assert!(s["process_cpu_seconds_total"] >= 0.0);
    let rss = s["process_resident_memory_bytes"];
    assert!(rss > 1e6 && rss < 1e11, "{rss}");
    assert!(s["process_virtual_memory_bytes"] >= rss);
    let open = s["process_open_fds"];
    assert!(open >= 3.0, "{open}");
    if let Some(max) = s.get("process_max_fds") {
        assert!(*max >= open, "{max} < {open}");
    }
}

#[test]
fn sampling_follows_the_ratio() {
    let rate = |ratio: f64| {
        let t = Arc::new(Telemetry::new(TelemetryConfig {
            sample_ratio: ratio,
            ..TelemetryConfig::default()
        }));
        let tt = ThreadTelemetry::new(t);
        (0..100_000).filter(|_| tt.should_sample()).count()
    };
    assert_eq!(rate(0.0), 0);
    assert_eq!(rate(f64::NAN), 0);
    assert_eq!(rate(1.0), 100_000);
    assert_eq!(rate(7.0), 100_000);
    let quarter = rate(0.25);
    assert!((23_500..26_500).contains(&quarter), "{quarter}");
    let default = rate(DEFAULT_SAMPLE_RATIO);
    assert!((700..1300).contains(&default), "{default}");
}

#[test]
fn a_trace_logs_through_tracing_without_a_writer() {
    let tt = ThreadTelemetry::new(telemetry());
    tt.log_trace("req-1", &Method::GET, Some("/db"), 200, &Phases::default());
}

#[test]
fn a_trace_goes_to_the_writer_with_each_phase_in_microseconds() {
    type Owned = (String, &'static str, String, u16, [u64; 6]);
    let seen: Arc<std::sync::Mutex<Vec<Owned>>> = Arc::default();
    let sink = Arc::clone(&seen);
    let t = Telemetry::new(TelemetryConfig::default()).with_trace_writer(Arc::new(
        move |r: &trace::TraceRecord<'_>| {
            let phases = [
                r.total_us,
                r.read_us,
                r.handler_us,
                r.database_us,
                r.render_us,
                r.write_us,
            ];
            let row = (
                r.request_id.to_owned(),
                r.method,
                r.route.to_owned(),
                r.status,
                phases,
            );
            sink.lock().expect("sink").push(row);
        },
    ));
    let tt = ThreadTelemetry::new(Arc::new(t));
    let phases = Phases {
        read: Duration::from_micros(12),
        handler: Duration::from_micros(300),
        database: Duration::from_micros(250),
        render: Duration::from_micros(20),
        write: Duration::from_nanos(8_999),
    };
    tt.log_trace("req-1", &Method::GET, Some("/db"), 200, &phases);
    let custom = Method::from_bytes(b"PURGE").expect("method");
    tt.log_trace("42", &custom, None, 404, &Phases::default());
    let seen = seen.lock().expect("sink");
    assert_eq!(
        *seen,
        vec![
            (
                "req-1".to_owned(),
                "GET",
                "/db".to_owned(),
                200,
                [320, 12, 300, 250, 20, 8]
            ),
            (
                "42".to_owned(),
                "OTHER",
                "unmatched".to_owned(),
                404,
                [0; 6]
            ),
        ]
    );
}

#[test]
fn the_folder_task_folds_and_stops_with_its_owner() {
    let t = telemetry();
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("runtime");
    rt.block_on({
        let t = Arc::clone(&t);
        async move {
            let tt = std::rc::Rc::new(ThreadTelemetry::new(Arc::clone(&t)));
            let folder =
                monoio::spawn(std::rc::Rc::clone(&tt).run_folder(Duration::from_millis(5)));
            tt.record_request(&Method::GET, Some("/"), 200, Duration::ZERO);
            let key = r#"pinion_http_requests_total{method="GET",route="/",status="200"}"#;
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !samples(&t).contains_key(key) {
                assert!(std::time::Instant::now() < deadline, "never folded");
                monoio::time::sleep(Duration::from_millis(5)).await;
            }
            drop(tt);
            folder.await;
        }
    });
}

#[test]
fn a_route_is_labelled_by_its_text_not_its_address() {
    // A caller that passes a reused buffer: the same address and length, another route.
    let t = telemetry();
    on_thread(&t, |tt| {
        let mut route = String::from("/a");
        for _ in 0..3 {
            tt.record_request(&Method::GET, Some(&route), 200, Duration::ZERO);
        }
        route.replace_range(.., "/b");
        for _ in 0..2 {
            tt.record_request(&Method::GET, Some(&route), 200, Duration::ZERO);
        }
    });
    let s = samples(&t);
    for (r, n) in [("/a", 3.0), ("/b", 2.0)] {
        let series =
            format!(r#"pinion_http_requests_total{{method="GET",route="{r}",status="200"}}"#);
        assert_eq!(s.get(&series), Some(&n), "{series} in {s:?}");
    }
}

#[test]
fn template_slots_follow_the_template_method_and_status() {
    let t = telemetry();
    on_thread(&t, |tt| {
        let users: std::rc::Rc<str> = "/users/{id}".into();
        let again: std::rc::Rc<str> = "/users/{id}".into(); // same text, another allocation
        let db: std::rc::Rc<str> = "/db".into();
        let calls: [(&Method, Option<&std::rc::Rc<str>>, u16); 7] = [
            (&Method::GET, Some(&users), 200),
            (&Method::GET, Some(&users), 200),
            (&Method::GET, Some(&again), 200),
            (&Method::POST, Some(&users), 200),
            (&Method::GET, Some(&users), 404),
            (&Method::GET, Some(&db), 200),
            (&Method::GET, None, 404),
        ];
        for (method, template, status) in calls {
            let slot = tt.template_slot(method, template, status).expect("enabled");
            tt.observe_requests(slot, 1, Duration::from_millis(1));
        }
    });
    let s = samples(&t);
    let total = |labels: &str| {
        s.get(&format!("pinion_http_requests_total{{{labels}}}"))
            .copied()
    };
    assert_eq!(
        total(r#"method="GET",route="/users/{id}",status="200""#),
        Some(3.0)
    );
    assert_eq!(
        total(r#"method="POST",route="/users/{id}",status="200""#),
        Some(1.0)
    );
    assert_eq!(
        total(r#"method="GET",route="/users/{id}",status="404""#),
        Some(1.0)
    );
    assert_eq!(total(r#"method="GET",route="/db",status="200""#), Some(1.0));
    assert_eq!(
        total(r#"method="GET",route="unmatched",status="404""#),
        Some(1.0)
    );
    assert_eq!(series_of(&s, "pinion_http_requests_total").len(), 5);
}
