//! The Unix calls behind spawning and signalling: every instance leads its
//! own process group, so one `kill(-pgid)` reaches everything it forked.

use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use super::Plan;
use crate::reaper::{ExitReceiver, Reaper};

/// A freshly started instance.
#[derive(Debug)]
pub struct Spawned {
    /// Its pid, which is also its process group id.
    pub pid: u32,
    /// Resolves when it exits.
    pub exit: ExitReceiver,
    /// The read end of its stdout.
    pub stdout: OwnedFd,
    /// The read end of its stderr.
    pub stderr: OwnedFd,
}

/// Starts `plan` in a new process group with stdin from /dev/null and
/// stdout/stderr on pipes.
pub fn spawn(reaper: &Reaper, plan: &Plan) -> std::io::Result<Spawned> {
    let mut command = Command::new(&plan.program);
    command
        .args(&plan.args)
        .current_dir(&plan.cwd)
        .env_clear()
        .envs(&plan.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let (mut child, exit) = reaper.spawn(&mut command)?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        // Unreachable with Stdio::piped(); the child is reaped by the reaper.
        let _ = signal_group(child.id(), Signal::SIGKILL);
        return Err(std::io::Error::other("child has no output pipes"));
    };
    let (stdout, stderr): (OwnedFd, OwnedFd) = (stdout.into(), stderr.into());
    Ok(Spawned {
        pid: child.id(),
        exit,
        stdout,
        stderr,
    })
}

/// Sends `signal` to process group `pgid`; false when the group is empty.
/// The signal that asks `config`'s app to stop (`stop_signal`, SIGTERM
/// when it names none that exists here).
pub fn stop_signal(config: &pmdaemon_core::config::AppConfig) -> Signal {
    pmdaemon_core::config::signal_number(&config.stop_signal)
        .ok()
        .and_then(|number| Signal::try_from(number).ok())
        .unwrap_or(Signal::SIGTERM)
}

pub fn signal_group(pgid: u32, signal: Signal) -> bool {
    match i32::try_from(pgid) {
        Ok(raw) if raw > 1 => !matches!(killpg(Pid::from_raw(raw), signal), Err(Errno::ESRCH)),
        _ => false,
    }
}

/// Whether any process is left in group `pgid`.
pub fn group_alive(pgid: u32) -> bool {
    match i32::try_from(pgid) {
        Ok(raw) if raw > 1 => !matches!(
            nix::sys::signal::kill(Pid::from_raw(-raw), None),
            Err(Errno::ESRCH)
        ),
        _ => false,
    }
}
