//! `pmdaemon run …` (and `start` when pmdaemon is PID 1, as the `command:`
//! of a container): the daemon in the foreground, for Docker and
//! Kubernetes.
//!
//! This process starts the daemon as its child (not detached), starts the
//! apps through it as `start` would, streams their logs to stdout (what
//! `docker logs` shows), and stays until it is told to stop: SIGTERM or
//! SIGINT is passed to the daemon, which stops every app gracefully and
//! exits, and so does this process. It also ends when the daemon ends, or
//! when no app is left running (an app that gave up, or every app exited
//! for good): with an error if one ended `errored`. As PID 1 it reaps
//! every orphan the kernel hands it.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use pmdaemon_core::api::{ProcessInfo, Status};
use pmdaemon_core::home::Home;
use tokio::signal::unix::{signal, SignalKind};

use crate::cli::{LogsArgs, StartArgs};
use crate::client::Client;

/// Whether this process is PID 1 (a container's init): then `start` runs
/// in the foreground.
pub fn is_init() -> bool {
    std::process::id() == 1
}

/// Runs the daemon in the foreground with the apps `args` names.
pub async fn run(args: StartArgs, config: Option<PathBuf>, home: Home) -> Result<()> {
    if Client::existing(home.clone()).await.is_some() {
        bail!(
            "a daemon already runs for {}; use `pmdaemon start` to add apps to it, or `pmdaemon kill` first",
            home.root().display()
        );
    }
    // Signals are ours from the start: as PID 1 an unhandled SIGTERM is
    // simply dropped.
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    // Our child, in our process group: a container's signals reach it
    // through us.
    let (mut daemon, ready) = crate::client::spawn_daemon(&home, true).await?;
    if !ready {
        let _ = daemon.kill();
        let status = daemon.wait().ok();
        bail!("the daemon did not start ({status:?}); its messages are above");
    }
    let daemon_pid = daemon.id();
    let stop_daemon = |why: &str| {
        eprintln!("[pmdaemon] {why}: stopping every app");
        // SAFETY: kill(2) has no memory-safety requirements.
        unsafe { libc::kill(daemon_pid as i32, libc::SIGTERM) };
    };
    let started = tokio::select! {
        started = super::start::run(args, config, home.clone()) => started,
        _ = terminate.recv() => Err(anyhow::anyhow!("stopped by SIGTERM while starting")),
        _ = interrupt.recv() => Err(anyhow::anyhow!("stopped by SIGINT while starting")),
    };
    if let Err(err) = started {
        stop_daemon("the apps could not start");
        let _ = daemon.wait();
        return Err(err);
    }
    // From here on, one thread reaps every child: the daemon, and as PID 1
    // any orphan the kernel hands us.
    let (exited, mut daemon_exit) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || reap(daemon_pid, exited));
    let logs = tokio::spawn(super::logs::run(
        LogsArgs {
            target: None,
            // What the apps printed while they were being started.
            lines: 20,
            err: false,
            out: false,
            follow: true,
            raw: false,
            json: false,
        },
        home.clone(),
    ));
    let mut ended_with: Option<Result<()>> = None;
    // The log stream goes on until the daemon is gone, so that the apps'
    // last words reach `docker logs` (the daemon does not wait for it).
    let stopping = stop_daemon;
    let status = loop {
        tokio::select! {
            status = &mut daemon_exit => break status.ok(),
            _ = terminate.recv() => stopping("SIGTERM"),
            _ = interrupt.recv() => stopping("SIGINT"),
            // No event stream to clients yet: look once a second.
            () = tokio::time::sleep(Duration::from_secs(1)), if ended_with.is_none() => {
                if let Some(outcome) = all_ended(&home).await {
                    stopping("no app is running any more");
                    ended_with = Some(outcome);
                }
            }
        }
    };
    logs.abort();
    match (ended_with, status) {
        (Some(outcome), _) => outcome,
        (None, Some(0)) => Ok(()),
        (None, Some(code)) => bail!("the daemon exited with status {code}"),
        (None, None) => bail!("lost track of the daemon"),
    }
}

/// Reaps children until the daemon is reaped; sends its exit status.
fn reap(daemon: u32, exited: tokio::sync::oneshot::Sender<i32>) {
    use nix::sys::wait::{waitpid, WaitStatus};
    loop {
        match waitpid(None, None) {
            Ok(WaitStatus::Exited(pid, code)) if pid.as_raw() as u32 == daemon => {
                let _ = exited.send(code);
                return;
            }
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid.as_raw() as u32 == daemon => {
                let _ = exited.send(128 + signal as i32);
                return;
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(_) => {
                let _ = exited.send(-1);
                return;
            }
        }
    }
}

/// When no instance is running or about to run again: Ok if none ended
/// `errored`.
async fn all_ended(home: &Home) -> Option<Result<()>> {
    let client = Client::existing(home.clone()).await?;
    let list: Vec<ProcessInfo> = client
        .call::<pmdaemon_core::api::endpoints::List>("", &())
        .await
        .ok()?;
    let running = |p: &ProcessInfo| !matches!(p.status, Status::Stopped | Status::Errored);
    if list.iter().any(running) {
        return None;
    }
    let errored: Vec<&str> = list
        .iter()
        .filter(|p| p.status == Status::Errored)
        .map(|p| p.name.as_str())
        .collect();
    Some(if errored.is_empty() {
        Ok(())
    } else {
        Err(anyhow::anyhow!(
            "{} gave up (errored); see `pmdaemon logs`",
            errored.join(", ")
        ))
    })
}
