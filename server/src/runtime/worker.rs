//! A worker thread: pinned to its core, running its own monoio runtime, its own listener and
//! every connection that listener accepts.

use std::cell::Cell;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use monoio::io::Canceller;
use monoio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};

use super::driver::Driver;
use super::handoff::Registry;
use super::listener::accept_queued;
use super::shutdown::{triggered, LocalShutdown};
use crate::connection::{self, ConnConfig, Shared};
use crate::deadline::Sweeper;
use crate::h1::date;
use crate::router::Router;

/// Everything a worker thread is started with.
pub(crate) struct WorkerSpec<F> {
    pub(crate) index: usize,
    pub(crate) core: Option<core_affinity::CoreId>,
    /// This worker's listeners, each with its slot in the process's [`Registry`].
    pub(crate) listeners: Vec<(usize, std::net::TcpListener)>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) driver: Driver,
    /// `io_batch_wait`: how long a busy io_uring worker may gather completions (0: off).
    pub(crate) batch_wait: Duration,
    pub(crate) cfg: ConnConfig,
    pub(crate) max_connections: usize,
    pub(crate) drain_timeout: Duration,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) ready: mpsc::Sender<Result<(), String>>,
    pub(crate) factory: Arc<F>,
}

/// The body of a worker thread: pin, build the runtime, serve until drained.
pub(crate) fn run<S, F>(spec: WorkerSpec<F>)
where
    S: 'static,
    F: Fn(usize) -> (Router<S>, S) + Send + Sync + 'static,
{
    if let Some(core) = spec.core {
        if !core_affinity::set_for_current(core) {
            tracing::warn!(
                worker = spec.index,
                core = core.id,
                "could not pin worker thread"
            );
        }
    }
    let ready = spec.ready.clone();
    let result = match spec.driver {
        Driver::IoUring { coop_taskrun } => {
            let mut urb = io_uring::IoUring::<io_uring::squeue::Entry>::builder();
            if coop_taskrun {
                urb.setup_coop_taskrun();
            }
            super::batch::start(spec.batch_wait);
            monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
                .uring_builder(urb)
                .enable_timer()
                .build()
                .map(|mut rt| rt.block_on(serve(spec)))
        }
        Driver::Epoll => monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .map(|mut rt| rt.block_on(serve(spec))),
    };
    if let Err(e) = result {
        let _ = ready.send(Err(format!("cannot build the monoio runtime: {e}")));
    }
}

/// Accepts connections until shutdown, then drains.
async fn serve<S, F>(spec: WorkerSpec<F>)
where
    S: 'static,
    F: Fn(usize) -> (Router<S>, S) + Send + Sync + 'static,
{
    let WorkerSpec {
        index,
        listeners,
        registry,
        cfg,
        max_connections,
        drain_timeout,
        shutdown,
        ready,
        factory,
        ..
    } = spec;
    let mut registered = Vec::with_capacity(listeners.len());
    for (slot, l) in listeners {
        match TcpListener::from_std(l) {
            Ok(l) => registered.push((slot, l)),
            Err(e) => {
                let _ = ready.send(Err(format!("cannot register the listener: {e}")));
                return;
            }
        }
    }
    let (router, state) = factory(index);
    let local = Rc::new(LocalShutdown::new(cfg.drain_grace));
    let sweeper = Sweeper::new(Sweeper::tick_for(super::shortest_timeout(&cfg)));
    monoio::spawn(Rc::clone(&sweeper).run());
    let shared = Rc::new(Shared::new(
        router,
        state,
        index,
        cfg,
        Rc::clone(&local),
        sweeper,
    ));
    monoio::spawn(date::tick());
    let conns = Rc::new(Conns::default());
    let _ = ready.send(Ok(()));
    drop(ready);

    let accept = Accept {
        index,
        shared: Rc::clone(&shared),
        conns: Rc::clone(&conns),
        registry,
        max_connections,
    };
    let accept = Rc::new(accept);
    let mut registered = registered.into_iter();
    let first = registered.next();
    // A predecessor with more threads than this process gave it more listeners than workers.
    for (slot, l) in registered {
        conns.accepting.set(conns.accepting.get() + 1);
        monoio::spawn(Rc::clone(&accept).run(slot, l, shutdown.clone()));
    }
    if let Some((slot, l)) = first {
        conns.accepting.set(conns.accepting.get() + 1);
        Rc::clone(&accept).run(slot, l, shutdown).await;
    }
    local.begin();
    tracing::debug!(worker = index, open = conns.open.get(), "draining");

    let deadline = monoio::time::sleep(drain_timeout);
    let mut deadline = std::pin::pin!(deadline);
    while conns.open.get() > 0 || conns.accepting.get() > 0 {
        monoio::select! {
            _ = conns.closed.notified() => {}
            _ = &mut deadline => {
                tracing::warn!(worker = index, open = conns.open.get(), "drain deadline passed, closing connections");
                break;
            }
        }
    }
}

