//! may-minihttp serving the TechEmpower `plaintext` and `json` tests, the peer that pinion's
//! plaintext and json figures are compared against (DESIGN.md §4).
//!
//! The handler follows the shape of the TechEmpower may-minihttp entry: a bare `match` on the
//! path, a static body for `/plaintext`, the json message serialized per request into the
//! response buffer. may-minihttp itself writes `Server`, `Date` (cached, re-rendered once a
//! second) and `Content-Length`; the handler adds `Content-Type`. The one difference from the
//! entry: the json body is serialized with `serde_json` (the TechEmpower rules allow any
//! serializer; pinion uses `serde_json`).
//!
//! ```text
//! may-peer [--bind IP] [--port PORT] [--workers N]
//! ```
//!
//! Each flag falls back to an environment variable (`PEER_BIND`, `PEER_PORT`, `PEER_WORKERS`),
//! then to its default: `127.0.0.1`, `8080`, one worker per available core.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io;
use std::net::IpAddr;
use std::process::ExitCode;

use bytes::BufMut;
use may_minihttp::{HttpService, HttpServiceFactory, Request, Response};
use serde::Serialize;

/// The json test's message, serialized anew for every request as the TechEmpower rules require.
#[derive(Serialize)]
struct Message {
    message: &'static str,
}

/// One service per connection; stateless.
struct Techempower;

impl HttpService for Techempower {
    fn call(&mut self, req: Request, rsp: &mut Response) -> io::Result<()> {
        match req.path() {
            "/plaintext" => {
                rsp.header("Content-Type: text/plain")
                    .body("Hello, World!");
            }
            "/json" => {
                rsp.header("Content-Type: application/json");
                let message = Message {
                    message: "Hello, World!",
                };
                serde_json::to_writer(rsp.body_mut().writer(), &message)?;
            }
            _ => {
                rsp.status_code(404, "Not Found");
            }
        }
        Ok(())
    }
}

/// Hands every accepted connection a [`Techempower`] service.
struct Server;

impl HttpServiceFactory for Server {
    type Service = Techempower;

    fn new_service(&self, _id: usize) -> Techempower {
        Techempower
    }
}

/// What the command line and environment asked for.
struct Args {
    bind: IpAddr,
    port: u16,
    workers: usize,
}

impl Args {
    /// Reads `--bind`, `--port` and `--workers`, each falling back to its `PEER_*` variable.
    fn parse() -> Result<Args, String> {
        let mut bind = std::env::var("PEER_BIND").unwrap_or_else(|_| "127.0.0.1".to_owned());
        let mut port = std::env::var("PEER_PORT").unwrap_or_else(|_| "8080".to_owned());
        let mut workers = std::env::var("PEER_WORKERS").ok();

        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let slot = match flag.as_str() {
                "--bind" => &mut bind,
                "--port" => &mut port,
                "--workers" => workers.insert(String::new()),
                "-h" | "--help" => {
                    return Err("usage: may-peer [--bind IP] [--port PORT] [--workers N]".into())
                }
                other => return Err(format!("unknown argument `{other}` (try --help)")),
            };
            *slot = args
                .next()
                .ok_or_else(|| format!("`{flag}` needs a value"))?;
        }

        let workers = match workers {
            Some(n) => match n.parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => return Err(format!("workers must be a positive integer, not `{n}`")),
            },
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        Ok(Args {
            bind: bind
                .parse()
                .map_err(|e| format!("bad bind address `{bind}`: {e}"))?,
            port: port
                .parse()
                .map_err(|e| format!("bad port `{port}`: {e}"))?,
            workers,
        })
    }
}

fn main() -> ExitCode {
    let args = match Args::parse() {
        Ok(args) => args,
        Err(msg) => {
            eprintln!("may-peer: {msg}");
            return ExitCode::from(2);
        }
    };

    // Settings of the TechEmpower entry, plus the worker count: one for the pinned runs.
    may::config()
        .set_workers(args.workers)
        .set_pool_capacity(1000)
        .set_stack_size(0x1000);

    let server = match Server.start((args.bind, args.port)) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("may-peer: cannot listen on {}:{}: {e}", args.bind, args.port);
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "may-peer: listening on {}:{} with {} worker(s)",
        args.bind, args.port, args.workers
    );
    match server.join() {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}
