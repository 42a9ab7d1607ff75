//! `Server-Timing`: how long the server spent on the request, for browsers' dev tools.

use super::{Exchange, HeaderBlock, Hooks, Middleware};
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

    fn hooks(&self) -> Hooks {
        Hooks::AFTER
    }

    fn needs_path(&self) -> bool {
        false
    }

    fn after(&self, ex: &Exchange, _resp: &Response, out: &mut HeaderBlock, _ctx: &Ctx<S>) {
        // itoa into one stack-built line rather than `write!` and four appends: formatting
        // machinery and per-piece copies showed up in the plaintext profile
        // (bench/run WORKLOADS=plaintext-mw).
        const PREFIX: &[u8] = b"server-timing: app;dur=";
        let micros = ex.elapsed().as_micros() as u64;
        let mut line = [0u8; PREFIX.len() + 20 + 6];
        line[..PREFIX.len()].copy_from_slice(PREFIX);
        let mut n = PREFIX.len();
        let mut ms = itoa::Buffer::new();
        let ms = ms.format(micros / 1000).as_bytes();
        line[n..n + ms.len()].copy_from_slice(ms);
        n += ms.len();
        let frac = micros % 1000;
        line[n..n + 6].copy_from_slice(&[
            b'.',
            b'0' + (frac / 100) as u8,
            b'0' + (frac / 10 % 10) as u8,
            b'0' + (frac % 10) as u8,
            b'\r',
            b'\n',
        ]);
        out.push_block(&line[..n + 6]);
    }
}
