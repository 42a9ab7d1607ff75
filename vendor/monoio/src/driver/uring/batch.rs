//! Batched wake-ups (pinion's patch): while busy, a park waits for several completions
//! instead of one, for at most a short while (`min_wait_usec` of `io_uring_enter`'s
//! `IORING_ENTER_EXT_ARG`, Linux 6.12 and later; older kernels ignore the field), so that a
//! thread waiting on many sockets sleeps and wakes once per batch rather than once per
//! completion. "Busy" means the previous park reaped more than one completion; a park that
//! reaps one (a lone request) turns batching off again, so an idle server adds no latency.
//! Off unless [`set`] is called on the thread.

use std::cell::Cell;
use std::time::Duration;

thread_local! {
    /// `(completions to wait for, longest wait for them in µs)`; 0 µs is off.
    static CONFIG: Cell<(u32, u32)> = const { Cell::new((1, 0)) };
    /// Whether the previous park reaped more than one completion.
    static BUSY: Cell<bool> = const { Cell::new(false) };
}

/// Turns batched wake-ups on for this thread's io_uring driver: while busy, a park returns
/// once `completions` have arrived, or `max_wait` after it started if at least one has.
/// A zero `max_wait` turns it off.
pub fn set(completions: u32, max_wait: Duration) {
    let micros = u32::try_from(max_wait.as_micros()).unwrap_or(u32::MAX);
    CONFIG.with(|c| c.set((completions.max(1), micros)));
}

/// What `io_uring_enter` should wait for: how many completions, and `args` with the
/// minimum wait set, capped by the park's own `timeout`.
pub(crate) fn args<'a, 'b>(
    mut args: io_uring::types::SubmitArgs<'a, 'b>,
    timeout: Option<Duration>,
) -> (usize, io_uring::types::SubmitArgs<'a, 'b>) {
    let (want, micros) = CONFIG.with(Cell::get);
    if micros == 0 || !BUSY.with(Cell::get) {
        return (1, args);
    }
    let micros = match timeout {
        Some(t) => micros.min(u32::try_from(t.as_micros()).unwrap_or(u32::MAX)),
        None => micros,
    };
    if micros == 0 {
        return (1, args);
    }
    // The io-uring crate (0.6) does not name the field yet: `struct io_uring_getevents_arg
    // { u64 sigmask; u32 sigmask_sz; u32 min_wait_usec; u64 ts; }`, its `pad`.
    const _: () = assert!(
        std::mem::size_of::<io_uring::types::SubmitArgs<'static, 'static>>() == 24
    );
    // SAFETY: `SubmitArgs` is that struct followed by zero-sized markers (asserted above),
    // so the third `u32` is `min_wait_usec`.
    unsafe {
        let fields = (&mut args as *mut io_uring::types::SubmitArgs<'a, 'b>).cast::<u32>();
        *fields.add(3) = micros;
    }
    (want as usize, args)
}

/// Records how many completions the park just reaped.
pub(crate) fn reaped(n: usize) {
    BUSY.with(|b| b.set(n > 1));
}