/// What an accept loop needs: the worker's shared state and its open connections.
struct Accept<S> {
    index: usize,
    shared: Rc<Shared<S>>,
    conns: Rc<Conns>,
    registry: Arc<Registry>,
    max_connections: usize,
}

impl<S: 'static> Accept<S> {
    /// Accepts on `listener` until shutdown, then takes what is queued on it (unless a
    /// successor has the socket, whose queue is then the successor's) and closes it.
    async fn run(
        self: Rc<Self>,
        slot: usize,
        listener: TcpListener,
        shutdown: watch::Receiver<bool>,
    ) {
        let stop = triggered(shutdown);
        let mut stop = std::pin::pin!(stop);
        let conns = &self.conns;
        'accept: loop {
            // At the cap, stop accepting (the kernel queues up to `backlog`) until one closes.
            while conns.open.get() >= self.max_connections {
                monoio::select! {
                    _ = conns.closed.notified() => {}
                    _ = &mut stop => break 'accept,
                }
            }
            // Cancelled, not dropped, at shutdown: on io_uring a dropped accept that the kernel
            // completed meanwhile leaks the connection it took (reset when the process exits),
            // while a cancelled one is awaited and still hands that connection over.
            let canceller = Canceller::new();
            let accept = listener.cancelable_accept(canceller.handle());
            let mut accept = std::pin::pin!(accept);
            let accepted = monoio::select! {
                accepted = &mut accept => accepted,
                _ = &mut stop => {
                    let _ = canceller.cancel();
                    if let Ok((stream, peer)) = accept.await {
                        spawn_connection(stream, peer, &self.shared, conns);
                    }
                    break 'accept;
                }
            };
            match accepted {
                Ok((stream, peer)) => spawn_connection(stream, peer, &self.shared, conns),
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning on the error.
                    tracing::warn!(worker = self.index, error = %e, "accept failed");
                    monoio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        // No descriptor number is handed over once its close is decided.
        self.registry.release(slot);
        if !self.registry.handed_over() {
            for (stream, peer) in accept_queued(listener.as_raw_fd()) {
                match TcpStream::from_std(stream) {
                    Ok(stream) => spawn_connection(stream, peer, &self.shared, conns),
                    Err(e) => tracing::warn!(
                        worker = self.index,
                        error = %e,
                        "cannot register a queued connection"
                    ),
                }
            }
        }
        drop(listener);
        conns.accepting.set(conns.accepting.get() - 1);
        conns.closed.notify_one();
    }
}

/// Open connections and running accept loops of one worker, and a wake-up for whoever waits
/// for one of them to end.
#[derive(Default)]
struct Conns {
    open: Cell<usize>,
    accepting: Cell<usize>,
    closed: Notify,
}

fn spawn_connection<S: 'static>(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    shared: &Rc<Shared<S>>,
    conns: &Rc<Conns>,
) {
    let _ = stream.set_nodelay(true);
    conns.open.set(conns.open.get() + 1);
    if let Some(t) = shared.router.chain().telemetry() {
        t.connection_opened();
    }
    let shared = Rc::clone(shared);
    let conns = Rc::clone(conns);
    let task = async move {
        connection::serve(stream, peer, Rc::clone(&shared)).await;
        conns.open.set(conns.open.get() - 1);
        conns.closed.notify_one();
        if let Some(t) = shared.router.chain().telemetry() {
            t.connection_closed();
        }
    };
    // Every connection, idle ones included, holds one of these: its size is most of the
    // per-connection memory besides the read buffer (`bench/idle-memory`).
    static LOGGED: std::sync::Once = std::sync::Once::new();
    LOGGED.call_once(|| tracing::debug!(bytes = std::mem::size_of_val(&task), "connection task"));
    monoio::spawn(task);
}
