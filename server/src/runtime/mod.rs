//! The runtime: worker threads, their listeners, start-up and shutdown.

pub(crate) mod batch;
pub(crate) mod driver;
pub(crate) mod handoff;
pub(crate) mod listener;
pub(crate) mod shutdown;
pub(crate) mod signal;
pub(crate) mod worker;

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use pinion_config::Settings;

use crate::connection::ConnConfig;
use crate::error::Error;
use crate::h1::head::Limits;
use crate::router::Router;
pub use driver::Driver;
pub use shutdown::ShutdownTrigger;

/// A running server: its address, its workers, and the trigger that stops it.
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    driver: Driver,
    trigger: ShutdownTrigger,
    workers: Vec<JoinHandle<()>>,
    registry: Arc<handoff::Registry>,
    /// The predecessor whose listeners these are, told to drain by [`ServerHandle::ready`].
    takeover: Option<handoff::Takeover>,
    handoff_socket: Option<std::path::PathBuf>,
}

impl ServerHandle {
    /// The address the listeners are bound to (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The I/O driver the workers run on.
    pub fn driver(&self) -> Driver {
        self.driver
    }

    /// Number of worker threads.
    pub fn threads(&self) -> usize {
        self.workers.len()
    }

    /// A trigger that starts a graceful shutdown from anywhere (a signal thread, a test).
    pub fn trigger(&self) -> ShutdownTrigger {
        self.trigger.clone()
    }

    /// Declares this process ready for traffic, once whatever the application does after
    /// [`start`] is done (database pools connected, caches primed): with `handoff_socket`, the
    /// predecessor whose listeners this process took starts draining, and this process starts
    /// offering its own listeners to its successor. Without `handoff_socket` it does nothing.
    ///
    /// # Errors
    /// When the handoff socket cannot be bound (its folder is missing or not writable); the
    /// server keeps serving, only the next restart cannot take its listeners.
    pub fn ready(&mut self) -> Result<(), Error> {
        if let Some(takeover) = self.takeover.take() {
            match takeover.finish() {
                Ok(()) => tracing::info!("the predecessor is draining"),
                // Stopped meanwhile: the sockets are this process's anyway.
                Err(e) => {
                    tracing::warn!(error = %e, "the predecessor did not acknowledge the hand-off")
                }
            }
        }
        if let Some(path) = &self.handoff_socket {
            handoff::serve(path, Arc::clone(&self.registry), self.trigger.clone())
                .map_err(|e| Error::io("handoff_socket", e))?;
        }
        Ok(())
    }

    /// Runs `f` when a successor takes this process's listeners over (`handoff_socket`), just
    /// before the drain starts: for telling a supervisor, as a signal's shutdown does
    /// ([`SignalWatch::on_shutdown`](crate::SignalWatch::on_shutdown)).
    pub fn on_hand_over(&self, f: impl FnOnce() + Send + 'static) {
        self.registry.on_hand_over(Box::new(f));
    }

    /// Starts a graceful shutdown; see [`ShutdownTrigger::shutdown`].
    pub fn shutdown(&self) {
        self.trigger.shutdown();
    }

    /// Waits until every worker has drained and exited.
    ///
    /// # Errors
    /// When a worker thread panicked.
    pub fn join(self) -> Result<(), Error> {
        let mut panicked = false;
        for w in self.workers {
            panicked |= w.join().is_err();
        }
        if panicked {
            return Err(Error::internal("a worker thread panicked"));
        }
        Ok(())
    }
}

