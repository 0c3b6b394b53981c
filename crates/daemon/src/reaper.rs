//! The one place that waits for children.
//!
//! The daemon is a child subreaper, so besides its own children it inherits
//! every orphaned grandchild of the apps; all of them must be reaped or they
//! stay zombies. A single task reacts to SIGCHLD by reaping everything that
//! has exited (`waitpid(-1, WNOHANG)` until nothing is left) and hands each
//! exit status to whoever registered that pid. Nobody else may wait for a
//! child: that is why spawning goes through [`Reaper::spawn`], which holds the
//! same lock as the reaping loop so that a child can never be reaped before
//! its pid is registered (and std's own wait for a failed exec is never
//! raced).

use std::collections::HashMap;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex, MutexGuard};

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use pmdaemon_core::api::ExitReason;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{oneshot, Notify};

/// Receives the exit of one spawned child.
pub type ExitReceiver = oneshot::Receiver<ExitReason>;

/// Reaps every child of the daemon and reports the registered ones.
#[derive(Debug, Default)]
pub struct Reaper {
    waiting: Mutex<HashMap<i32, oneshot::Sender<ExitReason>>>,
    reaped: Notify,
}

impl Reaper {
    /// Starts the reaping task. Must run inside the tokio runtime, before
    /// any child is spawned.
    pub fn start() -> std::io::Result<Arc<Self>> {
        let reaper = Arc::new(Self::default());
        let mut sigchld = signal(SignalKind::child())?;
        let task = Arc::clone(&reaper);
        tokio::spawn(async move {
            loop {
                task.reap_all();
                if sigchld.recv().await.is_none() {
                    break;
                }
            }
        });
        Ok(reaper)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<i32, oneshot::Sender<ExitReason>>> {
        // A poisoned map is still a valid map: keep reaping.
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn reap_all(&self) {
        let mut waiting = self.lock();
        loop {
            let (pid, reason) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, ExitReason::Code(code)),
                Ok(WaitStatus::Signaled(pid, signal, _)) => {
                    (pid, ExitReason::Signal(signal as i32))
                }
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(err) => {
                    tracing::warn!("waitpid failed: {err}");
                    break;
                }
            };
            if let Some(sender) = waiting.remove(&pid.as_raw()) {
                let _ = sender.send(reason);
            }
        }
        drop(waiting);
        self.reaped.notify_waiters();
    }

    /// Spawns `command` and registers its pid; the receiver resolves when
    /// it exits.
    pub fn spawn(&self, command: &mut Command) -> std::io::Result<(Child, ExitReceiver)> {
        let mut hold = self.hold();
        let child = command.spawn()?;
        let exit = hold.register(child.id());
        Ok((child, exit))
    }

    /// Holds reaping off until the returned guard is dropped: a child
    /// created meanwhile by other means (the spawner) stays a zombie, so
    /// its pid cannot be reused, until it is registered.
    pub fn hold(&self) -> Hold<'_> {
        Hold {
            waiting: self.lock(),
        }
    }

    /// Resolves after the next reaping pass (used while waiting for a
    /// process group to empty: its orphans are reparented to us).
    pub async fn reaped(&self) {
        self.reaped.notified().await;
    }
}

/// Reaping held off (see [`Reaper::hold`]).
pub struct Hold<'a> {
    waiting: MutexGuard<'a, HashMap<i32, oneshot::Sender<ExitReason>>>,
}

impl Hold<'_> {
    /// Registers child `pid`; the receiver resolves when it exits.
    pub fn register(&mut self, pid: u32) -> ExitReceiver {
        let (sender, receiver) = oneshot::channel();
        self.waiting.insert(pid as i32, sender);
        receiver
    }

    /// Forgets the registration of child `pid` (one that failed to exec,
    /// or was just killed): the reaping loop collects it like any child
    /// nobody waits for.
    pub fn forget(&mut self, pid: u32) {
        self.waiting.remove(&(pid as i32));
    }
}
