//! Logging: `tracing` to stderr as text or JSON lines, buffered on the worker threads.
//!
//! A sampled trace or an access-log line used to cost a `write(2)` each, on the thread serving
//! requests: at the default `telemetry_sample_ratio` of 1 % that was ~5 % of a pipelined
//! plaintext request's CPU time (`bench/run`, plaintext-mw). Worker threads therefore collect
//! their INFO, DEBUG and TRACE lines in a per-thread buffer that [`flusher`] writes every
//! [`FLUSH_INTERVAL`], or sooner once it holds [`FLUSH_AT`] bytes; WARN and ERROR lines are
//! written at once, after whatever was buffered before them, so the order of a thread's lines
//! is kept. Other threads (start-up, migrations) write every line at once.
//!
//! The cost: an abort (pinion is built with `panic = "abort"`) loses at most the last
//! [`FLUSH_INTERVAL`] of a worker's informational lines; the panic message itself is written
//! directly by the panic hook, and warnings and errors are never held back.

use std::cell::RefCell;
use std::io::{self, Write};
use std::time::Duration;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// How often a worker writes its buffered lines.
pub(crate) const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// A worker writes its buffer as soon as it holds this many bytes.
pub(crate) const FLUSH_AT: usize = 32 * 1024;

/// This thread's buffered lines; `None` on threads that write through.
struct Buffer(Option<Vec<u8>>);

impl Drop for Buffer {
    /// A worker thread that ends writes what it still holds.
    fn drop(&mut self) {
        if let Some(buf) = &self.0 {
            if !buf.is_empty() {
                let _ = out(buf);
            }
        }
    }
}

thread_local! {
    static BUFFER: RefCell<Buffer> = const { RefCell::new(Buffer(None)) };
}

/// Where lines go: stderr (journald keeps it under systemd).
#[cfg(not(test))]
fn out(bytes: &[u8]) -> io::Result<()> {
    io::stderr().lock().write_all(bytes)
}

#[cfg(test)]
thread_local! {
    /// What the unit tests' threads "wrote to stderr".
    static WRITTEN: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

#[cfg(test)]
fn out(bytes: &[u8]) -> io::Result<()> {
    WRITTEN.with_borrow_mut(|w| w.extend_from_slice(bytes));
    Ok(())
}

/// Makes the calling thread buffer its informational lines (call it on each worker thread,
/// and spawn [`flusher`] on its runtime).
pub(crate) fn buffer_this_thread() {
    BUFFER.with_borrow_mut(|b| {
        if b.0.is_none() {
            b.0 = Some(Vec::with_capacity(FLUSH_AT));
        }
    });
}

/// Writes the calling thread's buffered lines, if any.
pub(crate) fn flush_this_thread() {
    BUFFER.with(|cell| {
        // A line logged while another is being written (never in practice) goes unbuffered.
        let Ok(mut b) = cell.try_borrow_mut() else {
            return;
        };
        if let Some(buf) = b.0.as_mut() {
            if !buf.is_empty() {
                let _ = out(buf);
                buf.clear();
            }
        }
    });
}

/// The worker's background writer: flushes this thread's buffer every [`FLUSH_INTERVAL`].
/// Runs until the runtime stops; the thread's end flushes the rest.
pub(crate) async fn flusher() {
    loop {
        monoio::time::sleep(FLUSH_INTERVAL).await;
        flush_this_thread();
    }
}

/// Writes one complete INFO line (ending in a newline) as the formatter's lines are written:
/// into this thread's buffer on a worker, straight to stderr elsewhere. For lines formatted
/// without `tracing` (the sampled traces, `trace_line`).
pub(crate) fn write_info(line: &[u8]) {
    let _ = Line { urgent: false }.write(line);
}

/// The `tracing-subscriber` writer: stderr, buffered as the module doc says.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Stderr;

/// One formatted line on its way to stderr.
#[derive(Debug)]
pub(crate) struct Line {
    /// WARN and ERROR lines, and lines without metadata, are written at once.
    urgent: bool,
}

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line { urgent: true }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line {
        // `Level`'s order runs from ERROR (least) to TRACE (greatest).
        Line {
            urgent: *meta.level() <= Level::WARN,
        }
    }
}

impl Write for Line {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let buffered = !self.urgent
            && BUFFER.with(|cell| {
                let Ok(mut b) = cell.try_borrow_mut() else {
                    return false;
                };
                let Some(buf) = b.0.as_mut() else {
                    return false;
                };
                buf.extend_from_slice(line);
                if buf.len() >= FLUSH_AT {
                    let _ = out(buf);
                    buf.clear();
                }
                true
            });
        if !buffered {
            // What this thread buffered comes first.
            flush_this_thread();
            out(line)?;
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buffered_len() -> Option<usize> {
        BUFFER.with_borrow(|b| b.0.as_ref().map(Vec::len))
    }

    fn written() -> String {
        WRITTEN.with_borrow(|w| String::from_utf8_lossy(w).into_owned())
    }

    #[test]
    fn worker_threads_hold_info_lines_until_flushed_and_warnings_flush_them() {
        std::thread::spawn(|| {
            let info = |s: &[u8]| Line { urgent: false }.write_all(s).expect("write");
            // Not a worker: nothing is held.
            info(b"start-up line\n");
            assert_eq!(buffered_len(), None);
            assert_eq!(written(), "start-up line\n");
            buffer_this_thread();
            info(b"one\n");
            info(b"two\n");
            assert_eq!(buffered_len(), Some(8));
            assert_eq!(written(), "start-up line\n", "held back");
            // A warning writes what was held, then itself.
            Line { urgent: true }.write_all(b"warn\n").expect("write");
            assert_eq!(buffered_len(), Some(0));
            assert_eq!(written(), "start-up line\none\ntwo\nwarn\n");
            info(b"three\n");
            flush_this_thread();
            assert_eq!(buffered_len(), Some(0));
            assert!(written().ends_with("warn\nthree\n"));
            // A full buffer is written without waiting for the flusher.
            let big = vec![b'x'; FLUSH_AT];
            info(&big);
            assert_eq!(buffered_len(), Some(0));
            assert_eq!(
                written().len(),
                "start-up line\none\ntwo\nwarn\nthree\n".len() + FLUSH_AT
            );
        })
        .join()
        .expect("thread");
    }

    #[test]
    fn levels_decide_what_is_urgent() {
        use tracing::callsite::Identifier;
        use tracing::field::FieldSet;
        use tracing::metadata::Kind;
        struct Site;
        impl tracing::callsite::Callsite for Site {
            fn set_interest(&self, _: tracing::subscriber::Interest) {}
            fn metadata(&self) -> &Metadata<'_> {
                unreachable!("not registered")
            }
        }
        static SITE: Site = Site;
        for (level, urgent) in [
            (Level::ERROR, true),
            (Level::WARN, true),
            (Level::INFO, false),
            (Level::DEBUG, false),
            (Level::TRACE, false),
        ] {
            let meta = Metadata::new(
                "e",
                "t",
                level,
                None,
                None,
                None,
                FieldSet::new(&[], Identifier(&SITE)),
                Kind::EVENT,
            );
            assert_eq!(Stderr.make_writer_for(&meta).urgent, urgent, "{level}");
        }
    }
}
