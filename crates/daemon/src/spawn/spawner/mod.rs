//! The spawner: a small process, forked from the daemon before it has a
//! thread, that creates the apps' processes for it.
//!
//! Forking the daemon itself costs what the daemon holds: the kernel copies
//! its page tables (tens of megabytes with a thousand apps) and the child
//! inherits one descriptor table entry per pipe and log file (four per
//! instance), each of which exec must close again. Both grow with the
//! table, so a `start` got slower the more apps ran and `restart all`
//! grew faster than linearly. The spawner stays as small as the daemon was
//! at birth, so a spawn costs the same with 1 app or 1,000.
//!
//! Its children are the daemon's (`CLONE_PARENT`): the daemon's reaper
//! waits for them as for any child, and its subreaper role is unchanged.
//! The daemon holds reaping off (see [`Hold`]) from the request until the
//! pid is registered, so a child that dies at once is still a zombie with
//! its pid when it is registered. A child waits for the spawner's go before
//! it execs, which the spawner gives only after telling the daemon its pid:
//! a spawner that dies in between leaves no process the daemon does not
//! know. A spawner that is gone (killed, or never started) is replaced by
//! the direct path (the daemon forks itself, as before), with a warning.

mod child;
mod process;
pub mod wire;

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};

use crate::reaper::{ExitReceiver, Hold};

/// How long a spawn may take before the spawner is deemed stuck (an exec
/// on a hung network file system, a stopped spawner): it is then killed
/// and the daemon spawns by itself. `PMDAEMON_SPAWN_TIMEOUT_MS` changes it.
const STUCK: Duration = Duration::from_secs(30);

fn stuck_after() -> Duration {
    std::env::var("PMDAEMON_SPAWN_TIMEOUT_MS")
        .ok()
        .and_then(|ms| ms.parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map_or(STUCK, Duration::from_millis)
}

/// How long a failed spawner's last words are waited for once it has been
/// killed.
const DRAIN: Duration = Duration::from_secs(5);

/// Whether `pid` is a child of ours not yet reaped (alive or a zombie).
fn is_unreaped_child(pid: u32) -> bool {
    // SAFETY: waitid writes into the siginfo we own; WNOWAIT leaves a
    // zombie for the reaper.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        ) == 0
    }
}

/// The daemon's end of the spawner.
#[derive(Debug)]
pub struct Spawner {
    link: UnixStream,
    pid: u32,
    /// A pidfd of the spawner (Linux 5.3+), to kill it without the risk of
    /// reaching a process that reused its pid once it was reaped.
    pidfd: Option<OwnedFd>,
}

/// Why a spawn through the spawner did not give a running process.
#[derive(Debug)]
pub enum Failure {
    /// The app cannot start (its program, directory or user): the error
    /// the direct path would have given.
    App(std::io::Error),
    /// The spawner is broken or gone: spawn another way.
    Spawner(std::io::Error),
}

impl Spawner {
    /// Forks the spawner. Call while the daemon has a single thread (the
    /// child runs Rust code after the fork) and before it opens anything it
    /// must not share (the home's lock). `None`, with a warning, when it
    /// cannot be started.
    pub fn start() -> Option<Self> {
        match Self::fork() {
            Ok(spawner) => Some(spawner),
            Err(err) => {
                tracing::warn!("cannot start the spawner ({err}); the daemon spawns by itself");
                None
            }
        }
    }

