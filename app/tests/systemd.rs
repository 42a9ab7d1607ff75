//! systemd: the shipped unit passes `systemd-analyze verify`, the example settings pass
//! `pinion check`, and `pinion serve` speaks the readiness protocol over a real
//! `NOTIFY_SOCKET` (a datagram socket this test binds, as systemd does): `READY=1` once the
//! port answers and every worker's primary connection is up (or `db_connect_timeout` has
//! passed without it), `STOPPING=1` when SIGTERM starts the drain, then a clean exit.

mod common;

use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{database_env, pinion, repo, request, serve, serve_threads};

/// Runs `systemd-analyze verify` on `deploy/<file>` (its `ExecStart` runs `pinion <command>`),
/// installed as `name`, with this build's binary.
fn verify_unit(file: &str, name: &str, command: &str) {
    let dir = std::env::temp_dir().join(format!("pinion-unit-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    // The unit names the installed binary; verify the same unit with this build's.
    let unit = std::fs::read_to_string(repo().join("deploy").join(file)).expect("the unit");
    assert!(unit.contains(&format!("ExecStart=/usr/local/bin/pinion {command}")));
    let unit = unit.replace("/usr/local/bin/pinion", common::BIN);
    let path = dir.join(name);
    std::fs::write(&path, unit).expect("unit written");
    let found = std::process::Command::new(repo().join("scripts/systemd-analyze"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("scripts/systemd-analyze runs");
    assert!(
        found.status.success(),
        "scripts/systemd-analyze found no systemd-analyze"
    );
    let tool = String::from_utf8_lossy(&found.stdout).trim().to_string();
    let out = std::process::Command::new(tool)
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Complaints about this container's own units are not the unit's.
    let stem = name.split(['@', '.']).next().unwrap_or(name);
    let ours: Vec<&str> = text.lines().filter(|l| l.contains(stem)).collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify:\n{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    // A template is verified as one of its instances.
    verify_unit("pinion@.service", "pinion@blue.service", "serve");
}

#[test]
fn the_worker_unit_passes_systemd_analyze_verify() {
    verify_unit("pinion-worker.service", "pinion-worker.service", "worker");
}

#[test]
fn a_worker_notifies_ready_when_it_runs_jobs_and_stopping_when_it_drains() {
    let notify = NotifySocket::bind("notify-worker");
    /// Killed if the test fails before it exits.
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut worker = Killed(
        pinion()
            .args(["worker", "-t", "1"])
            .envs(database_env())
            .env("NOTIFY_SOCKET", &notify.path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("pinion worker"),
    );
    // The migrations' EXTEND_TIMEOUT_USEC come first.
    let ready = loop {
        let message = notify.next("READY=1");
        if message.lines().any(|l| l == "READY=1") {
            break message;
        }
        assert!(message.contains("EXTEND_TIMEOUT_USEC="), "{message}");
    };
    assert!(ready.contains("STATUS=running background jobs"), "{ready}");
    // SAFETY: kill(2) on the pid of the child this test started and still owns.
    unsafe {
        libc::kill(worker.0.id() as i32, libc::SIGTERM);
    }
    let stopping = notify.next("STOPPING=1");
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping}");
    let exit = common::wait_exit(&mut worker.0, Duration::from_secs(30))
        .expect("pinion worker did not exit after SIGTERM");
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn the_example_settings_pass_pinion_check() {
    let out = pinion()
        .args(["check", "--config"])
        .arg(repo().join("deploy/pinion.toml"))
        // The environment file carries the secret; production refuses to start without it.
        .env(
            "PINION_SECRET_KEY",
            "a test secret key of at least 32 bytes!!",
        )
        .output()
        .expect("pinion check runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("environment = \"production\""), "{text}");
    assert!(!text.contains("a test secret key"), "the secret is masked");
}

/// A `NOTIFY_SOCKET` of the test's own, as systemd binds one for a `Type=notify` unit;
/// removed when dropped.
struct NotifySocket {
    dir: PathBuf,
    path: String,
    sock: UnixDatagram,
}

impl NotifySocket {
    fn bind(name: &str) -> NotifySocket {
        let dir = std::env::temp_dir().join(format!("pinion-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let sock = UnixDatagram::bind(&path).expect("the notify socket");
        sock.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let path = path.to_str().expect("utf-8 path").to_string();
        NotifySocket { dir, path, sock }
    }

    /// The next notification, waiting up to 30 s.
    fn next(&self, what: &str) -> String {
        datagram(&self.sock, what)
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn datagram(sock: &UnixDatagram, what: &str) -> String {
    let mut buf = [0u8; 4096];
    match sock.recv(&mut buf) {
        Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        Err(e) => panic!("no {what} notification: {e}"),
    }
}

#[test]
fn serve_notifies_ready_when_it_answers_and_stopping_when_it_drains() {
    let notify = NotifySocket::bind("notify");
    let mut served = serve([("NOTIFY_SOCKET", notify.path.as_str())]);

    let ready = notify.next("READY=1");
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready}");
    assert!(
        ready.contains(&format!("STATUS=listening on {}", served.addr)),
        "{ready}"
    );
    let (status, _, _) = common::request(
        served.addr,
        "GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200, "ready means it answers");

    // SAFETY: kill(2) on the pid of the child this test started and still owns.
    unsafe {
        libc::kill(served.child.id() as i32, libc::SIGTERM);
    }
    let stopping = notify.next("STOPPING=1");
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping}");
    let exit = common::wait_exit(&mut served.child, Duration::from_secs(30))
        .expect("pinion did not exit after SIGTERM");
    assert!(exit.success(), "{exit:?}");
}

/// A TCP proxy in front of the primary that forwards each connection only after `delay`: a
/// slow network to the database, so that the workers' connections come up well after their
/// listeners open, and a `READY=1` sent before they are up is seen early. The delay is the
/// fault injected, not a wait for an event. Stops accepting when dropped; connections it
/// forwards end when pinion closes them.
struct SlowProxy {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SlowProxy {
    fn start(upstream: SocketAddr, delay: Duration) -> SlowProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy listener");
        let addr = listener.local_addr().expect("proxy address");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopping.load(Ordering::Acquire) {
                    return;
                }
                let Ok(client) = client else { continue };
                std::thread::spawn(move || {
                    std::thread::sleep(delay);
                    let Ok(server) = TcpStream::connect(upstream) else {
                        return;
                    };
                    let (Ok(client_in), Ok(server_out)) = (client.try_clone(), server.try_clone())
                    else {
                        return;
                    };
                    std::thread::spawn(move || pipe(client_in, server_out));
                    pipe(server, client);
                });
            }
        });
        SlowProxy {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for SlowProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wakes the accept loop, which then sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Copies `from` to `to` until `from` ends, then ends `to`'s direction too.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
}

/// `host:port` of a `postgres://user:password@host:port/db` URL.
fn host_port(url: &str) -> &str {
    let rest = url.split_once('@').expect("user@ in the URL").1;
    rest.split('/').next().expect("host:port")
}

/// `/health/ready`'s status, the primary's state in it (`up`, `down`) and the body.
fn health_ready(addr: SocketAddr) -> (u16, String, String) {
    let (status, _, body) = request(
        addr,
        "GET /health/ready HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    let v: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    let primary = v["databases"]["default"]["state"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    (status, primary, body)
}

#[test]
fn ready_waits_until_every_worker_is_connected_to_the_primary() {
    let env = database_env();
    let url = &env
        .iter()
        .find(|(k, _)| k == "DATABASE_URL")
        .expect("url")
        .1;
    let upstream = host_port(url);
    let proxy = SlowProxy::start(
        upstream.parse().expect("a TCP address"),
        Duration::from_secs(1),
    );
    let proxied = url.replace(upstream, &proxy.addr.to_string());
    let notify = NotifySocket::bind("ready-db");
    let served = serve_threads(
        2,
        [
            ("NOTIFY_SOCKET", notify.path.as_str()),
            ("DATABASE_URL", proxied.as_str()),
            ("PINION_MIGRATE_ON_START", "false"),
        ],
    );

    let ready = notify.next("READY=1");
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready}");
    // Ready means the primary is up for whichever worker takes the probe: fresh connections
    // spread over both workers' listeners.
    for _ in 0..8 {
        let (status, primary, body) = health_ready(served.addr);
        assert_eq!(
            (status, primary.as_str()),
            (200, "up"),
            "ready before the primary was: {body}"
        );
    }
    let found = served.wait_for_logs(&["every worker is connected to the primary"], 1);
    assert_eq!(found.len(), 1, "{:#?}", served.logs.lock().expect("logs"));
    drop(served);
    drop(proxy);
}

#[test]
fn ready_comes_anyway_when_the_primary_does_not_within_the_connect_timeout() {
    // A port nothing listens on: bound, then closed.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("postgres://pinion@127.0.0.1:{port}/pinion");
    let notify = NotifySocket::bind("ready-no-db");
    let served = serve([
        ("NOTIFY_SOCKET", notify.path.as_str()),
        ("DATABASE_URL", url.as_str()),
        ("PINION_MIGRATE_ON_START", "false"),
        ("PINION_DB_CONNECT_TIMEOUT", "1s"),
    ]);

    let ready = notify.next("READY=1");
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready}");
    let found = served.wait_for_logs(
        &[
            "WARN",
            "only 0 of 1 workers connected to the primary within db_connect_timeout (1s)",
        ],
        1,
    );
    assert_eq!(found.len(), 1, "{:#?}", served.logs.lock().expect("logs"));
    let (status, primary, body) = health_ready(served.addr);
    assert_eq!((status, primary.as_str()), (503, "down"), "{body}");
}

#[test]
fn a_hand_over_notifies_ready_from_the_successor_and_stopping_from_the_predecessor() {
    let first = NotifySocket::bind("handoff-first");
    let second = NotifySocket::bind("handoff-second");
    // Beside the first notify socket: removed with it.
    let handoff = first.dir.join("handoff.sock");
    let handoff = handoff.to_str().expect("utf-8 path");
    let mut old = serve([
        ("NOTIFY_SOCKET", first.path.as_str()),
        ("PINION_HANDOFF_SOCKET", handoff),
    ]);
    let ready = first.next("the first READY=1");
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready}");

    // Port 0 takes whatever the running process listens on: the same sockets.
    let mut new = serve([
        ("NOTIFY_SOCKET", second.path.as_str()),
        ("PINION_HANDOFF_SOCKET", handoff),
    ]);
    assert_eq!(new.addr, old.addr, "the successor serves the same address");
    let ready = second.next("the successor's READY=1");
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready}");
    // The predecessor tells its supervisor it is stopping, and exits 0 by itself.
    let stopping = first.next("the predecessor's STOPPING=1");
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping}");
    let exit = common::wait_exit(&mut old.child, Duration::from_secs(30))
        .expect("the predecessor did not exit");
    assert!(exit.success(), "{exit:?}");
    let (status, _, _) = common::request(
        new.addr,
        "GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200, "the successor answers on the address");
    let _ = new.child.kill();
    let _ = new.child.wait();
}
