//! SIGTERM / SIGINT: the first starts a graceful shutdown, a second exits at once.

use std::time::Duration;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::shutdown::ShutdownTrigger;
use crate::error::Error;

/// SIGTERM and SIGINT caught, not yet acted on: [`watch`] registers the handlers before the
/// server starts, so that a signal that comes while it starts (a stop right after a start)
/// is kept and starts a graceful shutdown once [`SignalWatch::install`] runs, where the
/// default action would have killed the process with its first requests in flight.
pub struct SignalWatch {
    signals: Signals,
    on_shutdown: Option<Box<dyn FnOnce() + Send>>,
}

/// Catches SIGTERM and SIGINT from now on; see [`SignalWatch`].
///
/// # Errors
/// When the signal handlers cannot be registered.
pub fn watch() -> Result<SignalWatch, Error> {
    let signals = Signals::new([SIGTERM, SIGINT]).map_err(|e| Error::io("signals", e))?;
    Ok(SignalWatch {
        signals,
        on_shutdown: None,
    })
}

/// As [`watch`] then [`SignalWatch::install`], for a server already started.
///
/// # Errors
/// When the signal handlers cannot be registered.
pub fn install(trigger: ShutdownTrigger, drain_timeout: Duration) -> Result<(), Error> {
    watch()?.install(trigger, drain_timeout)
}

impl SignalWatch {
    /// Runs `f` when the first signal starts the graceful shutdown, before the drain: for
    /// telling a supervisor (systemd's `STOPPING=1`).
    pub fn on_shutdown(mut self, f: impl FnOnce() + Send + 'static) -> SignalWatch {
        self.on_shutdown = Some(Box::new(f));
        self
    }

    /// Acts on the signals caught (those that came since [`watch`] too) on a dedicated thread:
    /// the first starts a graceful shutdown through `trigger`, and the process exits 0 at the
    /// latest `drain_timeout` (plus a second of grace) later, even if a handler is stuck; a
    /// second exits at once.
    ///
    /// # Errors
    /// When the thread cannot be started.
    pub fn install(self, trigger: ShutdownTrigger, drain_timeout: Duration) -> Result<(), Error> {
        let mut signals = self.signals;
        let mut on_shutdown = self.on_shutdown;
        std::thread::Builder::new()
            .name("pinion-signals".into())
            .spawn(move || {
                let mut seen = 0;
                for sig in signals.forever() {
                    seen += 1;
                    if seen == 1 {
                        tracing::info!(signal = sig, "shutting down gracefully");
                        if let Some(f) = on_shutdown.take() {
                            f();
                        }
                        trigger.shutdown();
                        std::thread::spawn(move || {
                            std::thread::sleep(drain_timeout + Duration::from_secs(1));
                            tracing::warn!("drain deadline passed, exiting");
                            std::process::exit(0);
                        });
                    } else {
                        tracing::warn!(signal = sig, "second signal, exiting now");
                        std::process::exit(128 + sig);
                    }
                }
            })
            .map_err(|e| Error::io("signal thread", e))?;
        Ok(())
    }
}
