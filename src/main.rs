//! The pgsplit binary: parses the command line, sets up logging and the runtime, and runs the
//! daemon until SIGTERM or SIGINT.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context;
use tokio::signal::unix::Signal;
use tokio_util::sync::CancellationToken;

use pgsplit::cli::{Cli, Command};
use pgsplit::config::{self, LogFormat, Settings};
use pgsplit::log_output::LogOutput;

/// An error ends the process with status 1 and one message on stderr, never a backtrace: what
/// a person reads is the message, whatever RUST_BACKTRACE says.
// Rust ignores SIGPIPE before `main`: a write to a closed pipe (stdout, a client's socket) fails
// with EPIPE, which every writer here handles, instead of killing the process.
fn main() -> ExitCode {
    let cli = Cli::try_parse_args(std::env::args_os()).unwrap_or_else(|e| e.exit());
    match run_command(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "pgsplit: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_command(cli: Cli) -> anyhow::Result<()> {
    let (path, named) = cli.config_path();
    let load = |env: config::env::EnvLookup| config::load_with_env(&path, env).map_err(|e| load_error(e, named));
    let environment = |name: &str| std::env::var(name).ok();
    // `--log-level` wins over the file's level (and, in `run`, over RUST_LOG).
    let with_level = |mut settings: Settings| {
        settings.log_level = cli.log_level.clone().unwrap_or(settings.log_level);
        settings
    };
    match cli.command.unwrap_or(Command::Run) {
        Command::CheckConfig => print(&config::render(&with_level(load(&environment)?))),
        Command::Run => run(with_level(load(&environment)?), cli.log_level.is_some()),
        Command::Explain { sql, database, user, application_name } => {
            // Explain reads no secret: an unset ${VAR} stands for itself.
            let placeholder = |name: &str| Some(std::env::var(name).unwrap_or_else(|_| format!("${{{name}}}")));
            let settings = load(&placeholder)?;
            let database = database.or_else(|| settings.databases.keys().next().cloned()).unwrap_or_default();
            let who =
                pgsplit::explain::Context { database: &database, user: &user, application_name: &application_name };
            print(&pgsplit::explain::explain(&settings, &sql, &who).map_err(anyhow::Error::msg)?)
        }
    }
}

/// A config that cannot be read: a missing file says where pgsplit looked and where to start.
fn load_error(e: config::ConfigError, named: bool) -> anyhow::Error {
    let config::ConfigError::Read { path, source } = &e else { return e.into() };
    if source.kind() != std::io::ErrorKind::NotFound {
        return e.into();
    }
    let full = std::env::current_dir().map(|d| d.join(path)).unwrap_or_else(|_| path.into());
    let how = match named {
        true => "",
        false => " (the default: no file was named with `pgsplit FILE`, --config FILE or PGSPLIT_CONFIG)",
    };
    anyhow::anyhow!(
        "no config file at {}{how}.\nconfig/pgsplit.example.toml in pgsplit's repository documents every key: \
         copy it, or start from config/quickstart.toml.",
        full.display()
    )
}

/// Writes a command's output to stdout: a closed stdout (`pgsplit check-config | head -0`) is an
/// error to report, where `print!` would panic.
fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).and_then(|()| out.flush()).context("cannot write to stdout")
}

/// Runs the daemon; `forced_level` says the log level came from `--log-level`.
fn run(settings: Settings, forced_level: bool) -> anyhow::Result<()> {
    init_logging(&settings.log_level, forced_level, settings.log_format);
    let runtime = runtime(settings.workers)?;
    runtime.block_on(async move {
        // Before the listeners: once a client can connect, SIGTERM and SIGINT must stop pgsplit
        // cleanly, not end it by their default action.
        let signals = stop_signals();
        let listeners = pgsplit::app::Listeners::bind(&settings).await?;
        let shutdown = CancellationToken::new();
        if let Some(signals) = signals {
            tokio::spawn(wait_for_signal(signals, shutdown.clone()));
        }
        pgsplit::app::serve_all(listeners, settings, shutdown).await?;
        tracing::info!("pgsplit stopped");
        Ok(())
    })
}

/// One worker: a current-thread runtime, where a client's wake-ups never cross threads. More: the
/// multi-threaded scheduler with that many workers.
fn runtime(workers: usize) -> std::io::Result<tokio::runtime::Runtime> {
    match workers {
        1 => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        n => tokio::runtime::Builder::new_multi_thread().worker_threads(n).enable_all().build(),
    }
}

/// `level` is the config's, or `--log-level`'s, which wins over everything. Else RUST_LOG wins
/// over the config's level, so an operator can raise verbosity without an edit.
/// Timestamps are RFC 3339 in UTC in both formats (the subscriber's default clock). Lines go to
/// stdout through [`LogOutput`], which drops what it cannot write: a dead log reader never takes
/// a task down; the subscriber's own error reports (`eprintln!`, which panics on a closed
/// stderr) are off.
///
/// Directives by target and level (`pgsplit=debug,warn`) are kept by `Targets`, which decides
/// per call site once; `EnvFilter` is used only for the span and field filters (`[client{...}]`)
/// that need it, since it takes a shared lock on every span enter and exit: every poll of every
/// client's task.
fn init_logging(level: &str, forced: bool, format: LogFormat) {
    use tracing_subscriber::filter::{EnvFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let directives = std::env::var("RUST_LOG")
        .ok()
        .filter(|_| !forced)
        .filter(|d| !d.trim().is_empty())
        .unwrap_or_else(|| format!("pgsplit={level},warn"));
    let targets = directives.parse::<Targets>().ok().filter(|_| !directives.contains('['));
    let env_filter = targets.is_none().then(|| EnvFilter::new(&directives));
    let filters = tracing_subscriber::registry().with(targets).with(env_filter);
    // Colours only for a person at a terminal, never into a file, a pipe or a journal.
    let text = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_ansi(std::io::stdout().is_terminal())
        .with_writer(LogOutput)
        .log_internal_errors(false);
    match format {
        LogFormat::Text => filters.with(text).init(),
        // Event fields at the top level, where collectors index them; the innermost span as
        // `span` and every enclosing one in `spans`, so a line names its client and server.
        LogFormat::Json => {
            filters.with(text.json().flatten_event(true).with_current_span(true).with_span_list(true)).init()
        }
    }
}

/// SIGTERM and SIGINT, listened for from now on.
fn stop_signals() -> Option<(Signal, Signal)> {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(term), Ok(int)) => Some((term, int)),
        _ => {
            tracing::error!("cannot install signal handlers");
            None
        }
    }
}

async fn wait_for_signal((mut term, mut int): (Signal, Signal), shutdown: CancellationToken) {
    let signal = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    // Said before the shutdown starts, so the line comes before the last one ("pgsplit stopped").
    // Logging never blocks: the log output drops lines it cannot write (`log_output`).
    tracing::info!("{signal} received");
    shutdown.cancel();
}
