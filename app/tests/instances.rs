//! Three `pinion serve` instances on one PostgreSQL, deployed as README's "Horizontal" section
//! says (the same `secret_key`, `rate_limit_store = "postgres"`, loopback as the trusted
//! proxy), against the real binary, the private cluster and, for the last test, a real nginx
//! in front of all three:
//!
//! - a session made through one instance is valid on the others, and a logout through one
//!   ends it on all of them, including the instance that held it in its L1;
//! - the `login` limit (5 a minute per client) is counted once across the instances, not once
//!   per instance;
//! - a write through one instance reaches the query caches of the others;
//! - one instance killed (SIGKILL) under GET load through nginx costs no failed request.
//!
//! Whatever is asynchronous across instances (the `NOTIFY` that invalidates an L1 or a query
//! cache) is awaited with a bounded poll that fails saying what it waited for. The tests run
//! one at a time: twelve instances and a load generator at once would starve a small machine.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::nginx::{free_port, main_conf, temp_dir, Nginx};
use common::site::{random, Browser, Resp};
use common::{counter, database_env, metrics, repo, request, serve, wait_for, Served};

/// The key every instance signs and encrypts its cookies with (at least 32 bytes).
const SECRET_KEY: &str = "instances-test-secret-key-shared-by-all-three-of-them";

/// How long a change made through one instance may take to reach the others (a `NOTIFY`
/// through the primary, then the listener's bump).
const PROPAGATION: Duration = Duration::from_secs(5);

/// The built-in `login` policy (app/src/middleware.rs): five attempts, one more every 12 s.
const LOGIN_QUOTA: usize = 5;
const LOGIN_EMISSION_INTERVAL: Duration = Duration::from_secs(12);

