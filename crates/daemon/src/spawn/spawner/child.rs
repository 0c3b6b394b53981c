//! The child's side: what happens between the spawner's `clone` and the
//! app's `execve`. The child is a copy of the spawner (one thread, a few
//! megabytes, a handful of descriptors), so this is cheap however many
//! apps the daemon runs; its parent is the daemon (`CLONE_PARENT`), which
//! reaps it like any other child.
//!
//! The steps and their order are std's `Command` (stdio, group, user,
//! directory, signals) followed by what the direct path runs before exec
//! (the caller's umask and limits, fd 3 and fd 4). Only plain system calls:
//! the child must not depend on anything the raw `clone` left stale.

use std::ffi::CString;
use std::os::fd::RawFd;

use super::wire::Decoded;

/// What starts the `LISTEN_PID` entry of an environment.
pub(in crate::spawn) const LISTEN_PID_PREFIX: &[u8] = b"LISTEN_PID=";

/// The shell a file without a format runs under, as with `execvp`.
pub(in crate::spawn) const SHELL: &std::ffi::CStr = c"/bin/sh";

/// A decoded request with everything `execve` needs laid out beforehand,
/// and the descriptors (all above 9, close-on-exec) it puts in place.
pub struct Exec {
    program: CString,
    cwd: CString,
    user: Option<(u32, u32)>,
    _argv: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    _env: Vec<CString>,
    /// `LISTEN_PID=` and room for the digits, when fd 3 is a socket.
    listen_pid: Vec<u8>,
    envp: Vec<*const libc::c_char>,
    /// `argv` for `/bin/sh` running the program as a script, which is what
    /// `execvp` (std's path) does with a file exec finds no format in.
    script_argv: Vec<*const libc::c_char>,
    stdin: RawFd,
    stdout: RawFd,
    stderr: RawFd,
    listen: Option<RawFd>,
    ipc: Option<RawFd>,
}

/// Where the request's descriptors are in the spawner.
pub struct Descriptors {
    /// `/dev/null`, for stdin and discarded streams.
    pub null: RawFd,
    /// The descriptors in the order of the request's slots.
    pub sent: Vec<RawFd>,
}

impl Exec {
    /// Lays `request` out; `None` when its descriptors do not match its
    /// slots.
    pub fn new(request: Decoded, fds: &Descriptors) -> Option<Self> {
        let slots = request.slots;
        if fds.sent.len() != slots.count() {
            return None;
        }
        let mut sent = fds.sent.iter().copied();
        let mut take = |present: bool| if present { sent.next() } else { None };
        let stdout = take(slots.stdout).unwrap_or(fds.null);
        let stderr = take(slots.stderr).unwrap_or(fds.null);
        let listen = take(slots.listen);
        let ipc = take(slots.ipc);
        let env: Vec<CString> = request
            .env
            .into_iter()
            .filter(|entry| listen.is_none() || !entry.as_bytes().starts_with(LISTEN_PID_PREFIX))
            .collect();
        let mut listen_pid = LISTEN_PID_PREFIX.to_vec();
        listen_pid.resize(LISTEN_PID_PREFIX.len() + 24, 0);
        let mut argv: Vec<*const libc::c_char> = request.argv.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut script_argv = vec![SHELL.as_ptr(), request.program.as_ptr()];
        script_argv.extend(argv.iter().skip(1));
        let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
        if listen.is_some() {
            envp.push(listen_pid.as_ptr().cast());
        }
        envp.push(std::ptr::null());
        Some(Self {
            program: request.program,
            cwd: request.cwd,
            user: request.user,
            _argv: request.argv,
            argv,
            _env: env,
            listen_pid,
            envp,
            script_argv,
            stdin: fds.null,
            stdout,
            stderr,
            listen,
            ipc,
        })
    }

