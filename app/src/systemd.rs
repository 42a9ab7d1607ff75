//! systemd's readiness protocol (`Type=notify`), through `NOTIFY_SOCKET`: `READY=1` once the
//! listeners are bound, the migrations applied and every worker has built its state and
//! connected to the primary (or `db_connect_timeout` passed without it);
//! `STOPPING=1` when the drain starts; `EXTEND_TIMEOUT_USEC` while start-up waits (for the
//! migration lock); `WATCHDOG=1` at half of `WatchdogSec` while the process lives. Without
//! `NOTIFY_SOCKET` (not under systemd) every call does nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;

fn send(states: &[NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// `READY=1`, with a status line systemd shows.
pub(crate) fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// `STOPPING=1`: the drain has begun.
pub(crate) fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("draining")]);
}

/// While the returned guard lives, asks systemd every 10 s for 30 s more before it gives up
/// on the start (`EXTEND_TIMEOUT_USEC`): migrations may wait for another instance's lock.
pub(crate) fn extending_start(what: &'static str) -> Extending {
    let done = Arc::new(AtomicBool::new(false));
    if std::env::var_os("NOTIFY_SOCKET").is_some() {
        let flag = Arc::clone(&done);
        let spawned = std::thread::Builder::new()
            .name("pinion-sd-extend".into())
            .spawn(move || {
                while !flag.load(Ordering::Acquire) {
                    send(&[
                        NotifyState::ExtendTimeoutUsec(30_000_000),
                        NotifyState::Status(what),
                    ]);
                    std::thread::park_timeout(Duration::from_secs(10));
                }
            });
        if let Ok(thread) = spawned {
            return Extending {
                done,
                thread: Some(thread),
            };
        }
    }
    Extending { done, thread: None }
}

/// Ends the start-up extensions when dropped.
pub(crate) struct Extending {
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Extending {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// Sends `WATCHDOG=1` at half the interval systemd asked for (`WATCHDOG_USEC`), if it asked.
pub(crate) fn start_watchdog() {
    let mut usec = 0;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return;
    }
    let every = Duration::from_micros(usec / 2);
    let _ = std::thread::Builder::new()
        .name("pinion-sd-watchdog".into())
        .spawn(move || loop {
            send(&[NotifyState::Watchdog]);
            std::thread::sleep(every);
        });
}
