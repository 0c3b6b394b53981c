//! The Unix calls behind spawning and signalling: every instance leads its
//! own process group, so one `kill(-pgid)` reaches everything it forked.

use std::ffi::CString;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use super::image::Image;
use super::spawner::{wire, Failure, Spawner};
use super::Plan;
use crate::reaper::{ExitReceiver, Reaper};

/// A freshly started instance.
#[derive(Debug)]
pub struct Spawned {
    /// Its pid, which is also its process group id.
    pub pid: u32,
    /// Resolves when it exits.
    pub exit: ExitReceiver,
    /// The read end of its stdout (none when it is discarded).
    pub stdout: Option<OwnedFd>,
    /// The read end of its stderr (none when it is discarded).
    pub stderr: Option<OwnedFd>,
}

/// The descriptor a Node app finds its IPC channel on (`NODE_CHANNEL_FD`):
/// after the shared socket (fd 3, `LISTEN_FDS=1`), so the two never meet,
/// and the same whether or not the app shares a port.
pub const IPC_FD: RawFd = 4;

/// Starts `plan` in a new process group with stdin from /dev/null,
/// stdout/stderr on pipes, no other descriptor (but the shared socket as fd
/// 3 and a Node IPC channel as fd [`IPC_FD`]), and the umask and open-file
/// limit of the daemon's caller.
/// Through the spawner when there is one, else by forking the daemon.
pub fn spawn(
    reaper: &Reaper,
    spawner: &Mutex<Option<Spawner>>,
    plan: &Plan,
) -> std::io::Result<Spawned> {
    match through_spawner(reaper, spawner, plan) {
        Some(spawned) => spawned,
        None => spawn_directly(reaper, plan),
    }
}

/// Asks the spawner; `None` when there is none (any more).
fn through_spawner(
    reaper: &Reaper,
    spawner: &Mutex<Option<Spawner>>,
    plan: &Plan,
) -> Option<std::io::Result<Spawned>> {
    let mut slot = spawner.lock().unwrap_or_else(|e| e.into_inner());
    let running = slot.as_mut()?;
    let pipe = |discard: bool| -> std::io::Result<Option<(OwnedFd, OwnedFd)>> {
        if discard {
            return Ok(None);
        }
        Ok(Some(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?))
    };
    let (stdout, stderr) = match (pipe(plan.discard_stdout), pipe(plan.discard_stderr)) {
        (Ok(stdout), Ok(stderr)) => (stdout, stderr),
        (Err(err), _) | (_, Err(err)) => return Some(Err(err)),
    };
    let mut fds = Vec::with_capacity(4);
    fds.extend(stdout.as_ref().map(|(_, write)| write.as_raw_fd()));
    fds.extend(stderr.as_ref().map(|(_, write)| write.as_raw_fd()));
    fds.extend(plan.listen_socket.as_ref().map(|socket| socket.as_raw_fd()));
    fds.extend(plan.ipc_channel.as_ref().map(|channel| channel.as_raw_fd()));
    let request = wire::Request {
        program: plan.program.as_os_str().as_bytes(),
        args: plan.args.iter().map(|arg| arg.as_bytes()).collect(),
        env: plan
            .env
            .iter()
            .map(|(key, value)| format!("{key}={value}").into_bytes())
            .collect(),
        cwd: plan.cwd.as_os_str().as_bytes(),
        user: plan.user,
        slots: wire::Slots {
            stdout: stdout.is_some(),
            stderr: stderr.is_some(),
            listen: plan.listen_socket.is_some(),
            ipc: plan.ipc_channel.is_some(),
        },
    };
    let message = match request.encode() {
        Ok(message) => message,
        Err(err) => return Some(Err(err)),
    };
    let mut hold = reaper.hold();
    match running.spawn(&message, &fds, &mut hold) {
        Ok((pid, exit)) => Some(Ok(Spawned {
            pid,
            exit,
            stdout: stdout.map(|(read, _)| read),
            stderr: stderr.map(|(read, _)| read),
        })),
        Err(Failure::App(err)) => Some(Err(err)),
        Err(Failure::Spawner(err)) => {
            drop(hold);
            if let Some(broken) = slot.take() {
                broken.abandon(&err);
            }
            None
        }
    }
}

