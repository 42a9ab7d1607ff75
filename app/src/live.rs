//! Live updates of `world` rows: a write on any worker thread of this process reaches every
//! event stream open on every worker.
//!
//! Each worker has its own [`Broadcast`] (its subscribers are its connections) and a relay task
//! that feeds it from a bounded channel; [`WorldFeed::publish`] puts the event on every
//! worker's channel. Instances do not see each other's writes yet: that is PostgreSQL
//! `LISTEN`/`NOTIFY`'s job, in the jobs and events layer.

use std::rc::Rc;
use std::sync::Arc;

use futures_channel::mpsc;
use futures_util::StreamExt;
use parking_lot::Mutex;
use pinion_server::sse::{Broadcast, Event};

/// Events a worker's relay may have waiting before [`WorldFeed::publish`] drops one for it:
/// the relay only hands events to its own subscribers, so it falls behind only when its worker
/// is saturated, and a live view may skip an update rather than hold the writer.
const RELAY_CAPACITY: usize = 256;

/// Events each subscriber may have waiting (see [`Broadcast::new`]).
const SUBSCRIBER_CAPACITY: usize = 16;

/// The process-wide feed: one relay channel per worker thread.
#[derive(Default)]
pub struct WorldFeed {
    relays: Mutex<Vec<mpsc::Sender<Event>>>,
}

impl WorldFeed {
    /// An empty feed, shared by the workers' states.
    pub fn new() -> Arc<WorldFeed> {
        Arc::new(WorldFeed::default())
    }

    /// Registers the calling worker thread: returns its broadcast and starts the relay task
    /// that feeds it.
    ///
    /// # Panics
    /// Outside a monoio runtime (it spawns the relay there).
    pub fn join(&self) -> Rc<Broadcast> {
        let (tx, mut rx) = mpsc::channel::<Event>(RELAY_CAPACITY);
        self.relays.lock().push(tx);
        let live = Rc::new(Broadcast::new(SUBSCRIBER_CAPACITY));
        let fed = Rc::clone(&live);
        monoio::spawn(async move {
            while let Some(event) = rx.next().await {
                fed.send(&event);
            }
        });
        live
    }

    /// Sends `event` to every worker's subscribers; returns how many workers took it. A worker
    /// whose relay is full misses it (logged), and one that has stopped is forgotten.
    pub fn publish(&self, event: &Event) -> usize {
        let mut relays = self.relays.lock();
        let mut delivered = 0;
        relays.retain_mut(|relay| match relay.try_send(event.clone()) {
            Ok(()) => {
                delivered += 1;
                true
            }
            Err(e) if e.is_full() => {
                tracing::warn!("a worker's live-update relay is full; it misses one event");
                true
            }
            Err(_) => false,
        });
        delivered
    }
}
