//! Shared test helpers: a minimal executor and a remote-like backend written against the public
//! trait only, as a user's backend would be.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the helpers"
)]

use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use pinion_cache::{Cache, CacheOptions, Entry, Error, Value};

struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `fut` to completion on this thread, parking while it is pending.
pub(crate) fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

/// Pending once, waking itself: lets the other tasks of a `join_all` run.
pub(crate) async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await;
}

/// What a database row holds: the value's bytes, its deadline and Δ.
type Row = (Bytes, Option<SystemTime>, Duration);

/// A remote-like backend: stores what a database row would (bytes, deadline, Δ), and can be
/// told to fail every call, as a lost connection.
pub(crate) struct RemoteCache {
    options: CacheOptions,
    rows: Mutex<HashMap<String, Row>>,
    pub(crate) failing: AtomicBool,
    pub(crate) calls: AtomicUsize,
}

impl RemoteCache {
    pub(crate) fn new(options: CacheOptions) -> Self {
        RemoteCache {
            options,
            rows: Mutex::new(HashMap::new()),
            failing: AtomicBool::new(false),
            calls: AtomicUsize::new(0),
        }
    }

    fn check(&self) -> Result<(), Error> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if self.failing.load(Ordering::Relaxed) {
            Err(Error::backend("connection lost"))
        } else {
            Ok(())
        }
    }

    /// The stored bytes under a real key, if any.
    pub(crate) fn raw(&self, key: &str) -> Option<Bytes> {
        self.rows.lock().unwrap().get(key).map(|r| r.0.clone())
    }
}

impl Cache for RemoteCache {
    fn options(&self) -> &CacheOptions {
        &self.options
    }

    async fn get_entry(&self, key: &str) -> Result<Option<Entry>, Error> {
        self.check()?;
        let now = self.options.clock().now();
        let rows = self.rows.lock().unwrap();
        Ok(rows.get(key).and_then(|(bytes, expires, delta)| {
            let entry = Entry::new(Value::from_bytes(bytes.clone()), *expires).with_delta(*delta);
            entry.is_live(now).then_some(entry)
        }))
    }

    async fn set_entry(&self, key: &str, entry: Entry) -> Result<(), Error> {
        self.check()?;
        let bytes = entry.value().to_bytes()?;
        let row = (bytes, entry.deadline(), entry.delta());
        self.rows.lock().unwrap().insert(key.to_owned(), row);
        Ok(())
    }

    async fn delete_entry(&self, key: &str) -> Result<bool, Error> {
        self.check()?;
        Ok(self.rows.lock().unwrap().remove(key).is_some())
    }

    async fn clear(&self) -> Result<(), Error> {
        self.check()?;
        self.rows.lock().unwrap().clear();
        Ok(())
    }
}
