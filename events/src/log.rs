//! [`Log`]: the process's recent events, in the order its listener received them, which
//! every worker thread reads from and a reconnecting client is replayed from.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use parking_lot::Mutex;
use pinion_server::sse::Event;

use crate::payload::Published;

/// One event in the log: what was published, its place (`seq`, this process's own count),
/// and its rendering, made once for every client of every thread.
#[derive(Debug)]
pub(crate) struct Stored {
    pub(crate) seq: u64,
    pub(crate) event: Published,
    pub(crate) bytes: Bytes,
}

/// Renders `event` as it goes on the wire.
pub(crate) fn render(event: &Published) -> Bytes {
    Event::new()
        .event(&*event.event)
        .id(event.id.to_string())
        .data(&*event.data)
        .to_bytes()
}

/// What a worker gets when it reads the log: the events after its cursor, and whether some
/// were lost to it (dropped from the log before it read them, or the log asked every
/// subscriber to resynchronise).
pub(crate) struct Batch {
    pub(crate) events: Vec<Arc<Stored>>,
    pub(crate) lost: bool,
    /// The log's position after `events`: the reader's next cursor and epoch.
    pub(crate) head: u64,
    pub(crate) epoch: u64,
    /// The seq of the oldest event the log still has: a subscriber behind it has lost events.
    pub(crate) first: u64,
}

struct Ring {
    entries: VecDeque<Arc<Stored>>,
    /// The ids in `entries`: a catch-up after a reconnection adds only what is missing.
    ids: HashSet<i64>,
    capacity: usize,
    /// The seq of the last event pushed (0: none yet).
    head: u64,
    /// The highest id received.
    max_id: i64,
    /// Bumped when every subscriber must resynchronise (more was missed than the log holds).
    epoch: u64,
}

/// The process's log of recent events, written by the listener's thread and read by every
/// worker's dispatcher.
///
/// A mutex rather than a lock-free ring: it is held to append a batch or to copy a few `Arc`s
/// out, never across an `.await`, by one writer and one reader per worker, a handful of times
/// per notification; parking_lot's uncontended lock is one atomic operation.
pub(crate) struct Log {
    ring: Mutex<Ring>,
    /// One per worker: woken when events are appended.
    wakers: Mutex<Vec<Arc<AtomicWaker>>>,
    pub(crate) received: AtomicU64,
}

impl Log {
    pub(crate) fn new(capacity: usize) -> Log {
        Log {
            ring: Mutex::new(Ring {
                entries: VecDeque::with_capacity(capacity.min(4096)),
                ids: HashSet::new(),
                capacity: capacity.max(1),
                head: 0,
                max_id: 0,
                epoch: 0,
            }),
            wakers: Mutex::new(Vec::new()),
            received: AtomicU64::new(0),
        }
    }

    /// How many events the log keeps.
    pub(crate) fn capacity(&self) -> usize {
        self.ring.lock().capacity
    }

    /// A waker for a new reader, woken at every append.
    pub(crate) fn register(&self) -> Arc<AtomicWaker> {
        let waker = Arc::new(AtomicWaker::new());
        self.wakers.lock().push(Arc::clone(&waker));
        waker
    }

    /// Appends the events that are not in the log yet, in the order given, and wakes the
    /// readers.
    ///
    /// # Return
    /// How many were appended.
    pub(crate) fn append(&self, events: Vec<Published>) -> usize {
        let mut added = 0;
        {
            let mut ring = self.ring.lock();
            for event in events {
                if !ring.ids.insert(event.id) {
                    continue;
                }
                ring.head += 1;
                ring.max_id = ring.max_id.max(event.id);
                let bytes = render(&event);
                let stored = Arc::new(Stored {
                    seq: ring.head,
                    event,
                    bytes,
                });
                ring.entries.push_back(stored);
                if ring.entries.len() > ring.capacity {
                    if let Some(old) = ring.entries.pop_front() {
                        ring.ids.remove(&old.event.id);
                    }
                }
                added += 1;
            }
        }
        self.received.fetch_add(added as u64, Ordering::Relaxed);
        if added > 0 {
            self.wake();
        }
        added
    }

    /// Asks every subscriber to resynchronise (reconnect and replay from the table).
    pub(crate) fn resync_all(&self) {
        self.ring.lock().epoch += 1;
        self.wake();
    }

    fn wake(&self) {
        for w in self.wakers.lock().iter() {
            w.wake();
        }
    }

    /// The seq of the last event appended and the resync epoch: a reader is behind when
    /// either differs from what it last saw.
    pub(crate) fn position(&self) -> (u64, u64) {
        let ring = self.ring.lock();
        (ring.head, ring.epoch)
    }