/// One test at a time.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Three instances on the private cluster, configured as one deployment.
fn three_instances() -> [Served; 3] {
    let mut env = database_env();
    env.extend(
        [
            ("PINION_SECRET_KEY", SECRET_KEY),
            ("PINION_RATE_LIMIT_STORE", "postgres"),
            ("PINION_TRUSTED_PROXIES", "127.0.0.1/32"),
            // `/metrics` at most 100 ms behind, for the counts the tests wait on.
            ("PINION_TELEMETRY_DRAIN_INTERVAL", "100ms"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let instances = [serve(env.clone()), serve(env.clone()), serve(env.clone())];
    for served in &instances {
        wait_for(
            &format!("{} to be ready with its query cache in sync", served.addr),
            Duration::from_secs(10),
            || {
                let (status, _, body) = request(
                    served.addr,
                    "GET /health/ready HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                );
                let text = metrics(served.addr);
                (status == 200 && counter(&text, "pinion_query_cache_in_sync", &[]) == 1)
                    .then_some(())
                    .ok_or(format!("{status} {body}"))
            },
        );
    }
    instances
}

#[test]
fn a_session_made_through_one_instance_is_valid_on_the_others_and_a_logout_ends_it_everywhere() {
    let _one = one_at_a_time();
    let [a, b, c] = three_instances();
    let mut owner = Browser::new();
    let email = owner.sign_up(a.addr);

    // The account's password, typed into the login form of instance 1 by a browser of its own.
    let mut user = Browser::new();
    user.get(a.addr, "/login");
    let login = user.post(
        a.addr,
        "/login",
        &[
            ("email", &email),
            ("password", "correct horse"),
            ("next", "/orders"),
        ],
    );
    assert_eq!(
        (login.status, login.header("location")),
        (303, Some("/orders")),
        "{login:?}"
    );
    // Something only this user's pages show: an order placed through instance 1.
    let product = user.create_product(a.addr, &format!("Instances cog {:x}", random()), "1.00");
    user.get(a.addr, &product);
    let placed = user.post(a.addr, &format!("{product}/order"), &[("quantity", "1")]);
    assert_eq!(placed.status, 303, "order through instance 1: {placed:?}");
    let order = placed.header("location").expect("the order").to_string();
    let link = format!(r#"href="{order}""#);

    // The cookie made by instance 1 is this user's session on 2 and 3.
    for (n, served) in [(2, &b), (3, &c)] {
        let page = user.get(served.addr, "/orders");
        assert_eq!(page.status, 200, "/orders through instance {n}: {page:?}");
        assert!(
            page.body.contains(&link) && page.body.contains("Log out"),
            "instance {n} shows the user's own orders, signed in: {page:?}"
        );
    }
    // Instance 1 holds the session in its L1: it wrote it (a write keeps the record there) and
    // reads it again here.
    let sessions = r#"cache="sessions""#;
    let hits = counter(&metrics(a.addr), "pinion_cache_hits_total", &[sessions]);
    let own = user.get(a.addr, "/orders");
    assert!(own.status == 200 && own.body.contains(&link), "{own:?}");
    let now = counter(&metrics(a.addr), "pinion_cache_hits_total", &[sessions]);
    assert!(
        now > hits,
        "the session came from instance 1's L1: hits {hits} → {now}"
    );

    // The cookie as it was before the logout: what another tab, or a thief, still holds.
    let kept = user.clone();
    let out = user.post(b.addr, "/logout", &[]);
    assert_eq!(out.status, 303, "logout through instance 2: {out:?}");
    // The browser's cookie is replaced (a new anonymous session carries the flash message).
    let session = |b: &Browser| {
        b.cookies
            .iter()
            .find(|(n, _)| n == "pinion_session")
            .map(|(_, v)| v.clone())
    };
    assert!(session(&kept).is_some(), "{:?}", kept.cookies);
    assert_ne!(
        session(&user),
        session(&kept),
        "the logout replaces the cookie: {:?}",
        out.headers
    );

    let refused =
        |resp: &Resp| resp.status == 303 && resp.header("location") == Some("/login?next=/orders");
    // The instance that ended it refuses it at once.
    let now = kept.clone().get(b.addr, "/orders");
    assert!(refused(&now), "instance 2 after its own logout: {now:?}");
    for (n, served) in [(1, &a), (3, &c)] {
        let (_, took) = wait_for(
            &format!("instance {n} to refuse the session logged out through instance 2"),
            PROPAGATION,
            || {
                let resp = kept.clone().get(served.addr, "/orders");
                if refused(&resp) {
                    Ok(())
                } else {
                    Err(format!("{resp:?}"))
                }
            },
        );
        eprintln!("instance {n} refused the ended session after {took:?}");
    }
    // And it stays refused: no instance brings it back from a cache.
    for (n, served) in [(1, &a), (2, &b), (3, &c)] {
        let again = kept.clone().get(served.addr, &order);
        assert_eq!(
            (again.status, again.header("location")),
            (303, Some(format!("/login?next={order}").as_str())),
            "instance {n}, the order page with the ended session: {again:?}"
        );
    }
}

#[test]
fn a_rate_limit_is_enforced_once_across_all_instances() {
    let _one = one_at_a_time();
    let instances = three_instances();
    let mut attacker = Browser::new();
    attacker.get(instances[0].addr, "/login");
    let wrong = [
        ("email", "nobody-instances@demo.test"),
        ("password", "not the password"),
    ];
    let started = Instant::now();
    // Round robin, as a balancer would spread them: 1, 2, 3, 1, 2 …
    let mut answers = Vec::new();
    for i in 0..LOGIN_QUOTA + 3 {
        let n = i % 3;
        let resp = attacker.post(instances[n].addr, "/login", &wrong);
        answers.push((n + 1, resp));
    }
    let took = started.elapsed();
    eprintln!("{} login attempts took {took:?}", answers.len());
    assert!(
        took < LOGIN_EMISSION_INTERVAL,
        "the attempts took {took:?}, longer than the policy's emission interval \
         ({LOGIN_EMISSION_INTERVAL:?}): a new attempt was allowed meanwhile, so the count \
         cannot be read"
    );
    let statuses: Vec<(usize, u16)> = answers.iter().map(|(n, r)| (*n, r.status)).collect();
    for (n, resp) in &answers[..LOGIN_QUOTA] {
        assert!(
            resp.status == 401 && resp.body.contains("do not match an account"),
            "an attempt within the quota, through instance {n}, is the normal failure: \
             {resp:?}; all (instance, status): {statuses:?}"
        );
    }
    // The sixth, whatever instance it reaches, and every one after: the limit was counted
    // once for the three (per instance, the sixth would be only the second on its instance).
    for (n, resp) in &answers[LOGIN_QUOTA..] {
        assert_eq!(
            resp.status, 429,
            "an attempt past the quota, through instance {n}: {resp:?}; all (instance, \
             status): {statuses:?}"
        );
        let retry: u64 = resp
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("a Retry-After in seconds: {:?}", resp.headers));
        assert!(
            (1..=LOGIN_EMISSION_INTERVAL.as_secs()).contains(&retry),
            "{retry}"
        );
    }
    // What an operator sees: each instance counted the refusals it made, one each.
    for (n, served) in instances.iter().enumerate() {
        wait_for(
            &format!(
                "instance {}'s /metrics to count its one refused login",
                n + 1
            ),
            PROPAGATION,
            || {
                let refused = counter(
                    &metrics(served.addr),
                    "pinion_rate_limit_hits_total",
                    &["policy=\"login\""],
                );
                if refused == 1 {
                    Ok(())
                } else {
                    Err(format!(
                        "pinion_rate_limit_hits_total{{policy=\"login\"}} {refused}"
                    ))
                }
            },
        );
    }
    // Another client is not held back by this one.
    let mut other = Browser::new();
    other.get(instances[2].addr, "/login");
    let theirs = other.post(instances[2].addr, "/login", &wrong);
    assert_eq!(theirs.status, 401, "another client: {theirs:?}");
}

#[test]
fn a_write_through_one_instance_is_seen_by_cached_reads_through_the_others() {
    let _one = one_at_a_time();
    let [a, b, c] = three_instances();
    let mut writer = Browser::new();
    writer.sign_up(a.addr);
    let name = format!("Instances wheel {:x}", random());
    let product = writer.create_product(a.addr, &name, "3.00");

    // Readers signed in (a session's pages are never served from the store of whole public
    // pages), without the writer's sticky cookie: their reads go through the query cache.
    let mut readers = [(2, &b, Browser::new()), (3, &c, Browser::new())];
    for (n, served, reader) in &mut readers {
        reader.sign_up(served.addr);
        let first = reader.get(served.addr, &product);
        assert!(
            first.status == 200 && first.body.contains("<dd>3.00</dd>"),
            "instance {n}: {first:?}"
        );
        let hits = counter(&metrics(served.addr), "pinion_query_cache_hits_total", &[]);
        let second = reader.get(served.addr, &product);
        assert!(
            second.status == 200 && second.body.contains("<dd>3.00</dd>"),
            "instance {n}: {second:?}"
        );
        wait_for(
            &format!("instance {n}'s second read to count as a query-cache hit"),
            PROPAGATION,
            || {
                let now = counter(&metrics(served.addr), "pinion_query_cache_hits_total", &[]);
                if now > hits {
                    Ok(())
                } else {
                    Err(format!(
                        "pinion_query_cache_hits_total {now}, before {hits}"
                    ))
                }
            },
        );
    }

    writer.get(a.addr, &format!("{product}/edit"));
    let saved = writer.post(
        a.addr,
        &product,
        &[
            ("name", &name),
            ("description", "made by app/tests/instances.rs"),
            ("price", "4.25"),
            ("stock", "7"),
        ],
    );
    assert_eq!(
        saved.status, 303,
        "the update through instance 1: {saved:?}"
    );

    for (n, served, reader) in &mut readers {
        let (_, took) = wait_for(
            &format!("instance {n} to show the price written through instance 1"),
            PROPAGATION,
            || {
                let page = reader.get(served.addr, &product);
                if page.status == 200 && page.body.contains("<dd>4.25</dd>") {
                    Ok(())
                } else {
                    Err(format!("{page:?}"))
                }
            },
        );
        eprintln!("instance {n} showed the new price after {took:?}");
    }
}

/// The Lua script that counts wrk's answers by status (`status <code> <count>` lines when the
/// load ends).
fn status_script() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("instances-statuses.lua");
    std::fs::write(
        &path,
        r#"local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("statuses")) do
      io.write(string.format("status %d %d\n", status, n))
    end
  end
end
"#,
    )
    .expect("write the wrk script");
    path
}

/// A running `wrk`; killed on drop if a test fails.
struct Load {
    child: Child,
    output: Option<JoinHandle<String>>,
}

impl Load {
    fn start(args: &[&str], url: &str) -> Load {
        let mut child = Command::new("/usr/bin/wrk")
            .args(args)
            .arg(url)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn /usr/bin/wrk");
        let mut stdout = child.stdout.take().expect("wrk stdout");
        let output = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stdout.read_to_string(&mut text);
            text
        });
        Load {
            child,
            output: Some(output),
        }
    }

    fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for wrk to end on its own (within `limit`) and returns its status and report.
    fn wait(mut self, limit: Duration) -> (ExitStatus, String) {
        let (status, _) = wait_for("wrk to finish", limit, || {
            self.child
                .try_wait()
                .expect("wrk status")
                .ok_or_else(|| "still running".to_string())
        });
        let text = self
            .output
            .take()
            .expect("wrk output")
            .join()
            .expect("wrk output reader");
        (status, text)
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What wrk reported: requests, socket errors, answers it counts as errors, and the status
/// script's count of every answer.
#[derive(Debug, Default)]
struct Report {
    requests: u64,
    socket_errors: String,
    non_2xx_3xx: u64,
    statuses: BTreeMap<u16, u64>,
}

impl Report {
    fn parse(text: &str) -> Report {
        let mut r = Report::default();
        let num = |s: &str| s.trim().trim_end_matches(',').parse::<u64>().ok();
        for line in text.lines().map(str::trim) {
            if let Some((n, _)) = line.split_once(" requests in ") {
                r.requests = num(n).expect("request count");
            } else if let Some(rest) = line.strip_prefix("Socket errors:") {
                r.socket_errors = rest.trim().to_string();
            } else if let Some(n) = line.strip_prefix("Non-2xx or 3xx responses:") {
                r.non_2xx_3xx = num(n).expect("non-2xx count");
            } else if let Some(rest) = line.strip_prefix("status ") {
                if let Some((s, n)) = rest.split_once(' ') {
                    if let (Ok(s), Some(n)) = (s.parse(), num(n)) {
                        *r.statuses.entry(s).or_default() += n;
                    }
                }
            }
        }
        r
    }
}

#[test]
fn one_instance_killed_under_get_load_costs_no_failed_get_through_nginx() {
    let _one = one_at_a_time();
    let [a, mut victim, c] = three_instances();
    let dir = temp_dir("instances");
    let port = free_port();
    // The upstream and retry directives of nginx/pinion.conf, for three instances. keepalive
    // 16, not 32: the test's nginx has 64 worker_connections (main_conf), and 16 clients plus
    // 16 busy and 32 idle upstream connections could exceed them.
    let servers: String = [a.addr, victim.addr, c.addr]
        .iter()
        .map(|addr| format!("server {addr} max_fails=3 fail_timeout=10s;\n"))
        .collect();
    let log = dir.join("retried.log");
    let http = format!(
        "upstream pinion {{\n\
           {servers}\
           keepalive 16;\n\
           keepalive_timeout 60s;\n\
           keepalive_requests 10000;\n\
         }}\n\
         # Only the requests that were retried on another instance, or did not end in 200.\n\
         map \"$status $upstream_addr\" $pinion_retried {{ \"~^200 [^,]*$\" 0; default 1; }}\n\
         log_format retried '$status $request_uri upstream=\"$upstream_addr\" \
           upstream_status=\"$upstream_status\"';\n\
         server {{\n\
           listen 127.0.0.1:{port};\n\
           access_log {log} retried if=$pinion_retried;\n\
           proxy_connect_timeout 5s;\n\
           proxy_read_timeout 60s;\n\
           proxy_send_timeout 60s;\n\
           proxy_next_upstream error timeout http_502 http_503;\n\
           proxy_next_upstream_tries 2;\n\
           proxy_next_upstream_timeout 10s;\n\
           location / {{\n\
             proxy_pass http://pinion;\n\
             include {proxy};\n\
           }}\n\
         }}",
        log = log.display(),
        proxy = repo().join("nginx/proxy.conf").display(),
    );
    let conf = main_conf(&dir, &http);
    let nginx = Nginx::start(dir, &conf);
    let front: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
    let (status, _, body) = request(
        front,
        "GET /json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200, "/json through nginx before the load: {body}");

    let json_answers = |addr: SocketAddr| {
        counter(
            &metrics(addr),
            "pinion_http_requests_total",
            &["route=\"/json\""],
        )
    };
    let script = status_script();
    let script = script.to_str().expect("utf-8 path");
    let mut load = Load::start(
        &["-t1", "-c16", "-d4s", "-s", script],
        &format!("http://{front}/json"),
    );
    // The load has run for a moment and reaches the victim before it is killed.
    let loaded = Instant::now();
    wait_for(
        "the instance to be killed to have served 500 /json answers under the load",
        Duration::from_secs(3),
        || {
            let n = json_answers(victim.addr);
            if n >= 500 {
                Ok(())
            } else {
                Err(format!("{n} answers"))
            }
        },
    );
    victim.child.kill().expect("SIGKILL the instance");
    let killed_at = loaded.elapsed();
    assert!(
        load.is_running(),
        "wrk ended before the kill: nothing was tested"
    );
    victim.child.wait().expect("reap the killed instance");
    // What the survivors had served by a moment after the kill: the first count each folds
    // after it (metrics are folded every 100 ms).
    let survivors_at_kill: u64 = [&a, &c]
        .iter()
        .map(|served| {
            let seen = json_answers(served.addr);
            wait_for(
                &format!("{}'s metrics to be folded after the kill", served.addr),
                Duration::from_secs(3),
                || {
                    let n = json_answers(served.addr);
                    if n > seen {
                        Ok(n)
                    } else {
                        Err(format!("{n} answers"))
                    }
                },
            )
            .0
        })
        .sum();

    let (status, text) = load.wait(Duration::from_secs(15));
    assert!(status.success(), "wrk failed ({status}):\n{text}");
    let report = Report::parse(&text);
    let survivors_at_end = json_answers(a.addr) + json_answers(c.addr);
    let retried = std::fs::read_to_string(&log).unwrap_or_default();
    eprintln!(
        "killed {killed_at:?} into the load\nwrk: {report:?}\n{text}\nsurvivors' /json answers: \
         {survivors_at_kill} just after the kill, {survivors_at_end} at the end\nnginx's retried \
         or failed requests:\n{retried}"
    );
    assert!(report.requests > 0, "{text}");
    assert!(
        report.socket_errors.is_empty(),
        "socket errors: {}\n{text}",
        report.socket_errors
    );
    assert_eq!(report.non_2xx_3xx, 0, "{text}");
    assert_eq!(
        report.statuses.keys().copied().collect::<Vec<_>>(),
        [200],
        "every answer a 200: {:?}\n{text}",
        report.statuses
    );
    assert_eq!(
        report.statuses.values().sum::<u64>(),
        report.requests,
        "{text}"
    );
    // The other two went on serving after the kill…
    assert!(
        survivors_at_end >= survivors_at_kill + 100,
        "the surviving instances served {survivors_at_kill} /json answers just after the kill \
         and {survivors_at_end} at the end"
    );
    // …and nginx sent them what had gone to the killed one: its log names the killed
    // instance first, a survivor second, and a 200 in the end.
    let dead = victim.addr.to_string();
    // (499: wrk closed its connections at the end of its duration, with requests in flight.)
    assert!(
        retried
            .lines()
            .all(|l| l.starts_with("200 ") || l.starts_with("499 ")),
        "a request that did not end in 200: {retried}"
    );
    assert!(
        retried
            .lines()
            .any(|l| l.contains(&format!("upstream=\"{dead}, "))),
        "no request was retried after the kill of {dead}: {retried}"
    );
    drop(nginx);
}
