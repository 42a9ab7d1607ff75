//! Test helpers: a minimal executor (the crate needs no runtime) and a wrapper giving a shared
//! store another key layout.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;

use crate::{Cache, CacheOptions, Entry, Error, LocMemCache};

struct ThreadWaker(Thread);

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

/// Another key layout over a shared [`LocMemCache`], as Django caches sharing a `LOCATION`.
pub(crate) struct View<'a> {
    pub(crate) store: &'a LocMemCache,
    pub(crate) options: CacheOptions,
}

impl Cache for View<'_> {
    fn options(&self) -> &CacheOptions {
        &self.options
    }

    async fn get_entry(&self, key: &str) -> Result<Option<Entry>, Error> {
        self.store.get_entry(key).await
    }

    async fn set_entry(&self, key: &str, entry: Entry) -> Result<(), Error> {
        self.store.set_entry(key, entry).await
    }

    async fn delete_entry(&self, key: &str) -> Result<bool, Error> {
        self.store.delete_entry(key).await
    }

    async fn clear(&self) -> Result<(), Error> {
        self.store.clear().await
    }
}
