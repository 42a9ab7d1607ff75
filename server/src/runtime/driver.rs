//! Choosing the I/O driver: io_uring where the kernel allows it, epoll otherwise.

use std::fmt;

use pinion_config::IoDriver;

/// The I/O driver the workers run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// io_uring, set up with `COOP_TASKRUN` when `coop_taskrun` is true.
    IoUring {
        /// Whether the ring uses `IORING_SETUP_COOP_TASKRUN` (kernel ≥ 5.19). Measured for
        /// DESIGN.md §3: without it io_uring was slower than epoll here; with it ≈ 1.5× hyper.
        coop_taskrun: bool,
    },
    /// epoll, through monoio's legacy driver.
    Epoll,
}

impl fmt::Display for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Driver::IoUring { coop_taskrun: true } => f.write_str("io_uring (coop_taskrun)"),
            Driver::IoUring {
                coop_taskrun: false,
            } => f.write_str("io_uring"),
            Driver::Epoll => f.write_str("epoll"),
        }
    }
}

impl Driver {
    /// Resolves the configured choice against what this kernel allows.
    ///
    /// # Errors
    /// When `io_uring` is forced but the kernel (or a seccomp policy) refuses it.
    pub fn resolve(choice: IoDriver) -> std::io::Result<Driver> {
        let uring = || {
            if io_uring::IoUring::<io_uring::squeue::Entry>::builder()
                .setup_coop_taskrun()
                .build(8)
                .is_ok()
            {
                Some(Driver::IoUring { coop_taskrun: true })
            } else if monoio::utils::detect_uring() {
                Some(Driver::IoUring {
                    coop_taskrun: false,
                })
            } else {
                None
            }
        };
        match choice {
            IoDriver::Epoll => Ok(Driver::Epoll),
            IoDriver::Auto => Ok(uring().unwrap_or(Driver::Epoll)),
            IoDriver::IoUring => uring().ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::Unsupported,
                    "io_driver = \"io_uring\" but this kernel does not allow io_uring",
                )
            }),
        }
    }

    /// Whether this is an io_uring driver.
    pub fn is_io_uring(&self) -> bool {
        matches!(self, Driver::IoUring { .. })
    }
}
