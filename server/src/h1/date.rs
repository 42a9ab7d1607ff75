//! The `Date` header value, rendered once a second per thread.
//!
//! Formatting an IMF-fixdate costs far more than copying 29 bytes; hyper's `common/date.rs`
//! caches it the same way. Each worker runs [`tick`] to re-render at every second boundary, so
//! the hot path only copies, with no clock read.

use std::cell::RefCell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub(crate) const DATE_LEN: usize = 29;

/// Length of the whole header line, `Date: ` to CRLF.
const LINE_LEN: usize = "Date: ".len() + DATE_LEN + 2;

thread_local! {
    /// The whole line, so that a response copies it in one piece (three pieces cost ~20
    /// instructions more, callgrind).
    static CACHED: RefCell<Option<[u8; LINE_LEN]>> = const { RefCell::new(None) };
}

fn render(now: SystemTime) -> [u8; LINE_LEN] {
    let text = httpdate::fmt_http_date(now);
    let mut out = [b' '; LINE_LEN];
    out[..6].copy_from_slice(b"Date: ");
    let n = text.len().min(DATE_LEN);
    out[6..6 + n].copy_from_slice(&text.as_bytes()[..n]);
    out[LINE_LEN - 2..].copy_from_slice(b"\r\n");
    out
}

/// Re-renders this thread's cached date from the clock.
pub(crate) fn refresh() {
    let value = render(SystemTime::now());
    CACHED.with(|c| *c.borrow_mut() = Some(value));
}

/// Appends this thread's cached `Date: …\r\n` line to `out`, rendering it first if the
/// thread has none.
#[inline]
pub(crate) fn append_line(out: &mut bytes::BytesMut) {
    CACHED.with(|c| {
        let mut cached = c.borrow_mut();
        let value = cached.get_or_insert_with(|| render(SystemTime::now()));
        out.extend_from_slice(value);
    });
}

/// Keeps this thread's date current: refreshes it at every second boundary, forever.
pub(crate) async fn tick() {
    loop {
        refresh();
        let into_second = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let wait = Duration::from_nanos(1_000_000_000 - u64::from(into_second) + 1_000);
        monoio::time::sleep(wait).await;
    }
}
