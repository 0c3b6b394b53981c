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
//!
//! Modules import downward only. The probes (`health`, [`metrics`],
//! `triggers`) and the [`balancer`] know nothing of the supervisor: each
//! states what it reports or asks for as a small trait (or plain calls the
//! supervisor makes), and the supervisor implements those; [`api`] sits on
//! top of the supervisor.

pub mod api;
pub mod balancer;
mod error;
pub mod events;
mod health;
mod home_watch;
pub mod inheritance;
pub mod journal;
pub mod logs;
pub mod metrics;
mod node_ipc;
pub mod ports;
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

pub use error::{Error, NotReady, PathProblem, PathRole};
/// The home's files (in core, shared with the CLI).
pub use pmdaemon_core::home as paths;
pub use pmdaemon_core::home::Home;
/// Facts read from `/proc` (in core, shared with the CLI).
pub use pmdaemon_core::procinfo;

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

/// Runs the daemon until `pmdaemon kill`, SIGTERM, SIGINT or SIGQUIT, or
/// until its home is removed. Prints one line containing `ready` on stdout
/// once the socket accepts requests. It first lets go of what its caller
/// handed down ([`inheritance`]): every descriptor but 0, 1 and 2 is closed,
/// so call it before opening anything.
pub fn run(options: Options) -> Result<(), Error> {
    inheritance::detach_from_caller();
    limit_malloc_arenas();
    // Forked while the daemon is still small and has one thread.
    let spawner = spawn::spawner::Spawner::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(8)
        .enable_all()
        .build()
        .map_err(|err| Error::io("start", "the async runtime", err))?;
    runtime.block_on(serve(options, spawner))
}

async fn serve(options: Options, spawner: Option<spawn::spawner::Spawner>) -> Result<(), Error> {
    let home = options.home;
    let root = home.root();
    if !root.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(|err| Error::io("create", root, err))?;
    }
    pmdaemon_core::trust::check_home(root)?;
    let _lock = lock_home(&home)?;
    // A clean exit removes the pid file: finding one means the previous
    // daemon died (killed, crashed) without stopping its apps.
    let predecessor = fs::read_to_string(home.pid_file())
        .ok()
        .map(|pid| pid.trim().to_string());
    // Orphaned grandchildren of the apps are reparented to us, not to init,
    // so that they can be reaped and killed with their group.
    if let Err(err) = nix::sys::prctl::set_child_subreaper(true) {
        tracing::warn!("could not become a child subreaper: {err}");
    }
    fs::write(home.pid_file(), format!("{}\n", std::process::id()))
        .map_err(|err| Error::io("write", home.pid_file(), err))?;

    let reaper = reaper::Reaper::start().map_err(|err| Error::io("watch", "SIGCHLD", err))?;
    let (mut state, warning) = store::load(&home.state_file())?;
    // Said in daemon.log, and to the command that started this daemon.
    let mut notices = Vec::new();
    if let Some(warning) = warning {
        tracing::warn!("{warning}");
        notices.push(warning);
    }
    if let Some(pid) = predecessor {
        note_predecessor_death(&mut state, &pid);
    }
    let leftovers = recover::kill_leftovers(&home, &state).await;
    if leftovers > 0 {
        let notice = format!("stopped {leftovers} processes left running by a previous daemon");
        tracing::warn!("{notice}");
        notices.push(notice);
    }
    let state = if options.fresh {
        // Empty, but its lines numbered after the journal's (see replay).
        store::State {
            journal_seq: state.journal_seq,
            ..store::State::default()
        }
    } else {
        state
    };
    let supervisor = supervisor::Supervisor::new(home.clone(), reaper, spawner, state);
    supervisor.resume().await;
    if let Some(interval) = supervisor.sampler.interval() {
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
    home_watch::watch(root, &socket).map_err(|err| Error::io("inspect", &socket, err))?;

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
    announce_ready(&socket, &notices);

    let mut sigterm =
        signal(SignalKind::terminate()).map_err(|err| Error::io("watch", "SIGTERM", err))?;
    let mut sigint =
        signal(SignalKind::interrupt()).map_err(|err| Error::io("watch", "SIGINT", err))?;
    let mut sigquit =
        signal(SignalKind::quit()).map_err(|err| Error::io("watch", "SIGQUIT", err))?;
    tokio::spawn(survive_signals(Arc::downgrade(&supervisor))?);
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
                _ = sigquit.recv() => {
                    tracing::info!("SIGQUIT: stopping every app, as SIGTERM does");
                    supervisor.shutdown().await;
                }
                reason = home_watch::gone() => {
                    // Said on stderr too: daemon.log may be gone with the home.
                    tracing::error!("{reason}: this daemon can no longer be reached; stopping every app and exiting");
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
    // A lost home's path may hold a new daemon's files by now.
    if !home_watch::lost() {
        let _ = fs::remove_file(&socket);
        let _ = fs::remove_file(home.pid_file());
    }
    tracing::info!("daemon stopped");
    served.map_err(|err| Error::io("serve on", socket, err))
}

/// Writes in the history of every instance that was running that the
/// daemon before us died without stopping it (its processes are then
/// stopped by [`recover`] and started again).
fn note_predecessor_death(state: &mut store::State, pid: &str) {
    let mut running = 0;
    for record in state.instances.iter_mut().filter(|r| r.pid.is_some()) {
        record.record(
            "daemon died",
            format!("the previous daemon (pid {pid}) ended without stopping this instance"),
        );
        running += 1;
    }
    tracing::warn!(
        "the previous daemon (pid {pid}) ended without stopping its apps ({running} instances were running)"
    );
}

/// Signals that would end the daemon silently by default get a meaning
/// instead: SIGUSR2 logs a status line; SIGHUP, SIGUSR1 and SIGALRM are
/// logged and ignored (logs need no reopening: a moved or deleted log file
/// is recreated within a second).
fn survive_signals(
    supervisor: std::sync::Weak<supervisor::Supervisor>,
) -> Result<impl std::future::Future<Output = ()>, Error> {
    let watch = |kind: SignalKind, name: &'static str| {
        signal(kind).map_err(|err| Error::io("watch", name, err))
    };
    let mut hangup = watch(SignalKind::hangup(), "SIGHUP")?;
    let mut user1 = watch(SignalKind::user_defined1(), "SIGUSR1")?;
    let mut user2 = watch(SignalKind::user_defined2(), "SIGUSR2")?;
    let mut alarm = watch(SignalKind::alarm(), "SIGALRM")?;
    Ok(async move {
        loop {
            let name = tokio::select! {
                _ = hangup.recv() => "SIGHUP",
                _ = user1.recv() => "SIGUSR1",
                _ = alarm.recv() => "SIGALRM",
                _ = user2.recv() => {
                    let Some(supervisor) = supervisor.upgrade() else { return };
                    let list = supervisor.list();
                    let online = list
                        .iter()
                        .filter(|p| p.status == pmdaemon_core::api::Status::Online)
                        .count();
                    tracing::info!(
                        "SIGUSR2: pmdaemon {} (pid {}): {} instances, {online} online",
                        pmdaemon_core::VERSION,
                        std::process::id(),
                        list.len()
                    );
                    continue;
                }
            };
            tracing::info!("{name} received: ignored (the daemon keeps running)");
        }
    })
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
    // A daemon killed a moment ago (SIGKILL, then a command at once) holds
    // the lock until it has finished exiting: that is waited for, briefly.
    // A live holder is refused at once.
    let deadline = std::time::Instant::now() + LOCK_RELEASE_WAIT;
    let mut file = file;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(lock),
            Err((returned, nix::errno::Errno::EWOULDBLOCK)) => {
                let holder = fs::read_to_string(home.pid_file())
                    .map(|p| p.trim().to_string())
                    .unwrap_or_else(|_| "unknown".into());
                let ending = holder
                    .parse::<u32>()
                    .is_ok_and(pmdaemon_core::procinfo::is_ending);
                if !ending || std::time::Instant::now() >= deadline {
                    return Err(Error::AlreadyRunning {
                        home: home.root().to_path_buf(),
                        pid: holder,
                    });
                }
                file = returned;
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err((_, errno)) => return Err(Error::io("lock", &path, errno.into())),
        }
    }
}

