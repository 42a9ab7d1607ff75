//! The `pinion` binary, run for real: CLI, configuration errors, the endpoints over a socket,
//! and SIGTERM with a request in flight.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

mod common;

use common::{body_awaited, pinion, wait_listener_closed, Served};

#[test]
fn version_is_printed() {
    let out = pinion().arg("--version").output().expect("runs");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.trim(), format!("pinion {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn check_prints_the_effective_configuration() {
    let out = pinion()
        .args(["check"])
        .env("PINION_MAX_BODY_SIZE", "2MiB")
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("port = 8080"), "{text}");
    assert!(text.contains("max_body_size = \"2MiB\""), "{text}");
}

/// `pinion check` with one environment variable: its exit code, stdout and stderr.
fn check_with(var: &str, value: &str) -> (Option<i32>, String, String) {
    let out = pinion()
        .args(["check"])
        .env(var, value)
        .output()
        .expect("runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_masks_the_passwords_of_named_databases_and_names_a_bad_one() {
    let (code, text, err) = check_with(
        "PINION_DATABASES",
        "analytics=postgres://app:hunter2@127.0.0.1:1/stats",
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        text.contains("databases = [\"analytics=postgres://app:****@127.0.0.1:1/stats\"]"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");

    let (code, _, err) = check_with("PINION_DATABASES", "default=postgres://app:hunter2@h/db");
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("PINION_DATABASES") && err.contains("taken"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn check_masks_a_percent_encoded_password_parameter() {
    // tokio-postgres decodes `pass%77ord` to `password`: it is the password, and never shown.
    let (code, text, err) = check_with(
        "DATABASE_URL",
        "postgres://app@127.0.0.1:1/db?pass%77ord=hunter2",
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        text.contains("database_url = \"postgres://app@127.0.0.1:1/db?pass%77ord=****\""),
        "{text}"
    );
    assert!(
        !text.contains("hunter2") && !err.contains("hunter2"),
        "{text}{err}"
    );

    // Nor in the error for a URL that is refused.
    let (code, _, err) = check_with(
        "DATABASE_URL",
        "postgres://app@127.0.0.1:port/db?pass%77ord=hunter2",
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("database_url"), "{err}");
    assert!(err.contains("pass%77ord=****"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn bad_config_names_the_key_and_refuses_to_start() {
    let dir = std::env::temp_dir().join(format!("pinion-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("pinion.toml");
    std::fs::write(&file, "port = 8080\nkeepalive_timeout = \"forever\"\n").expect("write");
    let out = pinion()
        .args(["serve", "--config"])
        .arg(&file)
        .output()
        .expect("runs");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("keepalive_timeout"), "{err}");
    assert!(err.contains("forever"), "{err}");

    let out = pinion()
        .args(["serve"])
        .env("PINION_THREDS", "2")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("PINION_THREDS"), "{err}");

    // In production a missing secret key is an error, not a warning.
    let out = pinion()
        .args(["serve", "--port", "0"])
        .env("PINION_ENVIRONMENT", "production")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`secret_key`") && err.contains("production"),
        "{err}"
    );
}

fn serve(extra_env: &[(&str, &str)]) -> Served {
    common::serve(extra_env.iter().copied())
}

fn read_response(stream: &mut TcpStream) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&out);
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        break;
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn techempower_endpoints_answer_exactly() {
    let server = serve(&[]);
    let mut s = TcpStream::connect(server.addr).expect("connect");
    s.write_all(b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("write");
    let r = read_response(&mut s);
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    assert!(r.contains("\r\nServer: pinion\r\n"));
    assert!(r.contains("\r\nDate: "));
    assert!(r.contains("\r\nContent-Type: text/plain\r\n"));
    assert!(r.contains("\r\nContent-Length: 13\r\n"));
    assert!(r.ends_with("\r\n\r\nHello, World!"));
    s.write_all(b"GET /json HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("write");
    let r = read_response(&mut s);
    assert!(r.contains("\r\nContent-Type: application/json\r\n"), "{r}");
    assert!(r.contains("\r\nContent-Length: 27\r\n"));
    assert!(r.ends_with("\r\n\r\n{\"message\":\"Hello, World!\"}"));
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("write");
    let r = read_response(&mut s);
    assert!(r.contains("text/html"), "{r}");
    assert!(r.contains("/plaintext") && r.contains("/json") && r.contains("/echo"));
}

#[test]
fn sigterm_lets_the_request_in_flight_finish_then_exits_zero() {
    let mut server = serve(&[]);
    let addr = server.addr;
    // A request whose body is only half sent when the signal arrives: the server has read
    // its head (it answered 100 Continue) and waits for the rest.
    let mut s = body_awaited(
        addr,
        "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n",
    );
    s.write_all(b"hello").expect("write");
    // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
    let rc = unsafe { libc::kill(server.child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
    // New connections are refused once the listener is closed.
    wait_listener_closed(addr);
    s.write_all(b"world").unwrap_or_else(|e| {
        let logs = server.logs.lock().expect("logs").join("\n");
        panic!("finish the body: {e}\n{logs}")
    });
    let r = read_response(&mut s);
    let logs = || server.logs.lock().expect("logs").join("\n");
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}\n{}", logs());
    assert!(r.contains("\r\nConnection: close\r\n"), "{r}");
    assert!(r.ends_with("helloworld"));
    let status = common::wait_exit(&mut server.child, Duration::from_secs(10))
        .expect("did not exit after draining");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_configuration_for_another_release_is_refused_naming_both_versions() {
    let version = env!("CARGO_PKG_VERSION");
    let expected = format!(
        "pinion: configuration error: require_version (PINION_REQUIRE_VERSION): this is pinion \
         {version}, the configuration requires >=1000"
    );
    for command in ["serve", "check"] {
        let mut cmd = pinion();
        cmd.args([command])
            .env("PINION_REQUIRE_VERSION", ">=1000")
            // Were it not refused, serve would listen on a free port rather than on 8080.
            .env("PINION_PORT", "0");
        let out = output_within(cmd, Duration::from_secs(30));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {err}");
        assert!(err.lines().any(|l| l == expected), "{command}: {err}");
        assert!(out.stdout.is_empty(), "{command} printed settings");
    }
    // The running release is accepted.
    let (code, text, err) = check_with("PINION_REQUIRE_VERSION", &format!("={version}"));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        text.contains(&format!("require_version = \"={version}\"")),
        "{text}"
    );
    // An unparsable requirement is a configuration error naming the key.
    let (code, _, err) = check_with("PINION_REQUIRE_VERSION", "newest");
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(
            "invalid value for `require_version` in environment variable PINION_REQUIRE_VERSION"
        ),
        "{err}"
    );
}

#[test]
fn check_succeeds_on_the_configuration_alone_when_the_primary_is_unreachable() {
    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let (code, text, err) = check_with(
        "DATABASE_URL",
        &format!("postgres://app:hunter2@127.0.0.1:{port}/db"),
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(text.contains("instances = 1"), "{text}");
    assert!(
        err.contains("pinion: note: max_connections not checked, the primary was not reached"),
        "{err}"
    );
    assert!(!err.contains("warning"), "{err}");
    assert!(
        !err.contains("hunter2") && !text.contains("hunter2"),
        "{err}{text}"
    );
}

/// Runs `cmd` to its end with stdout and stderr captured, killing it (and failing) if it is
/// still running after `bound`: a `serve` that should have refused to start would otherwise
/// serve until the test run is killed.
fn output_within(mut cmd: std::process::Command, bound: Duration) -> std::process::Output {
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pinion");
    if common::wait_exit(&mut child, bound).is_none() {
        let _ = child.kill();
        let out = child.wait_with_output().expect("output");
        panic!(
            "still running after {bound:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    child.wait_with_output().expect("output")
}