    /// In the child, right after `clone`: waits for the spawner's go on
    /// `link`, sets the process up and execs it. On any failure it writes
    /// the errno on `link` and exits 127; without the go (the spawner died
    /// before the daemon could know this pid) it exits at once.
    /// `spawners` are the spawner's own descriptors that this copy of it
    /// must let go of first.
    ///
    /// # Safety
    /// Only in a child created by `clone` from the spawner, whose
    /// descriptors (all but 0, 1 and 2 above 9) this takes over.
    pub unsafe fn run(&mut self, link: RawFd, spawners: [RawFd; 2]) -> ! {
        // SAFETY: see the function's contract; plain system calls on
        // buffers and descriptors this process owns.
        unsafe {
            // The copies of the spawner's ends of its links (to the daemon,
            // to this child) would keep both open after the spawner died:
            // the daemon would wait for an answer and this child for a go
            // that never come.
            for fd in spawners {
                libc::close(fd);
            }
            let mut go = [0u8; 1];
            loop {
                let read = libc::read(link, go.as_mut_ptr().cast(), 1);
                if read == 1 {
                    break;
                }
                if read < 0 && errno() == libc::EINTR {
                    continue;
                }
                libc::_exit(127);
            }
            let errno = self.prepare();
            let bytes = errno.to_le_bytes();
            libc::write(link, bytes.as_ptr().cast(), bytes.len());
            libc::_exit(127)
        }
    }

    /// Everything up to and including `execve`; returns only on failure,
    /// with the errno.
    /// # Safety
    /// As [`Exec::run`].
    unsafe fn prepare(&mut self) -> i32 {
        // SAFETY: see the function's contract; plain system calls on
        // buffers and descriptors this process owns.
        unsafe {
            for (fd, target) in [(self.stdin, 0), (self.stdout, 1), (self.stderr, 2)] {
                if libc::dup2(fd, target) == -1 {
                    return errno();
                }
            }
            if libc::setpgid(0, 0) == -1 {
                return errno();
            }
            if let Some((uid, gid)) = self.user {
                // Raw calls: glibc's wrappers would try to reach the spawner's
                // threads as the raw clone left them in its bookkeeping.
                if libc::syscall(libc::SYS_setgid, gid) == -1 {
                    return errno();
                }
                // As std does: switching from root drops the supplementary
                // groups, which would otherwise still be root's.
                if libc::getuid() == 0 {
                    libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>());
                }
                if libc::syscall(libc::SYS_setuid, uid) == -1 {
                    return errno();
                }
            }
            if libc::chdir(self.cwd.as_ptr()) == -1 {
                return errno();
            }
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            // The caller's umask and limits, and default dispositions for
            // the signals a caller may have ignored (see `inheritance`).
            if let Err(err) = crate::inheritance::restore_for_child() {
                return err.raw_os_error().unwrap_or(libc::EIO);
            }
            // Every source is above 9, so neither placement clobbers the other.
            for (fd, target) in [(self.listen, 3), (self.ipc, super::super::IPC_FD)] {
                match fd {
                    Some(fd) => {
                        if libc::dup2(fd, target) == -1 {
                            return errno();
                        }
                    }
                    None => {
                        libc::close(target);
                    }
                }
            }
            if self.listen.is_some() {
                self.write_listen_pid();
            }
            libc::execve(
                self.program.as_ptr(),
                self.argv.as_ptr(),
                self.envp.as_ptr(),
            );
            let failed = errno();
            if failed != libc::ENOEXEC {
                return failed;
            }
            libc::execve(
                SHELL.as_ptr(),
                self.script_argv.as_ptr(),
                self.envp.as_ptr(),
            );
            // As execvp: the shell's own failure is the one reported.
            errno()
        }
    }

    /// Fills `LISTEN_PID=` with this process's pid (known only now).
    fn write_listen_pid(&mut self) {
        // The system call itself: glibc before 2.25 caches the pid, and the
        // raw clone left the spawner's there.
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::syscall(libc::SYS_getpid) } as u32;
        fill_listen_pid(&mut self.listen_pid, pid);
    }
}

/// Writes `pid` in decimal, NUL-terminated, after the `LISTEN_PID=` that
/// starts `slot` (sized for it beforehand). No allocation: it runs between
/// fork (or clone) and exec.
pub(in crate::spawn) fn fill_listen_pid(slot: &mut [u8], mut pid: u32) {
    let mut digits = [0u8; 10];
    let mut len = 0;
    loop {
        digits[len] = b'0' + (pid % 10) as u8;
        len += 1;
        pid /= 10;
        if pid == 0 {
            break;
        }
    }
    let start = LISTEN_PID_PREFIX.len();
    for i in 0..len {
        slot[start + i] = digits[len - 1 - i];
    }
    slot[start + len] = 0;
}

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}
