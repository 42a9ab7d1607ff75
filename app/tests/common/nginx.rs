//! A real nginx for the tests: found or installed by `scripts/nginx`, started in a folder of
//! the test's own from a configuration of the test's own, on loopback ports; stopped, and its
//! folder removed, on drop.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running nginx (master and workers).
pub struct Nginx {
    child: Child,
    dir: PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: the master stops its workers (and cache processes) before it
        // exits, where a killed master would leave them running.
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        if super::wait_exit(&mut self.child, Duration::from_secs(5)).is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Nginx {
    /// Starts nginx on `conf` (a whole `nginx.conf`, see [`main_conf`]) in `dir`, and returns
    /// once its listeners are open (10 s at most).
    ///
    /// # Panics
    /// When nginx exits before listening (its error lines are in the message), or is not
    /// listening within 10 s.
    pub fn start(dir: PathBuf, conf: &str) -> Nginx {
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let mut child = Command::new(binary())
            .arg("-p")
            .arg(&dir)
            .arg("-e")
            .arg("stderr")
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nginx");
        let stderr = BufReader::new(child.stderr.take().expect("stderr"));
        // Stopped on drop, also when the wait below fails.
        let nginx = Nginx { child, dir };
        // The master logs "start worker processes" once its listeners are open; the reader
        // thread keeps draining stderr so that nginx never blocks on it.
        let (started, wait) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut started = Some(started);
            for line in stderr.lines().map_while(Result::ok) {
                if line.contains("start worker processes") {
                    if let Some(tx) = started.take() {
                        let _ = tx.send(Ok(()));
                    }
                } else if started.is_some() {
                    seen.push(line);
                }
            }
            if let Some(tx) = started {
                let _ = tx.send(Err(seen));
            }
        });
        match wait.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => {}
            Ok(Err(seen)) => panic!("nginx exited before listening: {seen:#?}"),
            Err(_) => panic!("nginx did not start listening within 10 s"),
        }
        nginx
    }

    /// The folder nginx runs in (removed on drop).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// An empty folder for one nginx; `name` keeps the folders of tests running at once apart.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pinion-nginx-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A whole `nginx.conf` for a test: in the foreground, one worker, logging to stderr, every
/// temporary file in `dir`, with `http` inside the `http {}` block.
pub fn main_conf(dir: &Path, http: &str) -> String {
    let d = dir.display();
    format!(
        "daemon off;\n\
         master_process on;\n\
         worker_processes 1;\n\
         pid {d}/nginx.pid;\n\
         error_log stderr notice;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n\
           access_log off;\n\
           client_body_temp_path {d}/body;\n\
           proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fastcgi;\n\
           uwsgi_temp_path {d}/uwsgi;\n\
           scgi_temp_path {d}/scgi;\n\
           {http}\n\
         }}\n"
    )
}

/// The path of nginx, installed by `scripts/nginx` when missing.
pub fn binary() -> String {
    super::tool_path("nginx")
}

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
