//! `Server-Timing`: how long the server spent on the request, for browsers' dev tools.

use std::io::Write;

use super::{Exchange, HeaderBlock, Middleware};
use crate::context::Ctx;
use crate::h1::Response;

/// Adds `Server-Timing: app;dur=<ms>` (from the parsed head to the response, in ms with µs
/// precision). The duration metric is recorded by telemetry from the same start time.
#[derive(Debug, Default)]
pub struct ServerTiming;

impl<S: 'static> Middleware<S> for ServerTiming {
    fn name(&self) -> &'static str {
        "server-timing"
    }

    fn after(&self, ex: &Exchange, _resp: &Response, out: &mut HeaderBlock, _ctx: &Ctx<S>) {
        let micros = ex.start().elapsed().as_micros();
        let mut value = [0u8; 48];
        let mut cursor = std::io::Cursor::new(&mut value[..]);
        // A u128 of micros in "ms.µµµ" form always fits in 48 bytes.
        if write!(cursor, "app;dur={}.{:03}", micros / 1000, micros % 1000).is_ok() {
            let n = cursor.position() as usize;
            out.push_str("server-timing", &value[..n]);
        }
    }
}