    fn fork() -> std::io::Result<Self> {
        let (ours, theirs) = UnixStream::pair()?;
        let daemon = std::process::id() as i32;
        // SAFETY: the daemon has one thread at this point (see `start`), so
        // the child may run ordinary code; it never returns from serve.
        match unsafe { nix::unistd::fork() }.map_err(std::io::Error::from)? {
            nix::unistd::ForkResult::Child => {
                drop(ours);
                process::serve(OwnedFd::from(theirs), daemon)
            }
            nix::unistd::ForkResult::Parent { child } => {
                drop(theirs);
                ours.set_read_timeout(Some(stuck_after()))?;
                ours.set_write_timeout(Some(stuck_after()))?;
                // No reaping yet (the runtime does not exist), so the pid
                // is still the spawner's.
                // SAFETY: pidfd_open returns a new descriptor or -1.
                let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.as_raw(), 0) };
                let pidfd = (pidfd >= 0).then(|| {
                    // SAFETY: pidfd_open just gave us this descriptor.
                    unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(pidfd as RawFd) }
                });
                Ok(Self {
                    link: ours,
                    pid: child.as_raw() as u32,
                    pidfd,
                })
            }
        }
    }

    /// Starts the process `message` describes (a [`wire::Request`]),
    /// handing it `fds` in the order of its slots, and registers it with
    /// `hold`. After a [`Failure::Spawner`] the spawner is dead (killed
    /// here if need be) and no child of this request runs.
    pub fn spawn(
        &mut self,
        message: &[u8],
        fds: &[RawFd],
        hold: &mut Hold<'_>,
    ) -> Result<(u32, ExitReceiver), Failure> {
        let pid = match self.send(message, fds).and_then(|()| self.read_i32()) {
            Ok(pid) => pid,
            Err(err) => {
                self.end(hold, None);
                return Err(Failure::Spawner(err));
            }
        };
        if pid <= 0 {
            // No child: the request was refused, or clone failed (a
            // process limit), which the direct path would hit too.
            let errno = pid.checked_neg().unwrap_or(libc::EIO);
            return Err(Failure::App(std::io::Error::from_raw_os_error(errno)));
        }
        let pid = pid as u32;
        let exit = hold.register(pid);
        match self.read_i32() {
            Ok(0) => Ok((pid, exit)),
            Ok(errno) => {
                // It wrote why and exits 127; the reaper collects it as a
                // child nobody waits for (never waited for here: that
                // would block every reaping and spawning meanwhile).
                hold.forget(pid);
                Err(Failure::App(std::io::Error::from_raw_os_error(errno)))
            }
            Err(err) => {
                self.end(hold, Some(pid));
                Err(Failure::Spawner(err))
            }
        }
    }

    /// Ends a spawner that failed (gone, hung, or broken) so that no child
    /// of the current request can run unknown: kills the spawner, reads
    /// what it still said (the child's pid, if the failure came before
    /// the daemon read it: a spawner that hung and woke at the wrong
    /// moment), and kills that child, which is ours and unreaped (reaping
    /// is held), so its pid is still its own.
    fn end(&mut self, hold: &mut Hold<'_>, known: Option<u32>) {
        match &self.pidfd {
            // SAFETY: pidfd_send_signal on a pidfd we own; a pidfd cannot
            // reach a process that reused the spawner's pid.
            Some(pidfd) => unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    pidfd.as_raw_fd(),
                    libc::SIGKILL,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                );
            },
            // No pidfd (a kernel before 5.3, a seccomp profile): the
            // spawner is our child and reaping is held, so its pid is
            // still its own unless it was reaped before the hold.
            None if is_unreaped_child(self.pid) => {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(self.pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            None => {}
        }
        let mut said = Vec::new();
        let _ = self.link.set_read_timeout(Some(DRAIN));
        let _ = self.link.read_to_end(&mut said);
        let late = said
            .get(..4)
            .map(|bytes| i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
            .filter(|pid| *pid > 0)
            .map(|pid| pid as u32);
        if let Some(child) = known.or(late) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            hold.forget(child);
        }
    }

    fn send(&mut self, message: &[u8], fds: &[RawFd]) -> std::io::Result<()> {
        let (head, rest) = message.split_at(message.len().min(8));
        let rights = [ControlMessage::ScmRights(fds)];
        let controls: &[ControlMessage<'_>] = if fds.is_empty() { &[] } else { &rights };
        let sent = loop {
            match sendmsg::<()>(
                self.link.as_raw_fd(),
                &[std::io::IoSlice::new(head)],
                controls,
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Err(nix::errno::Errno::EINTR) => continue,
                other => break other.map_err(std::io::Error::from)?,
            }
        };
        // The descriptors went with the first bytes; the rest is a plain
        // stream.
        self.link.write_all(&head[sent..])?;
        self.link.write_all(rest)
    }

    fn read_i32(&mut self) -> std::io::Result<i32> {
        let mut bytes = [0u8; 4];
        self.link.read_exact(&mut bytes)?;
        Ok(i32::from_le_bytes(bytes))
    }

    /// The spawner's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Says why the daemon spawns by itself from now on (the spawner is
    /// already dead: see [`Spawner::spawn`]).
    pub fn abandon(self, why: &std::io::Error) {
        tracing::warn!(
            "the spawner (pid {}) failed ({why}); the daemon spawns by itself until it restarts \
             (each spawn then costs more the more the daemon holds)",
            self.pid
        );
    }
}