/// How long a new daemon waits for a dying predecessor to release the
/// home's lock.
const LOCK_RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Tells whoever started us (the CLI reads our stdout) that requests are
/// accepted now; then stdout is let go so that nothing blocks on it later.
/// Under systemd (`Type=notify`, the unit `pmdaemon startup` writes) it also
/// sends `READY=1` to `NOTIFY_SOCKET`. The apps never see that variable: they
/// are spawned with an environment of their own.
fn announce_ready(socket: &std::path::Path, notices: &[String]) {
    if let Some(path) = std::env::var_os("NOTIFY_SOCKET") {
        if let Err(err) = notify_systemd(&path, b"READY=1") {
            tracing::warn!("cannot tell systemd we are ready: {err}");
        }
    }
    let mut stdout = std::io::stdout();
    for notice in notices {
        let _ = writeln!(stdout, "pmdaemon daemon warning: {notice}");
    }
    let _ = writeln!(stdout, "pmdaemon daemon ready on {}", socket.display());
    let _ = stdout.flush();
    if !nix::unistd::isatty(std::io::stdout()).unwrap_or(false) {
        if let Ok(null) = fs::File::open("/dev/null") {
            let _ = nix::unistd::dup2_stdout(&null);
        }
    }
}

/// Sends one sd_notify message to `path` (a socket path, or `@name` for an
/// abstract socket).
fn notify_systemd(path: &std::ffi::OsStr, message: &[u8]) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let bytes = path.as_bytes();
    let address = match bytes.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name)?
        }
        None => SocketAddr::from_pathname(path)?,
    };
    UnixDatagram::unbound()?.send_to_addr(message, &address)?;
    Ok(())
}