/// Forks the daemon itself (std's `Command`): the way without a spawner.
fn spawn_directly(reaper: &Reaper, plan: &Plan) -> std::io::Result<Spawned> {
    let mut command = Command::new(&plan.program);
    command
        .args(&plan.args)
        .current_dir(&plan.cwd)
        .env_clear()
        .envs(&plan.env)
        .stdin(Stdio::null())
        .stdout(if plan.discard_stdout {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .stderr(if plan.discard_stderr {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .process_group(0);
    if let Some((uid, gid)) = plan.user {
        // std drops the supplementary groups when root switches user.
        command.uid(uid).gid(gid);
    }
    // SAFETY: restore_for_child makes only async-signal-safe calls (umask,
    // get/setrlimit, close_range) in the forked child. It runs before
    // SocketExec, which then puts the listening socket on fd 3 without
    // close-on-exec.
    unsafe {
        command.pre_exec(crate::inheritance::restore_for_child);
    }
    let ipc = plan.ipc_channel.as_ref().map(|fd| fd.as_raw_fd());
    if let Some(listener) = &plan.listen_socket {
        let mut exec = SocketExec::new(plan, listener.as_raw_fd(), ipc)?;
        // SAFETY: the closure runs in the forked child and only makes
        // async-signal-safe calls (fcntl, dup2, getpid, execve) on memory
        // that was allocated before the fork.
        unsafe {
            command.pre_exec(move || exec.run());
        }
    } else if let Some(ipc) = ipc {
        // SAFETY: only fcntl/dup2 on descriptors that exist in the child.
        unsafe {
            command.pre_exec(move || place_fd(ipc, IPC_FD));
        }
    }
    let (mut child, exit) = reaper.spawn(&mut command)?;
    let stdout: Option<OwnedFd> = child.stdout.take().map(Into::into);
    let stderr: Option<OwnedFd> = child.stderr.take().map(Into::into);
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

/// Execs a plan with a listening socket as fd 3 and `LISTEN_PID` set to the
/// child's own pid, which is known only after the fork: std cannot set it,
/// so the child execs by itself from buffers prepared before the fork.
struct SocketExec {
    socket: RawFd,
    /// The child's end of a Node IPC channel, placed at [`IPC_FD`].
    ipc: Option<RawFd>,
    image: Image,
}

impl SocketExec {
    fn new(plan: &Plan, socket: RawFd, ipc: Option<RawFd>) -> std::io::Result<Self> {
        let cstring = |bytes: &[u8]| {
            CString::new(bytes).map_err(|_| std::io::Error::other("a NUL byte in the command"))
        };
        let program = cstring(plan.program.as_os_str().as_bytes())?;
        let mut argv = vec![program.clone()];
        for arg in &plan.args {
            argv.push(cstring(arg.as_bytes())?);
        }
        let mut env = Vec::new();
        for (key, value) in &plan.env {
            env.push(cstring(format!("{key}={value}").as_bytes())?);
        }
        Ok(Self {
            socket,
            ipc,
            image: Image::new(program, argv, env, true),
        })
    }

    /// In the child: fd 3, the IPC channel, `LISTEN_PID`, exec. Returns
    /// only on failure.
    fn run(&mut self) -> std::io::Result<()> {
        // The channel must not sit on fd 3, which the socket takes; the
        // socket may sit on fd 4, which the channel takes once the socket
        // has its copy on 3.
        let mut ipc = self.ipc;
        if ipc == Some(3) {
            // SAFETY: fcntl on a descriptor the child holds.
            let moved = unsafe { libc::fcntl(3, libc::F_DUPFD_CLOEXEC, IPC_FD + 1) };
            if moved == -1 {
                return Err(std::io::Error::last_os_error());
            }
            ipc = Some(moved);
        }
        place_fd(self.socket, 3)?;
        if let Some(ipc) = ipc {
            place_fd(ipc, IPC_FD)?;
        }
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() } as u32;
        Err(std::io::Error::from_raw_os_error(self.image.exec(pid)))
    }
}

/// In a forked child: makes `fd` available as `target` across exec.
fn place_fd(fd: RawFd, target: RawFd) -> std::io::Result<()> {
    // SAFETY: fcntl and dup2 on descriptors the child holds.
    let done = unsafe {
        if fd == target {
            libc::fcntl(target, libc::F_SETFD, 0)
        } else {
            libc::dup2(fd, target)
        }
    };
    if done == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A listening TCP socket on `address` with a long backlog; for an IPv6
/// address it also accepts IPv4 (dual stack).
pub fn listen_dual_stack(address: SocketAddr) -> std::io::Result<TcpListener> {
    use nix::sys::socket::{
        bind, listen, setsockopt, socket, sockopt, AddressFamily, Backlog, SockFlag, SockType,
        SockaddrStorage,
    };
    let family = match address {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    if family == AddressFamily::Inet6 {
        setsockopt(&fd, sockopt::Ipv6V6Only, &false)?;
    }
    bind(fd.as_raw_fd(), &SockaddrStorage::from(address))?;
    listen(&fd, Backlog::MAXCONN)?;
    Ok(TcpListener::from(fd))
}

/// In the environment of the daemon's own health-check scripts, which
/// carry their instance's marks but are not its processes.
pub const CHECK_MARK: &str = "PMDAEMON_HEALTH_CHECK";

/// What escaped one instance's process group is looked for by its marks
/// (`NAME=value` entries of its environment), sparing `except`: processes
/// that legitimately carry them (the instance's replacement during a
/// reload).
pub struct Escapees<'a> {
    /// The instance's marks.
    pub marks: &'a [String],
    /// Its processes that are not escapees.
    pub except: &'a std::collections::HashSet<u32>,
}

/// Kills what escaped instances' process groups (a grandchild that called
/// `setsid`): once a group is gone, such a process has been reparented to
/// the daemon (a subreaper), so it is among the daemon's children, and it
/// carries its instance's marks in its environment. Its own group goes with
/// it. `leaders` (every instance's recorded processes) are never looked
/// at. The daemon's children are read once for all of `wanted`, and each
/// other child's environment once: a `restart all` of thousands of
/// instances asks for many at a time. Returns how many were found for each.
pub fn kill_escaped(
    wanted: &[Escapees<'_>],
    leaders: &std::collections::HashSet<u32>,
) -> Vec<usize> {
    let mut found = vec![0; wanted.len()];
    let me = std::process::id();
    for pid in crate::procinfo::children(me)
        .into_iter()
        .filter(|pid| !leaders.contains(pid))
    {
        let Some(environ) = crate::procinfo::environ(pid) else {
            continue;
        };
        if environ.has_var(CHECK_MARK) {
            continue;
        }
        for (escapees, count) in wanted.iter().zip(found.iter_mut()) {
            if escapees.except.contains(&pid) || !environ.has_all(escapees.marks) {
                continue;
            }
            let Some(stat) = crate::procinfo::stat(pid) else {
                continue;
            };
            if stat.zombie {
                continue;
            }
            tracing::warn!("pid {pid} escaped its instance's process group; killing it");
            if stat.pgrp != 0 && stat.pgrp != me {
                signal_group(stat.pgrp, Signal::SIGKILL);
            }
            let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            *count += 1;
        }
    }
    found
}
