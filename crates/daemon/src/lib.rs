//! The pmdaemon supervisor as a library: [`run`] starts it.
//!
//! Theory of operation. One daemon owns one home directory (a lock file makes
//! sure of it) and every process started from it. It is a child subreaper,
//! so whatever an app forks stays its descendant even after the middle
//! process dies. A single reaper task turns SIGCHLD into exit events for the
//! instance tasks ([`reaper`]); each instance task owns one child, restarts
//! it according to its policy and obeys commands from the API
//! ([`supervisor`]). Every change to the process table is written atomically
//! to `state.json` ([`store`]); when a daemon starts it reads that table,
//! kills what a dead predecessor left running ([`recover`]) and brings every
//! app back to the state the user asked for. The same axum router ([`api`])
//! answers the CLI on the 0600 Unix socket and, when `pmdaemon web` enabled
//! it, other clients on TCP behind an API key ([`web`]).

pub mod api;
pub mod balancer;
mod error;
pub mod events;
mod health;
pub mod logs;
pub mod metrics;
pub mod paths;
pub mod ports;
pub mod procinfo;
pub mod reaper;
pub mod recover;
pub mod spawn;
pub mod store;
pub mod supervisor;
mod triggers;
pub mod web;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::sync::Arc;

use nix::fcntl::{Flock, FlockArg};
use tokio::net::UnixListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Notify;

pub use error::Error;
pub use paths::Home;

/// How to run the daemon.
#[derive(Debug, Clone)]
pub struct Options {
    /// The home it owns.
    pub home: Home,
    /// Start with an empty process table (foreground mode, whose apps are
    /// the ones its command names): what a previous daemon left running is
    /// still killed, but nothing is brought back.
    pub fresh: bool,
}

/// Runs the daemon until `pmdaemon kill`, SIGTERM or SIGINT. Prints one line
/// containing `ready` on stdout once the socket accepts requests.
pub fn run(options: Options) -> Result<(), Error> {
    limit_malloc_arenas();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(8)
        .enable_all()
        .build()
        .map_err(|err| Error::io("start", "the async runtime", err))?;
    runtime.block_on(serve(options))
}