    /// The highest id received, and the lowest id still in the log (the highest when it is
    /// empty): where a catch-up starts.
    pub(crate) fn catch_up_from(&self) -> i64 {
        let ring = self.ring.lock();
        ring.entries
            .iter()
            .map(|s| s.event.id - 1)
            .min()
            .unwrap_or(ring.max_id)
            .min(ring.max_id)
    }

    /// Raises the highest id seen to `id` (the table's, when the listener first comes up: a
    /// catch-up never replays what was published before the process started).
    pub(crate) fn seen_up_to(&self, id: i64) {
        let mut ring = self.ring.lock();
        ring.max_id = ring.max_id.max(id);
    }

    /// The events after seq `after`, for a reader whose epoch was `epoch`.
    pub(crate) fn since(&self, after: u64, epoch: u64) -> Batch {
        let ring = self.ring.lock();
        let first = ring.entries.front().map_or(ring.head + 1, |s| s.seq);
        let lost = ring.epoch != epoch || first > after + 1;
        let skip = (after + 1).saturating_sub(first) as usize;
        Batch {
            events: ring.entries.iter().skip(skip).cloned().collect(),
            lost,
            head: ring.head,
            epoch: ring.epoch,
            first,
        }
    }

    /// The events of `channel` from seq `from` to seq `upto` (a subscriber catching up on
    /// what did not fit in its queue), or `None` when the log no longer has `from`.
    pub(crate) fn channel_since(
        &self,
        channel: &str,
        from: u64,
        upto: u64,
    ) -> Option<Vec<Arc<Stored>>> {
        let ring = self.ring.lock();
        let first = ring.entries.front().map_or(ring.head + 1, |s| s.seq);
        if from < first {
            return None;
        }
        let skip = (from - first) as usize;
        Some(
            ring.entries
                .iter()
                .skip(skip)
                .take_while(|s| s.seq <= upto)
                .filter(|s| &*s.event.channel == channel)
                .cloned()
                .collect(),
        )
    }

    /// The events of `channel` after the one with id `last` up to seq `upto` (a new
    /// subscriber's replay), or `None` when `last` is no longer (or not yet) in the log.
    pub(crate) fn after(&self, channel: &str, last: i64, upto: u64) -> Option<Vec<Bytes>> {
        let ring = self.ring.lock();
        if !ring.ids.contains(&last) {
            return None;
        }
        let at = ring.entries.iter().rposition(|s| s.event.id == last)?;
        Some(
            ring.entries
                .iter()
                .skip(at + 1)
                .take_while(|s| s.seq <= upto)
                .filter(|s| &*s.event.channel == channel)
                .map(|s| s.bytes.clone())
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: i64, channel: &str) -> Published {
        Published {
            id,
            channel: channel.into(),
            event: "e".into(),
            data: id.to_string().into(),
        }
    }

    #[test]
    fn readers_get_what_came_after_their_cursor_and_learn_what_they_lost() {
        let log = Log::new(3);
        assert_eq!(log.append(vec![ev(1, "a"), ev(2, "b")]), 2);
        let b = log.since(0, 0);
        assert_eq!(
            b.events.iter().map(|s| s.event.id).collect::<Vec<_>>(),
            [1, 2]
        );
        assert!(!b.lost);
        // A catch-up that brings what is already there adds nothing.
        assert_eq!(log.append(vec![ev(2, "b"), ev(3, "a")]), 1);
        assert_eq!(log.append(vec![ev(4, "a"), ev(5, "a")]), 2);
        assert_eq!(log.position(), (5, 0));
        // Seqs 1 and 2 are gone: a reader at 1 lost one.
        let b = log.since(1, 0);
        assert!(b.lost);
        assert_eq!(
            b.events.iter().map(|s| s.seq).collect::<Vec<_>>(),
            [3, 4, 5]
        );
        let b = log.since(4, 0);
        assert!(!b.lost);
        assert_eq!(b.events.len(), 1);
        // A subscriber behind from seq 3 catches up on its channel; from seq 2, it lost one.
        let caught: Vec<i64> = log
            .channel_since("a", 3, 5)
            .expect("in the log")
            .iter()
            .map(|s| s.event.id)
            .collect();
        assert_eq!(caught, [3, 4, 5]);
        assert!(log.channel_since("a", 2, 5).is_none());
        log.resync_all();
        assert!(log.since(5, 0).lost);
        assert_eq!(log.catch_up_from(), 2);
    }

    #[test]
    fn a_replay_starts_after_the_last_id_and_keeps_to_its_channel() {
        let log = Log::new(10);
        log.append(vec![ev(1, "a"), ev(2, "b"), ev(3, "a"), ev(4, "a")]);
        let got = log.after("a", 1, 3).expect("in the log");
        assert_eq!(got.len(), 1);
        assert!(String::from_utf8_lossy(&got[0]).contains("id: 3\n"));
        assert_eq!(log.after("a", 9, 4), None);
    }
}
