//! SIGTERM / SIGINT: the first starts a graceful shutdown, a second exits at once.

use std::time::Duration;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::shutdown::ShutdownTrigger;
use crate::error::Error;

/// Installs the handlers on a dedicated thread. After the first signal the process exits 0 at
/// the latest `drain_timeout` (plus a second of grace) later, even if a handler is stuck.
///
/// # Errors
/// When the signal handlers cannot be registered.
pub fn install(trigger: ShutdownTrigger, drain_timeout: Duration) -> Result<(), Error> {
    let mut signals = Signals::new([SIGTERM, SIGINT]).map_err(|e| Error::io("signals", e))?;
    std::thread::Builder::new()
        .name("pinion-signals".into())
        .spawn(move || {
            let mut seen = 0;
            for sig in signals.forever() {
                seen += 1;
                if seen == 1 {
                    tracing::info!(signal = sig, "shutting down gracefully");
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