async fn serve(options: Options) -> Result<(), Error> {
    let home = options.home;
    let root = home.root();
    if !root.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(|err| Error::io("create", root, err))?;
    }
    let _lock = lock_home(&home)?;
    // Orphaned grandchildren of the apps are reparented to us, not to init,
    // so that they can be reaped and killed with their group.
    if let Err(err) = nix::sys::prctl::set_child_subreaper(true) {
        tracing::warn!("could not become a child subreaper: {err}");
    }
    fs::write(home.pid_file(), format!("{}\n", std::process::id()))
        .map_err(|err| Error::io("write", home.pid_file(), err))?;

    let reaper = reaper::Reaper::start().map_err(|err| Error::io("watch", "SIGCHLD", err))?;
    let (state, warning) = store::load(&home.state_file())?;
    if let Some(warning) = warning {
        tracing::warn!("{warning}");
    }
    let leftovers = recover::kill_leftovers(&home, &state).await;
    if leftovers > 0 {
        tracing::warn!("stopped {leftovers} processes left running by a previous daemon");
    }
    let state = if options.fresh {
        store::State::default()
    } else {
        state
    };
    let supervisor = supervisor::Supervisor::new(home.clone(), reaper, state);
    supervisor.resume().await;
    if let Some(interval) = metrics::interval_from_env() {
        tokio::spawn(metrics::run(Arc::downgrade(&supervisor), interval));
    }
    // Housekeeping: the daemon's own log rotates like the apps' logs, and
    // after any rotation the disk budget covers every log we manage.
    let daemon_log = home.daemon_log();
    let weak = Arc::downgrade(&supervisor);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
        loop {
            tick.tick().await;
            let Some(supervisor) = weak.upgrade() else {
                return;
            };
            // The logs the budget covers, only when one is due.
            let budget = logs::budget_due().map(|budget| (budget, supervisor.all_log_paths()));
            drop(supervisor);
            // Give memory freed by deleted apps back to the system (glibc
            // keeps it otherwise); a few microseconds on a heap this small.
            #[cfg(target_env = "gnu")]
            // SAFETY: malloc_trim only releases free memory of the allocator.
            unsafe {
                libc::malloc_trim(0);
            }
            let path = daemon_log.clone();
            let rotated = tokio::task::spawn_blocking(move || {
                let rotated = logs::rotate_stderr_log(&path, logs::Rotation::default());
                if let Some((budget, mut managed)) = budget {
                    managed.push(path);
                    logs::enforce_budget(&managed, budget);
                }
                rotated
            })
            .await
            .unwrap_or(Ok(false));
            match rotated {
                Ok(true) => tracing::info!("rotated {}", daemon_log.display()),
                Ok(false) => {}
                Err(err) => tracing::warn!("cannot rotate {}: {err}", daemon_log.display()),
            }
        }
    });

    let socket = home.socket();
    match fs::remove_file(&socket) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(Error::io("remove the stale socket", &socket, err)),
    }
    let listener =
        UnixListener::bind(&socket).map_err(|err| Error::io("listen on", &socket, err))?;
    fs::set_permissions(&socket, fs::Permissions::from_mode(0o600))
        .map_err(|err| Error::io("restrict", &socket, err))?;

    let shutdown = Arc::new(Notify::new());
    let web = Arc::new(web::Door::new(home.clone()));
    let state = api::AppState {
        supervisor: Arc::clone(&supervisor),
        shutdown: Arc::clone(&shutdown),
        web: Arc::clone(&web),
    };
    web.resume(state.clone()).await;
    tracing::info!(
        "pmdaemon {} ready on {} (pid {})",
        pmdaemon_core::VERSION,
        socket.display(),
        std::process::id()
    );
    announce_ready(&socket);

    let mut sigterm =
        signal(SignalKind::terminate()).map_err(|err| Error::io("watch", "SIGTERM", err))?;
    let mut sigint =
        signal(SignalKind::interrupt()).map_err(|err| Error::io("watch", "SIGINT", err))?;
    let stopped = Arc::new(Notify::new());
    let stop_signal = {
        let supervisor = Arc::clone(&supervisor);
        let shutdown = Arc::clone(&shutdown);
        let stopped = Arc::clone(&stopped);
        async move {
            tokio::select! {
                () = shutdown.notified() => {}
                _ = sigterm.recv() => {
                    tracing::info!("SIGTERM: stopping every app");
                    supervisor.shutdown().await;
                }
                _ = sigint.recv() => {
                    tracing::info!("SIGINT: stopping every app");
                    supervisor.shutdown().await;
                }
            }
            stopped.notify_one();
        }
    };
    let serve = std::future::IntoFuture::into_future(
        axum::serve(listener, api::socket_router(state)).with_graceful_shutdown(stop_signal),
    );
    // Requests in flight get a moment to finish; endless ones (`logs
    // --follow`) must not keep the daemon alive.
    let served = tokio::select! {
        served = serve => served,
        () = async {
            stopped.notified().await;
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        } => Ok(()),
    };
    web.shutdown().await;
    let _ = fs::remove_file(&socket);
    let _ = fs::remove_file(home.pid_file());
    tracing::info!("daemon stopped");
    served.map_err(|err| Error::io("serve on", socket, err))
}

/// glibc gives every thread that allocates its own malloc arena; with the
/// runtime's threads that alone costs megabytes of resident memory for a
/// daemon that allocates little. Two arenas are plenty.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before any other
    // thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

fn lock_home(home: &Home) -> Result<Flock<fs::File>, Error> {
    let path = home.lock_file();
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|err| Error::io("open", &path, err))?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
        if errno == nix::errno::Errno::EWOULDBLOCK {
            Error::AlreadyRunning {
                home: home.root().to_path_buf(),
                pid: fs::read_to_string(home.pid_file())
                    .map(|p| p.trim().to_string())
                    .unwrap_or_else(|_| "unknown".into()),
            }
        } else {
            Error::io("lock", &path, errno.into())
        }
    })
}

/// Tells whoever started us (the CLI reads our stdout) that requests are
/// accepted now; then stdout is let go so that nothing blocks on it later.
fn announce_ready(socket: &std::path::Path) {
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "pmdaemon daemon ready on {}", socket.display());
    let _ = stdout.flush();
    if !nix::unistd::isatty(std::io::stdout()).unwrap_or(false) {
        if let Ok(null) = fs::File::open("/dev/null") {
            let _ = nix::unistd::dup2_stdout(&null);
        }
    }
}
