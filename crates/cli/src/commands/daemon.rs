//! `pmdaemon daemon`: the daemon in the foreground.

use anyhow::Result;
use pmdaemon_core::home::Home;
use pmdaemon_daemon::Options;
use tracing_subscriber::EnvFilter;

/// Runs the daemon until `pmdaemon kill`, SIGTERM or Ctrl-C. Its log goes to
/// stderr (daemon.log when started on demand); `RUST_LOG` filters it.
pub fn run(home: Home, fresh: bool) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
    pmdaemon_daemon::run(Options { home, fresh })?;
    Ok(())
}