/// Starts the server: binds one `SO_REUSEPORT` listener per worker, starts the workers (each
/// pinned to a core it may use, running its own monoio runtime), and returns once all of them
/// accept connections.
///
/// `factory` runs once on each worker thread and builds that thread's router and state, which
/// is why neither needs to be `Send`.
///
/// # Errors
/// When the address cannot be bound, a forced io_uring is unavailable, or a worker cannot start.
pub fn start<S, F>(settings: &Settings, factory: F) -> Result<ServerHandle, Error>
where
    S: 'static,
    F: Fn(usize) -> (Router<S>, S) + Send + Sync + 'static,
{
    let threads = settings.effective_threads();
    let driver = Driver::resolve(settings.io_driver).map_err(|e| Error::io("io driver", e))?;
    let addr = SocketAddr::new(settings.bind, settings.port);
    let mut takeover = match &settings.handoff_socket {
        Some(path) => handoff::take_over(path, addr).map_err(|e| Error::io("handoff_socket", e))?,
        None => None,
    };
    let mut listeners = match &mut takeover {
        Some(t) => {
            tracing::info!(
                listeners = t.listeners.len(),
                "took the listening sockets from the running process"
            );
            std::mem::take(&mut t.listeners)
        }
        None => Vec::new(),
    };
    if listeners.len() < threads {
        // The first bound fixes the port when 0 was asked for; the others join it.
        let at = match listeners.first() {
            Some(l) => l.local_addr().map_err(|e| Error::io("listener", e))?,
            None => addr,
        };
        let more = listener::bind_all(at, threads - listeners.len(), settings.backlog)
            .map_err(|e| Error::io("listener", e))?;
        listeners.extend(more);
    }
    let addr = listeners
        .first()
        .map(|l| l.local_addr())
        .transpose()
        .map_err(|e| Error::io("listener", e))?
        .unwrap_or(addr);
    let registry = handoff::Registry::new(listeners.iter().map(|l| l.as_raw_fd()).collect());
    // Worker i serves listeners i, i + threads, …: a predecessor with more threads hands over
    // more sockets than this process has workers, and each of them keeps its queue.
    let mut owned: Vec<Vec<(usize, std::net::TcpListener)>> =
        (0..threads).map(|_| Vec::new()).collect();
    for (slot, l) in listeners.into_iter().enumerate() {
        owned[slot % threads].push((slot, l));
    }
    // The cores this process may run on (its affinity mask), in order.
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    if threads > cores.len() && !cores.is_empty() {
        tracing::warn!(
            threads,
            cores = cores.len(),
            "more worker threads than usable cores"
        );
    }
    crate::clock::calibrate();
    let cfg = conn_config(settings);
    let (trigger, rx) = ShutdownTrigger::new();
    let (ready_tx, ready_rx) = mpsc::channel();
    let factory = Arc::new(factory);
    let mut workers = Vec::with_capacity(threads);
    for (index, listeners) in owned.into_iter().enumerate() {
        let spec = worker::WorkerSpec {
            index,
            core: (!cores.is_empty()).then(|| cores[index % cores.len()]),
            listeners,
            registry: Arc::clone(&registry),
            driver,
            batch_wait: settings.io_batch_wait,
            cfg: cfg.clone(),
            max_connections: settings.max_connections_per_thread,
            drain_timeout: settings.drain_timeout,
            shutdown: rx.clone(),
            ready: ready_tx.clone(),
            factory: Arc::clone(&factory),
        };
        let handle = std::thread::Builder::new()
            .name(format!("pinion-worker-{index}"))
            .spawn(move || worker::run(spec))
            .map_err(|e| Error::io("worker thread", e))?;
        workers.push(handle);
    }
    drop(ready_tx);
    let handle = ServerHandle {
        addr,
        driver,
        trigger,
        workers,
        registry,
        takeover,
        handoff_socket: settings.handoff_socket.clone(),
    };
    for _ in 0..threads {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(why)) => {
                handle.shutdown();
                let _ = handle.join();
                return Err(Error::io("worker", std::io::Error::other(why)));
            }
            Err(_) => {
                handle.shutdown();
                let _ = handle.join();
                return Err(Error::internal("a worker thread exited during start-up"));
            }
        }
    }
    tracing::info!(
        "pinion listening on {addr} with {threads} worker thread{}, io driver {driver}",
        if threads == 1 { "" } else { "s" }
    );
    Ok(handle)
}

pub(crate) fn conn_config(settings: &Settings) -> ConnConfig {
    ConnConfig {
        limits: Limits {
            max_head: settings.max_head_size,
            max_headers: settings.max_headers,
            max_uri: settings.max_uri_length,
            max_body: settings.max_body_size,
        },
        max_drain: settings.max_drain_size,
        header_read_timeout: settings.header_read_timeout,
        body_read_timeout: settings.body_read_timeout,
        write_timeout: settings.write_timeout,
        keepalive_timeout: settings.keepalive_timeout,
        drain_grace: settings.drain_grace,
        sse_keepalive: settings.sse_keepalive,
        trusted_proxies: settings
            .trusted_proxies
            .iter()
            .filter_map(|c| ipnet::IpNet::new(c.addr(), c.prefix()).ok())
            .collect(),
        cookie_keys: std::sync::Arc::new(crate::cookie::CookieKeys::from_settings(settings)),
        server_line: format!("Server: {}\r\n", settings.server_name)
            .into_bytes()
            .into_boxed_slice(),
    }
}

/// The shortest of a connection's timeouts: the deadline sweeper ticks at a fraction of it.
pub(crate) fn shortest_timeout(cfg: &ConnConfig) -> std::time::Duration {
    cfg.header_read_timeout
        .min(cfg.body_read_timeout)
        .min(cfg.write_timeout)
        .min(cfg.keepalive_timeout)
        .min(cfg.sse_keepalive)
}
