//! The `pinion` binary: `serve`, `check`, `--version`.
//!
//! The only place that reads arguments, the environment and files: it turns them into a typed
//! `Settings` and hands that to the libraries.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use pinion_app::{router, AppState};
use pinion_config::{LogFormat, Overrides, Settings, Source};

/// pinion: a thread-per-core HTTP/1.1 application server.
#[derive(Parser, Debug)]
#[command(name = "pinion", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the application (the default when no command is given).
    Serve(ServeArgs),
    /// Validate the configuration and print the effective settings (secrets masked).
    Check(ConfigArg),
}

#[derive(Args, Debug, Default)]
struct ConfigArg {
    /// Configuration file (pinion.toml).
    #[arg(long, short = 'c', env = "PINION_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Args, Debug, Default)]
struct ServeArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Address to listen on (overrides `bind`).
    #[arg(long, value_name = "ADDR")]
    bind: Option<IpAddr>,
    /// Port to listen on (overrides `port`; 0 picks a free one).
    #[arg(long, short = 'p', value_name = "N")]
    port: Option<u16>,
    /// Worker threads (overrides `threads` and WEB_CONCURRENCY).
    #[arg(long, short = 't', value_name = "N")]
    threads: Option<usize>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Check(args) => match load(&args, Overrides::default()) {
            Ok(settings) => {
                print!("{}", settings.render_masked());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Serve(args) => {
            let overrides = Overrides {
                bind: args.bind,
                port: args.port,
                threads: args.threads,
            };
            match load(&args.config, overrides) {
                Ok(settings) => serve(&settings),
                Err(code) => code,
            }
        }
    }
}

/// Loads the settings, or reports why not (naming the key) and gives the exit code.
fn load(args: &ConfigArg, overrides: Overrides) -> Result<Settings, ExitCode> {
    let mut source = Source::from_process_env().with_overrides(overrides);
    if let Some(path) = &args.config {
        source = source.with_file(path);
    }
    Settings::load(&source).map_err(|e| {
        eprintln!("pinion: configuration error: {e}");
        ExitCode::from(2)
    })
}

fn serve(settings: &Settings) -> ExitCode {
    init_logging(settings);
    let threads = settings.effective_threads();
    let handle =
        match pinion_server::start(settings, move |_worker| (router(), AppState { threads })) {
            Ok(handle) => handle,
            Err(e) => {
                tracing::error!("cannot start: {e}");
                eprintln!("pinion: cannot start: {e}");
                return ExitCode::FAILURE;
            }
        };
    if let Err(e) = pinion_server::install_signal_handlers(handle.trigger(), settings.drain_timeout)
    {
        eprintln!("pinion: {e}");
        handle.shutdown();
    }
    match handle.join() {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pinion: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr (journald keeps it under systemd), as text or JSON lines; `RUST_LOG`, when
/// set, overrides `log_level` for finer filters.
fn init_logging(settings: &Settings) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(settings.log_level.as_str()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let result = match settings.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    if let Err(e) = result {
        eprintln!("pinion: logging not initialised: {e}");
    }
}
