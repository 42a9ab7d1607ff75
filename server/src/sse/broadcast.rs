//! [`Broadcast`]: one event to every subscriber of a worker thread, rendered once.

use std::cell::{Cell, RefCell};

use bytes::Bytes;
use futures_channel::mpsc;

use super::{Event, Sse};

/// The subscribers of one worker thread to a kind of live update (a page, a topic), each an
/// open [`Sse`] response.
///
/// Kept in the worker's state (it is `!Send`, as the connections it feeds). An event is
/// rendered once and handed to every subscriber as a shared `Bytes`; a subscriber that has
/// `capacity` events waiting (a client that does not read) misses the event rather than
/// holding the others back, and one that left is forgotten at the next send. Instances and
/// threads exchange events through PostgreSQL; this is the last step, to the browsers.
///
/// ```
/// use pinion_server::sse::{Broadcast, Event};
///
/// let live = Broadcast::new(16);
/// let _stream = live.subscribe(); // returned by a handler
/// assert_eq!(live.send(&Event::new().event("price").data("42")), 1);
/// ```
#[derive(Debug)]
pub struct Broadcast {
    subscribers: RefCell<Vec<mpsc::Sender<Bytes>>>,
    capacity: usize,
    missed: Cell<u64>,
}

impl Broadcast {
    /// A broadcast whose subscribers may each have `capacity` events waiting.
    pub fn new(capacity: usize) -> Broadcast {
        Broadcast {
            subscribers: RefCell::new(Vec::new()),
            capacity: capacity.max(1),
            missed: Cell::new(0),
        }
    }

    /// A new subscriber: the event stream to return from the handler.
    pub fn subscribe(&self) -> Sse {
        let (tx, rx) = mpsc::channel(self.capacity - 1);
        self.subscribers.borrow_mut().push(tx);
        Sse::rendered(rx)
    }

    /// Sends `event` to every subscriber with room for it.
    ///
    /// # Return
    /// How many subscribers it was handed to.
    pub fn send(&self, event: &Event) -> usize {
        let bytes = event.to_bytes();
        let mut delivered = 0;
        let mut missed = 0;
        self.subscribers.borrow_mut().retain_mut(|tx| {
            match tx.try_send(bytes.clone()) {
                Ok(()) => delivered += 1,
                Err(e) if e.is_full() => missed += 1,
                // The client left: forget it.
                Err(_) => return false,
            }
            true
        });
        self.missed.set(self.missed.get() + missed);
        delivered
    }

    /// How many subscribers are open (as of the last send: ones that left since are still
    /// counted).
    pub fn subscribers(&self) -> usize {
        self.subscribers.borrow().len()
    }

    /// How many deliveries were skipped because a subscriber had `capacity` events waiting.
    pub fn missed(&self) -> u64 {
        self.missed.get()
    }
}
