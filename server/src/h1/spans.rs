//! The list of header spans a parsed head carries, recycled per worker thread.
//!
//! Every request has one, so allocating it fresh cost a `malloc` and a `free` per request.
//! A list goes back to its thread's pool when the request is dropped and the next head parsed
//! on that thread takes it, so a worker in steady state allocates none: callgrind, pipelined
//! plaintext, 3 251 → 3 220 instructions per request (mimalloc's pair cost ~95, the pool ~60).
//! Keeping eight spans inline instead (`SmallVec`) cost +131, all of it `memcpy` of the larger
//! `Request` as it moves into the handler. Hand-written rather than a pool crate: it is a `Vec`
//! stack in a `thread_local!`, per thread so that a request touches no shared cache line.

use std::cell::RefCell;
use std::ops::Deref;

use super::head::Span;

/// Header lines per list, allocated for a list the pool cannot provide: a browser sends about
/// ten lines, a load generator three, so one allocation covers nearly every request.
const INITIAL_CAPACITY: usize = 16;

/// Lists longer than this are freed rather than pooled, so that one request with hundreds of
/// header lines (up to `max_headers`) does not pin its memory for the thread's lifetime.
const MAX_POOLED_CAPACITY: usize = 64;

/// Idle lists a thread keeps: the memory is bounded (≤ 256 × 64 × 16 B = 256 KiB per thread,
/// 64 KiB at the usual capacity) however many requests were in flight at the peak.
const MAX_POOLED: usize = 256;

thread_local! {
    static POOL: RefCell<Vec<Vec<(Span, Span)>>> = const { RefCell::new(Vec::new()) };
}

/// `(name, value)` spans of a head's header lines, in arrival order.
///
/// Dereferences to a slice; dropping it returns the storage to the thread's pool.
#[derive(Debug)]
pub(crate) struct HeaderSpans(Vec<(Span, Span)>);

impl HeaderSpans {
    /// An empty list, reusing a pooled one when the thread has one.
    #[inline]
    pub(crate) fn new() -> HeaderSpans {
        let pooled = POOL
            .try_with(|pool| pool.try_borrow_mut().ok().and_then(|mut p| p.pop()))
            .ok()
            .flatten();
        HeaderSpans(pooled.unwrap_or_else(|| Vec::with_capacity(INITIAL_CAPACITY)))
    }

    /// Appends one header line.
    #[inline]
    pub(crate) fn push(&mut self, name: Span, value: Span) {
        self.0.push((name, value));
    }
}

impl Deref for HeaderSpans {
    type Target = [(Span, Span)];

    fn deref(&self) -> &[(Span, Span)] {
        &self.0
    }
}

impl Drop for HeaderSpans {
    fn drop(&mut self) {
        let capacity = self.0.capacity();
        if capacity == 0 || capacity > MAX_POOLED_CAPACITY {
            return;
        }
        let mut list = std::mem::take(&mut self.0);
        list.clear();
        // During thread teardown the pool may be gone already; the list is then simply freed.
        let _ = POOL.try_with(|pool| {
            if let Ok(mut pool) = pool.try_borrow_mut() {
                if pool.len() < MAX_POOLED {
                    pool.push(list);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pooled() -> usize {
        POOL.with(|p| p.borrow().len())
    }

    fn span(start: u32, end: u32) -> Span {
        Span { start, end }
    }

    #[test]
    fn a_dropped_list_is_reused_empty_by_the_next() {
        let mut first = HeaderSpans::new();
        first.push(span(0, 4), span(6, 17));
        let storage = first.0.as_ptr();
        drop(first);
        let second = HeaderSpans::new();
        assert_eq!(
            second.0.as_ptr(),
            storage,
            "the storage came back from the pool"
        );
        assert!(second.is_empty(), "a reused list starts empty");
    }

    #[test]
    fn lists_grown_past_the_cap_are_freed_not_pooled() {
        let before = pooled();
        let mut big = HeaderSpans::new();
        for i in 0..(MAX_POOLED_CAPACITY as u32 + 1) {
            big.push(span(i, i + 1), span(i, i + 1));
        }
        let after_take = pooled();
        drop(big);
        assert_eq!(pooled(), after_take, "a large list is not kept");
        assert!(after_take <= before);
        let usual = HeaderSpans::new();
        let idle = pooled();
        drop(usual);
        assert_eq!(pooled(), idle + 1, "a list of the usual size is kept");
    }

    #[test]
    fn the_pool_is_bounded() {
        let lists: Vec<HeaderSpans> = (0..MAX_POOLED + 10).map(|_| HeaderSpans::new()).collect();
        drop(lists);
        assert_eq!(pooled(), MAX_POOLED);
    }
}
