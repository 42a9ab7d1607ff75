//! The runtime: worker threads, their listeners, start-up and shutdown.

pub(crate) mod driver;
pub(crate) mod listener;
pub(crate) mod shutdown;
pub(crate) mod signal;
pub(crate) mod worker;

use std::net::SocketAddr;
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
    let listeners = listener::bind_all(addr, threads, settings.backlog)
        .map_err(|e| Error::io("listener", e))?;
    let addr = listeners
        .first()
        .map(|l| l.local_addr())
        .transpose()
        .map_err(|e| Error::io("listener", e))?
        .unwrap_or(addr);
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
    for (index, listener) in listeners.into_iter().enumerate() {
        let spec = worker::WorkerSpec {
            index,
            core: (!cores.is_empty()).then(|| cores[index % cores.len()]),
            listener,
            driver,
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
