//! `Server-Timing`: how long the server spent on the request, for browsers' dev tools.

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
        // itoa rather than `write!`: formatting machinery showed up in the plaintext profile
        // (bench/run WORKLOADS=plaintext-mw).
        let micros = ex.elapsed().as_micros() as u64;
        let mut value = [0u8; 40];
        let prefix = b"app;dur=";
        value[..prefix.len()].copy_from_slice(prefix);
        let mut n = prefix.len();
        let mut ms = itoa::Buffer::new();
        let ms = ms.format(micros / 1000).as_bytes();
        value[n..n + ms.len()].copy_from_slice(ms);
        n += ms.len();
        let frac = micros % 1000;
        value[n] = b'.';
        value[n + 1] = b'0' + (frac / 100) as u8;
        value[n + 2] = b'0' + (frac / 10 % 10) as u8;
        value[n + 3] = b'0' + (frac % 10) as u8;
        out.push_str("server-timing", &value[..n + 4]);
    }
}
