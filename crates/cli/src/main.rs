//! `pmdaemon`: the command line. A thin client: every verb is one request to
//! the daemon (started on demand) over the Unix socket, and a rendering of
//! the answer. `pmdaemon daemon` runs the daemon itself in the foreground.

mod cli;
mod client;
mod commands;
mod render;
mod transport;

use std::process::ExitCode;

use clap::Parser;
use pmdaemon_core::home::Home;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let home = Home::from_env();
    let config = cli.config;
    let result = match cli.command {
        cli::Command::Daemon(args) => commands::daemon::run(home, args.fresh),
        command => {
            // Not in foreground mode: a closed stdout must not kill the
            // process that owns the daemon (the log stream just stops).
            let foreground = matches!(command, cli::Command::Run(_))
                || matches!(command, cli::Command::Start(_) if commands::run::is_init());
            if !foreground {
                restore_sigpipe();
            }
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|runtime| runtime.block_on(commands::run(command, config, home)))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if json_requested() => {
            // Scripts asked for JSON: the error is JSON too (on stderr).
            let mut body = serde_json::json!({ "error": format!("{err:#}") });
            if let Some(config) = err.downcast_ref::<pmdaemon_core::ecosystem::ConfigError>() {
                body["problems"] = serde_json::to_value(&config.problems).unwrap_or_default();
            }
            eprintln!("{body}");
            ExitCode::FAILURE
        }
        Err(err) => {
            // Styled as clap styles its own errors, where colour is welcome.
            let label = if render::colour_for(&std::io::stderr()) {
                "\x1b[1;31merror:\x1b[0m"
            } else {
                "error:"
            };
            eprintln!("{label} {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Whether the command line asks for `--json` (an app's own arguments,
/// after `--`, do not count).
fn json_requested() -> bool {
    std::env::args()
        .skip(1)
        .take_while(|arg| arg != "--")
        .any(|arg| arg == "--json")
}

/// `pmdaemon list | head` should end quietly, as `ls | head` does, instead
/// of panicking on a closed stdout (Rust ignores SIGPIPE by default).
fn restore_sigpipe() {
    // SAFETY: called before any other thread exists; SIG_DFL is a valid
    // disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
