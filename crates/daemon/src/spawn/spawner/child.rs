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
use crate::spawn::image::Image;

/// A decoded request with everything `execve` needs laid out beforehand,
/// and the descriptors (all above 9, close-on-exec) it puts in place.
pub struct Exec {
    image: Image,
    cwd: CString,
    user: Option<(u32, u32)>,
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
        Some(Self {
            image: Image::new(request.program, request.argv, request.env, listen.is_some()),
            cwd: request.cwd,
            user: request.user,
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
            // The system call itself: glibc before 2.25 caches the pid,
            // and the raw clone left the spawner's there.
            let pid = libc::syscall(libc::SYS_getpid) as u32;
            self.image.exec(pid)
        }
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}
