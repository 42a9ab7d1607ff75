//! A structured access log, kept off the request's path: records are buffered per worker and
//! written in batches by a background task.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use http::Method;
use percent_encoding::{percent_encode, AsciiSet, CONTROLS};

use super::{Exchange, Hooks, Middleware};
use crate::context::Ctx;

/// Bytes of a path written as `%XX` in the log: controls, space, quote and backslash, and (as
/// always with `percent_encode`) every byte outside ASCII, so that no C1 control, line
/// separator or invalid UTF-8 reaches a terminal or a log parser raw.
const LOG_ESCAPED: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'\\');

/// A request path as the access log shows it: percent-encoded where it is not visible ASCII.
fn escaped_path(path: &[u8]) -> Box<str> {
    percent_encode(path, LOG_ESCAPED)
        .to_string()
        .into_boxed_str()
}

/// One logged request.
#[derive(Debug)]
struct Record {
    request_id: Option<super::RequestIdValue>,
    method: Method,
    path: Box<str>,
    route: Option<Rc<str>>,
    status: u16,
    micros: u64,
    peer: std::net::SocketAddr,
}

/// Most records buffered between two flushes; beyond it records are dropped (and counted), so
/// a log sink that cannot keep up never grows memory.
const MAX_BUFFERED: usize = 8192;

/// Logs a sample of requests (`sample_ratio` of them) as `tracing` events with target
/// `pinion::access`: request id, method, path (percent-encoded where it is not visible
/// ASCII, so that no control reaches a terminal), route, status,
/// duration, peer.
///
/// `finish` only pushes a record into this worker's buffer; [`AccessLog::flusher`] writes the
/// buffer every `interval`, so formatting and writing never delay a response.
pub struct AccessLog {
    threshold: u64,
    rng: Cell<u64>,
    buffer: Rc<RefCell<Vec<Record>>>,
    dropped: Rc<Cell<u64>>,
}

impl AccessLog {
    /// Logs `sample_ratio` (0.0..=1.0) of requests; `seed` varies the sampling per worker.
    pub fn new(sample_ratio: f64, seed: u64) -> AccessLog {
        let ratio = sample_ratio.clamp(0.0, 1.0);
        AccessLog {
            threshold: if ratio >= 1.0 {
                u64::MAX
            } else {
                (ratio * u64::MAX as f64) as u64
            },
            rng: Cell::new(seed | 1),
            buffer: Rc::new(RefCell::new(Vec::new())),
            dropped: Rc::new(Cell::new(0)),
        }
    }

    /// The background writer of this worker's records: spawn it with `monoio::spawn`.
    pub fn flusher(&self, interval: Duration) -> impl std::future::Future<Output = ()> + 'static {
        let buffer = Rc::clone(&self.buffer);
        let dropped = Rc::clone(&self.dropped);
        async move {
            loop {
                monoio::time::sleep(interval).await;
                let records = std::mem::take(&mut *buffer.borrow_mut());
                for r in records {
                    tracing::info!(
                        target: "pinion::access",
                        request_id = r.request_id.as_ref().map_or("", |v| v.as_str()),
                        method = %r.method,
                        path = %r.path,
                        route = r.route.as_deref().unwrap_or("unmatched"),
                        status = r.status,
                        duration_us = r.micros,
                        peer = %r.peer,
                    );
                }
                let lost = dropped.replace(0);
                if lost > 0 {
                    tracing::warn!(target: "pinion::access", dropped = lost, "access log records dropped");
                }
            }
        }
    }

    fn sampled(&self) -> bool {
        if self.threshold == u64::MAX {
            return true;
        }
        // xorshift64: a few instructions, per worker, no shared state.
        let mut x = self.rng.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.set(x);
        x < self.threshold
    }
}

impl<S: 'static> Middleware<S> for AccessLog {
    fn name(&self) -> &'static str {
        "access-log"
    }

    fn hooks(&self) -> Hooks {
        Hooks::FINISH
    }

    fn finish(&self, ex: &Exchange, status: u16, _ctx: &Ctx<S>) {
        if !self.sampled() {
            return;
        }
        let mut buffer = self.buffer.borrow_mut();
        if buffer.len() >= MAX_BUFFERED {
            self.dropped.set(self.dropped.get() + 1);
            return;
        }
        buffer.push(Record {
            request_id: ex.request_id_value(),
            method: ex.method().clone(),
            path: escaped_path(ex.path_bytes()),
            route: ex.route.map(|r| Rc::clone(&r.template)),
            status,
            micros: ex.elapsed().as_micros() as u64,
            peer: ex.peer(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::escaped_path;

    #[test]
    fn paths_are_logged_without_controls_or_raw_non_ascii() {
        assert_eq!(&*escaped_path(b"/users/42?x"), "/users/42?x");
        assert_eq!(&*escaped_path(b"/a%20b"), "/a%20b");
        // CSI (C2 9B), NEL (C2 85), U+2028 (E2 80 A8), invalid UTF-8, DEL, quote, backslash.
        assert_eq!(
            &*escaped_path(b"/\xc2\x9b31m/\xc2\x85/\xe2\x80\xa8/\xff/\x7f\"\\"),
            "/%C2%9B31m/%C2%85/%E2%80%A8/%FF/%7F%22%5C"
        );
    }
}
