//! systemd: the shipped unit passes `systemd-analyze verify`, the example settings pass
//! `pinion check`, and `pinion serve` speaks the readiness protocol over a real
//! `NOTIFY_SOCKET` (a datagram socket this test binds, as systemd does): `READY=1` once the
//! port answers, `STOPPING=1` when SIGTERM starts the drain, then a clean exit.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::{pinion, repo, serve};

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    let dir = std::env::temp_dir().join(format!("pinion-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    // The unit names the installed binary; verify the same unit with this build's.
    let unit = std::fs::read_to_string(repo().join("deploy/pinion.service")).expect("the unit");
    assert!(unit.contains("ExecStart=/usr/local/bin/pinion serve"));
    let unit = unit.replace("/usr/local/bin/pinion", common::BIN);
    let path = dir.join("pinion.service");
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
    let ours: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("pinion.service"))
        .collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify:\n{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
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

fn datagram(sock: &UnixDatagram, what: &str) -> String {
    let mut buf = [0u8; 4096];
    match sock.recv(&mut buf) {
        Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        Err(e) => panic!("no {what} notification: {e}"),
    }
}

#[test]
fn serve_notifies_ready_when_it_answers_and_stopping_when_it_drains() {
    let dir = std::env::temp_dir().join(format!("pinion-notify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("notify.sock");
    let _ = std::fs::remove_file(&path);
    let sock = UnixDatagram::bind(&path).expect("the notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut served = serve([("NOTIFY_SOCKET", path.to_str().expect("utf-8 path"))]);

    let ready = datagram(&sock, "READY=1");
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
    let stopping = datagram(&sock, "STOPPING=1");
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(status) = served.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "pinion did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
